//! Showing user-supplied strings (tool, module and function names) in error messages: a
//! bounded, printable prefix, never the whole string. An error message travels into
//! exceptions, logs, CLI output and gRPC's `grpc-message` header, which must stay small.

use std::borrow::Cow;

/// `s` if it is at most `max` bytes of printable text; otherwise its first `max` bytes (cut
/// at a character boundary) followed by how long it was. Control characters are escaped
/// (`\n`, `\u{1b}`) so a name cannot forge lines or terminal sequences in a message.
pub fn bounded(s: &str, max: usize) -> Cow<'_, str> {
    let printable = |c: char| !c.is_control();
    if s.len() <= max && s.chars().all(printable) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(max.min(s.len()) + 32);
    let mut cut = false;
    for c in s.chars() {
        let piece: Cow<'_, str> = if printable(c) {
            Cow::Owned(c.to_string())
        } else {
            Cow::Owned(c.escape_default().to_string())
        };
        if out.len() + piece.len() > max {
            cut = true;
            break;
        }
        out.push_str(&piece);
    }
    if cut {
        out.push_str(&format!("… ({} bytes in all)", s.len()));
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::bounded;

    #[test]
    fn short_printable_text_is_untouched() {
        assert!(matches!(
            bounded("fs.read", 64),
            std::borrow::Cow::Borrowed("fs.read")
        ));
    }

    #[test]
    fn long_text_is_cut_at_a_char_boundary_and_says_how_long() {
        let s = "é".repeat(1000); // 2 bytes each
        let b = bounded(&s, 11);
        assert_eq!(b, format!("{}… (2000 bytes in all)", "é".repeat(5)));
        let huge = "x".repeat(4 << 20);
        assert!(bounded(&huge, 256).len() < 300);
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(bounded("a\nb\u{1b}[31m", 64), "a\\nb\\u{1b}[31m");
        assert_eq!(bounded("\0", 64), "\\u{0}");
    }
}
