//! `fs.write`: replace a file atomically or append to it (see [`crate::builtin::io`]).

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{target, Encoding};
use crate::builtin::args::B64;
use crate::builtin::io::{append, write_atomic, Existing};
use crate::builtin::Call;
use crate::core::{CallContext, Result};

#[derive(Deserialize)]
pub(super) struct WriteArgs {
    path: Option<String>,
    path_base64: Option<String>,
    content: String,
    encoding: Option<Encoding>,
    create_parents: Option<bool>,
    append: Option<bool>,
}

pub(super) fn write(call: &Call, a: WriteArgs, _: &CallContext) -> Result<Value> {
    let path = target(call, a.path.as_deref(), a.path_base64.as_deref())?;
    let bytes = match a.encoding.unwrap_or(Encoding::Utf8) {
        Encoding::Base64 => B64
            .decode(&a.content)
            .map_err(|e| call.invalid("content", format!("not valid base64: {e}")))?,
        Encoding::Utf8 => a.content.into_bytes(),
    };
    if a.create_parents.unwrap_or(true) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                call.fail(format!(
                    "cannot create the parent directories of {}: {e}",
                    path.display()
                ))
            })?;
        }
    }
    let existed = path.exists();
    if a.append.unwrap_or(false) {
        append(&path, &bytes)
    } else {
        write_atomic(&path, &bytes, Existing::Replace)
    }
    .map_err(|e| call.fail(format!("cannot write {}: {e}", path.display())))?;
    Ok(json!({
        "path": path.display().to_string(),
        "bytes_written": bytes.len(),
        "created": !existed,
    }))
}
