//! `view`: a directory two levels deep, or a file `cat -n` style. A file is streamed: only
//! what the output can show is kept (the output is clipped at [`MAX_RESPONSE_LEN`]
//! characters), and with a `view_range` reading stops after its last line, so a huge file
//! costs bounded memory and a cancelled call stops reading.
//!
//! The text encoding (UTF-8, else latin-1) is decided on the part shown, not on the whole
//! file as the original does: the two differ only for a file that is UTF-8 where shown and
//! not elsewhere.

use std::path::Path;

use serde_json::Value;

use super::file::{decode, open_err, read_err};
use super::text::make_output;
use super::{EditArgs, MAX_RESPONSE_LEN};
use crate::builtin::args::short;
use crate::builtin::io::{for_each_chunk, open_regular};
use crate::builtin::Call;
use crate::core::{CallContext, Result};

/// Bytes kept of the shown text: more than [`MAX_RESPONSE_LEN`] characters of any encoding,
/// so clipping happens exactly where the original clips.
const KEEP: usize = MAX_RESPONSE_LEN * 4 + 4;

fn view_dir(call: &Call, a: &EditArgs, path: &Path, ctx: &CallContext) -> Result<String> {
    if a.view_range.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(call.invalid(
            "view_range",
            "The `view_range` parameter is not allowed when `path` points to a directory.",
        ));
    }
    let walk = ignore::WalkBuilder::new(path)
        .standard_filters(false)
        .hidden(true)
        .max_depth(Some(2))
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    let mut out = format!(
        "Here's the files and directories up to 2 levels deep in {}, excluding hidden items:\n",
        path.display()
    );
    // Unreadable subdirectories are left out rather than failing the whole listing.
    for entry in walk.flatten() {
        call.check(&ctx.cancel)?;
        out.push_str(&entry.path().display().to_string());
        out.push('\n');
    }
    out.push('\n');
    Ok(out)
}

/// A streamed pass over a file in universal-newline mode: counts line breaks and keeps the
/// text from the start of line `init` up to the `stop_at`-th break (or the end).
struct Scan {
    init: u64,
    stop_at: Option<u64>,
    /// Stop as soon as `KEEP` bytes are kept (when the line count is not needed).
    stop_when_full: bool,
    breaks: u64,
    prev_cr: bool,
    kept: Vec<u8>,
    full: bool,
}

impl Scan {
    fn keep(&mut self, b: &[u8]) {
        let room = KEEP - self.kept.len();
        if b.len() > room {
            self.full = true;
        }
        self.kept.extend_from_slice(&b[..b.len().min(room)]);
    }

    fn feed(&mut self, chunk: &[u8]) -> bool {
        let mut i = 0;
        while i < chunk.len() {
            let brk = memchr::memchr2(b'\n', b'\r', &chunk[i..]).map(|k| i + k);
            let seg_end = brk.unwrap_or(chunk.len());
            if seg_end > i {
                self.prev_cr = false;
                if self.breaks + 1 >= self.init && !self.full {
                    self.keep(&chunk[i..seg_end]);
                }
            }
            let Some(b) = brk else { break };
            i = b + 1;
            if chunk[b] == b'\n' && self.prev_cr {
                self.prev_cr = false;
                continue;
            }
            self.prev_cr = chunk[b] == b'\r';
            self.breaks += 1;
            if Some(self.breaks) == self.stop_at {
                return false;
            }
            if self.breaks >= self.init && !self.full {
                self.keep(b"\n");
            }
            if self.done() {
                return false;
            }
        }
        !self.done()
    }

    /// Nothing more can be shown, and the range is known to be valid (line `stop_at` exists:
    /// `stop_at - 1` breaks were seen), or no line count is needed.
    fn done(&self) -> bool {
        self.full && (self.stop_when_full || self.stop_at.is_some_and(|f| self.breaks + 1 >= f))
    }
}

/// `[start, end]` from `view_range`, or the message the original gives.
fn range(call: &Call, v: &Value) -> Result<(i64, i64)> {
    if let Some([a, b]) = v.as_array().map(Vec::as_slice) {
        if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
            return Ok((a, b));
        }
    }
    Err(call.invalid(
        "view_range",
        format!(
            "Invalid `view_range`. It should be a list of two integers, got {}.",
            short(v)
        ),
    ))
}

pub(super) fn view(call: &Call, a: &EditArgs, path: &Path, ctx: &CallContext) -> Result<String> {
    if path.is_dir() {
        return view_dir(call, a, path, ctx);
    }
    let shown = path.display().to_string();
    let given = a.view_range.as_ref().filter(|v| !v.is_null());
    let (init, fin) = match given {
        Some(v) => range(call, v)?,
        None => (1, -1),
    };
    // A range that can be valid lets the read stop after its last line.
    let stop_at = (given.is_some() && init >= 1 && fin >= init).then_some(fin as u64);
    let mut scan = Scan {
        init: init.max(1) as u64,
        stop_at,
        stop_when_full: given.is_none(),
        breaks: 0,
        prev_cr: false,
        kept: Vec::new(),
        full: false,
    };
    let (mut f, _) = open_regular(path).map_err(|e| open_err(call, path, e))?;
    let eof = for_each_chunk(&mut f, &ctx.cancel, |c| scan.feed(c))
        .map_err(|e| read_err(call, path, e))?;
    let cut = scan.full;
    let (text, _) = decode(scan.kept, cut);
    if given.is_none() {
        return Ok(make_output(&text, &shown, 1));
    }
    if eof {
        // The whole file was read, so its line count is known: the original's checks.
        let n = scan.breaks as i64 + 1;
        let shown_range = format!("[{init}, {fin}]");
        if init < 1 || init > n {
            return Err(call.invalid(
                "view_range",
                format!(
                    "Invalid `view_range`: {shown_range}. Its first element `{init}` should be within the range of lines of the file: [1, {n}]"
                ),
            ));
        }
        if fin > n {
            return Err(call.invalid(
                "view_range",
                format!(
                    "Invalid `view_range`: {shown_range}. Its second element `{fin}` should be smaller than the number of lines in the file: `{n}`"
                ),
            ));
        }
        if fin != -1 && fin < init {
            return Err(call.invalid(
                "view_range",
                format!(
                    "Invalid `view_range`: {shown_range}. Its second element `{fin}` should be larger or equal than its first `{init}`"
                ),
            ));
        }
    }
    // Stopped early: line `fin` exists, so 1 <= init <= fin <= the line count.
    Ok(make_output(&text, &shown, init as usize))
}
