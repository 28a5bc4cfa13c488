//! `search.find_file`, `search.dir`, `search.file`: SWE-agent's search commands (same output
//! text, same "narrow your search" limits) on ripgrep's crates instead of `find | grep`.
//!
//! Like the originals, the search term is a grep *basic* regular expression (`(`, `+`, `?`,
//! `{`, `|` are literal; `\(`, `\+`, `\|`... are operators), translated to a Rust regex;
//! `fixed_string: true` searches for the literal text. Binary files (a NUL byte) are skipped,
//! as `grep -I` does. Differences, on purpose: hidden files and directories are skipped by
//! all three (the originals skip them only in `search_dir`), .gitignore is honored unless
//! `gitignore: false`, and results are sorted by path bytes (what `sort` does in the C locale).

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkMatch};
use ignore::WalkState;
use parking_lot::Mutex;
use serde_json::{json, Value};

use super::{blocking_tool, nullable, obj, walk_builder, Args};
use crate::core::{CallContext, CancelToken, Error, Registry, Result, ToolSpec};

/// More matching files (search.dir) or lines (search.file) than this and the listing is
/// replaced by "Please narrow your search.".
pub const MAX_RESULTS: usize = 100;

/// Translate a GNU grep basic regular expression into Rust `regex` syntax.
pub fn bre_to_regex(p: &str) -> std::result::Result<String, String> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = String::with_capacity(p.len() + 8);
    let mut i = 0;
    let mut depth = 0usize;
    // Where `*` is literal and `^` anchors: the start of the pattern, after `\(` or `\|`.
    let mut at_start = true;
    while i < chars.len() {
        let c = chars[i];
        let start = std::mem::replace(&mut at_start, false);
        match c {
            '\\' => {
                let Some(&n) = chars.get(i + 1) else {
                    return Err("trailing backslash".into());
                };
                i += 2;
                match n {
                    '(' => {
                        out.push('(');
                        depth += 1;
                        at_start = true;
                    }
                    ')' => {
                        if depth == 0 {
                            return Err("unmatched ) or \\)".into());
                        }
                        depth -= 1;
                        out.push(')');
                    }
                    '|' => {
                        out.push('|');
                        at_start = true;
                    }
                    '{' if !start => {
                        let close = (i..chars.len().saturating_sub(1))
                            .find(|&k| chars[k] == '\\' && chars[k + 1] == '}')
                            .ok_or("unmatched \\{")?;
                        let body: String = chars[i..close].iter().collect();
                        if body.is_empty() || !body.chars().all(|c| c.is_ascii_digit() || c == ',')
                        {
                            return Err(format!("invalid content of \\{{\\}}: {body:?}"));
                        }
                        out.push_str(&format!("{{{body}}}"));
                        i = close + 2;
                    }
                    '+' | '?' if !start => out.push(n),
                    '<' => out.push_str(r"\b{start}"),
                    '>' => out.push_str(r"\b{end}"),
                    'b' | 'B' | 'w' | 'W' | 's' | 'S' => {
                        out.push('\\');
                        out.push(n);
                    }
                    '`' => out.push('^'),
                    '\'' => out.push('$'),
                    '1'..='9' => {
                        return Err("back-references (\\1 ... \\9) are not supported".into())
                    }
                    other => push_literal(&mut out, other),
                }
                continue;
            }
            '*' if start => out.push_str(r"\*"),
            '*' | '.' => out.push(c),
            '^' if start => {
                out.push('^');
                at_start = true;
            }
            '$' => {
                let at_end = i + 1 == chars.len()
                    || (chars[i + 1] == '\\' && matches!(chars.get(i + 2), Some(')' | '|')));
                out.push_str(if at_end { "$" } else { r"\$" });
            }
            '[' => {
                i = bracket(&chars, i, &mut out)?;
                continue;
            }
            other => push_literal(&mut out, other),
        }
        i += 1;
    }
    if depth > 0 {
        return Err("unmatched ( or \\(".into());
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if r"\.+*?()|[]{}^$#&-~".contains(c) {
        out.push('\\');
    }
    out.push(c);
}

/// Copy the bracket expression starting at `chars[i] == '['`; returns the index after it.
fn bracket(chars: &[char], mut i: usize, out: &mut String) -> std::result::Result<usize, String> {
    const UNMATCHED: &str = "unmatched [, [^, [:, [., or [=";
    out.push('[');
    i += 1;
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    if chars.get(i) == Some(&']') {
        out.push_str(r"\]");
        i += 1;
    }
    loop {
        let c = *chars.get(i).ok_or(UNMATCHED)?;
        match c {
            ']' => {
                out.push(']');
                return Ok(i + 1);
            }
            '[' if chars.get(i + 1) == Some(&':') => {
                let end = (i + 2..chars.len().saturating_sub(1))
                    .find(|&k| chars[k] == ':' && chars[k + 1] == ']')
                    .ok_or(UNMATCHED)?;
                out.extend(&chars[i..end + 2]);
                i = end + 2;
                continue;
            }
            '[' if matches!(chars.get(i + 1), Some('=' | '.')) => {
                return Err(
                    "equivalence classes and collating symbols ([= =], [. .]) are not supported"
                        .into(),
                )
            }
            '-' if chars.get(i + 1) == Some(&'-') || (i > 0 && chars[i - 1] == '-') => {
                out.push_str(r"\-")
            }
            '[' | '\\' | '&' | '~' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
        i += 1;
    }
}

fn matcher(args: &Args) -> Result<RegexMatcher> {
    let term = args.req_str("search_term")?;
    if term.contains('\n') {
        return Err(args.invalid("search_term", "the search term must be a single line"));
    }
    let fixed = args.bool_or("fixed_string", false);
    let pattern = if fixed {
        term.to_string()
    } else {
        bre_to_regex(term).map_err(|m| {
            args.invalid(
                "search_term",
                format!("{term:?} is not a valid grep basic regular expression: {m}"),
            )
        })?
    };
    RegexMatcherBuilder::new()
        .line_terminator(Some(b'\n'))
        .case_insensitive(args.bool_or("ignore_case", false))
        .fixed_strings(fixed)
        .build(&pattern)
        .map_err(|e| {
            args.invalid(
                "search_term",
                format!("{term:?} is not a valid regular expression: {e}"),
            )
        })
}

/// Byte semantics like grep's: no BOM sniffing/transcoding (a UTF-16 file has NULs, so it is
/// binary, as for `grep -I`). Line numbers only when they are shown: counting them costs a
/// pass over every byte.
fn searcher(line_numbers: bool) -> Searcher {
    SearcherBuilder::new()
        .line_number(line_numbers)
        .bom_sniffing(false)
        .binary_detection(BinaryDetection::quit(0))
        .build()
}

/// Counts matching lines; a binary file (NUL byte) counts as no match, like `grep -I`.
struct Count<'a> {
    lines: u64,
    binary: bool,
    cancel: &'a CancelToken,
}

impl Sink for Count<'_> {
    type Error = io::Error;

    fn matched(&mut self, _: &Searcher, m: &SinkMatch<'_>) -> io::Result<bool> {
        self.lines += m.lines().count() as u64;
        Ok(!self.cancel.is_cancelled())
    }

    fn binary_data(&mut self, _: &Searcher, _: u64) -> io::Result<bool> {
        self.binary = true;
        Ok(false)
    }
}

/// Collects matching lines (number and text), keeping the text of the first `keep` only.
struct Lines<'a> {
    count: usize,
    found: Vec<(u64, String)>,
    keep: usize,
    binary: bool,
    cancel: &'a CancelToken,
}

impl Sink for Lines<'_> {
    type Error = io::Error;

    fn matched(&mut self, _: &Searcher, m: &SinkMatch<'_>) -> io::Result<bool> {
        let first = m.line_number().unwrap_or(0);
        for (k, line) in m.lines().enumerate() {
            self.count += 1;
            if self.found.len() < self.keep {
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                self.found
                    .push((first + k as u64, String::from_utf8_lossy(line).into_owned()));
            }
        }
        Ok(!self.cancel.is_cancelled())
    }

    fn binary_data(&mut self, _: &Searcher, _: u64) -> io::Result<bool> {
        self.binary = true;
        Ok(false)
    }
}

fn cancelled(args: &Args) -> Error {
    Error::Cancelled {
        tool: args.tool().to_string(),
    }
}

/// The directory to search: `dir` (default the working directory), made absolute and free of
/// symlinks like the originals' `realpath`.
fn search_root(args: &Args) -> Result<PathBuf> {
    let given = args.str_or("dir", "./");
    match std::fs::canonicalize(given) {
        Ok(d) if d.is_dir() => Ok(d),
        _ => Err(args.fail(format!("Directory {given} not found"))),
    }
}

/// Regular files under `root` (symlinks are not followed, as with `find -type f`), visited in
/// parallel; `visit` returns what to keep. Sorted by path bytes.
fn walk_files<T: Send>(
    args: &Args,
    ctx: &CallContext,
    root: &Path,
    visit: impl Fn(&Path) -> Option<T> + Sync,
) -> Result<Vec<(PathBuf, T)>> {
    let found = Mutex::new(Vec::new());
    walk_builder(
        root,
        args.bool_or("include_hidden", false),
        args.bool_or("gitignore", true),
    )
    .build_parallel()
    .run(|| {
        let (found, visit, cancel) = (&found, &visit, &ctx.cancel);
        Box::new(move |entry| {
            if cancel.is_cancelled() {
                return WalkState::Quit;
            }
            // Unreadable entries are skipped, as grep and find skip them (to stderr).
            if let Ok(e) = entry {
                if e.file_type().is_some_and(|t| t.is_file()) {
                    if let Some(v) = visit(e.path()) {
                        found.lock().push((e.into_path(), v));
                    }
                }
            }
            WalkState::Continue
        })
    });
    if ctx.is_cancelled() {
        return Err(cancelled(args));
    }
    let mut found = found.into_inner();
    found.sort_by(|a, b| a.0.as_os_str().as_bytes().cmp(b.0.as_os_str().as_bytes()));
    Ok(found)
}

fn search_dir(args: &Args, ctx: &CallContext) -> Result<Value> {
    let term = args.req_str("search_term")?;
    let m = matcher(args)?;
    let dir = search_root(args)?;
    let shown = dir.display();
    let files = walk_files(args, ctx, &dir, |path| {
        thread_local! {
            static SEARCHER: std::cell::RefCell<Searcher> = std::cell::RefCell::new(searcher(false));
        }
        let mut sink = Count {
            lines: 0,
            binary: false,
            cancel: &ctx.cancel,
        };
        let ok = SEARCHER.with(|s| s.borrow_mut().search_path(&m, path, &mut sink).is_ok());
        (ok && !sink.binary && sink.lines > 0).then_some(sink.lines)
    })?;
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    let too_many = files.len() > MAX_RESULTS;
    let output = if files.is_empty() {
        format!("No matches found for \"{term}\" in {shown}")
    } else if too_many {
        format!(
            "More than {} files matched for \"{term}\" in {shown}. Please narrow your search.",
            files.len()
        )
    } else {
        let mut s = format!("Found {total} matches for \"{term}\" in {shown}:\n");
        for (p, n) in &files {
            s.push_str(&format!("{} ({n} matches)\n", p.display()));
        }
        s.push_str(&format!("End of matches for \"{term}\" in {shown}"));
        s
    };
    let listed: Vec<Value> = if too_many {
        Vec::new()
    } else {
        files
            .iter()
            .map(|(p, n)| json!({"path": p.display().to_string(), "matches": n}))
            .collect()
    };
    Ok(json!({
        "output": output,
        "total_matches": total,
        "total_files": files.len(),
        "too_many": too_many,
        "files": listed,
    }))
}

fn search_file(args: &Args, ctx: &CallContext) -> Result<Value> {
    let term = args.req_str("search_term")?;
    let given = args.req_str("file")?;
    let m = matcher(args)?;
    let file = match std::fs::canonicalize(given) {
        Ok(f) if f.is_file() => f,
        _ => {
            return Err(args.fail(format!(
                "File name {given} not found. Please provide a valid file name."
            )))
        }
    };
    let shown = file.display();
    let mut sink = Lines {
        count: 0,
        found: Vec::new(),
        keep: MAX_RESULTS,
        binary: false,
        cancel: &ctx.cancel,
    };
    searcher(true)
        .search_path(&m, &file, &mut sink)
        .map_err(|e| args.fail(format!("cannot read {shown}: {e}")))?;
    if ctx.is_cancelled() {
        return Err(cancelled(args));
    }
    if sink.binary {
        return Err(args.fail(format!(
            "{shown} is a binary file (it contains NUL bytes); search.file searches text files"
        )));
    }
    let too_many = sink.count > MAX_RESULTS;
    let output = if sink.count == 0 {
        format!("No matches found for \"{term}\" in {shown}")
    } else if too_many {
        format!(
            "More than {} lines matched for \"{term}\" in {shown}. Please narrow your search.",
            sink.count
        )
    } else {
        let mut s = format!("Found {} matches for \"{term}\" in {shown}:\n", sink.count);
        for (n, text) in &sink.found {
            s.push_str(&format!("Line {n}:{text}\n"));
        }
        s.push_str(&format!("End of matches for \"{term}\" in {shown}"));
        s
    };
    let listed: Vec<Value> = if too_many {
        Vec::new()
    } else {
        sink.found
            .iter()
            .map(|(n, t)| json!({"line": n, "text": t}))
            .collect()
    };
    Ok(json!({
        "output": output,
        "total_matches": sink.count,
        "too_many": too_many,
        "matches": listed,
    }))
}

fn find_file(args: &Args, ctx: &CallContext) -> Result<Value> {
    let name = args.req_str("file_name")?;
    if name.contains('/') {
        return Err(args.invalid(
            "file_name",
            format!("{name:?} contains '/': find_file matches file names (use a pattern like \"*.py\"), not paths"),
        ));
    }
    let glob = globset::GlobBuilder::new(name)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| args.invalid("file_name", format!("invalid pattern {name:?}: {e}")))?
        .compile_matcher();
    let dir = search_root(args)?;
    let shown = dir.display();
    let found = walk_files(args, ctx, &dir, |p| {
        p.file_name()
            .is_some_and(|n| glob.is_match(n))
            .then_some(())
    })?;
    let paths: Vec<String> = found.iter().map(|(p, _)| p.display().to_string()).collect();
    let output = if paths.is_empty() {
        format!("No matches found for \"{name}\" in {shown}")
    } else {
        format!(
            "Found {} matches for \"{name}\" in {shown}:\n{}",
            paths.len(),
            paths.join("\n")
        )
    };
    Ok(json!({"output": output, "total_matches": paths.len(), "matches": paths}))
}

fn specs() -> [ToolSpec; 3] {
    let term = json!({"type": "string", "minLength": 1,
        "description": "A grep basic regular expression (`(`, `+`, `?`, `{`, `|` match themselves), or plain text with `fixed_string`."});
    let dir = nullable(
        json!({"type": "string", "description": "The directory to search (default: the working directory)."}),
    );
    let fixed = nullable(
        json!({"type": "boolean", "default": false, "description": "Search for the term literally."}),
    );
    let icase = nullable(json!({"type": "boolean", "default": false}));
    let hidden = nullable(
        json!({"type": "boolean", "default": false, "description": "Also search hidden files and directories."}),
    );
    let gitignore = nullable(
        json!({"type": "boolean", "default": true, "description": "Skip files ignored by .gitignore, .ignore and .git/info/exclude."}),
    );
    [
        ToolSpec::new("search.find_file")
            .description(
                "Find all files with the given name or shell-style pattern (e.g. *.py) in `dir`, \
                 recursively. Returns the count and the absolute paths, or \"No matches found\".",
            )
            .input_schema(obj(
                json!({"file_name": {"type": "string", "minLength": 1, "description": "File name or pattern (*, ?, [..])."},
                       "dir": dir, "include_hidden": hidden, "gitignore": gitignore}),
                &["file_name"],
            ))
            .output_schema(json!({"type": "object", "properties": {
                "output": {"type": "string"}, "total_matches": {"type": "integer"},
                "matches": {"type": "array", "items": {"type": "string"}}},
                "required": ["output", "total_matches", "matches"]})),
        ToolSpec::new("search.dir")
            .description(format!(
                "Search for `search_term` in all files in `dir` (default: the working directory). \
                 Returns the number of matching lines per file, or \"No matches found\"; more than \
                 {MAX_RESULTS} matching files asks you to narrow the search."
            ))
            .input_schema(obj(
                json!({"search_term": term, "dir": dir, "fixed_string": fixed, "ignore_case": icase,
                       "include_hidden": hidden, "gitignore": gitignore}),
                &["search_term"],
            ))
            .output_schema(json!({"type": "object", "properties": {
                "output": {"type": "string"}, "total_matches": {"type": "integer"},
                "total_files": {"type": "integer"}, "too_many": {"type": "boolean"},
                "files": {"type": "array", "items": {"type": "object", "properties": {
                    "path": {"type": "string"}, "matches": {"type": "integer"}}}}},
                "required": ["output", "total_matches", "total_files", "too_many", "files"]})),
        ToolSpec::new("search.file")
            .description(format!(
                "Search for `search_term` in `file`. Returns `Line N:text` for each matching line, \
                 or \"No matches found\"; more than {MAX_RESULTS} matching lines asks you to narrow \
                 the search."
            ))
            .input_schema(obj(
                json!({"search_term": term, "file": {"type": "string", "description": "The file to search."},
                       "fixed_string": fixed, "ignore_case": icase}),
                &["search_term", "file"],
            ))
            .output_schema(json!({"type": "object", "properties": {
                "output": {"type": "string"}, "total_matches": {"type": "integer"},
                "too_many": {"type": "boolean"},
                "matches": {"type": "array", "items": {"type": "object", "properties": {
                    "line": {"type": "integer"}, "text": {"type": "string"}}}}},
                "required": ["output", "total_matches", "too_many", "matches"]})),
    ]
}

/// Register `search.find_file`, `search.dir` and `search.file`.
pub fn register(registry: &Registry) -> Result<()> {
    let [f, d, s] = specs();
    registry.replace(std::sync::Arc::new(blocking_tool(f, find_file)))?;
    registry.replace(std::sync::Arc::new(blocking_tool(d, search_dir)))?;
    registry.replace(std::sync::Arc::new(blocking_tool(s, search_file)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::testutil::{call, invalid_fields, output, registry, tool_err};

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

    #[test]
    fn bre_translation() {
        let t = |p: &str| bre_to_regex(p).unwrap();
        assert_eq!(t("def foo("), r"def foo\(");
        assert_eq!(t(r"a\|b"), "a|b");
        assert_eq!(t("^import x$"), "^import x$");
        assert_eq!(t("$x^"), r"\$x\^");
        assert_eq!(t("*a*"), r"\*a*");
        assert_eq!(t(r"\(ab\)*c\{2,3\}"), "(ab)*c{2,3}");
        assert_eq!(t("a+b?{1}|"), r"a\+b\?\{1\}\|");
        assert_eq!(t(r"a\+b\?"), "a+b?");
        assert_eq!(t(r"[]a-z\[]x"), r"[\]a-z\\\[]x");
        assert_eq!(t("[^[:digit:]_]"), "[^[:digit:]_]");
        assert_eq!(t(r"foo\.bar\\"), r"foo\.bar\\");
        assert_eq!(t(r"\<word\>"), r"\b{start}word\b{end}");
        assert_eq!(t(r"\(^a\|^b\)"), "(^a|^b)");
        assert!(bre_to_regex(r"\(a\)\1")
            .unwrap_err()
            .contains("back-references"));
        assert!(bre_to_regex("[abc").unwrap_err().contains("unmatched ["));
        assert!(bre_to_regex(r"\(a").unwrap_err().contains("unmatched ("));
        assert!(bre_to_regex(r"a\)").unwrap_err().contains("unmatched )"));
        assert!(bre_to_regex("a\\")
            .unwrap_err()
            .contains("trailing backslash"));
        for p in [
            "def foo(",
            r"[]a-z\[]x",
            "[!--]",
            "a&&b~~c",
            r"x\{3\}",
            "[a&&b]",
        ] {
            assert!(
                grep_regex::RegexMatcher::new(&t(p)).is_ok(),
                "{p} -> {}",
                t(p)
            );
        }
    }

    #[tokio::test]
    async fn search_dir_formats() {
        let r = reg();
        let (_d, root) = tree();
        let out = output(
            &r,
            "search.dir",
            json!({"search_term": "foo(", "dir": root}),
        )
        .await;
        assert_eq!(
            out,
            format!("Found 3 matches for \"foo(\" in {root}:\n{root}/a.py (2 matches)\n{root}/pkg/b.py (1 matches)\nEnd of matches for \"foo(\" in {root}")
        );
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
        let out = output(
            &r,
            "search.dir",
            json!({"search_term": "^import", "dir": format!("{root}/pkg/../pkg")}),
        )
        .await;
        assert_eq!(out, format!("Found 1 matches for \"^import\" in {root}/pkg:\n{root}/pkg/b.py (1 matches)\nEnd of matches for \"^import\" in {root}/pkg"));
        let out = output(&r, "search.dir", json!({"search_term": "FOO", "dir": root})).await;
        assert_eq!(out, format!("No matches found for \"FOO\" in {root}"));
        let v = call(
            &r,
            "search.dir",
            json!({"search_term": "FOO", "dir": root, "ignore_case": true}),
        )
        .await;
        assert_eq!(v["total_matches"], json!(3));
        let v = call(
            &r,
            "search.dir",
            json!({"search_term": "x + 1", "dir": root, "fixed_string": true}),
        )
        .await;
        assert_eq!(v["total_matches"], json!(1));
        let v = call(
            &r,
            "search.dir",
            json!({"search_term": r"foo\|import", "dir": root}),
        )
        .await;
        assert_eq!(v["total_matches"], json!(4));

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
        let v = call(
            &r,
            "search.dir",
            json!({"search_term": "needle", "dir": root}),
        )
        .await;
        assert_eq!(
            v["output"],
            format!(
                "More than 101 files matched for \"needle\" in {root}. Please narrow your search."
            )
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
        let v = call(
            &r,
            "search.dir",
            json!({"search_term": "needle", "dir": root}),
        )
        .await;
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
        let out = output(&r, "search.file", json!({"search_term": "foo", "file": f})).await;
        assert_eq!(out, format!("Found 2 matches for \"foo\" in {f}:\nLine 1:def foo(x):\nLine 2:    return foo(x + 1)\nEnd of matches for \"foo\" in {f}"));
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
        let out = output(&r, "search.file", json!({"search_term": "bar", "file": f})).await;
        assert_eq!(out, format!("No matches found for \"bar\" in {f}"));
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
            let message =
                tool_err(&r, "search.file", json!({"search_term": "x", "file": root})).await;
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
        let out = output(
            &r,
            "search.find_file",
            json!({"file_name": "*.py", "dir": root}),
        )
        .await;
        assert_eq!(
            out,
            format!("Found 2 matches for \"*.py\" in {root}:\n{root}/a.py\n{root}/pkg/b.py")
        );
        let v = call(
            &r,
            "search.find_file",
            json!({"file_name": "*.py", "dir": root, "include_hidden": true, "gitignore": false}),
        )
        .await;
        assert_eq!(v["total_matches"], json!(4));
        let v = call(
            &r,
            "search.find_file",
            json!({"file_name": "c.tx?", "dir": root}),
        )
        .await;
        assert_eq!(v["matches"], json!([format!("{root}/pkg/sub/c.txt")]));
        // Directories are not files.
        let out = output(
            &r,
            "search.find_file",
            json!({"file_name": "sub", "dir": root}),
        )
        .await;
        assert_eq!(out, format!("No matches found for \"sub\" in {root}"));
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
}
