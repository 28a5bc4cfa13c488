//! RFC 6570 level-1 URI templates (`test://items/{id}/data`): parsing and matching a concrete
//! URI back to its variables, as resource templates need.

use regex::Regex;
use serde_json::{Map, Value};

use super::error::{Error, Result};
use super::text::bounded;

/// A parsed template: its variables in order and a matcher for concrete URIs.
#[derive(Debug, Clone)]
pub struct UriTemplate {
    vars: Vec<String>,
    re: Regex,
}

fn refuse(raw: &str, why: impl std::fmt::Display) -> Error {
    Error::Registration(format!(
        "resource URI template '{}': {why}",
        bounded(raw, 200)
    ))
}

impl UriTemplate {
    /// Parse `raw`; `Ok(None)` when it has no `{placeholder}` (a plain URI). Only level-1
    /// `{name}` expressions are accepted, `name` a Python identifier; operators (`{+x}`,
    /// `{?x}`, …), lists and modifiers are refused, as are unbalanced braces and repeats.
    pub fn parse(raw: &str) -> Result<Option<UriTemplate>> {
        if !raw.contains(['{', '}']) {
            return Ok(None);
        }
        let mut vars: Vec<String> = Vec::new();
        let mut pattern = String::from("^");
        let mut rest = raw;
        while let Some(open) = rest.find(['{', '}']) {
            if rest.as_bytes()[open] == b'}' {
                return Err(refuse(raw, "'}' without a matching '{'"));
            }
            pattern.push_str(&regex::escape(&rest[..open]));
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return Err(refuse(raw, "'{' without a matching '}'"));
            };
            let name = &after[..close];
            let ident = name
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_alphanumeric() || c == '_');
            if !ident {
                return Err(refuse(
                    raw,
                    format!(
                        "placeholder '{{{}}}' is not a level-1 '{{name}}' with a parameter name \
                         (operators, lists and modifiers are not supported)",
                        bounded(name, 64)
                    ),
                ));
            }
            if vars.iter().any(|v| v == name) {
                return Err(refuse(
                    raw,
                    format!("placeholder '{{{name}}}' appears twice"),
                ));
            }
            // A level-1 expansion percent-encodes '/', so a value never spans segments.
            pattern.push_str(&format!("(?P<{name}>[^/]+)"));
            vars.push(name.to_string());
            rest = &after[close + 1..];
        }
        pattern.push_str(&regex::escape(rest));
        pattern.push('$');
        let re = Regex::new(&pattern).map_err(|e| refuse(raw, e))?;
        Ok(Some(UriTemplate { vars, re }))
    }

    /// The placeholders, in order.
    pub fn vars(&self) -> &[String] {
        &self.vars
    }

    /// The variables of `uri` (percent-decoded) if it matches, as JSON strings.
    pub fn matches(&self, uri: &str) -> Option<Map<String, Value>> {
        let caps = self.re.captures(uri)?;
        let mut out = Map::new();
        for v in &self.vars {
            let raw = caps.name(v)?.as_str();
            out.insert(v.clone(), Value::String(percent_decode(raw)));
        }
        Some(out)
    }
}

/// `%XX` sequences decoded; the input unchanged when that is not valid UTF-8.
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(x) = hex {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_uris_are_not_templates() {
        assert!(UriTemplate::parse("test://static-text").unwrap().is_none());
    }

    #[test]
    fn matches_and_decodes_variables() {
        let t = UriTemplate::parse("test://template/{id}/data")
            .unwrap()
            .unwrap();
        assert_eq!(t.vars(), ["id"]);
        let m = t.matches("test://template/123/data").unwrap();
        assert_eq!(m["id"], "123");
        let m = t.matches("test://template/a%20b/data").unwrap();
        assert_eq!(m["id"], "a b");
        assert!(t.matches("test://template//data").is_none());
        assert!(t.matches("test://template/1/2/data").is_none());
        assert!(t.matches("test://template/1/datax").is_none());
        // Regex metacharacters in the literal parts are literal.
        let t = UriTemplate::parse("a.b://{x}?q").unwrap().unwrap();
        assert!(t.matches("a.b://1?q").is_some());
        assert!(t.matches("aXb://1?q").is_none());
        // A bad escape stays as it is.
        let t = UriTemplate::parse("f://{x}").unwrap().unwrap();
        assert_eq!(t.matches("f://100%").unwrap()["x"], "100%");
        assert_eq!(t.matches("f://%zz%4").unwrap()["x"], "%zz%4");
    }

    #[test]
    fn bad_templates_are_registration_errors() {
        for (t, why) in [
            ("x://{a", "without a matching '}'"),
            ("x://a}", "without a matching '{'"),
            ("x://{+a}", "level-1"),
            ("x://{a,b}", "level-1"),
            ("x://{}", "level-1"),
            ("x://{a}/{a}", "twice"),
        ] {
            match UriTemplate::parse(t) {
                Err(Error::Registration(m)) => assert!(m.contains(why), "{t}: {m}"),
                other => panic!("{t}: {other:?}"),
            }
        }
    }
}
