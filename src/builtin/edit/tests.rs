use super::text::splitlines_len;
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
        format!(
            "Here's the result of running `cat -n` on {f}:\n     2\ttwo\n     3\tthree\n     4\t\n"
        )
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
    let (field, _) = invalid(&r, json!({"command": "view", "path": f, "view_range": [3]})).await;
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
    assert_eq!(
        msg,
        format!(
            "The path {dir} is a directory and only the `view` command can be used on directories"
        )
    );
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

#[tokio::test]
async fn argument_messages_say_what_was_received() {
    let r = reg();
    let d = tempfile::tempdir().unwrap();
    let f = p(&d, "m.txt");
    std::fs::write(&f, "a\nb\n").unwrap();
    let (field, msg) = invalid(&r, json!({"command": "view", "path": f, "view_range": [5]})).await;
    assert_eq!(field, "view_range");
    assert_eq!(
        msg,
        "Invalid `view_range`. It should be a list of two integers, got [5]."
    );
    for big in [json!(u64::MAX), json!(i64::MAX as u64 + 1)] {
        let (field, msg) = invalid(
            &r,
            json!({"command": "insert", "path": f, "insert_line": big, "new_str": "x"}),
        )
        .await;
        assert_eq!(field, "insert_line");
        assert_eq!(
            msg,
            format!("Invalid `insert_line` parameter: {big}. It should be within the range of lines of the file: [0, 3]")
        );
    }
    let (field, _) = invalid(&r, json!({"command": "view", "path": format!("{f}\u{0}")})).await;
    assert_eq!(field, "path");
}

#[tokio::test]
async fn fifos_devices_and_huge_files() {
    let r = reg();
    let d = tempfile::tempdir().unwrap();
    let fifo = p(&d, "pipe");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        fifo.as_str(),
        rustix::fs::Mode::from(0o600),
    )
    .unwrap();
    for args in [
        json!({"command": "view", "path": fifo}),
        json!({"command": "str_replace", "path": fifo, "old_str": "a"}),
        json!({"command": "view", "path": "/dev/zero", "view_range": [1, 1]}),
    ] {
        let msg = tool_err(&r, args).await;
        assert!(
            msg.contains("not a regular file: only regular files can be viewed or edited"),
            "{msg}"
        );
    }
    // 4 GiB, sparse, one line: a view reads only what it shows.
    let big = p(&d, "big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    for args in [
        json!({"command": "view", "path": big}),
        json!({"command": "view", "path": big, "view_range": [1, 1]}),
    ] {
        let out = ok(&r, args).await;
        assert!(
            out.ends_with(&format!("{TRUNCATED_MESSAGE}\n")),
            "{}",
            out.len()
        );
    }
    let msg = tool_err(
        &r,
        json!({"command": "str_replace", "path": big, "old_str": "a"}),
    )
    .await;
    assert!(msg.contains("is larger than"), "{msg}");
    // A range stops after its last line; errors still know the line count.
    let f = p(&d, "lines.txt");
    std::fs::write(&f, "1\r\n2\r3\n4").unwrap();
    let out = ok(
        &r,
        json!({"command": "view", "path": f, "view_range": [2, 3]}),
    )
    .await;
    assert_eq!(
        out,
        format!("Here's the result of running `cat -n` on {f}:\n     2\t2\n     3\t3\n")
    );
    let (_, msg) = invalid(
        &r,
        json!({"command": "view", "path": f, "view_range": [2, 9]}),
    )
    .await;
    assert!(msg.contains("number of lines in the file: `4`"), "{msg}");
}
