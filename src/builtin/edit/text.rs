//! The text helpers behind the original's messages: tab expansion, clipping, `cat -n`
//! numbering and Python's `splitlines` count.

use super::{MAX_RESPONSE_LEN, TRUNCATED_MESSAGE};

/// Python's `str.expandtabs()` (tab size 8; the column restarts after `\n` and `\r`).
pub fn expandtabs(s: &str) -> String {
    if !s.contains('\t') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut col = 0usize;
    for c in s.chars() {
        match c {
            '\t' => {
                let n = 8 - col % 8;
                out.extend(std::iter::repeat_n(' ', n));
                col += n;
            }
            '\n' | '\r' => {
                out.push(c);
                col = 0;
            }
            _ => {
                out.push(c);
                col += 1;
            }
        }
    }
    out
}

/// The original's `maybe_truncate`: keep the first 16,000 characters and append the marker.
pub fn maybe_truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_RESPONSE_LEN) {
        Some((i, _)) => format!("{}{TRUNCATED_MESSAGE}", &s[..i]),
        None => s.to_string(),
    }
}

/// The original's `_make_output`: clip, expand tabs, number lines like `cat -n`.
pub fn make_output(content: &str, descriptor: &str, init_line: usize) -> String {
    let content = expandtabs(&maybe_truncate(content));
    let mut out = format!("Here's the result of running `cat -n` on {descriptor}:\n");
    for (i, line) in content.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{:6}\t{line}", i + init_line));
    }
    out.push('\n');
    out
}

/// `len(s.splitlines())` in Python (which also breaks on form feeds, `\x1c`.., `\u2028`..).
pub(super) fn splitlines_len(s: &str) -> usize {
    let mut n = 0;
    let mut pending = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                n += 1;
                pending = false;
            }
            '\n' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => {
                n += 1;
                pending = false;
            }
            _ => pending = true,
        }
    }
    n + usize::from(pending)
}
