//! `edit`: view, create and edit files with the semantics and messages of SWE-agent's
//! `str_replace_editor` (itself Anthropic's computer-use `EditTool`): `cat -n` style views,
//! unique-match `str_replace`, `insert` after a line, and per-path `undo_edit` history.
//!
//! Deliberate differences from the original, all in the user's favour: history is kept per
//! process (shared by every registry) and capped at [`HISTORY_LIMIT`] edits per path; undo
//! restores the exact pre-edit text (the original restored it with tabs already expanded);
//! a file with CRLF line endings keeps them; `expand_tabs: false` leaves tabs alone (Makefiles).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::{blocking_tool, clean_path, nullable, obj, Args};
use crate::core::{Registry, Result, ToolSpec};

pub const TRUNCATED_MESSAGE: &str = "<response clipped><NOTE>To save on context only part of this file has been shown to you. You should retry this tool after you have searched inside the file with `grep -n` in order to find the line numbers of what you are looking for.</NOTE>";
/// Characters (not bytes) of file content shown before clipping.
pub const MAX_RESPONSE_LEN: usize = 16000;
const SNIPPET_LINES: usize = 4;
/// Undo steps kept per path; older ones are dropped.
pub const HISTORY_LIMIT: usize = 100;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Encoding {
    Utf8,
    /// Not valid UTF-8: read byte-per-character (like the original's latin-1 fallback) and
    /// written back the same way, so unrelated bytes survive an edit.
    Latin1,
}

/// A file's text as the original reads it (universal newlines) plus what is needed to write
/// it back in its own encoding and line endings.
#[derive(Clone, Debug)]
struct Snapshot {
    text: String,
    encoding: Encoding,
    crlf: bool,
}

/// Serializes read-modify-write commands so concurrent edits of one file cannot lose each
/// other's changes (they are short; views do not take it).
static WRITE_LOCK: Mutex<()> = Mutex::new(());

static HISTORY: LazyLock<Mutex<HashMap<PathBuf, Vec<Snapshot>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn push_history(path: &Path, s: Snapshot) {
    let mut h = HISTORY.lock();
    let v = h.entry(path.to_path_buf()).or_default();
    if v.len() >= HISTORY_LIMIT {
        v.remove(0);
    }
    v.push(s);
}

fn pop_history(path: &Path) -> Option<Snapshot> {
    let mut h = HISTORY.lock();
    let v = h.get_mut(path)?;
    let s = v.pop();
    if v.is_empty() {
        h.remove(path);
    }
    s
}

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
fn splitlines_len(s: &str) -> usize {
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

fn read_file(args: &Args, path: &Path) -> Result<Snapshot> {
    let bytes = std::fs::read(path).map_err(|e| {
        args.fail(format!(
            "Ran into {e} while trying to read {}",
            path.display()
        ))
    })?;
    let crlf = bytes.windows(2).any(|w| w == b"\r\n");
    let (text, encoding) = match String::from_utf8(bytes) {
        Ok(s) => (s, Encoding::Utf8),
        Err(e) => (
            e.into_bytes().iter().map(|&b| char::from(b)).collect(),
            Encoding::Latin1,
        ),
    };
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

fn write_file(args: &Args, path: &Path, s: &Snapshot, create_new: bool) -> Result<()> {
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
                args.fail(format!(
                    "Ran into an encoding error while trying to write to {}: the file is not UTF-8 \
                     (read as latin-1) and {c:?} cannot be encoded in latin-1",
                    path.display()
                ))
            })?,
    };
    let mut o = OpenOptions::new();
    o.write(true);
    if create_new {
        o.create_new(true);
    } else {
        o.create(true).truncate(true);
    }
    o.open(path)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(|e| {
            args.fail(format!(
                "Ran into {e} while trying to write to {}",
                path.display()
            ))
        })
}

/// The original's `validate_path`.
fn validate_path(args: &Args, command: &str, raw: &str, path: &Path) -> Result<()> {
    if !path.is_absolute() {
        let suggested = super::absolute(path);
        return Err(args.invalid(
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
        return Err(args.fail(format!(
            "The path {} does not exist. Please provide a valid path.",
            path.display()
        )));
    }
    if exists && command == "create" {
        return Err(args.fail(format!(
            "File already exists at: {}. Cannot overwrite files using command `create`.",
            path.display()
        )));
    }
    if path.is_dir() && command != "view" {
        return Err(args.fail(format!(
            "The path {} is a directory and only the `view` command can be used on directories",
            path.display()
        )));
    }
    Ok(())
}

fn view_dir(args: &Args, path: &Path) -> Result<String> {
    if args.has("view_range") {
        return Err(args.invalid(
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
        out.push_str(&entry.path().display().to_string());
        out.push('\n');
    }
    out.push('\n');
    Ok(out)
}

fn view(args: &Args, path: &Path) -> Result<String> {
    if path.is_dir() {
        return view_dir(args, path);
    }
    let file = read_file(args, path)?;
    let shown = path.display().to_string();
    let Some(range) = args.array("view_range") else {
        return Ok(make_output(&file.text, &shown, 1));
    };
    let (init, fin) = match range.as_slice() {
        [a, b] => (a.as_i64(), b.as_i64()),
        _ => (None, None),
    };
    let (Some(init), Some(fin)) = (init, fin) else {
        return Err(args.invalid(
            "view_range",
            "Invalid `view_range`. It should be a list of two integers.",
        ));
    };
    let lines: Vec<&str> = file.text.split('\n').collect();
    let n = lines.len() as i64;
    let shown_range = format!("[{init}, {fin}]");
    if init < 1 || init > n {
        return Err(args.invalid(
            "view_range",
            format!(
                "Invalid `view_range`: {shown_range}. Its first element `{init}` should be within the range of lines of the file: [1, {n}]"
            ),
        ));
    }
    if fin > n {
        return Err(args.invalid(
            "view_range",
            format!(
                "Invalid `view_range`: {shown_range}. Its second element `{fin}` should be smaller than the number of lines in the file: `{n}`"
            ),
        ));
    }
    if fin != -1 && fin < init {
        return Err(args.invalid(
            "view_range",
            format!(
                "Invalid `view_range`: {shown_range}. Its second element `{fin}` should be larger or equal than its first `{init}`"
            ),
        ));
    }
    let fin = if fin == -1 { n } else { fin };
    // Both bounds were checked to lie in 1..=n above.
    let body = lines[(init - 1) as usize..fin as usize].join("\n");
    Ok(make_output(&body, &shown, init as usize))
}

fn create(args: &Args, path: &Path) -> Result<String> {
    let Some(text) = args.str("file_text") else {
        return Err(args.invalid(
            "file_text",
            "Parameter `file_text` is required for command: create",
        ));
    };
    let parent = path.parent().unwrap_or(Path::new("/"));
    if !parent.exists() {
        return Err(args.fail(format!(
            "The parent directory {} does not exist. Please create it first.",
            parent.display()
        )));
    }
    let snap = Snapshot {
        text: text.to_string(),
        encoding: Encoding::Utf8,
        crlf: false,
    };
    write_file(args, path, &snap, true)?;
    push_history(path, snap);
    Ok(format!("File created successfully at: {}", path.display()))
}

fn str_replace(args: &Args, path: &Path) -> Result<String> {
    let Some(old) = args.str("old_str") else {
        return Err(args.invalid(
            "old_str",
            "Parameter `old_str` is required for command: str_replace",
        ));
    };
    if old.is_empty() {
        return Err(args.invalid(
            "old_str",
            "No replacement was performed, old_str is empty (it would match everywhere).",
        ));
    }
    let tabs = args.bool_or("expand_tabs", true);
    let expand = |s: &str| if tabs { expandtabs(s) } else { s.to_string() };
    let before = read_file(args, path)?;
    let content = expand(&before.text);
    let old = expand(old);
    let new = expand(args.str_or("new_str", ""));
    let shown = path.display();

    let occurrences = content.matches(old.as_str()).count();
    if occurrences == 0 {
        return Err(args.fail(format!(
            "No replacement was performed, old_str `{old}` did not appear verbatim in {shown}."
        )));
    }
    if occurrences > 1 {
        let lines: Vec<usize> = content
            .split('\n')
            .enumerate()
            .filter(|(_, l)| l.contains(old.as_str()))
            .map(|(i, _)| i + 1)
            .collect();
        return Err(args.fail(format!(
            "No replacement was performed. Multiple occurrences of old_str `{old}` in lines {lines:?}. Please ensure it is unique"
        )));
    }
    if new == old {
        return Err(args.fail(format!(
            "No replacement was performed, old_str `{old}` is the same as new_str `{new}`."
        )));
    }
    let new_content = content.replacen(old.as_str(), &new, 1);
    let after = Snapshot {
        text: new_content,
        ..before.clone()
    };
    write_file(args, path, &after, false)?;
    push_history(path, before);

    // Same window as the original: from 4 lines before the line preceding the edit to 4 lines
    // past its first line plus the new text's extra lines.
    let replacement_line = content
        .find(old.as_str())
        .map(|i| content[..i].matches('\n').count())
        .unwrap_or(0);
    let start = replacement_line.saturating_sub(SNIPPET_LINES).max(1);
    let end = (replacement_line + SNIPPET_LINES + new.matches('\n').count())
        .min(splitlines_len(&after.text))
        .max(start);
    let snippet = after
        .text
        .split('\n')
        .skip(start - 1)
        .take(end - start + 1)
        .collect::<Vec<_>>()
        .join("\n");
    Ok(format!(
        "The file {shown} has been edited. {}Review the changes and make sure they are as expected. Edit the file again if necessary.",
        make_output(&snippet, &format!("a snippet of {shown}"), start)
    ))
}

fn insert(args: &Args, path: &Path) -> Result<String> {
    let Some(line) = args.i64("insert_line") else {
        return Err(args.invalid(
            "insert_line",
            "Parameter `insert_line` is required for command: insert",
        ));
    };
    let Some(new) = args.str("new_str") else {
        return Err(args.invalid(
            "new_str",
            "Parameter `new_str` is required for command: insert",
        ));
    };
    let tabs = args.bool_or("expand_tabs", true);
    let expand = |s: &str| if tabs { expandtabs(s) } else { s.to_string() };
    let before = read_file(args, path)?;
    let text = expand(&before.text);
    let new = expand(new);
    let lines: Vec<&str> = text.split('\n').collect();
    let n = lines.len();
    let at = match usize::try_from(line) {
        Ok(at) if at <= n => at,
        _ => {
            return Err(args.invalid(
                "insert_line",
                format!(
                    "Invalid `insert_line` parameter: {line}. It should be within the range of lines of the file: [0, {n}]"
                ),
            ))
        }
    };
    let new_lines: Vec<&str> = new.split('\n').collect();
    let new_text = lines[..at]
        .iter()
        .chain(&new_lines)
        .chain(&lines[at..])
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    let snippet = lines[at.saturating_sub(SNIPPET_LINES)..at]
        .iter()
        .chain(&new_lines)
        .chain(&lines[at..(at + SNIPPET_LINES).min(n)])
        .copied()
        .collect::<Vec<_>>()
        .join("\n");
    let after = Snapshot {
        text: new_text,
        ..before.clone()
    };
    write_file(args, path, &after, false)?;
    push_history(path, before);
    Ok(format!(
        "The file {} has been edited. {}Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary.",
        path.display(),
        make_output(
            &snippet,
            "a snippet of the edited file",
            (at + 1).saturating_sub(SNIPPET_LINES).max(1)
        )
    ))
}

fn undo_edit(args: &Args, path: &Path) -> Result<String> {
    let Some(old) = pop_history(path) else {
        return Err(args.fail(format!("No edit history found for {}.", path.display())));
    };
    if let Err(e) = write_file(args, path, &old, false) {
        push_history(path, old);
        return Err(e);
    }
    Ok(format!(
        "Last edit to {} undone successfully. {}",
        path.display(),
        make_output(&old.text, &path.display().to_string(), 1)
    ))
}

fn run(args: &Args) -> Result<Value> {
    let command = args.req_str("command")?;
    let raw = args.req_str("path")?;
    let path = clean_path(raw);
    validate_path(args, command, raw, &path)?;
    let _serialized = (command != "view").then(|| WRITE_LOCK.lock());
    let output = match command {
        "view" => view(args, &path)?,
        "create" => create(args, &path)?,
        "str_replace" => str_replace(args, &path)?,
        "insert" => insert(args, &path)?,
        "undo_edit" => undo_edit(args, &path)?,
        other => {
            return Err(args.invalid(
                "command",
                format!(
                    "Unrecognized command {other}. The allowed commands for the edit tool are: \"view\", \"create\", \"str_replace\", \"insert\", \"undo_edit\""
                ),
            ))
        }
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
                "view_range": nullable(json!({"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2,
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
    registry.replace(std::sync::Arc::new(blocking_tool(spec(), |a, _| run(a))))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::testutil;

    fn reg() -> Registry {
        testutil::registry(register)
    }

    async fn ok(r: &Registry, args: Value) -> String {
        testutil::output(r, "edit", args).await
    }

    async fn tool_err(r: &Registry, args: Value) -> String {
        testutil::tool_err(r, "edit", args).await
    }

    async fn invalid(r: &Registry, args: Value) -> (String, String) {
        testutil::invalid(r, "edit", args).await
    }

    fn p(dir: &tempfile::TempDir, name: &str) -> String {
        dir.path().join(name).display().to_string()
    }

    #[test]
    fn text_helpers_match_python() {
        assert_eq!(expandtabs("a\tb"), "a       b");
        assert_eq!(expandtabs("abcdefgh\tx"), "abcdefgh        x");
        assert_eq!(expandtabs("ab\n\tc"), "ab\n        c");
        assert_eq!(expandtabs("é\tx"), "é       x");
        assert_eq!(splitlines_len("a\nb\n"), 2);
        assert_eq!(splitlines_len("a\nb"), 2);
        assert_eq!(splitlines_len(""), 0);
        assert_eq!(splitlines_len("a\x0cb"), 2);
        assert_eq!(splitlines_len("a\r\nb\rc"), 3);
        let long = "é".repeat(MAX_RESPONSE_LEN + 5);
        let t = maybe_truncate(&long);
        assert!(t.ends_with(TRUNCATED_MESSAGE));
        assert_eq!(
            t.chars().count(),
            MAX_RESPONSE_LEN + TRUNCATED_MESSAGE.len()
        );
        assert_eq!(maybe_truncate("short"), "short");
        assert_eq!(
            make_output("a\n\tb", "/f", 9),
            "Here's the result of running `cat -n` on /f:\n     9\ta\n    10\t        b\n"
        );
    }

    #[tokio::test]
    async fn create_view_and_ranges() {
        let r = reg();
        let d = tempfile::tempdir().unwrap();
        let f = p(&d, "a.py");
        let out = ok(
            &r,
            json!({"command": "create", "path": f, "file_text": "one\ntwo\nthree\n"}),
        )
        .await;
        assert_eq!(out, format!("File created successfully at: {f}"));
        let out = ok(&r, json!({"command": "view", "path": f})).await;
        assert_eq!(
            out,
            format!("Here's the result of running `cat -n` on {f}:\n     1\tone\n     2\ttwo\n     3\tthree\n     4\t\n")
        );
        let out = ok(
            &r,
            json!({"command": "view", "path": f, "view_range": [2, -1]}),
        )
        .await;
        assert_eq!(
            out,
            format!("Here's the result of running `cat -n` on {f}:\n     2\ttwo\n     3\tthree\n     4\t\n")
        );
        let out = ok(
            &r,
            json!({"command": "view", "path": f, "view_range": [2, 2]}),
        )
        .await;
        assert_eq!(
            out,
            format!("Here's the result of running `cat -n` on {f}:\n     2\ttwo\n")
        );
        let (field, msg) = invalid(
            &r,
            json!({"command": "view", "path": f, "view_range": [0, 2]}),
        )
        .await;
        assert_eq!(field, "view_range");
        assert_eq!(msg, "Invalid `view_range`: [0, 2]. Its first element `0` should be within the range of lines of the file: [1, 4]");
        let (_, msg) = invalid(
            &r,
            json!({"command": "view", "path": f, "view_range": [1, 9]}),
        )
        .await;
        assert_eq!(msg, "Invalid `view_range`: [1, 9]. Its second element `9` should be smaller than the number of lines in the file: `4`");
        let (_, msg) = invalid(
            &r,
            json!({"command": "view", "path": f, "view_range": [3, 2]}),
        )
        .await;
        assert_eq!(msg, "Invalid `view_range`: [3, 2]. Its second element `2` should be larger or equal than its first `3`");
        let (field, _) =
            invalid(&r, json!({"command": "view", "path": f, "view_range": [3]})).await;
        assert_eq!(field, "view_range");
        let msg = tool_err(
            &r,
            json!({"command": "create", "path": f, "file_text": "x"}),
        )
        .await;
        assert_eq!(
            msg,
            format!("File already exists at: {f}. Cannot overwrite files using command `create`.")
        );
        let (field, msg) = invalid(&r, json!({"command": "create", "path": p(&d, "b.py")})).await;
        assert_eq!(
            (field.as_str(), msg.as_str()),
            (
                "file_text",
                "Parameter `file_text` is required for command: create"
            )
        );
        let missing = p(&d, "no/such/c.py");
        let msg = tool_err(
            &r,
            json!({"command": "create", "path": missing, "file_text": "x"}),
        )
        .await;
        assert_eq!(
            msg,
            format!(
                "The parent directory {} does not exist. Please create it first.",
                p(&d, "no/such")
            )
        );
    }

    #[tokio::test]
    async fn path_rules() {
        let r = reg();
        let d = tempfile::tempdir().unwrap();
        let (field, msg) = invalid(&r, json!({"command": "view", "path": "rel/x.py"})).await;
        assert_eq!(field, "path");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            msg,
            format!("The path rel/x.py is not an absolute path, it should start with `/`. Maybe you meant {}?", cwd.join("rel/x.py").display())
        );
        let gone = p(&d, "gone.txt");
        let msg = tool_err(&r, json!({"command": "view", "path": gone})).await;
        assert_eq!(
            msg,
            format!("The path {gone} does not exist. Please provide a valid path.")
        );
        let dir = d.path().display().to_string();
        let msg = tool_err(
            &r,
            json!({"command": "str_replace", "path": dir, "old_str": "a"}),
        )
        .await;
        assert_eq!(msg, format!("The path {dir} is a directory and only the `view` command can be used on directories"));
        let (field, _) = invalid(&r, json!({"command": "delete", "path": dir})).await;
        assert_eq!(field, "command");
        let (field, _) = invalid(&r, json!({"command": "view"})).await;
        assert_eq!(field, "path");
        let (field, _) = invalid(&r, json!({"command": "view", "path": dir, "bogus": 1})).await;
        assert_eq!(field, "bogus");
        // Trailing and repeated slashes are normalized like Python's Path.
        let out = ok(&r, json!({"command": "view", "path": format!("{dir}//")})).await;
        assert!(
            out.starts_with(&format!(
                "Here's the files and directories up to 2 levels deep in {dir}, excluding"
            )),
            "{out}"
        );
    }

    #[tokio::test]
    async fn view_directory_two_levels_without_hidden() {
        let r = reg();
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("pkg/sub/deep")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), "").unwrap();
        std::fs::write(root.join(".env"), "").unwrap();
        std::fs::write(root.join("b.txt"), "").unwrap();
        std::fs::write(root.join("pkg/a.py"), "").unwrap();
        std::fs::write(root.join("pkg/sub/deep/x"), "").unwrap();
        let dir = root.display().to_string();
        let out = ok(&r, json!({"command": "view", "path": dir})).await;
        assert_eq!(
            out,
            format!(
                "Here's the files and directories up to 2 levels deep in {dir}, excluding hidden items:\n{dir}\n{dir}/b.txt\n{dir}/pkg\n{dir}/pkg/a.py\n{dir}/pkg/sub\n\n"
            )
        );
        let (field, msg) = invalid(
            &r,
            json!({"command": "view", "path": dir, "view_range": [1, 2]}),
        )
        .await;
        assert_eq!(field, "view_range");
        assert_eq!(
            msg,
            "The `view_range` parameter is not allowed when `path` points to a directory."
        );
    }

    #[tokio::test]
    async fn str_replace_and_undo() {
        let r = reg();
        let d = tempfile::tempdir().unwrap();
        let f = p(&d, "m.py");
        let lines: Vec<String> = (1..=12).map(|i| format!("line {i}")).collect();
        std::fs::write(&f, lines.join("\n") + "\n").unwrap();
        let out = ok(&r, json!({"command": "str_replace", "path": f, "old_str": "line 7\n", "new_str": "seven\nsept\n"})).await;
        assert_eq!(
            out,
            format!(
                "The file {f} has been edited. Here's the result of running `cat -n` on a snippet of {f}:\n     2\tline 2\n     3\tline 3\n     4\tline 4\n     5\tline 5\n     6\tline 6\n     7\tseven\n     8\tsept\n     9\tline 8\n    10\tline 9\n    11\tline 10\n    12\tline 11\nReview the changes and make sure they are as expected. Edit the file again if necessary."
            )
        );
        assert!(std::fs::read_to_string(&f)
            .unwrap()
            .contains("line 6\nseven\nsept\nline 8\n"));

        let msg = tool_err(
            &r,
            json!({"command": "str_replace", "path": f, "old_str": "nope"}),
        )
        .await;
        assert_eq!(
            msg,
            format!("No replacement was performed, old_str `nope` did not appear verbatim in {f}.")
        );
        let msg = tool_err(
            &r,
            json!({"command": "str_replace", "path": f, "old_str": "line 1"}),
        )
        .await;
        assert_eq!(msg, "No replacement was performed. Multiple occurrences of old_str `line 1` in lines [1, 11, 12, 13]. Please ensure it is unique");
        let msg = tool_err(
            &r,
            json!({"command": "str_replace", "path": f, "old_str": "sept", "new_str": "sept"}),
        )
        .await;
        assert_eq!(
            msg,
            "No replacement was performed, old_str `sept` is the same as new_str `sept`."
        );
        let (field, msg) = invalid(&r, json!({"command": "str_replace", "path": f})).await;
        assert_eq!(
            (field.as_str(), msg.as_str()),
            (
                "old_str",
                "Parameter `old_str` is required for command: str_replace"
            )
        );
        let (field, _) = invalid(
            &r,
            json!({"command": "str_replace", "path": f, "old_str": ""}),
        )
        .await;
        assert_eq!(field, "old_str");

        // Deleting (new_str omitted) at the top of the file.
        ok(
            &r,
            json!({"command": "str_replace", "path": f, "old_str": "line 12\n"}),
        )
        .await;
        let out = ok(&r, json!({"command": "undo_edit", "path": f})).await;
        assert!(out.starts_with(&format!("Last edit to {f} undone successfully. Here's the result of running `cat -n` on {f}:\n     1\tline 1\n")), "{out}");
        assert!(std::fs::read_to_string(&f).unwrap().contains("line 12"));
        ok(&r, json!({"command": "undo_edit", "path": f})).await;
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            lines.join("\n") + "\n"
        );
        let msg = tool_err(&r, json!({"command": "undo_edit", "path": f})).await;
        assert_eq!(msg, format!("No edit history found for {f}."));
    }

    #[tokio::test]
    async fn insert_lines() {
        let r = reg();
        let d = tempfile::tempdir().unwrap();
        let f = p(&d, "i.txt");
        std::fs::write(&f, "a\nb\nc\nd\ne\nf").unwrap();
        let out = ok(
            &r,
            json!({"command": "insert", "path": f, "insert_line": 5, "new_str": "X\nY"}),
        )
        .await;
        assert_eq!(
            out,
            format!("The file {f} has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n     2\tb\n     3\tc\n     4\td\n     5\te\n     6\tX\n     7\tY\n     8\tf\nReview the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary.")
        );
        assert_eq!(
            std::fs::read_to_string(&f).unwrap(),
            "a\nb\nc\nd\ne\nX\nY\nf"
        );
        ok(
            &r,
            json!({"command": "insert", "path": f, "insert_line": 0, "new_str": "top"}),
        )
        .await;
        assert!(std::fs::read_to_string(&f).unwrap().starts_with("top\na\n"));
        let (field, msg) = invalid(
            &r,
            json!({"command": "insert", "path": f, "insert_line": 10, "new_str": "z"}),
        )
        .await;
        assert_eq!(field, "insert_line");
        assert_eq!(msg, "Invalid `insert_line` parameter: 10. It should be within the range of lines of the file: [0, 9]");
        let (_, msg) = invalid(
            &r,
            json!({"command": "insert", "path": f, "insert_line": -1, "new_str": "z"}),
        )
        .await;
        assert_eq!(msg, "Invalid `insert_line` parameter: -1. It should be within the range of lines of the file: [0, 9]");
        let (field, _) = invalid(&r, json!({"command": "insert", "path": f, "new_str": "z"})).await;
        assert_eq!(field, "insert_line");
        let (field, msg) = invalid(
            &r,
            json!({"command": "insert", "path": f, "insert_line": 1}),
        )
        .await;
        assert_eq!(
            (field.as_str(), msg.as_str()),
            (
                "new_str",
                "Parameter `new_str` is required for command: insert"
            )
        );
    }

    #[tokio::test]
    async fn tabs_crlf_and_latin1_survive() {
        let r = reg();
        let d = tempfile::tempdir().unwrap();
        let f = p(&d, "t.c");
        std::fs::write(&f, "int x;\r\n\tif (x) {}\r\n").unwrap();
        let out = ok(&r, json!({"command": "view", "path": f})).await;
        assert!(out.contains("     2\t        if (x) {}\n"), "{out}");
        ok(
            &r,
            json!({"command": "str_replace", "path": f, "old_str": "int x;", "new_str": "long x;"}),
        )
        .await;
        // Like the original, str_replace expands tabs; CRLF endings are kept.
        assert_eq!(
            std::fs::read(&f).unwrap(),
            b"long x;\r\n        if (x) {}\r\n"
        );
        ok(&r, json!({"command": "undo_edit", "path": f})).await;
        assert_eq!(std::fs::read(&f).unwrap(), b"int x;\r\n\tif (x) {}\r\n");
        ok(&r, json!({"command": "str_replace", "path": f, "old_str": "int", "new_str": "long", "expand_tabs": false})).await;
        assert_eq!(std::fs::read(&f).unwrap(), b"long x;\r\n\tif (x) {}\r\n");

        let g = p(&d, "l1.txt");
        std::fs::write(&g, b"caf\xe9 ok\n").unwrap();
        let out = ok(&r, json!({"command": "view", "path": g})).await;
        assert!(out.contains("     1\tcafé ok\n"), "{out}");
        ok(
            &r,
            json!({"command": "str_replace", "path": g, "old_str": "ok", "new_str": "bon"}),
        )
        .await;
        assert_eq!(std::fs::read(&g).unwrap(), b"caf\xe9 bon\n");
        let msg = tool_err(
            &r,
            json!({"command": "str_replace", "path": g, "old_str": "bon", "new_str": "€"}),
        )
        .await;
        assert!(msg.contains("cannot be encoded in latin-1"), "{msg}");
        assert_eq!(std::fs::read(&g).unwrap(), b"caf\xe9 bon\n");
    }

    #[tokio::test]
    async fn long_files_are_clipped() {
        let r = reg();
        let d = tempfile::tempdir().unwrap();
        let f = p(&d, "big.txt");
        let text: String = (0..3000).map(|i| format!("row {i:05}\n")).collect();
        std::fs::write(&f, &text).unwrap();
        let out = ok(&r, json!({"command": "view", "path": f})).await;
        let expect_body = &text[..MAX_RESPONSE_LEN];
        let n_lines = expect_body.split('\n').count();
        assert!(
            out.ends_with(&format!("{TRUNCATED_MESSAGE}\n")),
            "{}",
            &out[out.len() - 300..]
        );
        assert_eq!(out.lines().count(), n_lines + 1);
        assert!(out.contains(&format!("{:6}\trow {:05}\n", n_lines - 1, n_lines - 2)));
    }
}
