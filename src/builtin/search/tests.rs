use super::*;
use crate::builtin::testutil::{call, invalid_fields, output, registry, tool_err};
use crate::core::Error;

fn reg() -> Registry {
    registry(register)
}

fn tree() -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().canonicalize().unwrap();
    std::fs::create_dir_all(root.join("pkg/sub")).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::create_dir_all(root.join("build")).unwrap();
    std::fs::write(root.join(".gitignore"), "build/\n").unwrap();
    std::fs::write(root.join("a.py"), "def foo(x):\n    return foo(x + 1)\n").unwrap();
    std::fs::write(root.join("pkg/b.py"), "import os\nfoo(1)\n").unwrap();
    std::fs::write(root.join("pkg/sub/c.txt"), "nothing here\n").unwrap();
    std::fs::write(root.join("pkg/bin.dat"), b"foo(\x00\x01").unwrap();
    std::fs::write(root.join(".git/foo.py"), "foo(\n").unwrap();
    std::fs::write(root.join("build/gen.py"), "foo(\n").unwrap();
    let s = root.display().to_string();
    (d, s)
}

/// Each call of `tool` prints the paired `output`.
async fn outputs(r: &Registry, tool: &str, cases: Vec<(Value, String)>) {
    for (args, want) in cases {
        let shown = args.to_string();
        assert_eq!(output(r, tool, args).await, want, "{shown}");
    }
}

/// Each call of `tool` counts the paired number of matches (`total_matches`).
async fn totals(r: &Registry, tool: &str, cases: Vec<(Value, u64)>) {
    for (args, want) in cases {
        let shown = args.to_string();
        assert_eq!(
            call(r, tool, args).await["total_matches"],
            json!(want),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn search_dir_formats() {
    let r = reg();
    let (_d, root) = tree();
    let term = |t: &str| json!({"search_term": t, "dir": root});
    outputs(
        &r,
        "search.dir",
        vec![
            (
                term("foo("),
                format!("Found 3 matches for \"foo(\" in {root}:\n{root}/a.py (2 matches)\n{root}/pkg/b.py (1 matches)\nEnd of matches for \"foo(\" in {root}"),
            ),
            (
                json!({"search_term": "^import", "dir": format!("{root}/pkg/../pkg")}),
                format!("Found 1 matches for \"^import\" in {root}/pkg:\n{root}/pkg/b.py (1 matches)\nEnd of matches for \"^import\" in {root}/pkg"),
            ),
            (term("FOO"), format!("No matches found for \"FOO\" in {root}")),
        ],
    )
    .await;
    let v = call(
        &r,
        "search.dir",
        json!({"search_term": "foo(", "dir": root, "include_hidden": true, "gitignore": false}),
    )
    .await;
    assert_eq!(
        (v["total_matches"].as_u64(), v["total_files"].as_u64()),
        (Some(5), Some(4))
    );
    assert_eq!(
        v["files"][0],
        json!({"path": format!("{root}/.git/foo.py"), "matches": 1})
    );
    totals(
        &r,
        "search.dir",
        vec![
            (
                json!({"search_term": "FOO", "dir": root, "ignore_case": true}),
                3,
            ),
            (
                json!({"search_term": "x + 1", "dir": root, "fixed_string": true}),
                1,
            ),
            (term(r"foo\|import"), 4),
        ],
    )
    .await;

    let msg = tool_err(
        &r,
        "search.dir",
        json!({"search_term": "x", "dir": format!("{root}/nope")}),
    )
    .await;
    assert_eq!(msg, format!("Directory {root}/nope not found"));
    invalid_fields(
        &r,
        "search.dir",
        vec![
            (json!({"search_term": "", "dir": root}), "search_term"),
            (json!({"search_term": "[x", "dir": root}), "search_term"),
            (json!({"search_term": "a\nb", "dir": root}), "search_term"),
            (json!({"dir": root}), "search_term"),
        ],
    )
    .await;
}

#[tokio::test]
async fn more_than_100_files() {
    let r = reg();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().canonicalize().unwrap();
    for i in 0..101 {
        std::fs::write(root.join(format!("f{i:03}.txt")), "needle\n").unwrap();
    }
    let root = root.display().to_string();
    let needle = json!({"search_term": "needle", "dir": root});
    let v = call(&r, "search.dir", needle.clone()).await;
    assert_eq!(
        v["output"],
        format!("More than 101 files matched for \"needle\" in {root}. Please narrow your search.")
    );
    assert_eq!(
        (
            v["too_many"].as_bool(),
            v["total_files"].as_u64(),
            v["files"].as_array().map(Vec::len)
        ),
        (Some(true), Some(101), Some(0))
    );
    std::fs::remove_file(format!("{root}/f100.txt")).unwrap();
    let v = call(&r, "search.dir", needle).await;
    assert_eq!(
        (v["too_many"].as_bool(), v["files"].as_array().map(Vec::len)),
        (Some(false), Some(100))
    );
    let out = v["output"].as_str().unwrap();
    assert!(
        out.starts_with(&format!(
            "Found 100 matches for \"needle\" in {root}:\n{root}/f000.txt (1 matches)\n"
        )),
        "{out}"
    );
}

#[tokio::test]
async fn search_file_formats() {
    let r = reg();
    let (_d, root) = tree();
    let f = format!("{root}/a.py");
    let term = |t: &str| json!({"search_term": t, "file": f});
    outputs(
        &r,
        "search.file",
        vec![
            (
                term("foo"),
                format!("Found 2 matches for \"foo\" in {f}:\nLine 1:def foo(x):\nLine 2:    return foo(x + 1)\nEnd of matches for \"foo\" in {f}"),
            ),
            (term("bar"), format!("No matches found for \"bar\" in {f}")),
        ],
    )
    .await;
    let v = call(
        &r,
        "search.file",
        json!({"search_term": "return", "file": format!("{root}/pkg/../a.py")}),
    )
    .await;
    assert_eq!(
        v["matches"],
        json!([{"line": 2, "text": "    return foo(x + 1)"}])
    );
    let big = format!("{root}/big.txt");
    std::fs::write(&big, "hit\n".repeat(101)).unwrap();
    let v = call(
        &r,
        "search.file",
        json!({"search_term": "hit", "file": big}),
    )
    .await;
    assert_eq!(
        v["output"],
        format!("More than 101 lines matched for \"hit\" in {big}. Please narrow your search.")
    );
    assert_eq!(
        (v["total_matches"].as_u64(), v["too_many"].as_bool()),
        (Some(101), Some(true))
    );

    {
        let message = tool_err(
            &r,
            "search.file",
            json!({"search_term": "x", "file": format!("{root}/missing.py")}),
        )
        .await;
        assert_eq!(
            message,
            format!("File name {root}/missing.py not found. Please provide a valid file name.")
        );
    }
    {
        let message = tool_err(&r, "search.file", json!({"search_term": "x", "file": root})).await;
        assert!(message.starts_with("File name"), "{message}");
    }
    let msg = tool_err(
        &r,
        "search.file",
        json!({"search_term": "foo", "file": format!("{root}/pkg/bin.dat")}),
    )
    .await;
    assert!(msg.contains("is a binary file"), "{msg}");
    invalid_fields(
        &r,
        "search.file",
        vec![(json!({"search_term": "x"}), "file")],
    )
    .await;
}

#[tokio::test]
async fn find_file_formats() {
    let r = reg();
    let (_d, root) = tree();
    let name = |n: &str| json!({"file_name": n, "dir": root});
    outputs(
        &r,
        "search.find_file",
        vec![
            (
                name("*.py"),
                format!("Found 2 matches for \"*.py\" in {root}:\n{root}/a.py\n{root}/pkg/b.py"),
            ),
            // Directories are not files.
            (
                name("sub"),
                format!("No matches found for \"sub\" in {root}"),
            ),
        ],
    )
    .await;
    let hidden =
        json!({"file_name": "*.py", "dir": root, "include_hidden": true, "gitignore": false});
    totals(&r, "search.find_file", vec![(hidden, 4)]).await;
    let v = call(&r, "search.find_file", name("c.tx?")).await;
    assert_eq!(v["matches"], json!([format!("{root}/pkg/sub/c.txt")]));
    invalid_fields(
        &r,
        "search.find_file",
        vec![
            (json!({"file_name": "pkg/b.py", "dir": root}), "file_name"),
            (json!({"file_name": "[", "dir": root}), "file_name"),
            (json!({"dir": root}), "file_name"),
        ],
    )
    .await;
    let msg = tool_err(
        &r,
        "search.find_file",
        json!({"file_name": "x", "dir": "/definitely/not/here"}),
    )
    .await;
    assert_eq!(msg, "Directory /definitely/not/here not found");
}

#[test]
fn cancelled_search_stops_in_the_walk() {
    let r = reg();
    let (_d, root) = tree();
    let ctx = CallContext::new();
    ctx.cancel.cancel();
    // Straight to the tool (no registry watch), so the walk itself must notice.
    let tool = r.get("search.dir").unwrap().tool().clone();
    let e = tool
        .call_blocking(json!({"search_term": "foo", "dir": root}).into(), ctx)
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled { .. }), "{e:?}");
}

#[tokio::test]
async fn fifos_loops_and_hostile_patterns() {
    let r = reg();
    let (_d, root) = tree();
    let fifo = format!("{root}/pkg/pipe");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        fifo.as_str(),
        rustix::fs::Mode::from(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink("..", format!("{root}/pkg/up")).unwrap();
    std::os::unix::fs::symlink("loop", format!("{root}/loop")).unwrap();
    totals(
        &r,
        "search.dir",
        vec![(json!({"search_term": "foo(", "dir": root}), 3)],
    )
    .await;
    totals(
        &r,
        "search.find_file",
        vec![(json!({"file_name": "*", "dir": root}), 4)],
    )
    .await;
    let msg = tool_err(&r, "search.file", json!({"search_term": "x", "file": fifo})).await;
    assert!(msg.starts_with("File name"), "{msg}");
    let msg = tool_err(
        &r,
        "search.dir",
        json!({"search_term": "x", "dir": format!("{root}/loop")}),
    )
    .await;
    assert!(msg.starts_with("Directory"), "{msg}");
    // Linear-time regexes: nested stars on a long line finish; a huge repetition is refused.
    let long = format!("{root}/long.txt");
    std::fs::write(&long, "a".repeat(100_000)).unwrap();
    let nested = json!({"search_term": r"\(a*\)*b", "file": long});
    totals(&r, "search.file", vec![(nested, 0)]).await;
    invalid_fields(
        &r,
        "search.file",
        vec![(
            json!({"search_term": r"\(a\{1000\}\)\{1000\}", "file": long}),
            "search_term",
        )],
    )
    .await;
    // A line over the searcher's memory cap is an error for search.file, skipped by search.dir.
    let huge = format!("{root}/huge.txt");
    std::fs::write(&huge, "b".repeat(MAX_LINE_BYTES + 10)).unwrap();
    let msg = tool_err(&r, "search.file", json!({"search_term": "x", "file": huge})).await;
    assert!(msg.contains("a line is longer than"), "{msg}");
}
