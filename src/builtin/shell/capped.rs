//! Bounded output: a command may print without limit (`yes`), the memory we keep may not.
//! Past `max_output` bytes the middle is dropped — the first and last halves are kept — and
//! the text says so where the cut is. Readers keep draining, so the command is never blocked.

/// Kept output per command (per stream for one-shot commands) unless `max_output` says
/// otherwise.
pub const DEFAULT_MAX_OUTPUT: usize = 16 << 20;
/// The smallest `max_output` accepted (room for both halves and a marker).
pub const MIN_MAX_OUTPUT: usize = 1024;

/// Where output was cut and how much went.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cut {
    /// Offset in the buffer of the first byte after the gap.
    pub at: usize,
    pub dropped: u64,
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// Drop the middle of `buf` once it exceeds `cap` by a quarter (amortised: each trim moves at
/// most `cap / 2` bytes after reading `cap / 4` new ones). Cuts fall on UTF-8 boundaries.
/// Returns (offset, bytes removed) so callers can move their own offsets.
pub(super) fn trim(buf: &mut Vec<u8>, cut: &mut Option<Cut>, cap: usize) -> Option<(usize, usize)> {
    let cap = cap.max(MIN_MAX_OUTPUT);
    if buf.len() <= cap + cap / 4 {
        return None;
    }
    trim_to(buf, cut, cap)
}

/// Drop the middle of `buf` so that at most `cap` bytes stay (the final cut before output
/// is returned).
pub(super) fn trim_to(
    buf: &mut Vec<u8>,
    cut: &mut Option<Cut>,
    cap: usize,
) -> Option<(usize, usize)> {
    let cap = cap.max(MIN_MAX_OUTPUT);
    if buf.len() <= cap {
        return None;
    }
    let mut at = match cut {
        Some(c) => c.at,
        None => cap / 2,
    };
    while at > 0 && is_continuation(buf[at]) {
        at -= 1;
    }
    let mut end = buf.len() - cap / 2;
    while end < buf.len() && is_continuation(buf[end]) {
        end += 1;
    }
    if end <= at {
        return None;
    }
    buf.drain(at..end);
    let n = end - at;
    let c = cut.get_or_insert(Cut { at, dropped: 0 });
    c.at = at;
    c.dropped += n as u64;
    Some((at, n))
}

/// An offset into the buffer after `trim` removed `n` bytes at `at`.
pub(super) fn shift(pos: usize, removed: Option<(usize, usize)>) -> usize {
    match removed {
        Some((at, n)) if pos > at => pos.saturating_sub(n).max(at),
        _ => pos,
    }
}

/// The line that stands where output was dropped.
pub(super) fn notice(dropped: u64, cap: usize) -> String {
    format!(
        "\n[... {dropped} bytes of output omitted (over max_output = {cap} bytes: the first and \
         last {} bytes are kept) ...]\n",
        cap.max(MIN_MAX_OUTPUT) / 2
    )
}

/// `buf[..upto]` as text with the notice at the cut.
pub(super) fn render(
    buf: &[u8],
    upto: usize,
    cut: Option<Cut>,
    cap: usize,
    text: fn(&[u8]) -> String,
) -> String {
    match cut {
        Some(c) if c.at <= upto => {
            let mut s = text(&buf[..c.at]);
            s.push_str(&notice(c.dropped, cap));
            s.push_str(&text(&buf[c.at..upto]));
            s
        }
        _ => text(&buf[..upto]),
    }
}

/// A growing buffer capped like above (one-shot commands' stdout/stderr).
pub(super) struct Capped {
    pub buf: Vec<u8>,
    cut: Option<Cut>,
    cap: usize,
}

impl Capped {
    pub fn new(cap: usize) -> Self {
        Capped {
            buf: Vec::new(),
            cut: None,
            cap,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        trim(&mut self.buf, &mut self.cut, self.cap);
    }

    pub fn text(&mut self, text: fn(&[u8]) -> String) -> String {
        trim_to(&mut self.buf, &mut self.cut, self.cap);
        render(&self.buf, self.buf.len(), self.cut, self.cap, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_head_and_tail_with_a_notice() {
        let mut c = Capped::new(MIN_MAX_OUTPUT);
        let line = "0123456789abcdé\n"; // 17 bytes, a two-byte char inside
        for _ in 0..100_000 {
            c.push(line.as_bytes());
        }
        assert!(
            c.buf.len() <= MIN_MAX_OUTPUT + MIN_MAX_OUTPUT / 4,
            "{}",
            c.buf.len()
        );
        let t = c.text(super::super::text::decode);
        assert!(c.buf.len() <= MIN_MAX_OUTPUT, "{}", c.buf.len());
        assert!(t.starts_with(line), "{t:.40}");
        assert!(t.ends_with(line));
        assert!(!t.contains("\\x"), "cuts fall on UTF-8 boundaries");
        let omitted: u64 = 100_000 * 17 - c.buf.len() as u64;
        assert!(
            t.contains(&format!("[... {omitted} bytes of output omitted")),
            "{t}"
        );
        // Below the cap nothing changes.
        let mut c = Capped::new(4096);
        c.push(b"short");
        assert_eq!(c.text(super::super::text::decode), "short");
        assert_eq!(shift(10, Some((4, 3))), 7);
        assert_eq!(shift(5, Some((4, 3))), 4);
        assert_eq!(shift(3, Some((4, 3))), 3);
    }
}
