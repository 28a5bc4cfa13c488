use super::*;
use crate::builtin::testutil::{call, invalid, invalid_fields, registry, tool_err};
use serde_json::Value;
use std::os::unix::fs::FileTypeExt;

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

fn mkfifo(p: &std::path::Path) {
    rustix::fs::mkfifoat(rustix::fs::CWD, p, rustix::fs::Mode::from(0o600)).unwrap();
}

#[tokio::test]
async fn fifos_and_devices_are_refused_without_blocking() {
    let r = reg();
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("pipe");
    mkfifo(&fifo);
    let f = fifo.display().to_string();
    for args in [
        json!({"path": f}),
        json!({"path": f, "start_line": 1, "end_line": 1}),
    ] {
        let msg = tool_err(&r, "fs.read", args).await;
        assert!(
            msg.contains("it is a FIFO (named pipe), not a regular file"),
            "{msg}"
        );
    }
    for append in [false, true] {
        let msg = tool_err(
            &r,
            "fs.write",
            json!({"path": f, "content": "x", "append": append}),
        )
        .await;
        assert!(msg.contains("FIFO"), "{msg}");
    }
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
    for args in [
        json!({"path": "/dev/zero"}),
        json!({"path": "/dev/zero", "start_line": 1, "end_line": 1}),
    ] {
        let msg = tool_err(&r, "fs.read", args).await;
        assert!(msg.contains("a character device"), "{msg}");
    }
}

#[tokio::test]
async fn reads_are_capped_and_streamed() {
    let r = reg();
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("big");
    // Sparse: 1 GiB of NULs without a newline, then one line.
    let file = std::fs::File::create(&f).unwrap();
    file.set_len(1 << 30).unwrap();
    drop(file);
    let p = f.display().to_string();
    let v = call(&r, "fs.read", json!({"path": p})).await;
    assert_eq!(v["length"], json!(DEFAULT_LIMIT));
    assert_eq!(
        (v["eof"].clone(), v["truncated"].clone()),
        (json!(false), json!(true))
    );
    let v = call(&r, "fs.read", json!({"path": p, "limit": 10})).await;
    assert_eq!(
        (v["length"].clone(), v["truncated"].clone()),
        (json!(10), json!(false))
    );
    // The first line alone is over the cap: its head comes back, marked.
    let v = call(
        &r,
        "fs.read",
        json!({"path": p, "start_line": 1, "end_line": 1}),
    )
    .await;
    assert_eq!(
        (
            v["length"].clone(),
            v["truncated"].clone(),
            v["end_line"].clone(),
            v["eof"].clone()
        ),
        (json!(DEFAULT_LIMIT), json!(true), json!(1), json!(false))
    );
    // Beyond i64::MAX nothing can be: the end, not an OS error.
    for off in [u64::MAX, i64::MAX as u64 + 1] {
        let v = call(&r, "fs.read", json!({"path": p, "offset": off})).await;
        assert_eq!(
            (v["content"].clone(), v["eof"].clone()),
            (json!(""), json!(true))
        );
    }
    let v = call(
        &r,
        "fs.read",
        json!({"path": p, "start_line": 1, "end_line": u64::MAX}),
    )
    .await;
    assert_eq!(v["truncated"], json!(true));
    let (field, msg) = invalid(&r, "fs.read", json!({"path": p, "limit": MAX_LIMIT + 1})).await;
    assert_eq!(field, "limit");
    assert!(msg.contains(&(MAX_LIMIT + 1).to_string()), "{msg}");
    // Lines past the cap: whole lines only, the rest with the next start_line.
    let lines = d.path().join("lines");
    let line = "x".repeat(1023) + "\n";
    std::fs::write(&lines, line.repeat(9 * 1024)).unwrap();
    let v = call(&r, "fs.read", json!({"path": lines, "start_line": 1})).await;
    assert_eq!(
        (
            v["end_line"].clone(),
            v["truncated"].clone(),
            v["eof"].clone(),
            v["length"].clone()
        ),
        (json!(8192), json!(true), json!(false), json!(DEFAULT_LIMIT))
    );
    let v = call(&r, "fs.read", json!({"path": lines, "start_line": 8193})).await;
    assert_eq!(
        (
            v["end_line"].clone(),
            v["truncated"].clone(),
            v["eof"].clone()
        ),
        (json!(9216), json!(false), json!(true))
    );
}

#[tokio::test]
async fn proc_files_read_despite_size_zero() {
    let r = reg();
    let v = call(&r, "fs.read", json!({"path": "/proc/self/status"})).await;
    assert!(v["content"].as_str().unwrap().contains("Pid:"));
    assert_eq!(v["eof"], json!(true));
    let v = call(
        &r,
        "fs.read",
        json!({"path": "/proc/self/status", "start_line": 1, "end_line": 1}),
    )
    .await;
    assert!(v["content"].as_str().unwrap().starts_with("Name:"));
}

#[tokio::test]
async fn non_utf8_names_round_trip_and_bad_paths_are_named() {
    use std::os::unix::ffi::OsStrExt;
    let r = reg();
    let d = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.txt");
    std::fs::write(d.path().join(name), "latin").unwrap();
    let v = call(&r, "fs.list", json!({"path": d.path()})).await;
    let e = &v["entries"][0];
    assert_eq!(e["path"], json!("caf\u{fffd}.txt"));
    let raw = e["absolute_path_base64"].as_str().unwrap().to_string();
    let v = call(&r, "fs.read", json!({"path_base64": raw})).await;
    assert_eq!(v["content"], json!("latin"));
    call(
        &r,
        "fs.write",
        json!({"path_base64": raw, "content": "new"}),
    )
    .await;
    assert_eq!(std::fs::read(d.path().join(name)).unwrap(), b"new");
    invalid_fields(
        &r,
        "fs.read",
        vec![
            (json!({"path": ""}), "path"),
            (json!({"path": "a\u{0}b"}), "path"),
            (json!({"path_base64": "!!"}), "path_base64"),
            (json!({"path": "a", "path_base64": raw}), "path_base64"),
        ],
    )
    .await;
}

#[tokio::test]
async fn writes_are_atomic_and_keep_mode() {
    use std::os::unix::fs::PermissionsExt;
    let r = reg();
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("run.sh");
    std::fs::write(&f, "old").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o700)).unwrap();
    call(&r, "fs.write", json!({"path": f, "content": "new"})).await;
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "new");
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file is left behind");
}

#[tokio::test]
async fn list_never_follows_symlink_loops() {
    let r = reg();
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("sub")).unwrap();
    std::os::unix::fs::symlink("..", d.path().join("sub/up")).unwrap();
    std::os::unix::fs::symlink("self", d.path().join("self")).unwrap();
    let v = call(&r, "fs.list", json!({"path": d.path(), "recursive": true})).await;
    let names: Vec<_> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].clone())
        .collect();
    assert_eq!(names, [json!("self"), json!("sub"), json!("sub/up")]);
    let msg = tool_err(&r, "fs.read", json!({"path": d.path().join("self")})).await;
    assert!(msg.contains("os error 40"), "{msg}");
}
