//! GNU grep *basic* regular expressions (`(`, `+`, `?`, `{`, `|` are literal; `\(`, `\+`,
//! `\|`... are operators) translated to Rust `regex` syntax.

/// Translate a GNU grep basic regular expression into Rust `regex` syntax.
pub fn bre_to_regex(p: &str) -> std::result::Result<String, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    let mut depth = 0usize;
    // Where `*` is literal and `^` anchors: the start of the pattern, after `\(` or `\|`.
    let mut at_start = true;
    while i < chars.len() {
        let c = chars[i];
        let start = std::mem::replace(&mut at_start, false);
        match c {
            '\\' => {
                let Some(&n) = chars.get(i + 1) else {
                    return Err("trailing backslash".into());
                };
                i += 2;
                match n {
                    '(' => {
                        out.push('(');
                        depth += 1;
                        at_start = true;
                    }
                    ')' => {
                        if depth == 0 {
                            return Err("unmatched ) or \\)".into());
                        }
                        depth -= 1;
                        out.push(')');
                    }
                    '|' => {
                        out.push('|');
                        at_start = true;
                    }
                    '{' if !start => {
                        let close = (i..chars.len().saturating_sub(1))
                            .find(|&k| chars[k] == '\\' && chars[k + 1] == '}')
                            .ok_or("unmatched \\{")?;
                        let body: String = chars[i..close].iter().collect();
                        if body.is_empty() || !body.chars().all(|c| c.is_ascii_digit() || c == ',')
                        {
                            return Err(format!("invalid content of \\{{\\}}: {body:?}"));
                        }
                        out.push_str(&format!("{{{body}}}"));
                        i = close + 2;
                    }
                    '+' | '?' if !start => out.push(n),
                    '<' => out.push_str(r"\b{start}"),
                    '>' => out.push_str(r"\b{end}"),
                    'b' | 'B' | 'w' | 'W' | 's' | 'S' => {
                        out.push('\\');
                        out.push(n);
                    }
                    '`' => out.push('^'),
                    '\'' => out.push('$'),
                    '1'..='9' => {
                        return Err("back-references (\\1 ... \\9) are not supported".into())
                    }
                    other => push_literal(&mut out, other),
                }
                continue;
            }
            '*' if start => out.push_str(r"\*"),
            '*' | '.' => out.push(c),
            '^' if start => {
                out.push('^');
                at_start = true;
            }
            '$' => {
                let at_end = i + 1 == chars.len()
                    || (chars[i + 1] == '\\' && matches!(chars.get(i + 2), Some(')' | '|')));
                out.push_str(if at_end { "$" } else { r"\$" });
            }
            '[' => {
                i = bracket(&chars, i, &mut out)?;
                continue;
            }
            other => push_literal(&mut out, other),
        }
        i += 1;
    }
    if depth > 0 {
        return Err("unmatched ( or \\(".into());
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if r"\.+*?()|[]{}^$#&-~".contains(c) {
        out.push('\\');
    }
    out.push(c);
}

/// The POSIX character classes grep knows.
const CLASSES: &[&str] = &[
    "alnum", "alpha", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space",
    "upper", "xdigit",
];

/// Copy the bracket expression starting at `chars[i] == '['`; returns the index after it.
fn bracket(chars: &[char], mut i: usize, out: &mut String) -> std::result::Result<usize, String> {
    const UNMATCHED: &str = "unmatched [, [^, [:, [., or [=";
    out.push('[');
    i += 1;
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    if chars.get(i) == Some(&']') {
        out.push_str(r"\]");
        i += 1;
    }
    loop {
        let c = *chars.get(i).ok_or(UNMATCHED)?;
        match c {
            ']' => {
                out.push(']');
                return Ok(i + 1);
            }
            '[' if chars.get(i + 1) == Some(&':') => {
                let end = (i + 2..chars.len().saturating_sub(1))
                    .find(|&k| chars[k] == ':' && chars[k + 1] == ']')
                    .ok_or(UNMATCHED)?;
                let name: String = chars[i + 2..end].iter().collect();
                if !CLASSES.contains(&name.as_str()) {
                    return Err(format!("invalid character class [:{name}:]"));
                }
                out.extend(&chars[i..end + 2]);
                i = end + 2;
                continue;
            }
            '[' if matches!(chars.get(i + 1), Some('=' | '.')) => {
                return Err(
                    "equivalence classes and collating symbols ([= =], [. .]) are not supported"
                        .into(),
                )
            }
            '-' if chars.get(i + 1) == Some(&'-') || (i > 0 && chars[i - 1] == '-') => {
                out.push_str(r"\-")
            }
            '[' | '\\' | '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bre_translation() {
        let t = |p: &str| bre_to_regex(p).unwrap();
        assert_eq!(t("def foo("), r"def foo\(");
        assert_eq!(t(r"a\|b"), "a|b");
        assert_eq!(t("^import x$"), "^import x$");
        assert_eq!(t("$x^"), r"\$x\^");
        assert_eq!(t("*a*"), r"\*a*");
        assert_eq!(t(r"\(ab\)*c\{2,3\}"), "(ab)*c{2,3}");
        assert_eq!(t("a+b?{1}|"), r"a\+b\?\{1\}\|");
        assert_eq!(t(r"a\+b\?"), "a+b?");
        assert_eq!(t(r"[]a-z\[]x"), r"[\]a-z\\\[]x");
        assert_eq!(t("[^[:digit:]_]"), "[^[:digit:]_]");
        assert_eq!(t(r"foo\.bar\\"), r"foo\.bar\\");
        assert_eq!(t(r"\<word\>"), r"\b{start}word\b{end}");
        assert_eq!(t(r"\(^a\|^b\)"), "(^a|^b)");
        assert!(bre_to_regex(r"\(a\)\1")
            .unwrap_err()
            .contains("back-references"));
        assert!(bre_to_regex("[abc").unwrap_err().contains("unmatched ["));
        assert!(bre_to_regex("[[:nope:]]")
            .unwrap_err()
            .contains("invalid character class [:nope:]"));
        assert!(bre_to_regex(r"\(a").unwrap_err().contains("unmatched ("));
        assert!(bre_to_regex(r"a\)").unwrap_err().contains("unmatched )"));
        assert!(bre_to_regex("a\\")
            .unwrap_err()
            .contains("trailing backslash"));
        for p in [
            "def foo(",
            r"[]a-z\[]x",
            "[!--]",
            "a&&b~~c",
            r"x\{3\}",
            "[a&&b]",
        ] {
            assert!(
                grep_regex::RegexMatcher::new(&t(p)).is_ok(),
                "{p} -> {}",
                t(p)
            );
        }
    }
}
