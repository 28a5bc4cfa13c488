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
use serde::Deserialize;
use serde_json::{json, Value};

use super::args::text_path;
use super::io::{open_regular, CancelRead};
use super::{blocking_tool, nullable, obj, walk_builder, Call};
use crate::core::{CallContext, CancelToken, Registry, Result, ToolSpec};

/// The longest line the searcher holds in memory: a longer one (a huge minified or generated
/// file) ends that file's search with an error instead of growing the buffer without bound.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// The most memory a compiled search pattern may take.
pub const MAX_REGEX_BYTES: usize = 10 * 1024 * 1024;

#[derive(Deserialize)]
struct DirArgs {
    search_term: String,
    dir: Option<String>,
    fixed_string: Option<bool>,
    ignore_case: Option<bool>,
    include_hidden: Option<bool>,
    gitignore: Option<bool>,
}

#[derive(Deserialize)]
struct FileArgs {
    search_term: String,
    file: String,
    fixed_string: Option<bool>,
    ignore_case: Option<bool>,
}

#[derive(Deserialize)]
struct FindArgs {
    file_name: String,
    dir: Option<String>,
    include_hidden: Option<bool>,
    gitignore: Option<bool>,
}

/// More matching files (search.dir) or lines (search.file) than this and the listing is
/// replaced by "Please narrow your search.".
pub const MAX_RESULTS: usize = 100;

mod bre;

pub use bre::bre_to_regex;

fn matcher(
    call: &Call,
    term: &str,
    fixed: Option<bool>,
    icase: Option<bool>,
) -> Result<RegexMatcher> {
    if term.is_empty() {
        return Err(call.invalid("search_term", "the search term must not be empty"));
    }
    if term.contains('\n') {
        return Err(call.invalid("search_term", "the search term must be a single line"));
    }
    let fixed = fixed.unwrap_or(false);
    let pattern = if fixed {
        term.to_string()
    } else {
        bre_to_regex(term).map_err(|m| {
            call.invalid(
                "search_term",
                format!("{term:?} is not a valid grep basic regular expression: {m}"),
            )
        })?
    };
    RegexMatcherBuilder::new()
        .line_terminator(Some(b'\n'))
        // Bounded compile memory: `\(a\{1000\}\)\{1000\}` is refused, not built.
        .size_limit(MAX_REGEX_BYTES)
        .case_insensitive(icase.unwrap_or(false))
        .fixed_strings(fixed)
        .build(&pattern)
        .map_err(|e| {
            call.invalid(
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
        .heap_limit(Some(MAX_LINE_BYTES))
        .build()
}

/// Search one regular file (a FIFO or device is never opened blocking, see `io`), reading
/// through a reader that fails once the call is cancelled.
fn search_one<S: Sink<Error = io::Error>>(
    s: &mut Searcher,
    m: &RegexMatcher,
    path: &Path,
    cancel: &CancelToken,
    sink: S,
) -> std::result::Result<(), String> {
    let (f, _) = open_regular(path).map_err(|e| e.to_string())?;
    s.search_reader(m, CancelRead { inner: f, cancel }, sink)
        .map_err(|e| {
            if e.to_string().contains("configured allocation limit") {
                format!("a line is longer than {MAX_LINE_BYTES} bytes")
            } else {
                e.to_string()
            }
        })
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

/// The directory to search: `dir` (default the working directory), made absolute and free of
/// symlinks like the originals' `realpath`.
fn search_root(call: &Call, dir: Option<&str>) -> Result<PathBuf> {
    let given = dir.unwrap_or("./");
    text_path(call, "dir", given)?;
    match std::fs::canonicalize(given) {
        Ok(d) if d.is_dir() => Ok(d),
        _ => Err(call.fail(format!("Directory {given} not found"))),
    }
}

/// Regular files under `root` (symlinks are not followed, as with `find -type f`), visited in
/// parallel; `visit` returns what to keep. Sorted by path bytes.
fn walk_files<T: Send>(
    call: &Call,
    ctx: &CallContext,
    root: &Path,
    (hidden, gitignore): (Option<bool>, Option<bool>),
    visit: impl Fn(&Path) -> Option<T> + Sync,
) -> Result<Vec<(PathBuf, T)>> {
    let found = Mutex::new(Vec::new());
    walk_builder(root, hidden.unwrap_or(false), gitignore.unwrap_or(true))
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
        return Err(call.cancelled());
    }
    let mut found = found.into_inner();
    found.sort_by(|a, b| a.0.as_os_str().as_bytes().cmp(b.0.as_os_str().as_bytes()));
    Ok(found)
}

fn search_dir(call: &Call, a: DirArgs, ctx: &CallContext) -> Result<Value> {
    let term = a.search_term.as_str();
    let m = matcher(call, term, a.fixed_string, a.ignore_case)?;
    let dir = search_root(call, a.dir.as_deref())?;
    let shown = dir.display();
    let files = walk_files(call, ctx, &dir, (a.include_hidden, a.gitignore), |path| {
        thread_local! {
            static SEARCHER: std::cell::RefCell<Searcher> = std::cell::RefCell::new(searcher(false));
        }
        let mut sink = Count {
            lines: 0,
            binary: false,
            cancel: &ctx.cancel,
        };
        // Unreadable files are skipped, as grep skips them (to stderr).
        let ok = SEARCHER
            .with(|s| search_one(&mut s.borrow_mut(), &m, path, &ctx.cancel, &mut sink).is_ok());
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

fn search_file(call: &Call, a: FileArgs, ctx: &CallContext) -> Result<Value> {
    let term = a.search_term.as_str();
    let given = a.file.as_str();
    text_path(call, "file", given)?;
    let m = matcher(call, term, a.fixed_string, a.ignore_case)?;
    let file = match std::fs::canonicalize(given) {
        Ok(f) if f.is_file() => f,
        _ => {
            return Err(call.fail(format!(
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
    search_one(&mut searcher(true), &m, &file, &ctx.cancel, &mut sink)
        .map_err(|e| call.fail(format!("cannot search {shown}: {e}")))?;
    call.check(&ctx.cancel)?;
    if sink.binary {
        return Err(call.fail(format!(
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

fn find_file(call: &Call, a: FindArgs, ctx: &CallContext) -> Result<Value> {
    let name = a.file_name.as_str();
    if name.is_empty() {
        return Err(call.invalid("file_name", "the file name must not be empty"));
    }
    if name.contains('/') {
        return Err(call.invalid(
            "file_name",
            format!("{name:?} contains '/': find_file matches file names (use a pattern like \"*.py\"), not paths"),
        ));
    }
    let glob = globset::GlobBuilder::new(name)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| call.invalid("file_name", format!("invalid pattern {name:?}: {e}")))?
        .compile_matcher();
    let dir = search_root(call, a.dir.as_deref())?;
    let shown = dir.display();
    let found = walk_files(call, ctx, &dir, (a.include_hidden, a.gitignore), |p| {
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
mod tests;
