//! `fs.list`: a directory's entries, sorted, optionally recursive; symlinks are listed, never
//! followed (no loops). A path that is not UTF-8 also comes as raw bytes in base64.

use std::os::unix::ffi::OsStrExt;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::target;
use crate::builtin::args::B64;
use crate::builtin::{walk_builder, Call};
use crate::core::{CallContext, Result};

#[derive(Deserialize)]
pub(super) struct ListArgs {
    path: Option<String>,
    path_base64: Option<String>,
    recursive: Option<bool>,
    max_depth: Option<u64>,
    include_hidden: Option<bool>,
    gitignore: Option<bool>,
    max_entries: Option<u64>,
}

fn kind(ft: Option<std::fs::FileType>) -> &'static str {
    match ft {
        Some(t) if t.is_symlink() => "symlink",
        Some(t) if t.is_dir() => "dir",
        Some(t) if t.is_file() => "file",
        _ => "other",
    }
}

pub(super) fn list(call: &Call, a: ListArgs, ctx: &CallContext) -> Result<Value> {
    let path = target(call, a.path.as_deref(), a.path_base64.as_deref())?;
    let meta = std::fs::metadata(&path)
        .map_err(|e| call.fail(format!("cannot list {}: {e}", path.display())))?;
    if !meta.is_dir() {
        return Err(call.fail(format!(
            "cannot list {}: not a directory (use fs.read)",
            path.display()
        )));
    }
    let max_entries = usize::try_from(a.max_entries.unwrap_or(1000)).unwrap_or(usize::MAX);
    let depth = if a.recursive.unwrap_or(false) {
        a.max_depth
            .map(|d| usize::try_from(d).unwrap_or(usize::MAX))
    } else {
        Some(1)
    };
    let walk = walk_builder(
        &path,
        a.include_hidden.unwrap_or(false),
        a.gitignore.unwrap_or(true),
    )
    .max_depth(depth)
    .sort_by_file_name(|a, b| a.cmp(b))
    .build();
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut truncated = false;
    for item in walk {
        call.check(&ctx.cancel)?;
        let e = match item {
            Ok(e) => e,
            Err(err) => {
                errors.push(err.to_string());
                continue;
            }
        };
        if e.depth() == 0 {
            continue;
        }
        if entries.len() == max_entries {
            truncated = true;
            break;
        }
        let rel = e.path().strip_prefix(&path).unwrap_or(e.path());
        let ft = e.file_type();
        let mut entry = json!({"path": rel.display().to_string(), "type": kind(ft)});
        if e.path().to_str().is_none() {
            entry["absolute_path_base64"] = json!(B64.encode(e.path().as_os_str().as_bytes()));
        }
        if ft.is_some_and(|t| t.is_file()) {
            if let Ok(m) = e.metadata() {
                entry["size"] = json!(m.len());
            }
        }
        entries.push(entry);
    }
    Ok(json!({
        "path": path.display().to_string(),
        "entries": entries,
        "truncated": truncated,
        "errors": errors,
    }))
}
