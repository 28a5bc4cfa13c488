//! `shell.*`: persistent bash sessions in a pty (driven by tokio, no pexpect) and one-shot
//! command execution.
//!
//! A session is an interactive `bash --noediting` whose stdin/stdout/stderr are the slave side
//! of a pty; it leads its own session (setsid) so job control, Ctrl-C and cleanup work on whole
//! process groups. Echo is off in the terminal from the start, so output never contains the
//! command. A command is written to a file in the session's private directory and run as
//! `source FILE; printf MARKER$?` — one short line on the terminal whatever the command's size
//! or characters (no canonical-mode line limit, no readline, no history expansion), and the
//! marker (unique per session and command) carries the exit code. Output accumulates in one
//! buffer and only the newly read tail is searched for the marker.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use regex::bytes::Regex as BytesRegex;
use rustix::fs::OFlags;
use rustix::process::{Pid, Signal};
use rustix::termios::{LocalModes, OptionalActions, OutputModes, Winsize};
use serde_json::{json, Value};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::core::{Error, FnTool, Registry, Result, ToolSpec};

const MARK: u8 = 0x1e;
/// While idle, keep at most this much unread output of background jobs.
const IDLE_BUFFER_CAP: usize = 8 << 20;

/// How to start a session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Files sourced (in order) before the first command; their output is returned by `create`.
    pub startup_source: Vec<String>,
    /// Time allowed for the shell to start and the startup files to be sourced.
    pub startup_timeout: Duration,
    /// Extra environment variables (on top of the host process's environment).
    pub env: HashMap<String, String>,
    pub cwd: Option<PathBuf>,
    /// Terminal size (rows, columns); programs format their output to it.
    pub size: (u16, u16),
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            startup_source: Vec::new(),
            startup_timeout: Duration::from_secs(10),
            env: HashMap::new(),
            cwd: None,
            size: (24, 80),
        }
    }
}

/// What kind of input a `run` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputKind {
    /// A bash command; completes when bash reports its exit code.
    #[default]
    Command,
    /// A line of input for the program running in the foreground (e.g. gdb, a REPL); completes
    /// when an `expect` pattern appears or the program exits back to the shell.
    Interactive,
}

/// How to run one input.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Receives output as it arrives: `done` = bytes so far, `message` = the new text.
    pub stream: Option<crate::core::ProgressSink>,
    pub kind: InputKind,
    /// Overall time limit; `None` waits forever.
    pub timeout: Option<Duration>,
    /// Give up when the command prints nothing for this long.
    pub no_output_timeout: Option<Duration>,
    /// Regular expressions; the first match ends the wait (the command keeps running).
    pub expect: Vec<String>,
    /// Check the command with `bash -n` before running it (like SWE-ReX's LocalRuntime).
    pub check_syntax: bool,
    /// On timeout interrupt the command (Ctrl-C, then SIGTERM/SIGKILL) instead of leaving it
    /// running for a later `interrupt`.
    pub interrupt_on_timeout: bool,
}

/// How a `run` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The command finished; `exit_code` is set.
    Completed,
    /// An `expect` pattern matched (`expect_string` names it); the command may still run.
    Expected,
    /// The time limit passed (`no_output`: the no-output limit). Unless interrupted, the command
    /// is still running.
    Timeout { no_output: bool },
    /// `bash -n` rejected the command; nothing ran.
    SyntaxError { stdout: String, stderr: String },
    /// The shell itself exited (e.g. `exit`); the session is gone.
    Exited,
    /// Stopped by a concurrent `interrupt`.
    Interrupted,
}

impl Status {
    fn name(&self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Expected => "expect",
            Status::Timeout { .. } => "timeout",
            Status::SyntaxError { .. } => "syntax_error",
            Status::Exited => "exited",
            Status::Interrupted => "interrupted",
        }
    }
}

/// The result of a `run` or `interrupt`.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Decoded output (invalid UTF-8 as `\xNN`, ANSI escapes removed, `\r\n` as `\n`),
    /// trailing whitespace kept.
    pub output: String,
    pub exit_code: Option<i32>,
    pub status: Status,
    pub expect_string: String,
    /// The command was interrupted (timeout with `interrupt_on_timeout`, or `interrupt`).
    pub interrupted: bool,
}

impl RunOutput {
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "output": self.output,
            "exit_code": self.exit_code,
            "status": self.status.name(),
            "expect_string": self.expect_string,
            "interrupted": self.interrupted,
        });
        match &self.status {
            Status::Timeout { no_output } => v["no_output_timeout"] = json!(no_output),
            Status::SyntaxError { stdout, stderr } => {
                v["bash_stdout"] = json!(stdout);
                v["bash_stderr"] = json!(stderr);
            }
            _ => {}
        }
        v
    }
}

struct State {
    buf: Vec<u8>,
    /// Everything before this offset was already searched for the pending marker.
    scan: usize,
    seq: u64,
    /// Sequence number of a command whose marker has not arrived yet.
    pending: Option<u64>,
    exit: Option<i32>,
    closed: bool,
}

/// One persistent bash in a pty.
pub struct ShellSession {
    master: AsyncFd<OwnedFd>,
    pid: i32,
    child: parking_lot::Mutex<Option<tokio::process::Child>>,
    state: tokio::sync::Mutex<State>,
    interrupt_tx: watch::Sender<u64>,
    nonce: String,
    dir: PathBuf,
}

fn io_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::tool("shell", format!("{what}: {e}"))
}

/// Python's `bytes.decode(errors="backslashreplace")`.
pub fn decode(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        s.push_str(chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(s, "\\x{byte:02x}");
        }
    }
    s
}

fn ansi_re() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"\x1B[@-_][0-?]*[ -/]*[@-~]").unwrap_or_else(|_| unreachable!())
    })
}

/// Terminal output as text: decoded, ANSI escapes removed, `\r\n` → `\n` (as LocalRuntime).
pub fn clean(b: &[u8]) -> String {
    let mut s = decode(b);
    if s.contains('\x1b') {
        s = ansi_re().replace_all(&s, "").into_owned();
    }
    if s.contains("\r\n") {
        s = s.replace("\r\n", "\n");
    }
    s
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Check `command` with `bash -n` (fed on stdin, as LocalRuntime does). `Ok(None)` if fine.
pub async fn check_syntax(command: &str) -> Result<Option<(String, String)>> {
    let mut child = tokio::process::Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io_err("cannot start bash -n", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        let mut text = command.as_bytes().to_vec();
        text.push(b'\n');
        // A closed pipe only means bash stopped reading early; its verdict still counts.
        let _ = stdin.write_all(&text).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| io_err("bash -n failed", e))?;
    if out.status.success() {
        Ok(None)
    } else {
        Ok(Some((decode(&out.stdout), decode(&out.stderr))))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// A process in a shell's session: (pid, parent pid, zombie).
type Member = (i32, i32, bool);

/// Processes whose session id is `sid` (the shell and everything it started that did not
/// leave the session).
#[cfg(test)]
fn session_members(sid: i32) -> Vec<Member> {
    members(3, sid)
}

/// Processes whose field `field` of /proc/PID/stat after the name (2: process group,
/// 3: session) is `id`.
fn members(field: usize, id: i32) -> Vec<Member> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state ppid pgrp session ...
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<i32>().ok());
        if num(field) == Some(id) {
            out.push((pid, num(1).unwrap_or_default(), f.first() == Some(&"Z")));
        }
    }
    out
}

/// Kill everything in session (`field` 3) or process group (2) `sid`, leaves of the process tree
/// first so that each dies while its parent (the shell, a subshell) is alive to reap it — an
/// orphan would become a zombie of an init that may never reap — and the leader `sid` last.
fn kill_tree(field: usize, sid: i32, grace: Duration) {
    let kill = |pid: i32| {
        if let Some(p) = Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(p, Signal::KILL);
        }
    };
    let end = Instant::now() + grace;
    loop {
        let live: Vec<Member> = members(field, sid)
            .into_iter()
            .filter(|m| m.0 != sid && !m.2)
            .collect();
        if live.is_empty() || Instant::now() >= end {
            break;
        }
        let parents: std::collections::HashSet<i32> = live.iter().map(|m| m.1).collect();
        live.iter()
            .filter(|m| !parents.contains(&m.0))
            .for_each(|m| kill(m.0));
        std::thread::sleep(Duration::from_millis(2));
    }
    // Past the grace period (a parent that does not reap): kill whatever is left.
    for m in members(field, sid) {
        if m.0 != sid && !m.2 {
            kill(m.0);
        }
    }
    kill(sid);
}

impl ShellSession {
    /// Start bash in a new pty; returns the session and the startup output.
    pub async fn start(opts: &SessionOptions) -> Result<(Arc<ShellSession>, String)> {
        let (master, slave) = open_pty(opts.size).map_err(|e| io_err("cannot open a pty", e))?;
        let dir = std::env::temp_dir().join(format!(
            "agent-runtime-shell-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| io_err(&format!("cannot create {}", dir.display()), e))?;
        let mut cmd = tokio::process::Command::new("bash");
        cmd.args(["--noediting", "--norc", "--noprofile", "-i"])
            .envs(&opts.env)
            .env("PS1", "")
            .env("PS2", "")
            .env("PS0", "")
            .env("PROMPT_COMMAND", "")
            .env("HISTFILE", "")
            .kill_on_drop(true);
        if let Some(cwd) = &opts.cwd {
            cmd.current_dir(cwd);
        }
        let dup = |fd: &OwnedFd| fd.try_clone().map(Stdio::from);
        cmd.stdin(dup(&slave).map_err(|e| io_err("dup", e))?)
            .stdout(dup(&slave).map_err(|e| io_err("dup", e))?)
            .stderr(Stdio::from(slave));
        // SAFETY: the closure runs in the forked child before exec and only makes two raw
        // system calls (setsid, ioctl), both async-signal-safe; it touches no Rust state.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::setsid()?;
                rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            let _ = std::fs::remove_dir_all(&dir);
            io_err("cannot start bash", e)
        })?;
        // The spawn dropped our copies of the slave: EOF/EIO on the master now means bash exited.
        let pid = child.id().map(|p| p as i32).unwrap_or_default();
        // SAFETY: `master` is an open OwnedFd moved into the AsyncFd, which owns it until drop,
        // so its raw descriptor stays valid and the same for the AsyncFd's whole lifetime.
        let master =
            unsafe { AsyncFd::register(master) }.map_err(|e| io_err("cannot poll the pty", e))?;
        let (interrupt_tx, _) = watch::channel(0u64);
        let session = Arc::new(ShellSession {
            master,
            pid,
            child: parking_lot::Mutex::new(Some(child)),
            state: tokio::sync::Mutex::new(State {
                buf: Vec::with_capacity(1 << 16),
                scan: 0,
                seq: 0,
                pending: None,
                exit: None,
                closed: false,
            }),
            interrupt_tx,
            nonce: format!("{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff),
            dir,
        });
        let mut init = String::from("set +o history; unset HISTFILE; stty -echo 2>/dev/null\n");
        for f in &opts.startup_source {
            init.push_str(&format!("source {}\n", shell_quote(f)));
        }
        // Startup files often set prompts; reset them after.
        init.push_str("PS1=''; PS2=''; PS0=''; PROMPT_COMMAND=''\n");
        let run = RunOptions {
            timeout: Some(opts.startup_timeout),
            ..Default::default()
        };
        match session.run(&init, &run).await {
            Ok(out) if out.status == Status::Completed => Ok((session, out.output)),
            Ok(out) => {
                session.close().await;
                Err(Error::tool(
                    "shell.session.create",
                    format!(
                        "shell session did not start ({}) within {:.1}s; output: {:?}",
                        out.status.name(),
                        opts.startup_timeout.as_secs_f64(),
                        out.output
                    ),
                ))
            }
            Err(e) => {
                session.close().await;
                Err(e)
            }
        }
    }

    /// Process id of the shell (also its process group and session id).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    fn marker(&self, seq: u64) -> Vec<u8> {
        let mut m = vec![MARK];
        m.extend_from_slice(format!("ART{}_{}_", self.nonce, seq).as_bytes());
        m
    }

    fn marker_line(&self, seq: u64) -> String {
        format!(
            "builtin printf '\\036ART{}_{}_%d\\036' \"$?\"\n",
            self.nonce, seq
        )
    }

    fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        // The pty input queue is large enough for our short lines; retry briefly if full.
        let mut spins = 0;
        while !data.is_empty() {
            match rustix::io::write(self.master.get_ref(), data) {
                Ok(n) => data = &data[n..],
                Err(rustix::io::Errno::AGAIN) if spins < 2000 => {
                    spins += 1;
                    std::thread::sleep(Duration::from_micros(500));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Read whatever is available now without waiting. Returns false at EOF.
    fn drain_now(&self, st: &mut State) -> bool {
        loop {
            st.buf.reserve(1 << 16);
            match rustix::io::read(
                self.master.get_ref(),
                rustix::buffer::spare_capacity(&mut st.buf),
            ) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(rustix::io::Errno::AGAIN) => return true,
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => return false,
            }
        }
    }

    /// Wait for more output. Returns false at EOF (the shell exited).
    async fn fill(&self, st: &mut State) -> bool {
        loop {
            let Ok(mut guard) = self.master.readable().await else {
                return false;
            };
            st.buf.reserve(1 << 16);
            let r = guard.try_io(|fd| {
                rustix::io::read(fd.get_ref(), rustix::buffer::spare_capacity(&mut st.buf))
                    .map_err(io::Error::from)
            });
            match r {
                Ok(Ok(0)) => return false,
                Ok(Ok(_)) => return true,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(_)) => return false, // EIO: the slave side is closed
                Err(_would_block) => {}
            }
        }
    }

    /// Find `marker` + exit code (+ `S` when the in-shell syntax check failed) + MARK in
    /// `st.buf` starting at `st.scan`; returns (start, end, exit_code, syntax_failed).
    fn find_marker(st: &mut State, marker: &[u8]) -> Option<(usize, usize, i32, bool)> {
        let from = st.scan.min(st.buf.len());
        let Some(i) = find(&st.buf[from..], marker).map(|i| i + from) else {
            st.scan = st.buf.len().saturating_sub(marker.len());
            return None;
        };
        let digits_at = i + marker.len();
        let Some(j) = memchr::memchr(MARK, &st.buf[digits_at..]).map(|j| j + digits_at) else {
            st.scan = i; // the rest of the marker has not arrived yet
            return None;
        };
        let text = std::str::from_utf8(&st.buf[digits_at..j]).unwrap_or_default();
        let (text, syntax) = match text.strip_suffix('S') {
            Some(t) => (t, true),
            None => (text, false),
        };
        Some((i, j + 1, text.parse::<i32>().unwrap_or(-1), syntax))
    }

    /// Take `buf[..upto]` as output and drop `buf[..consume]`.
    fn take(st: &mut State, upto: usize, consume: usize) -> String {
        let out = clean(&st.buf[..upto]);
        st.buf.drain(..consume);
        st.scan = 0;
        out
    }

    fn exited_output(&self, st: &mut State) -> RunOutput {
        let code = self.reap_now();
        st.exit = Some(code);
        st.pending = None;
        let len = st.buf.len();
        RunOutput {
            output: Self::take(st, len, len),
            exit_code: Some(code),
            status: Status::Exited,
            expect_string: String::new(),
            interrupted: false,
        }
    }

    fn reap_now(&self) -> i32 {
        let mut guard = self.child.lock();
        let Some(child) = guard.as_mut() else {
            return -1;
        };
        // The shell closed the pty; give it a moment to be reapable.
        for _ in 0..200 {
            match child.try_wait() {
                Ok(Some(st)) => {
                    use std::os::unix::process::ExitStatusExt;
                    return st
                        .code()
                        .or_else(|| st.signal().map(|s| 128 + s))
                        .unwrap_or(-1);
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => return -1,
            }
        }
        -1
    }

    fn usable(&self, st: &State) -> Result<()> {
        if st.closed {
            return Err(Error::tool("shell.session", "the shell session is closed"));
        }
        if let Some(code) = st.exit {
            return Err(Error::tool(
                "shell.session",
                format!(
                    "the shell of this session has exited (exit code {code}); create a new session"
                ),
            ));
        }
        Ok(())
    }

    /// Run a command (or send a line to the foreground program, see [`InputKind`]).
    pub async fn run(&self, input: &str, opts: &RunOptions) -> Result<RunOutput> {
        let expects = opts
            .expect
            .iter()
            .map(|p| {
                BytesRegex::new(p).map_err(|e| Error::InvalidArguments {
                    tool: "shell.session.run".into(),
                    path: "expect".into(),
                    message: format!("invalid regular expression {p:?}: {e}"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // The shell parses the command (as a function body) before running it: no process to
        // spawn. Only when that parse fails does `bash -n` decide, exactly as LocalRuntime.
        let check =
            opts.kind == InputKind::Command && opts.check_syntax && !input.trim().is_empty();
        let out = self.run_once(input, opts, &expects, check).await?;
        if !matches!(out.status, Status::SyntaxError { .. }) {
            return Ok(out);
        }
        match check_syntax(input).await? {
            Some((stdout, stderr)) => Ok(RunOutput {
                status: Status::SyntaxError { stdout, stderr },
                ..out
            }),
            None => self.run_once(input, opts, &expects, false).await,
        }
    }

    async fn run_once(
        &self,
        input: &str,
        opts: &RunOptions,
        expects: &[BytesRegex],
        check: bool,
    ) -> Result<RunOutput> {
        let mut intr = self.interrupt_tx.subscribe();
        let mut st = self.state.lock().await;
        self.usable(&st)?;
        if let Some(seq) = st.pending {
            // A command left running (timed out or matched an expect string): did it finish?
            if !self.drain_now(&mut st) {
                return Ok(self.exited_output(&mut st));
            }
            let marker = self.marker(seq);
            if let Some((start, end, _, _)) = Self::find_marker(&mut st, &marker) {
                // Its late output stays in front of what comes next; only the marker goes.
                st.buf.drain(start..end);
                st.scan = 0;
                st.pending = None;
            }
        }
        match (opts.kind, st.pending) {
            (InputKind::Command, Some(_)) => {
                return Err(Error::tool(
                    "shell.session.run",
                    "a previous command is still running in this session (it timed out or is \
                     waiting for input); interrupt it first or send it input as an interactive line",
                ))
            }
            (InputKind::Command, None) | (InputKind::Interactive, None) => {
                st.seq += 1;
                let seq = st.seq;
                let file = self.dir.join(format!("cmd{}", seq % 2));
                let mut text = input.to_string();
                text.push('\n');
                std::fs::write(&file, text)
                    .map_err(|e| io_err(&format!("cannot write {}", file.display()), e))?;
                let q = |p: &std::path::Path| shell_quote(&p.to_string_lossy());
                let line = if check {
                    let def = self.dir.join("check");
                    std::fs::write(&def, format!("__art_syn() {{ {input}\n}}\n"))
                        .map_err(|e| io_err(&format!("cannot write {}", def.display()), e))?;
                    format!(
                        "if builtin source {} 2>/dev/null; then builtin unset -f __art_syn; \
                         builtin source {}; else __art_syn=S; fi; \
                         builtin printf '\\036ART{}_{}_%d%s\\036' \"$?\" \"${{__art_syn-}}\"; \
                         builtin unset __art_syn\n",
                        q(&def),
                        q(&file),
                        self.nonce,
                        seq
                    )
                } else {
                    format!("builtin source {}; {}", q(&file), self.marker_line(seq))
                };
                // Output that arrived while idle (background jobs) stays at the front.
                if st.buf.len() > IDLE_BUFFER_CAP {
                    let cut = st.buf.len() - IDLE_BUFFER_CAP;
                    st.buf.drain(..cut);
                }
                st.scan = 0;
                st.pending = Some(seq);
                self.write_all(line.as_bytes())
                    .map_err(|e| io_err("cannot write to the shell", e))?;
            }
            (InputKind::Interactive, Some(_)) => {
                let mut line = input.as_bytes().to_vec();
                line.push(b'\n');
                self.write_all(&line)
                    .map_err(|e| io_err("cannot write to the shell", e))?;
            }
        }
        let seq = st.pending.unwrap_or_default();
        let marker = self.marker(seq);
        let started = Instant::now();
        let deadline = opts.timeout.map(|t| started + t);
        let mut last_output = Instant::now();
        let mut seen = st.buf.len();
        let mut expect_from = 0usize;
        loop {
            if let Some((start, end, code, syntax)) = Self::find_marker(&mut st, &marker) {
                st.pending = None;
                return Ok(RunOutput {
                    output: Self::take(&mut st, start, end),
                    exit_code: Some(if syntax { 2 } else { code }),
                    status: if syntax {
                        Status::SyntaxError {
                            stdout: String::new(),
                            stderr: String::new(),
                        }
                    } else {
                        Status::Completed
                    },
                    expect_string: String::new(),
                    interrupted: false,
                });
            }
            if !expects.is_empty() {
                // Patterns may span reads: re-search a bounded overlap, never the whole buffer.
                let from = expect_from.saturating_sub(4096);
                let hit = expects
                    .iter()
                    .enumerate()
                    .filter_map(|(k, re)| re.find(&st.buf[from..]).map(|m| (m.start(), m.end(), k)))
                    .min();
                if let Some((s, e, k)) = hit {
                    return Ok(RunOutput {
                        output: Self::take(&mut st, from + s, from + e),
                        exit_code: None,
                        status: Status::Expected,
                        expect_string: opts.expect[k].clone(),
                        interrupted: false,
                    });
                }
                expect_from = st.buf.len();
            }
            let now = Instant::now();
            let no_output_deadline = opts.no_output_timeout.map(|t| last_output + t);
            let wake = match (deadline, no_output_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(w) = wake {
                if now >= w {
                    let no_output = deadline.is_none_or(|d| now < d);
                    let len = st.buf.len();
                    let mut out = RunOutput {
                        output: Self::take(&mut st, len, len),
                        exit_code: None,
                        status: Status::Timeout { no_output },
                        expect_string: String::new(),
                        interrupted: false,
                    };
                    if opts.interrupt_on_timeout {
                        let i = self
                            .interrupt_locked(&mut st, &Interrupt::default())
                            .await?;
                        out.output.push_str(&i.output);
                        out.exit_code = i.exit_code;
                        out.interrupted = true;
                    }
                    return Ok(out);
                }
            }
            let sleep = async {
                match wake {
                    Some(w) => tokio::time::sleep_until(w.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                alive = self.fill(&mut st) => {
                    if !alive {
                        return Ok(self.exited_output(&mut st));
                    }
                    last_output = Instant::now();
                    if let Some(sink) = &opts.stream {
                        // Never stream (part of) the marker: stop at its first byte.
                        let new = &st.buf[seen.min(st.buf.len())..];
                        let cut = memchr::memchr(MARK, new).unwrap_or(new.len());
                        if cut > 0 {
                            seen += cut;
                            sink(&crate::core::Progress {
                                done: seen as f64,
                                total: None,
                                message: Some(clean(&new[..cut])),
                            });
                        }
                    }
                }
                _ = sleep => {}
                _ = intr.changed() => {
                    let len = st.buf.len();
                    return Ok(RunOutput {
                        output: Self::take(&mut st, len, len),
                        exit_code: None,
                        status: Status::Interrupted,
                        expect_string: String::new(),
                        interrupted: true,
                    });
                }
            }
        }
    }

    /// Interrupt whatever runs in the session and bring the shell back to a known state.
    pub async fn interrupt(&self, how: &Interrupt) -> Result<RunOutput> {
        // Stop a concurrent `run` waiting on this session so we can take the state.
        self.interrupt_tx.send_modify(|g| *g += 1);
        let mut st = self.state.lock().await;
        self.usable(&st)?;
        self.interrupt_locked(&mut st, how).await
    }

    fn foreground_is_shell(&self) -> bool {
        match rustix::termios::tcgetpgrp(self.master.get_ref()) {
            Ok(pg) => pg.as_raw_nonzero().get() == self.pid,
            Err(_) => true,
        }
    }

    fn signal_foreground(&self, sig: Signal) {
        if let Ok(pg) = rustix::termios::tcgetpgrp(self.master.get_ref()) {
            if pg.as_raw_nonzero().get() != self.pid {
                let _ = rustix::process::kill_process_group(pg, sig);
            }
        }
    }

    /// Read output until `done()` or `limit` passes. Returns false at EOF.
    async fn pump_until(
        &self,
        st: &mut State,
        limit: Duration,
        done: impl Fn(&mut State) -> bool,
    ) -> bool {
        let end = tokio::time::Instant::now() + limit;
        loop {
            if !self.drain_now(st) {
                return false;
            }
            if done(st) || tokio::time::Instant::now() >= end {
                return true;
            }
            tokio::select! {
                alive = self.fill(st) => if !alive { return false; },
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                _ = tokio::time::sleep_until(end) => {}
            }
        }
    }

    async fn interrupt_locked(&self, st: &mut State, how: &Interrupt) -> Result<RunOutput> {
        let old = st.pending;
        // Ctrl-C, retried; a job still holding the terminal afterwards gets SIGTERM, then SIGKILL.
        let steps: Vec<Option<Signal>> = std::iter::repeat_n(None, how.retries.max(1))
            .chain([Some(Signal::TERM), Some(Signal::KILL)])
            .collect();
        for step in steps {
            match step {
                None => self
                    .write_all(b"\x03")
                    .map_err(|e| io_err("cannot write to the shell", e))?,
                Some(sig) => self.signal_foreground(sig),
            }
            let old_marker = old.map(|s| self.marker(s));
            let alive = self
                .pump_until(st, how.timeout, |st| {
                    if self.foreground_is_shell() {
                        return true;
                    }
                    if let Some(m) = &old_marker {
                        let saved = st.scan;
                        let found = Self::find_marker(st, m).is_some();
                        st.scan = saved;
                        if found {
                            return true;
                        }
                    }
                    false
                })
                .await;
            if !alive {
                return Ok(self.exited_output(st));
            }
            if self.foreground_is_shell() {
                break;
            }
        }
        // Resync: a fresh marker proves the shell reads commands again and gives `$?`.
        st.seq += 1;
        let seq = st.seq;
        let marker = self.marker(seq);
        self.write_all(self.marker_line(seq).as_bytes())
            .map_err(|e| io_err("cannot write to the shell", e))?;
        st.scan = 0;
        let alive = self
            .pump_until(st, how.resync_timeout, |st| {
                let saved = st.scan;
                let hit = Self::find_marker(st, &marker).is_some();
                st.scan = saved;
                hit
            })
            .await;
        if !alive {
            return Ok(self.exited_output(st));
        }
        st.scan = 0;
        let Some((start, end, mut code, _)) = Self::find_marker(st, &marker) else {
            return Err(Error::tool(
                "shell.session.interrupt",
                format!(
                "the shell did not respond within {:.1}s after the interrupt; close the session",
                how.resync_timeout.as_secs_f64()
            ),
            ));
        };
        st.pending = None;
        let mut raw = st.buf[..start].to_vec();
        st.buf.drain(..end);
        st.scan = 0;
        // The interrupted command's own marker (if its line went on after Ctrl-C) is not output.
        if let Some(seq) = old {
            let m = self.marker(seq);
            if let Some(i) = find(&raw, &m) {
                if let Some(j) = memchr::memchr(MARK, &raw[i + m.len()..]) {
                    let k = i + m.len() + j;
                    if let Some(c) = std::str::from_utf8(&raw[i + m.len()..k])
                        .ok()
                        .and_then(|s| s.parse().ok())
                    {
                        code = c;
                    }
                    raw.drain(i..=k);
                }
            }
        }
        Ok(RunOutput {
            output: clean(&raw),
            exit_code: Some(code),
            status: Status::Completed,
            expect_string: String::new(),
            interrupted: true,
        })
    }

    /// Kill the shell and everything in its session, reap it, remove its files. Idempotent.
    pub async fn close(&self) {
        self.interrupt_tx.send_modify(|g| *g += 1);
        let mut st = self.state.lock().await;
        st.closed = true;
        self.kill_all(Duration::from_millis(500));
        let child = self.child.lock().take();
        if let Some(mut child) = child {
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    fn kill_all(&self, grace: Duration) {
        if self.pid > 0 {
            kill_tree(3, self.pid, grace);
        }
    }
}

impl Drop for ShellSession {
    fn drop(&mut self) {
        // Not closed explicitly: still leave nothing behind (tokio reaps the killed child).
        if self.child.lock().is_some() {
            self.kill_all(Duration::from_millis(100));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How to interrupt (see [`ShellSession::interrupt`]).
#[derive(Debug, Clone)]
pub struct Interrupt {
    /// Wait after each Ctrl-C / signal for the shell to get the terminal back.
    pub timeout: Duration,
    /// Ctrl-C attempts before SIGTERM and SIGKILL to the foreground process group.
    pub retries: usize,
    /// Time allowed for the shell to answer afterwards.
    pub resync_timeout: Duration,
}

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt {
            timeout: Duration::from_millis(500),
            retries: 2,
            resync_timeout: Duration::from_secs(5),
        }
    }
}

fn open_pty(size: (u16, u16)) -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let mut tio = rustix::termios::tcgetattr(&slave)?;
    tio.local_modes
        .remove(LocalModes::ECHO | LocalModes::ECHOE | LocalModes::ECHOK | LocalModes::ECHONL);
    // No output post-processing (`\n` → `\r\n`): the kernel then copies output in bulk instead
    // of byte by byte, which makes a pty several times faster for large outputs. The captured
    // text is the same after `clean` (LocalRuntime turns `\r\n` into `\n` anyway).
    tio.output_modes.remove(OutputModes::OPOST);
    rustix::termios::tcsetattr(&slave, OptionalActions::Now, &tio)?;
    rustix::termios::tcsetwinsize(
        &slave,
        Winsize {
            ws_row: size.0,
            ws_col: size.1,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    let fl = rustix::fs::fcntl_getfl(&master)?;
    rustix::fs::fcntl_setfl(&master, fl | OFlags::NONBLOCK)?;
    Ok((master, slave))
}

/// Named sessions.
#[derive(Default)]
pub struct SessionManager {
    sessions: parking_lot::Mutex<HashMap<String, Arc<ShellSession>>>,
}

impl SessionManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Start a session called `name`; fails if one of that name exists.
    pub async fn create(&self, name: &str, opts: &SessionOptions) -> Result<String> {
        if self.sessions.lock().contains_key(name) {
            return Err(exists(name));
        }
        let (s, out) = ShellSession::start(opts).await?;
        let clash = {
            let mut map = self.sessions.lock();
            if map.contains_key(name) {
                true
            } else {
                map.insert(name.to_string(), s.clone());
                false
            }
        };
        if clash {
            s.close().await;
            return Err(exists(name));
        }
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Result<Arc<ShellSession>> {
        self.sessions
            .lock()
            .get(name)
            .cloned()
            .ok_or_else(|| missing(name))
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.sessions.lock().keys().cloned().collect();
        v.sort();
        v
    }

    pub async fn close(&self, name: &str) -> Result<()> {
        let s = self
            .sessions
            .lock()
            .remove(name)
            .ok_or_else(|| missing(name))?;
        s.close().await;
        Ok(())
    }

    pub async fn close_all(&self) {
        let all: Vec<_> = self.sessions.lock().drain().map(|(_, s)| s).collect();
        for s in all {
            s.close().await;
        }
    }
}

fn exists(name: &str) -> Error {
    Error::tool(
        "shell.session.create",
        format!("session '{name}' already exists"),
    )
}

fn missing(name: &str) -> Error {
    Error::Tool {
        tool: "shell.session".into(),
        message: format!("session '{name}' does not exist"),
    }
}

/// A one-shot command (see [`execute`]).
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Program and arguments, or a shell string when `shell` is true (run by `/bin/sh -c`).
    pub argv: Vec<String>,
    pub shell: bool,
    pub timeout: Option<Duration>,
    /// `None`: inherit the host environment; `Some`: exactly this environment.
    pub env: Option<HashMap<String, String>>,
    pub cwd: Option<PathBuf>,
    pub merge_output_streams: bool,
}

/// The outcome of [`execute`].
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
}

/// Run a process with stdin closed, capture its output; on timeout kill its process group.
pub async fn execute(opts: &ExecOptions) -> Result<ExecOutput> {
    let (prog, args): (String, Vec<String>) = if opts.shell {
        let s = opts.argv.join(" ");
        ("/bin/sh".into(), vec!["-c".into(), s])
    } else {
        let Some((p, a)) = opts.argv.split_first() else {
            return Err(Error::InvalidArguments {
                tool: "shell.run".into(),
                path: "command".into(),
                message: "empty command".into(),
            });
        };
        (p.clone(), a.to_vec())
    };
    let mut cmd = tokio::process::Command::new(&prog);
    cmd.args(&args)
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(env) = &opts.env {
        cmd.env_clear().envs(env);
    }
    if let Some(cwd) = &opts.cwd {
        cmd.current_dir(cwd);
    }
    let merged = if opts.merge_output_streams {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| io_err("pipe", e))?;
        let w2 = w.try_clone().map_err(|e| io_err("pipe", e))?;
        cmd.stdout(Stdio::from(w)).stderr(Stdio::from(w2));
        Some(r)
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        None
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::tool("shell.run", format!("cannot run {prog:?}: {e}")))?;
    // The parent's copies of the write ends live in `cmd`; drop them so EOF arrives.
    drop(cmd);
    let pgid = child.id().map(|p| p as i32);
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let read_all = async move {
        let mut out = Vec::new();
        let mut err = Vec::new();
        if let Some(r) = merged {
            if let Ok(mut p) = tokio::net::unix::pipe::Receiver::from_owned_fd(r) {
                let _ = p.read_to_end(&mut out).await;
            }
        } else {
            let a = async {
                if let Some(p) = out_pipe.as_mut() {
                    let _ = p.read_to_end(&mut out).await;
                }
            };
            let b = async {
                if let Some(p) = err_pipe.as_mut() {
                    let _ = p.read_to_end(&mut err).await;
                }
            };
            tokio::join!(a, b);
        }
        (out, err)
    };
    let work = async {
        let (out, err) = read_all.await;
        let status = child.wait().await;
        (out, err, status)
    };
    let res = match opts.timeout {
        Some(t) => tokio::time::timeout(t, work).await.ok(),
        None => Some(work.await),
    };
    match res {
        Some((out, err, status)) => {
            use std::os::unix::process::ExitStatusExt;
            let status = status.map_err(|e| io_err("wait", e))?;
            Ok(ExecOutput {
                stdout: decode(&out),
                stderr: decode(&err),
                exit_code: status.code().or_else(|| status.signal().map(|s| -s)),
                timed_out: false,
            })
        }
        None => {
            if let Some(p) = pgid {
                kill_tree(2, p, Duration::from_millis(200));
            }
            let _ = child.kill().await;
            Ok(ExecOutput {
                stdout: String::new(),
                stderr: String::new(),
                exit_code: None,
                timed_out: true,
            })
        }
    }
}

fn obj(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

fn secs(v: &Value, key: &str) -> Option<Duration> {
    v.get(key)
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(1e9)))
}

fn str_map(v: &Value, key: &str) -> Option<HashMap<String, String>> {
    v.get(key).and_then(Value::as_object).map(|m| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    })
}

fn session_name(v: &Value) -> String {
    v.get("session")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string()
}

fn run_output_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "output": {"type": "string"},
            "exit_code": {"type": ["integer", "null"]},
            "status": {"enum": ["completed", "expect", "timeout", "syntax_error", "exited", "interrupted"]},
            "expect_string": {"type": "string"},
            "interrupted": {"type": "boolean"},
            "no_output_timeout": {"type": "boolean"},
            "bash_stdout": {"type": "string"},
            "bash_stderr": {"type": "string"}
        },
        "required": ["output", "exit_code", "status", "expect_string", "interrupted"]
    })
}

/// Register the `shell.*` tools into `registry` with a session manager of their own.
pub fn register(registry: &Registry) -> Result<()> {
    register_with(registry, Arc::new(SessionManager::new()))
}

/// Register the `shell.*` tools using `manager` for the sessions.
pub fn register_with(registry: &Registry, manager: Arc<SessionManager>) -> Result<()> {
    let timeout_prop = json!({"type": ["number", "null"], "minimum": 0});
    let env_prop = json!({"type": "object", "additionalProperties": {"type": "string"}});
    registry.replace(Arc::new(FnTool::new(
        ToolSpec::new("shell.run")
            .description(
                "Run one command (argv list, or a string run by /bin/sh -c) with stdin closed and \
                 return its stdout, stderr and exit code. On timeout its whole process group is killed.",
            )
            .input_schema(obj(
                json!({
                    "command": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
                                "description": "argv list, or a shell string (then `shell` defaults to true)"},
                    "shell": {"type": "boolean"},
                    "timeout": timeout_prop,
                    "env": {"type": ["object", "null"], "additionalProperties": {"type": "string"},
                            "description": "the complete environment (default: inherit)"},
                    "cwd": {"type": ["string", "null"]},
                    "merge_output_streams": {"type": "boolean", "default": false}
                }),
                &["command"],
            ))
            .output_schema(json!({
                "type": "object",
                "properties": {
                    "stdout": {"type": "string"}, "stderr": {"type": "string"},
                    "exit_code": {"type": ["integer", "null"]}, "timed_out": {"type": "boolean"}
                },
                "required": ["stdout", "stderr", "exit_code", "timed_out"]
            })),
        |v, _| async move {
            let (argv, default_shell) = match &v["command"] {
                Value::String(s) => (vec![s.clone()], true),
                Value::Array(a) => (
                    a.iter().map(|x| x.as_str().unwrap_or_default().to_string()).collect(),
                    false,
                ),
                _ => (Vec::new(), false),
            };
            let opts = ExecOptions {
                argv,
                shell: v.get("shell").and_then(Value::as_bool).unwrap_or(default_shell),
                timeout: secs(&v, "timeout"),
                env: str_map(&v, "env"),
                cwd: v.get("cwd").and_then(Value::as_str).map(PathBuf::from),
                merge_output_streams: v.get("merge_output_streams").and_then(Value::as_bool).unwrap_or(false),
            };
            let r = execute(&opts).await?;
            Ok(json!({"stdout": r.stdout, "stderr": r.stderr, "exit_code": r.exit_code, "timed_out": r.timed_out}))
        },
    )))?;

    let m = manager.clone();
    registry.replace(Arc::new(FnTool::new(
        ToolSpec::new("shell.session.create")
            .description(
                "Start a persistent bash session (in a pseudo-terminal) called `session`; returns the \
                 output of sourcing `startup_source`.",
            )
            .input_schema(obj(
                json!({
                    "session": {"type": "string", "minLength": 1, "default": "default"},
                    "startup_source": {"type": "array", "items": {"type": "string"}},
                    "startup_timeout": {"type": "number", "minimum": 0, "default": 10},
                    "env": env_prop,
                    "cwd": {"type": ["string", "null"]},
                    "rows": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 24},
                    "columns": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 80}
                }),
                &[],
            ))
            .output_schema(json!({
                "type": "object",
                "properties": {"session": {"type": "string"}, "output": {"type": "string"}, "pid": {"type": "integer"}},
                "required": ["session", "output"]
            })),
        move |v, _| {
            let m = m.clone();
            async move {
                let name = session_name(&v);
                let defaults = SessionOptions::default();
                let opts = SessionOptions {
                    startup_source: v
                        .get("startup_source")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                        .unwrap_or_default(),
                    startup_timeout: secs(&v, "startup_timeout").unwrap_or(defaults.startup_timeout),
                    env: str_map(&v, "env").unwrap_or_default(),
                    cwd: v.get("cwd").and_then(Value::as_str).map(PathBuf::from),
                    size: (
                        v.get("rows").and_then(Value::as_u64).map(|r| r.min(65535) as u16).unwrap_or(24),
                        v.get("columns").and_then(Value::as_u64).map(|r| r.min(65535) as u16).unwrap_or(80),
                    ),
                };
                let output = m.create(&name, &opts).await?;
                let pid = m.get(&name).map(|s| s.pid()).unwrap_or_default();
                Ok(json!({"session": name, "output": output, "pid": pid}))
            }
        },
    )))?;

    let m = manager.clone();
    registry.replace(Arc::new(FnTool::new(
        ToolSpec::new("shell.session.run")
            .description(
                "Run a bash command in a session and return its output (without the command echo) and \
                 exit code. `status` tells how it ended: completed, expect (a pattern matched), timeout \
                 (the command is interrupted unless interrupt_on_timeout is false), syntax_error (nothing \
                 ran), exited (the shell exited), interrupted. With interactive=true the text is sent as \
                 a line of input to the program in the foreground (e.g. a debugger). Output also streams as \
                 progress reports (message: the new text).",
            )
            .input_schema(obj(
                json!({
                    "session": {"type": "string", "default": "default"},
                    "command": {"type": "string"},
                    "timeout": timeout_prop,
                    "no_output_timeout": timeout_prop,
                    "expect": {"type": "array", "items": {"type": "string"}, "description": "regular expressions"},
                    "interactive": {"type": "boolean", "default": false},
                    "check_syntax": {"type": "boolean", "default": true},
                    "interrupt_on_timeout": {"type": "boolean", "default": true}
                }),
                &["command"],
            ))
            .output_schema(run_output_schema()),
        move |v, ctx| {
            let m = m.clone();
            async move {
                let s = m.get(&session_name(&v))?;
                let flag = |k: &str, d: bool| v.get(k).and_then(Value::as_bool).unwrap_or(d);
                let opts = RunOptions {
                    kind: if flag("interactive", false) { InputKind::Interactive } else { InputKind::Command },
                    timeout: secs(&v, "timeout"),
                    no_output_timeout: secs(&v, "no_output_timeout"),
                    expect: v
                        .get("expect")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                        .unwrap_or_default(),
                    check_syntax: flag("check_syntax", true),
                    interrupt_on_timeout: flag("interrupt_on_timeout", true),
                    stream: ctx.progress.clone(),
                };
                let command = v["command"].as_str().unwrap_or_default();
                Ok(s.run(command, &opts).await?.to_json())
            }
        },
    )))?;

    let m = manager.clone();
    registry.replace(Arc::new(FnTool::new(
        ToolSpec::new("shell.session.interrupt")
            .description(
                "Interrupt what runs in a session: Ctrl-C (retried), then SIGTERM and SIGKILL to the \
                 foreground process group; then wait until the shell answers again. Returns the output \
                 produced meanwhile and the exit status.",
            )
            .input_schema(obj(
                json!({
                    "session": {"type": "string", "default": "default"},
                    "timeout": {"type": "number", "minimum": 0, "default": 0.5,
                                "description": "wait after each attempt"},
                    "retries": {"type": "integer", "minimum": 1, "maximum": 100, "default": 2},
                    "resync_timeout": {"type": "number", "minimum": 0, "default": 5}
                }),
                &[],
            ))
            .output_schema(run_output_schema()),
        move |v, _| {
            let m = m.clone();
            async move {
                let s = m.get(&session_name(&v))?;
                let d = Interrupt::default();
                let how = Interrupt {
                    timeout: secs(&v, "timeout").unwrap_or(d.timeout),
                    retries: v.get("retries").and_then(Value::as_u64).map(|r| r as usize).unwrap_or(d.retries),
                    resync_timeout: secs(&v, "resync_timeout").unwrap_or(d.resync_timeout),
                };
                Ok(s.interrupt(&how).await?.to_json())
            }
        },
    )))?;

    let m = manager.clone();
    registry.replace(Arc::new(FnTool::new(
        ToolSpec::new("shell.session.close")
            .description(
                "Close a session: kill its shell and every process it started, and reap them.",
            )
            .input_schema(obj(
                json!({"session": {"type": "string", "default": "default"}}),
                &[],
            ))
            .output_schema(json!({"type": "null"})),
        move |v, _| {
            let m = m.clone();
            async move {
                m.close(&session_name(&v)).await?;
                Ok(Value::Null)
            }
        },
    )))?;

    let m = manager;
    registry.replace(Arc::new(FnTool::sync(
        ToolSpec::new("shell.session.list")
            .description("Names of the open sessions.")
            .input_schema(obj(json!({}), &[]))
            .output_schema(json!({"type": "array", "items": {"type": "string"}})),
        move |_| Ok(json!(m.names())),
    )))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn start() -> Arc<ShellSession> {
        ShellSession::start(&SessionOptions::default())
            .await
            .unwrap()
            .0
    }

    fn cmd(timeout: f64) -> RunOptions {
        RunOptions {
            timeout: Some(Duration::from_secs_f64(timeout)),
            check_syntax: true,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn output_exit_codes_and_state() {
        let s = start().await;
        let r = s.run("echo hi", &cmd(10.0)).await.unwrap();
        assert_eq!((r.output.as_str(), r.exit_code), ("hi\n", Some(0)));
        let r = s
            .run("printf 'a  \\n\\n  '; false", &cmd(10.0))
            .await
            .unwrap();
        assert_eq!((r.output.as_str(), r.exit_code), ("a  \n\n  ", Some(1)));
        s.run("cd /tmp && X=42", &cmd(10.0)).await.unwrap();
        let r = s.run("echo $PWD $X; (exit 7)", &cmd(10.0)).await.unwrap();
        assert_eq!((r.output.as_str(), r.exit_code), ("/tmp 42\n", Some(7)));
        // Multi-line commands, heredocs, odd characters and invalid UTF-8.
        let r = s
            .run(
                "cat <<'EOF'\nx\t'\"!$\nEOF\nprintf '\\xff\\n' >&2",
                &cmd(10.0),
            )
            .await
            .unwrap();
        assert_eq!(r.output, "x\t'\"!$\n\\xff\n");
        s.close().await;
    }

    #[tokio::test]
    async fn syntax_error_runs_nothing() {
        let s = start().await;
        let r = s
            .run("touch /tmp/never; if then fi", &cmd(10.0))
            .await
            .unwrap();
        match r.status {
            Status::SyntaxError { stderr, .. } => {
                assert!(stderr.contains("syntax error"), "{stderr}")
            }
            other => panic!("{other:?}"),
        }
        let r = s.run("echo ok", &cmd(10.0)).await.unwrap();
        assert_eq!(r.output, "ok\n");
        // Rejected by the in-shell parse but accepted by `bash -n`: they run.
        let r = s.run("# only a comment", &cmd(10.0)).await.unwrap();
        assert_eq!((r.status, r.exit_code), (Status::Completed, Some(0)));
        let r = s.run("cat <<EOF\nunterminated", &cmd(10.0)).await.unwrap();
        assert_eq!(r.status, Status::Completed);
        assert!(r.output.ends_with("unterminated\n"), "{:?}", r.output);
        s.close().await;
    }

    #[tokio::test]
    async fn timeout_interrupt_then_next_command() {
        let s = start().await;
        let r = s.run("echo start; sleep 30", &cmd(2.0)).await.unwrap();
        assert_eq!(r.status, Status::Timeout { no_output: false });
        assert_eq!(r.output, "start\n");
        // Still running: a new command is refused until the interrupt.
        assert!(s.run("echo no", &cmd(1.0)).await.is_err());
        let i = s.interrupt(&Interrupt::default()).await.unwrap();
        assert_eq!(i.exit_code, Some(130));
        let r = s.run("echo next", &cmd(10.0)).await.unwrap();
        assert_eq!((r.output.as_str(), r.exit_code), ("next\n", Some(0)));
        // A job ignoring SIGINT is escalated to SIGTERM.
        let opts = RunOptions {
            interrupt_on_timeout: true,
            ..cmd(0.3)
        };
        let r = s.run("trap '' INT; sleep 30", &opts).await.unwrap();
        assert!(r.interrupted);
        let r = s.run("echo after", &cmd(10.0)).await.unwrap();
        assert_eq!(r.output, "after\n");
        // No-output timeout.
        let opts = RunOptions {
            no_output_timeout: Some(Duration::from_millis(300)),
            interrupt_on_timeout: true,
            ..cmd(30.0)
        };
        let r = s.run("echo x; sleep 30", &opts).await.unwrap();
        assert_eq!(r.status, Status::Timeout { no_output: true });
        s.close().await;
    }

    #[tokio::test]
    async fn huge_output_and_expect() {
        let s = start().await;
        let r = s.run("seq 1 200000", &cmd(60.0)).await.unwrap();
        assert_eq!(r.output.lines().count(), 200000);
        assert!(r.output.ends_with("199999\n200000\n"));
        let opts = RunOptions {
            expect: vec![r"name\? ".into()],
            ..cmd(10.0)
        };
        let r = s
            .run("read -p 'name? ' x; echo hello $x", &opts)
            .await
            .unwrap();
        assert_eq!(
            (r.status, r.expect_string.as_str()),
            (Status::Expected, r"name\? ")
        );
        let opts = RunOptions {
            kind: InputKind::Interactive,
            ..cmd(10.0)
        };
        let r = s.run("bob", &opts).await.unwrap();
        assert_eq!((r.output.as_str(), r.exit_code), ("hello bob\n", Some(0)));
        s.close().await;
    }

    #[tokio::test]
    async fn exit_and_close_leave_nothing() {
        let s = start().await;
        let pid = s.pid();
        s.run("sleep 300 & sleep 301 | cat &", &cmd(10.0))
            .await
            .unwrap();
        // bash, sleep 300, sleep 301, cat (bash may run `cat` in the subshell's process)
        let end = Instant::now() + Duration::from_secs(30);
        while session_members(pid).len() < 4 && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(session_members(pid).len() >= 4);
        let dir = s.dir.clone();
        s.close().await;
        assert!(
            session_members(pid).is_empty(),
            "{:?}",
            session_members(pid)
        );
        assert!(!dir.exists());
        assert!(s.run("echo", &cmd(1.0)).await.is_err());
        let s = start().await;
        let r = s.run("echo bye; exit 3", &cmd(10.0)).await.unwrap();
        assert_eq!((r.status, r.exit_code), (Status::Exited, Some(3)));
        assert!(r.output.contains("bye"));
        s.close().await;
    }

    #[tokio::test]
    async fn sessions_in_parallel_are_isolated() {
        let reg = Registry::new();
        register(&reg).unwrap();
        let mut hs = Vec::new();
        for i in 0..4 {
            let reg = reg.clone();
            hs.push(tokio::spawn(async move {
                let name = format!("s{i}");
                reg.call_json("shell.session.create", json!({"session": name}))
                    .await?;
                reg.call_json(
                    "shell.session.run",
                    json!({"session": name, "command": format!("V={i}")}),
                )
                .await?;
                let r = reg
                    .call_json(
                        "shell.session.run",
                        json!({"session": name, "command": "sleep 0.2; echo $V"}),
                    )
                    .await?;
                reg.call_json("shell.session.close", json!({"session": name}))
                    .await?;
                Ok::<_, Error>(r)
            }));
        }
        for (i, h) in hs.into_iter().enumerate() {
            let r = h.await.unwrap().unwrap();
            assert_eq!(r["output"], json!(format!("{i}\n")));
        }
        assert_eq!(
            reg.call_json("shell.session.list", json!({}))
                .await
                .unwrap(),
            json!([])
        );
        let e = reg
            .call_json(
                "shell.session.run",
                json!({"session": "nope", "command": "true"}),
            )
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("session 'nope' does not exist"),
            "{e}"
        );
        reg.call_json("shell.session.create", json!({}))
            .await
            .unwrap();
        let e = reg
            .call_json("shell.session.create", json!({}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        reg.call_json("shell.session.close", json!({}))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn execute_one_shot() {
        let r = execute(&ExecOptions {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "echo out; echo err >&2; exit 4".into(),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(
            (r.stdout.as_str(), r.stderr.as_str(), r.exit_code),
            ("out\n", "err\n", Some(4))
        );
        let r = execute(&ExecOptions {
            argv: vec!["echo a; echo b >&2; cat; echo $FOO; pwd".into()],
            shell: true,
            merge_output_streams: true,
            env: Some(HashMap::from([("FOO".into(), "bar".into())])),
            cwd: Some("/".into()),
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(
            (r.stdout.as_str(), r.stderr.as_str()),
            ("a\nb\nbar\n/\n", "")
        );
        let r = execute(&ExecOptions {
            argv: vec!["sleep 30 & sleep 30".into()],
            shell: true,
            timeout: Some(Duration::from_millis(200)),
            ..Default::default()
        })
        .await
        .unwrap();
        assert!(r.timed_out);
        assert!(execute(&ExecOptions {
            argv: vec!["/no/such/program".into()],
            ..Default::default()
        })
        .await
        .is_err());
    }
}
