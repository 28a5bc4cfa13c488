//! `fs.read`, `fs.write`, `fs.list`: plain file access for agents. Text is UTF-8; anything
//! else is read and written as base64 on request, and an invalid byte is reported with its
//! offset rather than silently replaced.
//!
//! Hostile targets are handled by [`crate::builtin::io`]: only regular files are read or
//! written (a FIFO, socket or device is refused with an error saying what it is), every read
//! is bounded and stops when the call is cancelled, and writes replace the file atomically.
//! File names that are not UTF-8 are listed with their raw bytes in base64
//! (`absolute_path_base64`), which `path_base64` takes back.

mod list;
mod read;
mod write;

use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;

use super::args::resolve_path;
use super::io::{open_regular, OpenError, ReadError};
use super::{absolute, blocking_tool, clean_path, nullable, obj, Call};
use crate::core::{Error, Registry, Result, ToolSpec};

/// Bytes `fs.read` returns when no `limit` is given (also the cap of a line range).
pub const DEFAULT_LIMIT: u64 = 8 * 1024 * 1024;
/// The largest `limit` `fs.read` accepts.
pub const MAX_LIMIT: u64 = 64 * 1024 * 1024;

#[derive(Deserialize, Clone, Copy, PartialEq, Debug)]
enum Encoding {
    #[serde(rename = "utf-8")]
    Utf8,
    #[serde(rename = "base64")]
    Base64,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Base64 => "base64",
        }
    }
}

fn target(call: &Call, path: Option<&str>, path_base64: Option<&str>) -> Result<PathBuf> {
    Ok(absolute(&clean_path(resolve_path(
        call,
        path,
        path_base64,
    )?)))
}

fn open(call: &Call, path: &Path) -> Result<(File, Metadata)> {
    open_regular(path).map_err(|e| match e {
        OpenError::Directory => call.fail(format!(
            "cannot read {}: it is a directory (use fs.list)",
            path.display()
        )),
        e => call.fail(format!("cannot read {}: {e}", path.display())),
    })
}

fn read_err(call: &Call, path: &Path, e: ReadError) -> Error {
    match e {
        ReadError::Cancelled => call.cancelled(),
        ReadError::Io(e) => call.fail(format!("cannot read {}: {e}", path.display())),
    }
}

fn not_utf8(call: &Call, path: &Path, at: u64, byte: Option<u8>) -> Error {
    let what = match byte {
        Some(b) => format!("invalid byte 0x{b:02x} at offset {at}"),
        None => format!("truncated character at offset {at}"),
    };
    call.fail(format!(
        "{} is not valid UTF-8 text ({what}); read it with encoding \"base64\"",
        path.display()
    ))
}

/// Decode `bytes` (which start at file offset `base`). When `more` follows, an incomplete
/// character at the end is left for the next read; returns the text and the bytes it used.
fn decode(
    call: &Call,
    path: &Path,
    base: u64,
    mut bytes: Vec<u8>,
    more: bool,
) -> Result<(String, usize)> {
    match std::str::from_utf8(&bytes) {
        Ok(_) => {}
        Err(e) if e.error_len().is_none() && more => bytes.truncate(e.valid_up_to()),
        Err(e) => {
            let at = e.valid_up_to();
            return Err(not_utf8(
                call,
                path,
                base + at as u64,
                e.error_len().map(|_| bytes[at]),
            ));
        }
    }
    let n = bytes.len();
    String::from_utf8(bytes)
        .map(|s| (s, n))
        .map_err(|e| not_utf8(call, path, base, e.as_bytes().first().copied()))
}

fn specs() -> [ToolSpec; 3] {
    let path = nullable(
        json!({"type": "string", "description": "File path (relative paths are resolved against the process's working directory). Required unless `path_base64` is given."}),
    );
    let path_b64 = nullable(
        json!({"type": "string", "description": "Instead of `path`: the path's raw bytes in base64, for names that are not UTF-8 (`absolute_path_base64` of an fs.list entry)."}),
    );
    let encoding = nullable(
        json!({"type": "string", "enum": ["utf-8", "base64"], "default": "utf-8",
        "description": "\"utf-8\": text (invalid UTF-8 is an error naming the offset); \"base64\": any bytes."}),
    );
    [
        ToolSpec::new("fs.read")
            .description(
                "Read a regular file: all of it, a byte range (`offset`/`limit`) or a line range \
                 (`start_line`/`end_line`, 1-based, inclusive). `eof` tells whether the content \
                 reaches the end of the file. At most 8 MiB are returned unless `limit` asks \
                 for more (up to 64 MiB); `truncated` tells when that cap cut the content \
                 (continue with `offset`, or `start_line` after the returned `end_line`). \
                 FIFOs, sockets and devices are refused.",
            )
            .input_schema(obj(
                json!({
                    "path": path,
                    "path_base64": path_b64,
                    "encoding": encoding,
                    "offset": nullable(json!({"type": "integer", "minimum": 0, "description": "Byte offset to start at."})),
                    "limit": nullable(json!({"type": "integer", "minimum": 0, "maximum": MAX_LIMIT, "description": "Maximum bytes to return (default 8 MiB, at most 64 MiB; a UTF-8 character cut by it is left for the next read)."})),
                    "start_line": nullable(json!({"type": "integer", "minimum": 1, "description": "First line to return (1-based)."})),
                    "end_line": nullable(json!({"type": "integer", "minimum": -1, "description": "Last line to return, inclusive; -1 = end of file."})),
                }),
                &[],
            ))
            .output_schema(json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string"}, "content": {"type": "string"},
                    "encoding": {"type": "string"}, "size": {"type": "integer", "description": "File size in bytes."},
                    "offset": {"type": "integer", "description": "Byte offset of the content in the file."},
                    "length": {"type": "integer", "description": "Bytes of the file the content covers."},
                    "eof": {"type": "boolean"},
                    "truncated": {"type": "boolean", "description": "The 8 MiB default cap (not an explicit `limit`) cut the content."},
                    "start_line": {"type": "integer"}, "end_line": {"type": "integer"},
                },
                "required": ["path", "content", "encoding", "size", "offset", "length", "eof"],
            })),
        ToolSpec::new("fs.write")
            .description(
                "Write (or append to) a regular file, creating missing parent directories by \
                 default. A write replaces the file atomically (a failed write leaves the old \
                 content; permissions are kept); a failed append is rolled back.",
            )
            .input_schema(obj(
                json!({
                    "path": path,
                    "path_base64": path_b64,
                    "content": {"type": "string"},
                    "encoding": encoding,
                    "create_parents": nullable(json!({"type": "boolean", "default": true})),
                    "append": nullable(json!({"type": "boolean", "default": false})),
                }),
                &["content"],
            ))
            .output_schema(json!({
                "type": "object",
                "properties": {"path": {"type": "string"}, "bytes_written": {"type": "integer"}, "created": {"type": "boolean"}},
                "required": ["path", "bytes_written", "created"],
            })),
        ToolSpec::new("fs.list")
            .description(
                "List a directory (sorted; `recursive` walks it depth-first). Hidden entries and, \
                 by default, files ignored by .gitignore/.ignore are left out.",
            )
            .input_schema(obj(
                json!({
                    "path": path,
                    "path_base64": path_b64,
                    "recursive": nullable(json!({"type": "boolean", "default": false})),
                    "max_depth": nullable(json!({"type": "integer", "minimum": 1, "description": "With `recursive`: how deep to go (1 = direct children)."})),
                    "include_hidden": nullable(json!({"type": "boolean", "default": false})),
                    "gitignore": nullable(json!({"type": "boolean", "default": true, "description": "Honor .gitignore, .ignore and .git/info/exclude."})),
                    "max_entries": nullable(json!({"type": "integer", "minimum": 1, "default": 1000})),
                }),
                &[],
            ))
            .output_schema(json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "entries": {"type": "array", "items": {"type": "object", "properties": {
                        "path": {"type": "string", "description": "Relative to `path`."},
                        "type": {"type": "string", "enum": ["file", "dir", "symlink", "other"]},
                        "size": {"type": "integer"},
                        "absolute_path_base64": {"type": "string", "description": "Only for a path that is not UTF-8 (`path` then shows it with U+FFFD): its raw bytes, to pass as `path_base64`."}},
                        "required": ["path", "type"]}},
                    "truncated": {"type": "boolean", "description": "More than `max_entries` entries exist."},
                    "errors": {"type": "array", "items": {"type": "string"}, "description": "Unreadable parts of the tree."},
                },
                "required": ["path", "entries", "truncated", "errors"],
            })),
    ]
}

/// Register `fs.read`, `fs.write` and `fs.list`.
pub fn register(registry: &Registry) -> Result<()> {
    let [r, w, l] = specs();
    registry.replace(std::sync::Arc::new(blocking_tool(r, read::read)))?;
    registry.replace(std::sync::Arc::new(blocking_tool(w, write::write)))?;
    registry.replace(std::sync::Arc::new(blocking_tool(l, list::list)))?;
    Ok(())
}

#[cfg(test)]
mod tests;
