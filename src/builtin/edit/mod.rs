//! `edit`: view, create and edit files with the semantics and messages of SWE-agent's
//! `str_replace_editor` (itself Anthropic's computer-use `EditTool`): `cat -n` style views,
//! unique-match `str_replace`, `insert` after a line, and per-path `undo_edit` history.
//!
//! Deliberate differences from the original, all in the user's favour: history is kept per
//! process (shared by every registry) and capped at [`HISTORY_LIMIT`] edits per path; undo
//! restores the exact pre-edit text (the original restored it with tabs already expanded);
//! a file with CRLF line endings keeps them; `expand_tabs: false` leaves tabs alone (Makefiles);
//! writes are atomic (temporary file + rename), so a failed write leaves the file and its undo
//! history as they were; views are streamed and bounded (see [`view`]).

mod change;
mod file;
mod text;
mod view;

use std::path::Path;

use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};

pub use file::MAX_EDIT_BYTES;
pub use text::{expandtabs, make_output, maybe_truncate};

use super::args::text_path;
use super::{blocking_tool, clean_path, nullable, obj, Call};
use crate::core::{CallContext, Registry, Result, ToolSpec};

pub const TRUNCATED_MESSAGE: &str = "<response clipped><NOTE>To save on context only part of this file has been shown to you. You should retry this tool after you have searched inside the file with `grep -n` in order to find the line numbers of what you are looking for.</NOTE>";
/// Characters (not bytes) of file content shown before clipping.
pub const MAX_RESPONSE_LEN: usize = 16000;
const SNIPPET_LINES: usize = 4;
/// Undo steps kept per path; older ones are dropped.
pub const HISTORY_LIMIT: usize = 100;

/// Serializes read-modify-write commands so concurrent edits of one file cannot lose each
/// other's changes (they are short; views do not take it).
static WRITE_LOCK: Mutex<()> = Mutex::new(());

#[derive(Deserialize)]
pub(super) struct EditArgs {
    command: String,
    path: String,
    file_text: Option<String>,
    old_str: Option<String>,
    new_str: Option<String>,
    /// Any JSON number, so a huge one is reported as out of range rather than missing.
    insert_line: Option<serde_json::Number>,
    /// Checked by `view`, which reports what it got.
    view_range: Option<Value>,
    expand_tabs: Option<bool>,
}

/// The original's `validate_path`.
fn validate_path(call: &Call, command: &str, raw: &str, path: &Path) -> Result<()> {
    if !path.is_absolute() {
        let suggested = super::absolute(path);
        return Err(call.invalid(
            "path",
            format!(
                "The path {} is not an absolute path, it should start with `/`. Maybe you meant {}?",
                clean_path(raw).display(),
                suggested.display()
            ),
        ));
    }
    let exists = path.exists();
    if !exists && command != "create" {
        return Err(call.fail(format!(
            "The path {} does not exist. Please provide a valid path.",
            path.display()
        )));
    }
    if exists && command == "create" {
        return Err(call.fail(format!(
            "File already exists at: {}. Cannot overwrite files using command `create`.",
            path.display()
        )));
    }
    if path.is_dir() && command != "view" {
        return Err(call.fail(format!(
            "The path {} is a directory and only the `view` command can be used on directories",
            path.display()
        )));
    }
    Ok(())
}

fn run(call: &Call, a: EditArgs, ctx: &CallContext) -> Result<Value> {
    text_path(call, "path", &a.path)?;
    let path = clean_path(&a.path);
    let command = a.command.as_str();
    if !["view", "create", "str_replace", "insert", "undo_edit"].contains(&command) {
        return Err(call.invalid(
            "command",
            format!(
                "Unrecognized command {command}. The allowed commands for the edit tool are: \"view\", \"create\", \"str_replace\", \"insert\", \"undo_edit\""
            ),
        ));
    }
    validate_path(call, command, &a.path, &path)?;
    let _serialized = (command != "view").then(|| WRITE_LOCK.lock());
    let output = match command {
        "view" => view::view(call, &a, &path, ctx)?,
        "create" => change::create(call, &a, &path)?,
        "str_replace" => change::str_replace(call, &a, &path, ctx)?,
        "insert" => change::insert(call, &a, &path, ctx)?,
        _ => change::undo_edit(call, &path)?,
    };
    Ok(json!({ "output": output }))
}

fn spec() -> ToolSpec {
    ToolSpec::new("edit")
        .description(
            "Custom editing tool for viewing, creating and editing files (SWE-agent's \
             str_replace_editor). State is persistent across calls within the process.\n\
             * If `path` is a file, `view` displays the result of applying `cat -n`. If `path` is a \
             directory, `view` lists non-hidden files and directories up to 2 levels deep.\n\
             * The `create` command cannot be used if the specified `path` already exists as a file.\n\
             * Long outputs are clipped and marked with `<response clipped>`.\n\
             * Only regular files are viewed or edited (FIFOs, sockets and devices are refused); \
             files over 64 MiB can be viewed but not changed. Changes replace the file \
             atomically, so a failed write leaves it as it was.\n\
             * The `undo_edit` command reverts the last edit made to the file at `path`.\n\
             Notes for `str_replace`: `old_str` must match EXACTLY one or more consecutive lines \
             of the file (mind whitespace); if it is not unique the replacement is refused; \
             `new_str` replaces it.",
        )
        .input_schema(obj(
            json!({
                "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert", "undo_edit"],
                            "description": "The command to run."},
                "path": {"type": "string", "description": "Absolute path to a file or directory, e.g. `/repo/file.py` or `/repo`."},
                "file_text": nullable(json!({"type": "string", "description": "Required for `create`: the content of the file to be created."})),
                "old_str": nullable(json!({"type": "string", "description": "Required for `str_replace`: the string in `path` to replace."})),
                "new_str": nullable(json!({"type": "string", "description": "For `str_replace`: the new string (default empty). Required for `insert`: the string to insert."})),
                "insert_line": nullable(json!({"type": "integer", "description": "Required for `insert`: `new_str` is inserted AFTER this line (0 = at the top)."})),
                "view_range": nullable(json!({"type": "array", "items": {"type": "integer"},
                               "description": "For `view` of a file: [start, end] 1-based line numbers, inclusive; end -1 shows to the end of the file."})),
                "expand_tabs": nullable(json!({"type": "boolean", "default": true,
                                "description": "`str_replace`/`insert` expand tabs to spaces in the file and in the strings, like the original (default true)."})),
            }),
            &["command", "path"],
        ))
        .output_schema(json!({
            "type": "object",
            "properties": {"output": {"type": "string", "description": "The message SWE-agent's str_replace_editor prints."}},
            "required": ["output"],
        }))
}

/// Register the `edit` tool.
pub fn register(registry: &Registry) -> Result<()> {
    registry.replace(std::sync::Arc::new(blocking_tool(spec(), run)))?;
    Ok(())
}

#[cfg(test)]
mod tests;
