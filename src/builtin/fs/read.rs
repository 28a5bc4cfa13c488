//! `fs.read`: a whole file, a byte range or a line range, always bounded: at most
//! [`DEFAULT_LIMIT`] bytes unless `limit` asks for more (up to [`MAX_LIMIT`]); line ranges are
//! streamed (lines before `start_line` are skipped without being kept, reading stops after
//! `end_line`) and capped at [`DEFAULT_LIMIT`] bytes too.

use std::io::{Seek, SeekFrom};
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{decode, open, read_err, target, Encoding, DEFAULT_LIMIT, MAX_LIMIT};
use crate::builtin::args::B64;
use crate::builtin::io::{for_each_chunk, read_capped};
use crate::builtin::Call;
use crate::core::{CallContext, Result};

#[derive(Deserialize)]
pub(super) struct ReadArgs {
    path: Option<String>,
    path_base64: Option<String>,
    encoding: Option<Encoding>,
    offset: Option<u64>,
    limit: Option<u64>,
    start_line: Option<u64>,
    /// Any JSON number: -1, a line number of any size, or an error naming what was given.
    end_line: Option<serde_json::Number>,
}

pub(super) fn read(call: &Call, a: ReadArgs, ctx: &CallContext) -> Result<Value> {
    let path = target(call, a.path.as_deref(), a.path_base64.as_deref())?;
    let encoding = a.encoding.unwrap_or(Encoding::Utf8);
    if a.start_line.is_some() || a.end_line.is_some() {
        for (k, v) in [("offset", a.offset), ("limit", a.limit)] {
            if v.is_some() {
                return Err(call.invalid(
                    k,
                    "`offset`/`limit` (bytes) cannot be combined with `start_line`/`end_line`",
                ));
            }
        }
        if encoding != Encoding::Utf8 {
            return Err(call.invalid(
                "encoding",
                "`start_line`/`end_line` select lines of text: use encoding \"utf-8\"",
            ));
        }
        return read_lines(call, ctx, &path, a.start_line, a.end_line);
    }
    if let Some(l) = a.limit.filter(|&l| l > MAX_LIMIT) {
        return Err(call.invalid(
            "limit",
            format!("limit must be at most {MAX_LIMIT} bytes, got {l} (read larger files in parts with `offset`)"),
        ));
    }
    let cap = a.limit.unwrap_or(DEFAULT_LIMIT);
    let (mut f, meta) = open(call, &path)?;
    let size = meta.len();
    let offset = a.offset.unwrap_or(0);
    // Nothing can lie beyond i64::MAX (the largest offset the OS takes): that is the end.
    let (buf, more) = if offset > i64::MAX as u64 {
        (Vec::new(), false)
    } else {
        if offset > 0 {
            f.seek(SeekFrom::Start(offset))
                .map_err(|e| call.fail(format!("cannot read {}: {e}", path.display())))?;
        }
        // `cap` <= MAX_LIMIT, which fits in usize.
        read_capped(&mut f, cap as usize, &ctx.cancel).map_err(|e| read_err(call, &path, e))?
    };
    let (content, length) = match encoding {
        Encoding::Base64 => (B64.encode(&buf), buf.len()),
        Encoding::Utf8 => {
            if offset > 0 && buf.first().is_some_and(|b| (0x80..0xC0).contains(b)) {
                return Err(call.invalid(
                    "offset",
                    format!(
                        "offset {offset} is inside a UTF-8 character of {}",
                        path.display()
                    ),
                ));
            }
            decode(call, &path, offset, buf, more)?
        }
    };
    Ok(json!({
        "path": path.display().to_string(),
        "content": content,
        "encoding": encoding.name(),
        "size": size,
        "offset": offset,
        "length": length,
        "eof": !more,
        "truncated": more && a.limit.is_none(),
    }))
}

/// The state of a streamed line-range read.
struct Lines {
    start: u64,
    end: u64,
    cap: usize,
    /// The line being read (1-based) and whether it has bytes but no newline yet.
    line: u64,
    open_line: bool,
    pos: u64,
    first_offset: Option<u64>,
    out: Vec<u8>,
    /// The last line kept whole, and the length of `out` after it.
    last_whole: u64,
    out_at_whole: usize,
    /// `out` holds only the head of line `start`, which alone is over the cap.
    partial: bool,
    truncated: bool,
}

impl Lines {
    /// Take in a chunk; `false` once the range is complete or the cap is reached.
    fn feed(&mut self, chunk: &[u8]) -> bool {
        let mut i = 0;
        while i < chunk.len() {
            if self.line > self.end {
                return false;
            }
            let nl = memchr::memchr(b'\n', &chunk[i..]).map(|k| i + k);
            let seg_end = nl.map_or(chunk.len(), |k| k + 1);
            let seg = &chunk[i..seg_end];
            if self.line >= self.start {
                self.first_offset.get_or_insert(self.pos);
                if self.out.len() + seg.len() > self.cap {
                    self.truncated = true;
                    if self.last_whole == 0 {
                        let room = self.cap - self.out.len();
                        self.out.extend_from_slice(&seg[..room]);
                        self.partial = true;
                    } else {
                        self.out.truncate(self.out_at_whole);
                    }
                    return false;
                }
                self.out.extend_from_slice(seg);
            }
            self.pos += seg.len() as u64;
            i = seg_end;
            self.open_line = nl.is_none();
            if nl.is_some() {
                if self.line >= self.start {
                    self.last_whole = self.line;
                    self.out_at_whole = self.out.len();
                }
                self.line += 1;
            }
        }
        true
    }
}

fn read_lines(
    call: &Call,
    ctx: &CallContext,
    path: &Path,
    start: Option<u64>,
    end: Option<serde_json::Number>,
) -> Result<Value> {
    let start = start.unwrap_or(1);
    let end = match end.map(|e| (e.as_i64(), e.as_u64(), e)) {
        None | Some((Some(-1), _, _)) => u64::MAX,
        Some((_, Some(e), _)) if e >= 1 => e,
        Some((_, _, e)) => {
            return Err(call.invalid(
                "end_line",
                format!(
                "end_line must be a line number (1-based) or -1 for the end of the file, got {e}"
            ),
            ))
        }
    };
    if end < start {
        return Err(call.invalid(
            "end_line",
            format!("end_line {end} is before start_line {start}"),
        ));
    }
    let (mut f, meta) = open(call, path)?;
    let mut st = Lines {
        start,
        end,
        cap: DEFAULT_LIMIT as usize,
        line: 1,
        open_line: false,
        pos: 0,
        first_offset: None,
        out: Vec::new(),
        last_whole: 0,
        out_at_whole: 0,
        partial: false,
        truncated: false,
    };
    let eof =
        for_each_chunk(&mut f, &ctx.cancel, |c| st.feed(c)).map_err(|e| read_err(call, path, e))?;
    // Lines seen: a last line without a newline counts once the end of the file shows it.
    let mut n = st.line - 1;
    if eof && st.open_line {
        n = st.line;
        if st.line >= start && st.line <= end {
            st.last_whole = st.line;
        }
    }
    if eof && n < start && !(n == 0 && start == 1) {
        return Err(call.invalid(
            "start_line",
            format!(
                "start_line {start} is past the end of {} ({n} lines)",
                path.display()
            ),
        ));
    }
    let end_line = if st.partial {
        start
    } else if st.last_whole > 0 {
        st.last_whole
    } else {
        n
    };
    let offset = st.first_offset.unwrap_or(st.pos);
    let (content, length) = decode(call, path, offset, st.out, st.partial)?;
    Ok(json!({
        "path": path.display().to_string(),
        "content": content,
        "encoding": "utf-8",
        "size": meta.len(),
        "offset": offset,
        "length": length,
        "eof": eof,
        "truncated": st.truncated,
        "start_line": start,
        "end_line": end_line,
    }))
}
