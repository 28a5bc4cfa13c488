//! `fs.read`, `fs.write`, `fs.list`: plain file access for agents. Text is UTF-8; anything
//! else is read and written as base64 on request, and an invalid byte is reported with its
//! offset rather than silently replaced.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{json, Value};

use super::{absolute, blocking_tool, clean_path, nullable, obj, walk_builder, Args};
use crate::core::{CallContext, Error, Registry, Result, ToolSpec};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn target(args: &Args) -> Result<PathBuf> {
    Ok(absolute(&clean_path(args.req_str("path")?)))
}

fn io_err(args: &Args, verb: &str, path: &Path, e: std::io::Error) -> Error {
    args.fail(format!("cannot {verb} {}: {e}", path.display()))
}

fn not_utf8(args: &Args, path: &Path, at: u64, byte: Option<u8>) -> Error {
    let what = match byte {
        Some(b) => format!("invalid byte 0x{b:02x} at offset {at}"),
        None => format!("truncated character at offset {at}"),
    };
    args.fail(format!(
        "{} is not valid UTF-8 text ({what}); read it with encoding \"base64\"",
        path.display()
    ))
}

/// Decode `bytes` (which start at file offset `base`). When `more` follows, an incomplete
/// character at the end is left for the next read; returns the text and the bytes it used.
fn decode(
    args: &Args,
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
                args,
                path,
                base + at as u64,
                e.error_len().map(|_| bytes[at]),
            ));
        }
    }
    let n = bytes.len();
    String::from_utf8(bytes)
        .map(|s| (s, n))
        .map_err(|e| not_utf8(args, path, base, e.as_bytes().first().copied()))
}

fn open_file(args: &Args, path: &Path) -> Result<(File, u64)> {
    let f = File::open(path).map_err(|e| io_err(args, "read", path, e))?;
    let meta = f.metadata().map_err(|e| io_err(args, "read", path, e))?;
    if meta.is_dir() {
        return Err(args.fail(format!(
            "cannot read {}: it is a directory (use fs.list)",
            path.display()
        )));
    }
    Ok((f, meta.len()))
}

fn read(args: &Args, ctx: &CallContext) -> Result<Value> {
    let path = target(args)?;
    let encoding = args.str_or("encoding", "utf-8");
    let by_lines = args.has("start_line") || args.has("end_line");
    if by_lines {
        for k in ["offset", "limit"] {
            if args.has(k) {
                return Err(args.invalid(
                    k,
                    "`offset`/`limit` (bytes) cannot be combined with `start_line`/`end_line`",
                ));
            }
        }
        if encoding != "utf-8" {
            return Err(args.invalid(
                "encoding",
                "`start_line`/`end_line` select lines of text: use encoding \"utf-8\"",
            ));
        }
        return read_lines(args, ctx, &path);
    }
    let (mut f, size) = open_file(args, &path)?;
    let offset = args.u64("offset").unwrap_or(0);
    let limit = args.u64("limit");
    if offset > 0 {
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| io_err(args, "read", &path, e))?;
    }
    let mut buf = Vec::new();
    // One byte past the limit tells whether the file goes on.
    let cap = limit.map_or(u64::MAX, |l| l.saturating_add(1));
    f.take(cap)
        .read_to_end(&mut buf)
        .map_err(|e| io_err(args, "read", &path, e))?;
    let more = limit.is_some_and(|l| buf.len() as u64 > l);
    if let Some(l) = limit {
        buf.truncate(usize::try_from(l).unwrap_or(usize::MAX));
    }
    let (content, length) = if encoding == "base64" {
        let n = buf.len();
        (B64.encode(&buf), n)
    } else {
        if offset > 0 && buf.first().is_some_and(|b| (0x80..0xC0).contains(b)) {
            return Err(args.invalid(
                "offset",
                format!(
                    "offset {offset} is inside a UTF-8 character of {}",
                    path.display()
                ),
            ));
        }
        decode(args, &path, offset, buf, more)?
    };
    let eof = !more || offset + length as u64 >= size;
    Ok(json!({
        "path": path.display().to_string(),
        "content": content,
        "encoding": encoding,
        "size": size,
        "offset": offset,
        "length": length,
        "eof": eof,
    }))
}

fn read_lines(args: &Args, ctx: &CallContext, path: &Path) -> Result<Value> {
    let start = args.u64("start_line").unwrap_or(1);
    let end = match args.i64("end_line") {
        None | Some(-1) => u64::MAX,
        Some(e) if e >= 1 => e as u64,
        Some(e) => {
            return Err(args.invalid(
                "end_line",
                format!(
                "end_line must be a line number (1-based) or -1 for the end of the file, got {e}"
            ),
            ))
        }
    };
    if end < start {
        return Err(args.invalid(
            "end_line",
            format!("end_line {end} is before start_line {start}"),
        ));
    }
    let (f, size) = open_file(args, path)?;
    let mut r = BufReader::with_capacity(64 * 1024, f);
    let mut line = Vec::new();
    let mut out = Vec::new();
    let (mut n, mut pos, mut first_offset) = (0u64, 0u64, None);
    loop {
        if n % 65_536 == 0 && ctx.is_cancelled() {
            return Err(Error::Cancelled {
                tool: args.tool().to_string(),
            });
        }
        line.clear();
        let got = r
            .read_until(b'\n', &mut line)
            .map_err(|e| io_err(args, "read", path, e))?;
        if got == 0 {
            break;
        }
        n += 1;
        if n >= start {
            first_offset.get_or_insert(pos);
            out.extend_from_slice(&line);
        }
        pos += got as u64;
        if n == end {
            break;
        }
    }
    if n < start && !(n == 0 && start == 1) {
        return Err(args.invalid(
            "start_line",
            format!(
                "start_line {start} is past the end of {} ({n} lines)",
                path.display()
            ),
        ));
    }
    let eof = r.fill_buf().map(|b| b.is_empty()).unwrap_or(true);
    let offset = first_offset.unwrap_or(pos);
    let (content, length) = decode(args, path, offset, out, false)?;
    Ok(json!({
        "path": path.display().to_string(),
        "content": content,
        "encoding": "utf-8",
        "size": size,
        "offset": offset,
        "length": length,
        "eof": eof,
        "start_line": start,
        "end_line": n,
    }))
}

fn write(args: &Args) -> Result<Value> {
    let path = target(args)?;
    let content = args.str("content").unwrap_or_default();
    let bytes = match args.str_or("encoding", "utf-8") {
        "base64" => B64
            .decode(content)
            .map_err(|e| args.invalid("content", format!("not valid base64: {e}")))?,
        _ => content.as_bytes().to_vec(),
    };
    let append = args.bool_or("append", false);
    if args.bool_or("create_parents", true) {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                args.fail(format!(
                    "cannot create the parent directories of {}: {e}",
                    path.display()
                ))
            })?;
        }
    }
    let existed = path.exists();
    let mut o = OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    o.open(&path)
        .and_then(|mut f| f.write_all(&bytes))
        .map_err(|e| io_err(args, "write", &path, e))?;
    Ok(json!({
        "path": path.display().to_string(),
        "bytes_written": bytes.len(),
        "created": !existed,
    }))
}

fn kind(ft: Option<std::fs::FileType>) -> &'static str {
    match ft {
        Some(t) if t.is_symlink() => "symlink",
        Some(t) if t.is_dir() => "dir",
        Some(t) if t.is_file() => "file",
        _ => "other",
    }
}

fn list(args: &Args, ctx: &CallContext) -> Result<Value> {
    let path = target(args)?;
    let meta = std::fs::metadata(&path).map_err(|e| io_err(args, "list", &path, e))?;
    if !meta.is_dir() {
        return Err(args.fail(format!(
            "cannot list {}: not a directory (use fs.read)",
            path.display()
        )));
    }
    let recursive = args.bool_or("recursive", false);
    let gitignore = args.bool_or("gitignore", true);
    let max_entries =
        usize::try_from(args.u64("max_entries").unwrap_or(1000)).unwrap_or(usize::MAX);
    let depth = if recursive {
        args.u64("max_depth")
            .map(|d| usize::try_from(d).unwrap_or(usize::MAX))
    } else {
        Some(1)
    };
    let walk = walk_builder(&path, args.bool_or("include_hidden", false), gitignore)
        .max_depth(depth)
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut truncated = false;
    for item in walk {
        if ctx.is_cancelled() {
            return Err(Error::Cancelled {
                tool: args.tool().to_string(),
            });
        }
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

fn specs() -> [ToolSpec; 3] {
    let path = json!({"type": "string", "description": "File path (relative paths are resolved against the process's working directory)."});
    let encoding = nullable(
        json!({"type": "string", "enum": ["utf-8", "base64"], "default": "utf-8",
        "description": "\"utf-8\": text (invalid UTF-8 is an error naming the offset); \"base64\": any bytes."}),
    );
    [
        ToolSpec::new("fs.read")
            .description(
                "Read a file: all of it, a byte range (`offset`/`limit`) or a line range \
                 (`start_line`/`end_line`, 1-based, inclusive). `eof` tells whether the content \
                 reaches the end of the file.",
            )
            .input_schema(obj(
                json!({
                    "path": path,
                    "encoding": encoding,
                    "offset": nullable(json!({"type": "integer", "minimum": 0, "description": "Byte offset to start at."})),
                    "limit": nullable(json!({"type": "integer", "minimum": 0, "description": "Maximum bytes to return (a UTF-8 character cut by it is left for the next read)."})),
                    "start_line": nullable(json!({"type": "integer", "minimum": 1, "description": "First line to return (1-based)."})),
                    "end_line": nullable(json!({"type": "integer", "minimum": -1, "description": "Last line to return, inclusive; -1 = end of file."})),
                }),
                &["path"],
            ))
            .output_schema(json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string"}, "content": {"type": "string"},
                    "encoding": {"type": "string"}, "size": {"type": "integer", "description": "File size in bytes."},
                    "offset": {"type": "integer", "description": "Byte offset of the content in the file."},
                    "length": {"type": "integer", "description": "Bytes of the file the content covers."},
                    "eof": {"type": "boolean"},
                    "start_line": {"type": "integer"}, "end_line": {"type": "integer"},
                },
                "required": ["path", "content", "encoding", "size", "offset", "length", "eof"],
            })),
        ToolSpec::new("fs.write")
            .description("Write (or append to) a file, creating missing parent directories by default.")
            .input_schema(obj(
                json!({
                    "path": path,
                    "content": {"type": "string"},
                    "encoding": encoding,
                    "create_parents": nullable(json!({"type": "boolean", "default": true})),
                    "append": nullable(json!({"type": "boolean", "default": false})),
                }),
                &["path", "content"],
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
                    "recursive": nullable(json!({"type": "boolean", "default": false})),
                    "max_depth": nullable(json!({"type": "integer", "minimum": 1, "description": "With `recursive`: how deep to go (1 = direct children)."})),
                    "include_hidden": nullable(json!({"type": "boolean", "default": false})),
                    "gitignore": nullable(json!({"type": "boolean", "default": true, "description": "Honor .gitignore, .ignore and .git/info/exclude."})),
                    "max_entries": nullable(json!({"type": "integer", "minimum": 1, "default": 1000})),
                }),
                &["path"],
            ))
            .output_schema(json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "entries": {"type": "array", "items": {"type": "object", "properties": {
                        "path": {"type": "string", "description": "Relative to `path`."},
                        "type": {"type": "string", "enum": ["file", "dir", "symlink", "other"]},
                        "size": {"type": "integer"}}, "required": ["path", "type"]}},
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
    registry.replace(std::sync::Arc::new(blocking_tool(r, read)))?;
    registry.replace(std::sync::Arc::new(blocking_tool(w, |a, _| write(a))))?;
    registry.replace(std::sync::Arc::new(blocking_tool(l, list)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::testutil::{call, invalid, invalid_fields, registry, tool_err};

    fn reg() -> Registry {
        registry(register)
    }

    #[tokio::test]
    async fn write_then_read_whole_ranges_and_lines() {
        let r = reg();
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("sub/dir/a.txt").display().to_string();
        let v = call(
            &r,
            "fs.write",
            json!({"path": f, "content": "héllo\nworld\nthird\n"}),
        )
        .await;
        assert_eq!(v, json!({"path": f, "bytes_written": 19, "created": true}));
        let v = call(
            &r,
            "fs.write",
            json!({"path": f, "content": "4th", "append": true}),
        )
        .await;
        assert_eq!(v["created"], json!(false));
        let v = call(&r, "fs.read", json!({"path": f})).await;
        assert_eq!(v["content"], "héllo\nworld\nthird\n4th");
        assert_eq!(
            (v["size"].clone(), v["eof"].clone(), v["length"].clone()),
            (json!(22), json!(true), json!(22))
        );
        // A limit cutting 'é' in two stops before it; the next read starts on it.
        let v = call(&r, "fs.read", json!({"path": f, "limit": 2})).await;
        assert_eq!(
            (
                v["content"].as_str(),
                v["length"].as_u64(),
                v["eof"].as_bool()
            ),
            (Some("h"), Some(1), Some(false))
        );
        let v = call(&r, "fs.read", json!({"path": f, "offset": 1, "limit": 5})).await;
        assert_eq!(v["content"], "éllo");
        assert_eq!(
            invalid(&r, "fs.read", json!({"path": f, "offset": 2}))
                .await
                .0,
            "offset"
        );
        let v = call(&r, "fs.read", json!({"path": f, "offset": 19})).await;
        assert_eq!(
            (v["content"].as_str(), v["eof"].as_bool()),
            (Some("4th"), Some(true))
        );
        let v = call(&r, "fs.read", json!({"path": f, "offset": 100})).await;
        assert_eq!(
            (v["content"].as_str(), v["eof"].as_bool()),
            (Some(""), Some(true))
        );

        let v = call(
            &r,
            "fs.read",
            json!({"path": f, "start_line": 2, "end_line": 3}),
        )
        .await;
        assert_eq!(v["content"], "world\nthird\n");
        assert_eq!(
            (
                v["offset"].as_u64(),
                v["end_line"].as_u64(),
                v["eof"].as_bool()
            ),
            (Some(7), Some(3), Some(false))
        );
        let v = call(&r, "fs.read", json!({"path": f, "start_line": 3})).await;
        assert_eq!(
            (
                v["content"].as_str(),
                v["end_line"].as_u64(),
                v["eof"].as_bool()
            ),
            (Some("third\n4th"), Some(4), Some(true))
        );
        let (field, e) = invalid(&r, "fs.read", json!({"path": f, "start_line": 9})).await;
        assert_eq!(field, "start_line");
        assert!(
            e.to_string().contains("past the end of") && e.to_string().contains("(4 lines)"),
            "{e}"
        );
        invalid_fields(
            &r,
            "fs.read",
            vec![
                (
                    json!({"path": f, "start_line": 3, "end_line": 2}),
                    "end_line",
                ),
                (
                    json!({"path": f, "start_line": 1, "end_line": 0}),
                    "end_line",
                ),
                (json!({"path": f, "start_line": 1, "limit": 2}), "limit"),
                (
                    json!({"path": f, "start_line": 1, "encoding": "base64"}),
                    "encoding",
                ),
                (json!({"path": f, "encoding": "latin-1"}), "encoding"),
                (json!({"path": f, "offset": -1}), "offset"),
                (json!({}), "path"),
            ],
        )
        .await;
        // Explicit nulls mean "not given".
        let v = call(
            &r,
            "fs.read",
            json!({"path": f, "offset": null, "limit": null, "encoding": null}),
        )
        .await;
        assert_eq!(v["length"], json!(22));
    }

    #[tokio::test]
    async fn binary_files() {
        let r = reg();
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("b.bin").display().to_string();
        let v = call(
            &r,
            "fs.write",
            json!({"path": f, "content": "AP+AYQ==", "encoding": "base64"}),
        )
        .await;
        assert_eq!(v["bytes_written"], json!(4));
        assert_eq!(std::fs::read(&f).unwrap(), b"\x00\xff\x80a");
        let msg = tool_err(&r, "fs.read", json!({"path": f})).await;
        assert_eq!(msg, format!("{f} is not valid UTF-8 text (invalid byte 0xff at offset 1); read it with encoding \"base64\""));
        let v = call(
            &r,
            "fs.read",
            json!({"path": f, "encoding": "base64", "offset": 1, "limit": 2}),
        )
        .await;
        assert_eq!(
            (v["content"].as_str(), v["eof"].as_bool()),
            (Some("/4A="), Some(false))
        );
        std::fs::write(&f, b"ok\xe2\x82").unwrap();
        let msg = tool_err(&r, "fs.read", json!({"path": f})).await;
        assert!(msg.contains("truncated character at offset 2"), "{msg}");
        let msg = tool_err(&r, "fs.read", json!({"path": f, "start_line": 1})).await;
        assert!(msg.contains("at offset 2"), "{msg}");
        invalid_fields(
            &r,
            "fs.write",
            vec![
                (
                    json!({"path": f, "content": "@@", "encoding": "base64"}),
                    "content",
                ),
                (json!({"path": f}), "content"),
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn os_errors_name_the_path() {
        let r = reg();
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("nope.txt").display().to_string();
        let msg = tool_err(&r, "fs.read", json!({"path": missing})).await;
        assert_eq!(
            msg,
            format!("cannot read {missing}: No such file or directory (os error 2)")
        );
        let dir = d.path().display().to_string();
        let msg = tool_err(&r, "fs.read", json!({"path": dir})).await;
        assert_eq!(
            msg,
            format!("cannot read {dir}: it is a directory (use fs.list)")
        );
        let msg = tool_err(&r, "fs.write", json!({"path": dir, "content": "x"})).await;
        assert!(
            msg.starts_with(&format!("cannot write {dir}: ")) && msg.contains("os error 21"),
            "{msg}"
        );
        let deep = d.path().join("x/y.txt").display().to_string();
        let msg = tool_err(
            &r,
            "fs.write",
            json!({"path": deep, "content": "x", "create_parents": false}),
        )
        .await;
        assert_eq!(
            msg,
            format!("cannot write {deep}: No such file or directory (os error 2)")
        );
        std::fs::write(d.path().join("file"), "").unwrap();
        let under_file = d.path().join("file/z.txt").display().to_string();
        let msg = tool_err(&r, "fs.write", json!({"path": under_file, "content": "x"})).await;
        assert!(
            msg.starts_with("cannot create the parent directories of"),
            "{msg}"
        );
        let msg = tool_err(&r, "fs.list", json!({"path": missing})).await;
        assert_eq!(
            msg,
            format!("cannot list {missing}: No such file or directory (os error 2)")
        );
        let file = d.path().join("file").display().to_string();
        let msg = tool_err(&r, "fs.list", json!({"path": file})).await;
        assert_eq!(
            msg,
            format!("cannot list {file}: not a directory (use fs.read)")
        );
    }

    #[tokio::test]
    async fn list_sorted_hidden_gitignore_and_limits() {
        let r = reg();
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("src/inner")).unwrap();
        std::fs::create_dir_all(root.join("target")).unwrap();
        std::fs::write(root.join(".gitignore"), "target/\n*.log\n").unwrap();
        std::fs::write(root.join("b.txt"), "12345").unwrap();
        std::fs::write(root.join("x.log"), "").unwrap();
        std::fs::write(root.join("src/a.rs"), "").unwrap();
        std::fs::write(root.join("src/inner/c.rs"), "").unwrap();
        std::fs::write(root.join("target/out"), "").unwrap();
        std::os::unix::fs::symlink("b.txt", root.join("link")).unwrap();
        let dir = root.display().to_string();
        let names = |v: &Value| -> Vec<String> {
            v["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["path"].as_str().unwrap().to_string())
                .collect()
        };
        let v = call(&r, "fs.list", json!({"path": dir})).await;
        assert_eq!(names(&v), ["b.txt", "link", "src"]);
        assert_eq!(
            v["entries"][0],
            json!({"path": "b.txt", "type": "file", "size": 5})
        );
        assert_eq!(v["entries"][1], json!({"path": "link", "type": "symlink"}));
        assert_eq!(v["entries"][2], json!({"path": "src", "type": "dir"}));
        assert_eq!(v["truncated"], json!(false));
        let v = call(&r, "fs.list", json!({"path": dir, "recursive": true})).await;
        assert_eq!(
            names(&v),
            [
                "b.txt",
                "link",
                "src",
                "src/a.rs",
                "src/inner",
                "src/inner/c.rs"
            ]
        );
        let v = call(
            &r,
            "fs.list",
            json!({"path": dir, "recursive": true, "max_depth": 2}),
        )
        .await;
        assert_eq!(names(&v), ["b.txt", "link", "src", "src/a.rs", "src/inner"]);
        let v = call(
            &r,
            "fs.list",
            json!({"path": dir, "include_hidden": true, "gitignore": false}),
        )
        .await;
        assert_eq!(
            names(&v),
            [".gitignore", "b.txt", "link", "src", "target", "x.log"]
        );
        let v = call(
            &r,
            "fs.list",
            json!({"path": dir, "recursive": true, "max_entries": 2}),
        )
        .await;
        assert_eq!((names(&v).len(), v["truncated"].as_bool()), (2, Some(true)));
        invalid_fields(
            &r,
            "fs.list",
            vec![
                (json!({"path": dir, "max_entries": 0}), "max_entries"),
                (json!({"path": dir, "recursive": "yes"}), "recursive"),
            ],
        )
        .await;
    }
}
