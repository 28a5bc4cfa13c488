//! Python's `repr()` of the values SWE-ReX puts in its messages (strings, lists of strings,
//! floats), so messages read exactly as `LocalRuntime`'s.

use std::fmt::Write;

/// `repr(s)` of a Python `str`.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c => {
                let n = c as u32;
                let _ = if n < 0x100 {
                    write!(out, "\\x{n:02x}")
                } else if n < 0x10000 {
                    write!(out, "\\u{n:04x}")
                } else {
                    write!(out, "\\U{n:08x}")
                };
            }
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable` for the characters that matter here: control characters and
/// separators other than the plain space are escaped.
fn is_printable(c: char) -> bool {
    !(c.is_control() || matches!(c, '\u{00a0}' | '\u{00ad}' | '\u{2028}' | '\u{2029}'))
}

/// `repr(xs)` of a Python `list[str]`.
pub fn repr_list(xs: &[String]) -> String {
    let items: Vec<String> = xs.iter().map(|x| repr_str(x)).collect();
    format!("[{}]", items.join(", "))
}

/// `str(x)` of a Python `float`.
pub fn float(x: f64) -> String {
    if x.is_nan() {
        "nan".into()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.into()
    } else if x.abs() >= 1e16 {
        // Python switches to exponent notation with an explicit sign.
        let e = format!("{x:e}");
        match e.split_once('e') {
            Some((m, exp)) if !exp.starts_with('-') => format!("{m}e+{exp:0>2}"),
            Some((m, exp)) => format!("{m}e-{:0>2}", &exp[1..]),
            None => e,
        }
    } else if x.fract() == 0.0 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reprs_match_python() {
        assert_eq!(repr_str("echo hi"), "'echo hi'");
        assert_eq!(repr_str("it's"), "\"it's\"");
        assert_eq!(repr_str("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(repr_str("x\ny\t\\\x1b"), "'x\\ny\\t\\\\\\x1b'");
        assert_eq!(repr_str("é😀"), "'é😀'");
        assert_eq!(repr_list(&["ls".into(), "-l".into()]), "['ls', '-l']");
        assert_eq!(float(10.0), "10.0");
        assert_eq!(float(0.5), "0.5");
        assert_eq!(float(1e20), "1e+20");
        assert_eq!(float(1.5e300), "1.5e+300");
    }
}
