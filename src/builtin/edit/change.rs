//! The commands that change a file: `create`, `str_replace`, `insert`, `undo_edit`. Each
//! writes atomically and records the undo step only once the write succeeded.

use std::path::Path;

use super::file::{pop_history, push_history, read_file, write_file, Encoding, Snapshot};
use super::text::{expandtabs, make_output, splitlines_len};
use super::{EditArgs, SNIPPET_LINES};
use crate::builtin::Call;
use crate::core::{CallContext, Result};

/// `insert_line` as a number of any size (a huge one is out of range, not missing); a
/// fraction is refused.
fn insert_line(call: &Call, a: &EditArgs) -> Result<Option<i128>> {
    let Some(n) = &a.insert_line else {
        return Ok(None);
    };
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
        .map(Some)
        .ok_or_else(|| {
            call.invalid(
                "insert_line",
                format!("Invalid `insert_line` parameter: {n}. It should be an integer (a line number)."),
            )
        })
}

pub(super) fn create(call: &Call, a: &EditArgs, path: &Path) -> Result<String> {
    let Some(text) = a.file_text.as_deref() else {
        return Err(call.invalid(
            "file_text",
            "Parameter `file_text` is required for command: create",
        ));
    };
    let parent = path.parent().unwrap_or(Path::new("/"));
    if !parent.exists() {
        return Err(call.fail(format!(
            "The parent directory {} does not exist. Please create it first.",
            parent.display()
        )));
    }
    let snap = Snapshot {
        text: text.to_string(),
        encoding: Encoding::Utf8,
        crlf: false,
    };
    write_file(call, path, &snap, true)?;
    push_history(path, snap);
    Ok(format!("File created successfully at: {}", path.display()))
}

pub(super) fn str_replace(
    call: &Call,
    a: &EditArgs,
    path: &Path,
    ctx: &CallContext,
) -> Result<String> {
    let Some(old) = a.old_str.as_deref() else {
        return Err(call.invalid(
            "old_str",
            "Parameter `old_str` is required for command: str_replace",
        ));
    };
    if old.is_empty() {
        return Err(call.invalid(
            "old_str",
            "No replacement was performed, old_str is empty (it would match everywhere).",
        ));
    }
    let tabs = a.expand_tabs.unwrap_or(true);
    let expand = |s: &str| if tabs { expandtabs(s) } else { s.to_string() };
    let before = read_file(call, path, ctx)?;
    let content = expand(&before.text);
    let old = expand(old);
    let new = expand(a.new_str.as_deref().unwrap_or(""));
    let shown = path.display();

    let occurrences = content.matches(old.as_str()).count();
    if occurrences == 0 {
        return Err(call.fail(format!(
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
        return Err(call.fail(format!(
            "No replacement was performed. Multiple occurrences of old_str `{old}` in lines {lines:?}. Please ensure it is unique"
        )));
    }
    if new == old {
        return Err(call.fail(format!(
            "No replacement was performed, old_str `{old}` is the same as new_str `{new}`."
        )));
    }
    let new_content = content.replacen(old.as_str(), &new, 1);
    let after = Snapshot {
        text: new_content,
        ..before.clone()
    };
    write_file(call, path, &after, false)?;
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

pub(super) fn insert(call: &Call, a: &EditArgs, path: &Path, ctx: &CallContext) -> Result<String> {
    let Some(line) = insert_line(call, a)? else {
        return Err(call.invalid(
            "insert_line",
            "Parameter `insert_line` is required for command: insert",
        ));
    };
    let Some(new) = a.new_str.as_deref() else {
        return Err(call.invalid(
            "new_str",
            "Parameter `new_str` is required for command: insert",
        ));
    };
    let tabs = a.expand_tabs.unwrap_or(true);
    let expand = |s: &str| if tabs { expandtabs(s) } else { s.to_string() };
    let before = read_file(call, path, ctx)?;
    let text = expand(&before.text);
    let new = expand(new);
    let lines: Vec<&str> = text.split('\n').collect();
    let n = lines.len();
    let at = match usize::try_from(line) {
        Ok(at) if at <= n => at,
        _ => {
            return Err(call.invalid(
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
    write_file(call, path, &after, false)?;
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

pub(super) fn undo_edit(call: &Call, path: &Path) -> Result<String> {
    let Some(old) = pop_history(path) else {
        return Err(call.fail(format!("No edit history found for {}.", path.display())));
    };
    if let Err(e) = write_file(call, path, &old, false) {
        push_history(path, old);
        return Err(e);
    }
    Ok(format!(
        "Last edit to {} undone successfully. {}",
        path.display(),
        make_output(&old.text, &path.display().to_string(), 1)
    ))
}
