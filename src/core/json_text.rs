//! JSON text from users (gRPC `args_json`, the CLI's arguments, `RunFunction`'s): parsed with
//! serde_json (its recursion limit bounds nesting), except that an integer literal beyond
//! 64 bits is refused instead of silently becoming an approximate float. serde_json turns
//! such a literal into an `f64` (without the crate-wide `arbitrary_precision` feature, which
//! would change how every `Number` serializes through pythonize, rmcp and jsonschema), so the
//! check looks at the text — and only when the parsed value holds a float large enough to
//! have come from one.

use serde_json::Value;

use super::error::Error;
use super::text::bounded;

/// Smallest magnitude an integer literal that fits neither i64 nor u64 parses to.
const BEYOND_64_BITS: f64 = 9.223_372_036_854_775e18;

/// Parse `text`; an integer literal beyond i64/u64 is a [`Error::Conversion`] naming its
/// path under `root` (`args.n`, `args[2]`). Syntax errors are returned as serde_json's.
pub fn parse(
    text: &str,
    root: &str,
) -> Result<std::result::Result<Value, serde_json::Error>, Error> {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    if has_big_float(&v, 0) {
        if let Some((path, literal)) = find_big_integer(text, root) {
            return Err(Error::conversion(
                path,
                format!(
                    "integer {} does not fit in 64 bits (JSON integers cross as i64/u64; pass it as a string)",
                    bounded(&literal, 40)
                ),
            ));
        }
    }
    Ok(Ok(v))
}

fn has_big_float(v: &Value, depth: usize) -> bool {
    match v {
        Value::Number(n) => n
            .as_f64()
            .is_some_and(|f| n.is_f64() && f.abs() >= BEYOND_64_BITS),
        // serde_json already bounded the depth; the guard keeps this total anyway.
        Value::Array(a) if depth < 256 => a.iter().any(|x| has_big_float(x, depth + 1)),
        Value::Object(o) if depth < 256 => o.values().any(|x| has_big_float(x, depth + 1)),
        _ => false,
    }
}

enum Frame {
    Array(usize),
    Object { key: String, want_key: bool },
}

fn path_of(root: &str, stack: &[Frame]) -> String {
    let mut p = root.to_string();
    for f in stack {
        match f {
            Frame::Array(i) => p.push_str(&format!("[{i}]")),
            Frame::Object { key, .. } => {
                if !p.is_empty() {
                    p.push('.');
                }
                p.push_str(&bounded(key, 64));
            }
        }
    }
    if p.is_empty() {
        "<root>".into()
    } else {
        p
    }
}

/// The first integer literal in `text` (valid JSON) that fits neither i64 nor u64, with its
/// path. Iterative: no recursion on nesting.
fn find_big_integer(text: &str, root: &str) -> Option<(String, String)> {
    let b = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => stack.push(Frame::Object {
                key: String::new(),
                want_key: true,
            }),
            b'[' => stack.push(Frame::Array(0)),
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array(n)) => *n += 1,
                Some(Frame::Object { want_key, .. }) => *want_key = true,
                None => {}
            },
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if let Some(Frame::Object { key, want_key }) = stack.last_mut() {
                    if *want_key {
                        let raw = text.get(start..=i.min(b.len() - 1)).unwrap_or("\"\"");
                        *key = serde_json::from_str(raw).unwrap_or_default();
                        *want_key = false;
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i + 1 < b.len()
                    && matches!(b[i + 1], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let lit = &text[start..=i];
                let integral = !lit.contains(['.', 'e', 'E']);
                if integral && lit.parse::<i64>().is_err() && lit.parse::<u64>().is_err() {
                    return Some((path_of(root, &stack), lit.to_string()));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str, root: &str) -> Error {
        parse(text, root).expect_err(text)
    }

    #[test]
    fn integers_beyond_64_bits_are_refused_with_their_path() {
        match err(r#"{"n": 123456789012345678901234567890}"#, "args") {
            Error::Conversion { path, message } => {
                assert_eq!(path, "args.n");
                assert!(
                    message.contains("123456789012345678901234567890"),
                    "{message}"
                );
                assert!(message.contains("64 bits"), "{message}");
            }
            e => panic!("{e:?}"),
        }
        let deep = r#"{"a": [1, {"x\"y": "s,]", "b": [0, -99999999999999999999]}]}"#;
        match err(deep, "args") {
            Error::Conversion { path, .. } => assert_eq!(path, "args.a[1].b[1]"),
            e => panic!("{e:?}"),
        }
        match err("[1, 18446744073709551616]", "args") {
            Error::Conversion { path, .. } => assert_eq!(path, "args[1]"),
            e => panic!("{e:?}"),
        }
        match err("99999999999999999999", "") {
            Error::Conversion { path, .. } => assert_eq!(path, "<root>"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn the_64_bit_range_and_floats_pass() {
        for ok in [
            "9223372036854775807",
            "-9223372036854775808",
            "18446744073709551615",
            "1e30",
            "-1.5e300",
            "123456789012345678901234567890.0",
            r#"{"s": "123456789012345678901234567890", "f": 1E19}"#,
        ] {
            assert!(parse(ok, "args").unwrap().is_ok(), "{ok}");
        }
        assert!(parse("[1,", "args").unwrap().is_err());
        assert!(parse("NaN", "args").unwrap().is_err());
    }

    #[test]
    fn a_huge_literal_is_shown_bounded() {
        let text = format!("[{}]", "9".repeat(300)); // still a finite f64
        match err(&text, "args") {
            Error::Conversion { message, .. } => assert!(message.len() < 200, "{message}"),
            e => panic!("{e:?}"),
        }
        // Beyond f64 serde_json itself refuses it: a syntax error, whose message is short.
        let text = format!("[{}]", "9".repeat(100_000));
        let e = parse(&text, "args").unwrap().unwrap_err().to_string();
        assert!(e.contains("out of range") && e.len() < 200);
    }
}
