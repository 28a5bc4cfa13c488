//! Terminal output as text, and shell quoting.

/// Python's `bytes.decode(errors="backslashreplace")`.
pub fn decode(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        s.push_str(chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(s, "\\x{byte:02x}");
        }
    }
    s
}

/// Keeps text and control characters, drops escape sequences (CSI, OSC, DCS, ...). A kept
/// parser (Alacritty's `vte`) instead of a regular expression: a regex that only knows CSI cut
/// OSC sequences (window titles, hyperlinks) in the middle and left their text behind.
/// `strip-ansi-escapes` (which wraps `vte`) is not used: it drops every control character but
/// `\n`, tabs and `\r` included, which would change what programs print.
struct Strip(String);

impl vte::Perform for Strip {
    fn print(&mut self, c: char) {
        self.0.push(c);
    }

    fn execute(&mut self, byte: u8) {
        // C0 controls and (as chars U+0080..U+009F) C1 controls stay as they were.
        self.0.push(char::from(byte));
    }
}

/// `s` without terminal escape sequences.
pub(super) fn strip_escapes(s: &str) -> String {
    let mut out = Strip(String::with_capacity(s.len()));
    vte::Parser::new().advance(&mut out, s.as_bytes());
    out.0
}

/// Terminal output as text: decoded, escape sequences removed, `\r\n` → `\n` (as LocalRuntime).
pub fn clean(b: &[u8]) -> String {
    let mut s = decode(b);
    if s.contains('\x1b') {
        s = strip_escapes(&s);
    }
    if s.contains("\r\n") {
        s = s.replace("\r\n", "\n");
    }
    s
}

pub(super) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_go_text_and_controls_stay() {
        // CSI colours, an OSC title (BEL- and ST-terminated), an OSC 8 hyperlink, a DCS string.
        let raw = b"\x1b[1;31mred\x1b[0m \x1b]0;my title\x07a\x1b]2;t2\x1b\\b \
                    \x1b]8;;http://x.y/\x1b\\link\x1b]8;;\x1b\\ \x1bP1$r0m\x1b\\c";
        assert_eq!(clean(raw), "red ab link c");
        // Tabs, bare CR, backspace, bell and DEL are not escape sequences: kept.
        assert_eq!(
            clean(b"a\tb\rc\x08d\x07e\x7f\r\n"),
            "a\tb\rc\x08d\x07e\x7f\n"
        );
        // Invalid UTF-8 stays visible as \xNN, also next to escapes; C1 chars survive.
        assert_eq!(clean(b"\xff\x1b[2Kx\xc2\x9b"), "\\xffx\u{9b}");
        assert_eq!(clean("é\x1b[mü".as_bytes()), "éü");
    }
}
