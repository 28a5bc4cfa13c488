//! `read_file` / `write_file` as `Path.read_text` / `Path.write_text` behave, with OS errors as
//! the Python exceptions they would be (`FileNotFoundError`, `IsADirectoryError`, ...).

use std::io;
use std::path::Path;

use serde_json::{json, Value};

use super::errors::Exception;
use super::pyfmt::repr_str;
use super::wire::{ReadFile, WriteFile};

/// The `OSError` subclass Python raises for `e` (by errno), with Python's message.
pub fn os_error(e: &io::Error, path: &Path) -> Exception {
    let Some(code) = e.raw_os_error() else {
        return Exception::new("builtins.OSError", e.to_string());
    };
    let class = match code {
        libc::ENOENT => "builtins.FileNotFoundError",
        libc::EEXIST => "builtins.FileExistsError",
        libc::EISDIR => "builtins.IsADirectoryError",
        libc::ENOTDIR => "builtins.NotADirectoryError",
        libc::EACCES | libc::EPERM => "builtins.PermissionError",
        _ => "builtins.OSError",
    };
    // Rust appends " (os error N)" to strerror; Python writes "[Errno N] strerror: 'path'".
    let text = io::Error::from_raw_os_error(code).to_string();
    let strerror = text
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&text);
    let p = repr_str(&path.to_string_lossy());
    Exception::new(class, format!("[Errno {code}] {strerror}: {p}"))
}

/// Python's `open(..., newline=None)` reading: `\r\n` and lone `\r` become `\n`.
fn universal_newlines(s: String) -> String {
    if !s.contains('\r') {
        return s;
    }
    s.replace("\r\n", "\n").replace('\r', "\n")
}

fn decode(bytes: Vec<u8>, encoding: &str, errors: &str, path: &str) -> Result<String, Exception> {
    let norm = encoding.to_ascii_lowercase().replace(['-', '_'], "");
    match norm.as_str() {
        "utf8" | "utf" | "u8" => match errors {
            "strict" => String::from_utf8(bytes).map_err(|e| {
                let at = e.utf8_error().valid_up_to();
                Exception::new(
                    "builtins.UnicodeDecodeError",
                    format!(
                        "'utf-8' codec can't decode byte 0x{:02x} in position {at}: invalid \
                         start byte (reading {})",
                        e.as_bytes().get(at).copied().unwrap_or(0),
                        repr_str(path)
                    ),
                )
            }),
            "replace" => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            "ignore" => Ok(String::from_utf8_lossy(&bytes).replace('\u{fffd}', "")),
            other => Err(Exception::new(
                "builtins.LookupError",
                format!("unknown error handler name {}", repr_str(other)),
            )),
        },
        "latin1" | "iso88591" | "l1" => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
        "ascii" | "usascii" if bytes.is_ascii() || errors != "strict" => Ok(bytes
            .iter()
            .map(|&b| {
                if b.is_ascii() {
                    char::from(b)
                } else {
                    '\u{fffd}'
                }
            })
            .filter(|c| errors != "ignore" || *c != '\u{fffd}')
            .collect()),
        "ascii" | "usascii" => Err(Exception::new(
            "builtins.UnicodeDecodeError",
            format!(
                "'ascii' codec can't decode a byte (reading {})",
                repr_str(path)
            ),
        )),
        _ => Err(Exception::new(
            "builtins.LookupError",
            format!("unknown encoding: {encoding}"),
        )),
    }
}

pub async fn read_file(r: ReadFile) -> Result<Value, Exception> {
    let path = Path::new(&r.path);
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| os_error(&e, path))?;
    let text = decode(
        bytes,
        r.encoding.as_deref().unwrap_or("utf-8"),
        r.errors.as_deref().unwrap_or("strict"),
        &r.path,
    )?;
    Ok(json!({"content": universal_newlines(text)}))
}

/// Write the text, creating missing parent directories.
pub async fn write_file(w: WriteFile) -> Result<Value, Exception> {
    let path = Path::new(&w.path);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| os_error(&e, parent))?;
    }
    tokio::fs::write(path, w.content.as_bytes())
        .await
        .map_err(|e| os_error(&e, path))?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_os_errors() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        let x = os_error(&e, Path::new("/no/such"));
        assert_eq!(x.class_path, "builtins.FileNotFoundError");
        assert_eq!(x.message, "[Errno 2] No such file or directory: '/no/such'");
    }

    #[test]
    fn decoding_like_python() {
        assert_eq!(universal_newlines("a\r\nb\rc\n".into()), "a\nb\nc\n");
        assert!(decode(vec![0xff], "utf-8", "strict", "f").is_err());
        assert_eq!(
            decode(vec![b'a', 0xff], "utf-8", "replace", "f").unwrap(),
            "a\u{fffd}"
        );
        assert_eq!(
            decode(vec![b'a', 0xff], "utf8", "ignore", "f").unwrap(),
            "a"
        );
        assert_eq!(decode(vec![0xe9], "latin-1", "strict", "f").unwrap(), "é");
        let e = decode(vec![], "klingon", "strict", "f").unwrap_err();
        assert_eq!(e.class_path, "builtins.LookupError");
    }
}
