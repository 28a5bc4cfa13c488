//! Reading a file for an edit and writing it back in its own encoding and line endings, and
//! the per-path undo history.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use parking_lot::Mutex;

use super::HISTORY_LIMIT;
use crate::builtin::io::{open_regular, read_capped, write_atomic, Existing, OpenError, ReadError};
use crate::builtin::Call;
use crate::core::{CallContext, Error, Result};

/// The largest file `str_replace`, `insert` and `undo_edit` change (they hold it in memory).
pub const MAX_EDIT_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Encoding {
    Utf8,
    /// Not valid UTF-8: read byte-per-character (like the original's latin-1 fallback) and
    /// written back the same way, so unrelated bytes survive an edit.
    Latin1,
}

/// A file's text as the original reads it (universal newlines) plus what is needed to write
/// it back in its own encoding and line endings.
#[derive(Clone, Debug)]
pub(super) struct Snapshot {
    pub text: String,
    pub encoding: Encoding,
    pub crlf: bool,
}

static HISTORY: LazyLock<Mutex<HashMap<PathBuf, Vec<Snapshot>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

pub(super) fn push_history(path: &Path, s: Snapshot) {
    let mut h = HISTORY.lock();
    let v = h.entry(path.to_path_buf()).or_default();
    if v.len() >= HISTORY_LIMIT {
        v.remove(0);
    }
    v.push(s);
}

pub(super) fn pop_history(path: &Path) -> Option<Snapshot> {
    let mut h = HISTORY.lock();
    let v = h.get_mut(path)?;
    let s = v.pop();
    if v.is_empty() {
        h.remove(path);
    }
    s
}

/// `bytes` as text: UTF-8 when valid (an incomplete character at the end is dropped when
/// `cut`, i.e. the bytes are a prefix), else byte-per-character latin-1.
pub(super) fn decode(bytes: Vec<u8>, cut: bool) -> (String, Encoding) {
    let latin1 = |b: &[u8]| b.iter().map(|&b| char::from(b)).collect::<String>();
    match String::from_utf8(bytes) {
        Ok(s) => (s, Encoding::Utf8),
        Err(e) if cut && e.utf8_error().error_len().is_none() => {
            let at = e.utf8_error().valid_up_to();
            let mut b = e.into_bytes();
            b.truncate(at);
            match String::from_utf8(b) {
                Ok(s) => (s, Encoding::Utf8),
                Err(e) => (latin1(e.as_bytes()), Encoding::Latin1),
            }
        }
        Err(e) => (latin1(e.as_bytes()), Encoding::Latin1),
    }
}

/// The error for a file that cannot be opened: a FIFO, socket or device is named as such.
pub(super) fn open_err(call: &Call, path: &Path, e: OpenError) -> Error {
    match e {
        OpenError::NotRegular(what) => call.fail(format!(
            "The path {} is {what}, not a regular file: only regular files can be viewed or edited.",
            path.display()
        )),
        e => call.fail(format!(
            "Ran into {e} while trying to read {}",
            path.display()
        )),
    }
}

pub(super) fn read_err(call: &Call, path: &Path, e: ReadError) -> Error {
    match e {
        ReadError::Cancelled => call.cancelled(),
        ReadError::Io(e) => call.fail(format!(
            "Ran into {e} while trying to read {}",
            path.display()
        )),
    }
}

/// The whole file, for an edit (at most [`MAX_EDIT_BYTES`]).
pub(super) fn read_file(call: &Call, path: &Path, ctx: &CallContext) -> Result<Snapshot> {
    let (mut f, _) = open_regular(path).map_err(|e| open_err(call, path, e))?;
    let (bytes, more) =
        read_capped(&mut f, MAX_EDIT_BYTES, &ctx.cancel).map_err(|e| read_err(call, path, e))?;
    if more {
        return Err(call.fail(format!(
            "The file {} is larger than {MAX_EDIT_BYTES} bytes, the most the edit tool changes; \
             view parts of it with `view_range` and edit it another way.",
            path.display()
        )));
    }
    let crlf = bytes.windows(2).any(|w| w == b"\r\n");
    let (text, encoding) = decode(bytes, false);
    // Python's universal newlines.
    let text = if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text
    };
    Ok(Snapshot {
        text,
        encoding,
        crlf,
    })
}

/// Write `s` to `path` atomically: a failed write leaves the old content (and the history)
/// as they were.
pub(super) fn write_file(call: &Call, path: &Path, s: &Snapshot, create_new: bool) -> Result<()> {
    let text = if s.crlf {
        s.text.replace("\r\n", "\n").replace('\n', "\r\n")
    } else {
        s.text.clone()
    };
    let bytes = match s.encoding {
        Encoding::Utf8 => text.into_bytes(),
        Encoding::Latin1 => text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).map_err(|_| c))
            .collect::<std::result::Result<Vec<u8>, char>>()
            .map_err(|c| {
                call.fail(format!(
                    "Ran into an encoding error while trying to write to {}: the file is not UTF-8 \
                     (read as latin-1) and {c:?} cannot be encoded in latin-1",
                    path.display()
                ))
            })?,
    };
    let existing = if create_new {
        Existing::Refuse
    } else {
        Existing::Replace
    };
    write_atomic(path, &bytes, existing).map_err(|e| {
        call.fail(format!(
            "Ran into {e} while trying to write to {}",
            path.display()
        ))
    })
}
