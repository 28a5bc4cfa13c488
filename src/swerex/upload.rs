//! `POST /upload` (multipart: `file`, `target_path`, `unzip`) as SWE-ReX's server does it: the
//! file is streamed to a temporary file (within the size cap), then moved to `target_path` or,
//! with `unzip`, extracted under it ([`super::unzip`], which refuses entries escaping it).

use std::path::{Path, PathBuf};

use axum::extract::Multipart;
use axum::http::StatusCode;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::errors::{class, Exception, Failure, HttpError};
use super::files::os_error;
use super::unzip::{self, UnzipError};

/// Limits of one upload.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Bytes of the uploaded file.
    pub max_bytes: u64,
    /// Bytes a zip may expand to.
    pub max_unzipped_bytes: u64,
}

/// A temporary file removed when dropped (unless moved away).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// pydantic's lax bool parsing of a form field.
fn form_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" | "on" => Some(true),
        "0" | "false" | "f" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

fn missing(field: &str) -> HttpError {
    HttpError::invalid(
        "missing",
        vec![json!("body"), json!(field)],
        "Field required",
        Value::Null,
    )
}

fn bad_multipart(e: impl std::fmt::Display) -> HttpError {
    HttpError::new(
        StatusCode::BAD_REQUEST,
        format!("There was an error parsing the body: {e}"),
    )
}

pub async fn upload(mut form: Multipart, limits: UploadLimits) -> Result<Value, Failure> {
    let mut file: Option<(TempFile, Option<String>)> = None;
    let mut target: Option<String> = None;
    let mut unzip_flag = false;
    while let Some(mut field) = form.next_field().await.map_err(bad_multipart)? {
        match field.name() {
            Some("file") => {
                let name = field.file_name().map(str::to_string);
                let tmp = TempFile(std::env::temp_dir().join(format!(
                    "agent-runtime-upload-{}-{:016x}",
                    std::process::id(),
                    fastrand::u64(..)
                )));
                let mut out = tokio::fs::File::create(&tmp.0)
                    .await
                    .map_err(|e| Failure::from(os_error(&e, &tmp.0)))?;
                let mut size: u64 = 0;
                while let Some(chunk) = field.chunk().await.map_err(bad_multipart)? {
                    size += chunk.len() as u64;
                    if size > limits.max_bytes {
                        return Err(HttpError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("the uploaded file exceeds {} bytes", limits.max_bytes),
                        )
                        .into());
                    }
                    out.write_all(&chunk)
                        .await
                        .map_err(|e| Failure::from(os_error(&e, &tmp.0)))?;
                }
                out.flush()
                    .await
                    .map_err(|e| Failure::from(os_error(&e, &tmp.0)))?;
                file = Some((tmp, name));
            }
            Some("target_path") => target = Some(field.text().await.map_err(bad_multipart)?),
            Some("unzip") => {
                let t = field.text().await.map_err(bad_multipart)?;
                unzip_flag = form_bool(&t).ok_or_else(|| {
                    HttpError::invalid(
                        "bool_parsing",
                        vec![json!("body"), json!("unzip")],
                        "Input should be a valid boolean, unable to interpret input",
                        json!(t),
                    )
                })?;
            }
            _ => {}
        }
    }
    let (tmp, file_name) = file.ok_or_else(|| missing("file"))?;
    let target = PathBuf::from(target.ok_or_else(|| missing("target_path"))?);
    let limit = limits.max_unzipped_bytes;
    tokio::task::spawn_blocking(move || place(tmp, file_name, &target, unzip_flag, limit))
        .await
        .map_err(|e| Exception::new(class::RUNTIME_ERROR, format!("upload task: {e}")))??;
    Ok(json!({}))
}

/// Move or extract the received file (blocking).
fn place(
    tmp: TempFile,
    file_name: Option<String>,
    target: &Path,
    unzip_it: bool,
    max_unzipped: u64,
) -> Result<(), Exception> {
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| os_error(&e, parent))?;
    }
    if unzip_it {
        return unzip::extract(&tmp.0, target, max_unzipped).map_err(|e| match e {
            UnzipError::BadZip(m) => Exception::new("zipfile.BadZipFile", m),
            UnzipError::Io(m) => Exception::new("builtins.OSError", m),
            other => Exception::new(class::VALUE_ERROR, other.to_string()),
        });
    }
    // Into an existing directory: under the client's file name (as copying a file there does).
    let dest = match file_name.as_deref().and_then(|n| Path::new(n).file_name()) {
        Some(n) if target.is_dir() => target.join(n),
        _ => target.to_path_buf(),
    };
    if std::fs::rename(&tmp.0, &dest).is_err() {
        // Another file system: copy, then the guard removes the temporary file.
        std::fs::copy(&tmp.0, &dest).map_err(|e| os_error(&e, &dest))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bools() {
        assert_eq!(form_bool("true"), Some(true));
        assert_eq!(form_bool("False"), Some(false));
        assert_eq!(form_bool("1"), Some(true));
        assert_eq!(form_bool("maybe"), None);
    }
}
