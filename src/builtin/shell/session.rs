//! One persistent bash in a pty: starting, reading, closing.

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use super::capped::{render, shift, trim, trim_to, Cut, DEFAULT_MAX_OUTPUT};
use super::options::{RunOptions, SessionOptions, Status};
use super::proc::Target;
use super::pty::open_pty;
use super::reaper::{hand_off, Leftover};
use super::text::{clean, find, shell_quote};
use super::{io_err, RunOutput};
use crate::core::{Error, Result};

pub(super) const MARK: u8 = 0x1e;
/// While idle, keep at most this much unread output of background jobs.
pub(super) const IDLE_BUFFER_CAP: usize = 8 << 20;
/// How long a write to the terminal may wait for room in its input queue.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct State {
    /// Output not yet returned (bounded: see `capped`).
    pub(super) buf: Vec<u8>,
    /// Where the middle of `buf` was dropped, if it was.
    pub(super) cut: Option<Cut>,
    /// Bytes of output kept for the current command.
    pub(super) cap: usize,
    /// Offsets into `buf` for progress streaming and `expect` searches.
    pub(super) seen: usize,
    pub(super) expect_from: usize,
    /// Why the session was given up (it stopped answering); it was killed then.
    pub(super) broken: Option<String>,
    /// What every marker of this session starts with.
    pub(super) marker_prefix: Vec<u8>,
    /// Everything before this offset was already searched for the pending marker.
    pub(super) scan: usize,
    pub(super) seq: u64,
    /// Sequence number of a command whose marker has not arrived yet.
    pub(super) pending: Option<u64>,
    pub(super) exit: Option<i32>,
    pub(super) closed: bool,
}

impl State {
    /// Keep `buf` within the cap, moving the offsets that point into it.
    pub(super) fn bound(&mut self) {
        let removed = trim(&mut self.buf, &mut self.cut, self.cap);
        if removed.is_some() {
            self.scan = shift(self.scan, removed);
            self.seen = shift(self.seen, removed);
            self.expect_from = shift(self.expect_from, removed);
        }
    }
}

/// One persistent bash in a pty.
pub struct ShellSession {
    pub(super) master: AsyncFd<OwnedFd>,
    pub(super) pid: i32,
    pub(super) child: tokio::sync::Mutex<Option<tokio::process::Child>>,
    pub(super) state: tokio::sync::Mutex<State>,
    pub(super) interrupt_tx: watch::Sender<u64>,
    pub(super) nonce: String,
    pub(super) dir: PathBuf,
    /// Everything the session started (for killing it).
    pub(super) target: Target,
    /// Killed by a runtime shutdown.
    shut_down: AtomicBool,
    /// Closed, exited or given up: nothing more can run here (readable without the lock).
    dead: AtomicBool,
    /// The shell's /proc cmdline and exe once it runs (to notice `exec bash`).
    identity: parking_lot::Mutex<Option<(Vec<u8>, PathBuf)>>,
}

fn bad_option(path: &str, message: impl Into<String>) -> Error {
    Error::InvalidArguments {
        tool: "shell.session.create".into(),
        path: path.into(),
        message: message.into(),
    }
}

/// Refuse what would otherwise fail later with a message blaming bash.
async fn check_options(opts: &SessionOptions) -> Result<()> {
    for (k, v) in &opts.env {
        if k.is_empty() || k.contains(['=', '\0']) {
            return Err(bad_option("env", format!("invalid variable name {k:?}")));
        }
        if v.contains('\0') {
            return Err(bad_option(&format!("env.{k}"), "contains a NUL byte"));
        }
    }
    for (i, f) in opts.startup_source.iter().enumerate() {
        if f.contains(['\0', '\n']) {
            return Err(bad_option(
                &format!("startup_source[{i}]"),
                "contains a NUL byte or a newline",
            ));
        }
    }
    if let Some(cwd) = &opts.cwd {
        match tokio::fs::metadata(cwd).await {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::tool(
                    "shell.session.create",
                    format!("cwd {} is not a directory", cwd.display()),
                ))
            }
            Err(e) => {
                return Err(Error::tool(
                    "shell.session.create",
                    format!("cwd {}: {e}", cwd.display()),
                ))
            }
        }
    }
    Ok(())
}

/// Name of the environment variable that tags every process a session starts.
const TAG_VAR: &str = "AGENT_RUNTIME_SHELL_SESSION";

/// The shell must hold the terminal whenever it reads a command: readline takes it back before
/// each read, but we run bash without readline. A SIGINT that reaches bash between its fork of
/// a job and its wait makes it give up on the job and go back to reading, while the child goes
/// on to take the terminal; bash's read is then a background read (EIO), which it takes for
/// EOF and exits. A `PROMPT_COMMAND` fixes that: the first command bash runs at the top level
/// finishes its wait for that job (and takes the terminal back). For a terminal taken while
/// bash already sat in `read` (a job doing `tcsetpgrp` itself), EOF is ignored (`IGNOREEOF`)
/// and a prompt reached with no command run since the last one (an ignored EOF) looks up the
/// terminal's foreground group in /proc: any group but the shell's is a thief; it gets the
/// Ctrl-C meant for it and a `( : )` job hands the terminal back to the shell. About 20 µs per
/// command (`\#`, the command number, moves with each one). Needs bash ≥ 4.4 (`@P`) and /proc.
/// Not exported: a nested shell would run it without the function.
const TAKE_BACK_TERMINAL: &str = r#"
if [[ -r /proc/$$/stat ]] && (( BASH_VERSINFO[0] * 100 + BASH_VERSINFO[1] >= 404 )); then
  __art_fg() {
    \builtin local IFS=' ' f
    \builtin read -r -a f </proc/$$/stat || \builtin return 0
    [[ ${f[7]} =~ ^[1-9][0-9]*$ && ${f[7]} != "${f[4]}" ]] || \builtin return 0
    \builtin kill -INT -- "-${f[7]}" || :
    ( \builtin : )
  }
  __art_n='\#'
  \builtin export -n PROMPT_COMMAND
  PROMPT_COMMAND='{ [[ ${__art_n@P} != "${__art_l-}" ]] || __art_fg; __art_l=${__art_n@P}; } >/dev/null 2>&1'
  [[ -n ${IGNOREEOF+x} ]] || IGNOREEOF=10
fi
"#;

/// Every session alive in this process, for the runtime's shutdown hook.
static LIVE: parking_lot::Mutex<Vec<Weak<ShellSession>>> = parking_lot::Mutex::new(Vec::new());

/// Runtime shutdown: kill every session's processes and reap its shell (the sessions' ptys
/// are registered with the runtime that stops, so they could not be used afterwards anyway).
pub(super) fn shutdown_all(_timeout: Duration) {
    let live: Vec<Arc<ShellSession>> = LIVE.lock().drain(..).filter_map(|w| w.upgrade()).collect();
    for s in live {
        s.shut_down.store(true, Ordering::Release);
        // A `close` already waiting on the child owns it; it finishes the job.
        let child = s.child.try_lock().ok().and_then(|mut c| c.take());
        Leftover {
            target: s.target.clone(),
            child,
            dir: s.dir.clone(),
        }
        .clean_up();
    }
}

impl ShellSession {
    /// Start bash in a new pty; returns the session and the startup output.
    pub async fn start(opts: &SessionOptions) -> Result<(Arc<ShellSession>, String)> {
        check_options(opts).await?;
        let (master, slave) = open_pty(opts.size).map_err(|e| io_err("cannot open a pty", e))?;
        let id = format!("{}-{:016x}", std::process::id(), fastrand::u64(..));
        let dir = std::env::temp_dir().join(format!("agent-runtime-shell-{id}"));
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_err(&format!("cannot create {}", dir.display()), e))?;
        // The user's DEBUG trap lives here between commands (see `end_line`).
        tokio::fs::write(dir.join("traps"), "")
            .await
            .map_err(|e| io_err(&format!("cannot write in {}", dir.display()), e))?;
        let mut cmd = tokio::process::Command::new("bash");
        cmd.args(["--noediting", "--norc", "--noprofile", "-i"])
            .envs(&opts.env)
            .env("PS1", "")
            .env("PS2", "")
            .env("PS0", "")
            .env("PROMPT_COMMAND", "")
            .env("HISTFILE", "")
            .env(TAG_VAR, &id)
            .kill_on_drop(true);
        if let Some(cwd) = &opts.cwd {
            cmd.current_dir(cwd);
        }
        let dup = |fd: &OwnedFd| fd.try_clone().map(Stdio::from);
        cmd.stdin(dup(&slave).map_err(|e| io_err("dup", e))?)
            .stdout(dup(&slave).map_err(|e| io_err("dup", e))?)
            .stderr(Stdio::from(slave));
        // SAFETY: the closure runs in the forked child before exec and only makes raw system
        // calls (setsid, ioctl, getpid, prctl), all async-signal-safe; it touches no Rust state.
        unsafe {
            cmd.pre_exec(|| {
                let me = rustix::process::setsid()?;
                rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
                // Orphans of the session (double-forked daemons) become the shell's children:
                // it reaps them, and they stay in the tree that `close` kills. Linux only:
                // elsewhere they go to init and only the process group reaches them.
                #[cfg(target_os = "linux")]
                rustix::process::set_child_subreaper(Some(me))?;
                #[cfg(not(target_os = "linux"))]
                let _ = me;
                Ok(())
            });
        }
        let spawned = cmd.spawn();
        drop(cmd); // our copies of the slave: EOF/EIO on the master now means bash exited
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&dir).await;
                return Err(io_err("cannot start bash", e));
            }
        };
        let pid = child.id().map(|p| p as i32).unwrap_or_default();
        // SAFETY: `master` is an open OwnedFd moved into the AsyncFd, which owns it until drop,
        // so its raw descriptor stays valid and the same for the AsyncFd's whole lifetime.
        let master =
            unsafe { AsyncFd::register(master) }.map_err(|e| io_err("cannot poll the pty", e))?;
        let (interrupt_tx, _) = watch::channel(0u64);
        let nonce = format!("{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff);
        let session = Arc::new(ShellSession {
            master,
            pid,
            child: tokio::sync::Mutex::new(Some(child)),
            state: tokio::sync::Mutex::new(State {
                buf: Vec::with_capacity(1 << 16),
                cut: None,
                cap: DEFAULT_MAX_OUTPUT,
                seen: 0,
                expect_from: 0,
                broken: None,
                marker_prefix: format!("\x1eART{nonce}_").into_bytes(),
                scan: 0,
                seq: 0,
                pending: None,
                exit: None,
                closed: false,
            }),
            interrupt_tx,
            nonce,
            dir,
            target: Target {
                leader: pid,
                sid: Some(pid),
                pgid: None,
                tag: Some(format!("{TAG_VAR}={id}")),
                // Holders of the pty are found through the tag and the tree; scanning every
                // process's fds for it would cost more than it finds.
                files: Vec::new(),
            },
            shut_down: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            identity: parking_lot::Mutex::new(None),
        });
        {
            let mut live = LIVE.lock();
            live.retain(|w| w.strong_count() > 0);
            live.push(Arc::downgrade(&session));
        }
        crate::core::runtime::on_shutdown(
            crate::core::runtime::ShutdownPhase::StopServices,
            shutdown_all,
        );
        let mut init = String::from("set +o history; unset HISTFILE; stty -echo 2>/dev/null\n");
        for f in &opts.startup_source {
            init.push_str(&format!("source {}\n", shell_quote(f)));
        }
        // Startup files often set prompts; reset them after.
        init.push_str("PS1=''; PS2=''; PS0=''; PROMPT_COMMAND=''\n");
        init.push_str(TAKE_BACK_TERMINAL);
        let run = RunOptions {
            timeout: Some(opts.startup_timeout),
            ..Default::default()
        };
        match session.run(&init, &run).await {
            Ok(out) if out.status == Status::Completed => {
                let id = identity(pid).await;
                *session.identity.lock() = id;
                Ok((session, out.output))
            }
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

    pub(super) fn marker(&self, seq: u64) -> Vec<u8> {
        let mut m = vec![MARK];
        m.extend_from_slice(format!("ART{}_{}_", self.nonce, seq).as_bytes());
        m
    }

    /// The end of every line we send: print the marker carrying `$?` (and `S` when the
    /// in-shell syntax check failed) to the terminal itself — a command's `exec >/dev/null`
    /// cannot swallow it — then save and switch off what would show our own commands in the
    /// output: the user's DEBUG trap, xtrace and verbose (restored by [`Self::restore_prefix`]
    /// before the next command), and line editing (a shell started by `exec bash` has it on).
    /// Saving happens once per command: an interrupt may send several of these lines.
    /// All inside a group whose output is discarded, so a DEBUG trap firing on these commands,
    /// or their xtrace lines, print nothing. `$?` survives the DEBUG trap.
    pub(super) fn end_line(&self, seq: u64) -> String {
        format!(
            "{{ \\builtin printf '\\036ART{}_{}_%d%s\\036' \"$?\" \"${{__art_syn-}}\" >/dev/tty; \
             \\builtin unset __art_syn; if [[ -z ${{__art_saved-}} ]]; then \
             \\builtin trap -p DEBUG >{traps}; \\builtin trap - DEBUG; __art_f=$-; __art_saved=1; fi; \
             \\builtin set +xv +o emacs +o vi; }} >/dev/null 2>&1\n",
            self.nonce,
            seq,
            traps = self.traps_file()
        )
    }

    /// Put back the user's DEBUG trap, xtrace and verbose saved by [`Self::end_line`], silently
    /// (xtrace comes on last; the trap's first firing is discarded with the group's output).
    pub(super) fn restore_prefix(&self) -> String {
        format!(
            "{{ \\builtin unset __art_saved; \\builtin source {}; \
             case ${{__art_f-}} in *x*) \\builtin set -x;; esac; \
             case ${{__art_f-}} in *v*) \\builtin set -v;; esac; }} >/dev/null 2>&1; ",
            self.traps_file()
        )
    }

    fn traps_file(&self) -> String {
        shell_quote(&self.dir.join("traps").to_string_lossy())
    }

    /// Write `data` to the terminal, waiting (asynchronously, at most 5 s) while its input
    /// queue is full — a foreground program that does not read its input.
    pub(super) async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        let end = tokio::time::Instant::now() + WRITE_TIMEOUT;
        while !data.is_empty() {
            let Ok(ready) = tokio::time::timeout_at(end, self.master.writable()).await else {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the terminal did not take input for {}s (the program in the foreground \
                         does not read it)",
                        WRITE_TIMEOUT.as_secs()
                    ),
                ));
            };
            let mut guard = ready?;
            match guard.try_io(|fd| rustix::io::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }

    /// Read whatever is available now without waiting. Returns false at EOF.
    pub(super) fn drain_now(&self, st: &mut State) -> bool {
        // Bounded, so a program printing as fast as we read cannot keep a worker here.
        for _ in 0..64 {
            st.bound();
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
        true
    }

    /// Wait for more output. Returns false at EOF (the shell exited).
    pub(super) async fn fill(&self, st: &mut State) -> bool {
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
    /// A marker cut short (its printf interrupted by a late SIGINT: the shell prints the rest
    /// of its buffer with the next line's marker) is skipped, never read as an exit code.
    pub(super) fn find_marker(st: &mut State, marker: &[u8]) -> Option<(usize, usize, i32, bool)> {
        let mut from = st.scan.min(st.buf.len());
        loop {
            let Some(i) = find(&st.buf[from..], marker).map(|i| i + from) else {
                st.scan = st.buf.len().saturating_sub(marker.len());
                return None;
            };
            let digits_at = i + marker.len();
            let Some(j) = memchr::memchr(MARK, &st.buf[digits_at..]).map(|j| j + digits_at) else {
                st.scan = i; // the rest of the marker has not arrived yet
                return None;
            };
            // The MARK found opens another marker: this one was cut short.
            if st.buf[j..].starts_with(&st.marker_prefix) {
                from = j;
                continue;
            }
            let text = std::str::from_utf8(&st.buf[digits_at..j]).unwrap_or_default();
            let (text, syntax) = match text.strip_suffix('S') {
                Some(t) => (t, true),
                None => (text, false),
            };
            match text.parse::<i32>() {
                Ok(code) if text.bytes().all(|b| b.is_ascii_digit()) => {
                    return Some((i, j + 1, code, syntax))
                }
                _ => from = j,
            }
        }
    }

    /// Remove complete markers of earlier lines (an interrupt's extra resync lines answer
    /// late) from `buf`: they are never output.
    fn strip_stray_markers(buf: &mut Vec<u8>, cut: &mut Option<Cut>, prefix: &[u8]) {
        let mut from = 0;
        while let Some(i) = find(&buf[from..], prefix).map(|i| i + from) {
            let body = i + prefix.len();
            let close = buf[body..]
                .iter()
                .take(24)
                .position(|b| *b == MARK)
                .map(|j| body + j);
            let Some(k) = close else {
                from = body;
                continue;
            };
            buf.drain(i..=k);
            let n = k + 1 - i;
            if let Some(c) = cut.as_mut().filter(|c| c.at > i) {
                c.at = c.at.saturating_sub(n).max(i);
            }
            from = i;
        }
    }

    /// Take `buf[..upto]` as output and drop `buf[..consume]`.
    pub(super) fn take(st: &mut State, upto: usize, consume: usize) -> String {
        let out = match st.cut.take() {
            // The gap lies beyond what is taken: it stays, for the rest.
            Some(c) if c.at > upto => {
                if c.at >= consume {
                    st.cut = Some(Cut {
                        at: c.at - consume,
                        ..c
                    });
                }
                clean(&st.buf[..upto])
            }
            mut cut => {
                // Exactly within the cap for what is returned (the running trim lets it
                // overshoot by a quarter).
                let rest = st.buf.split_off(upto);
                Self::strip_stray_markers(&mut st.buf, &mut cut, &st.marker_prefix);
                trim_to(&mut st.buf, &mut cut, st.cap);
                let out = render(&st.buf, st.buf.len(), cut, st.cap, clean);
                st.buf = rest;
                st.buf.drain(..consume - upto);
                st.scan = 0;
                st.seen = 0;
                st.expect_from = 0;
                return out;
            }
        };
        st.buf.drain(..consume);
        st.scan = 0;
        st.seen = 0;
        st.expect_from = 0;
        out
    }

    /// Whether the process leading the session now runs another bash command line than the
    /// shell we started (`exec bash ...` in a command), while holding the terminal itself:
    /// then it reads our lines, but the marker of the running command will never come.
    pub(super) async fn shell_was_replaced(&self) -> bool {
        let Some((cmdline, exe)) = self.identity.lock().clone() else {
            return false;
        };
        if !self.foreground_is_shell() {
            return false;
        }
        match identity(self.pid).await {
            Some((c, e)) if e == exe && c != cmdline => {
                *self.identity.lock() = Some((c, e));
                true
            }
            _ => false,
        }
    }

    pub(super) async fn refresh_identity(&self) {
        if let Some(id) = identity(self.pid).await {
            *self.identity.lock() = Some(id);
        }
    }

    /// Whether commands can still run in this session.
    pub fn is_alive(&self) -> bool {
        !self.dead.load(Ordering::Acquire) && !self.shut_down.load(Ordering::Acquire)
    }

    /// The session cannot be used any more (`why`): kill everything in it and reap the shell.
    pub(super) async fn give_up(&self, st: &mut State, why: String) {
        st.broken = Some(why);
        st.pending = None;
        self.dead.store(true, Ordering::Release);
        self.target.kill(Duration::from_millis(500)).await;
        if let Some(mut child) = self.child.lock().await.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
    }

    /// The shell exited (the pty reached EOF): its output and exit code. A shell killed by a
    /// runtime shutdown (which reaped it) is reported as that, not as an exit of its own.
    pub(super) async fn exited_output(&self, st: &mut State) -> Result<RunOutput> {
        self.dead.store(true, Ordering::Release);
        let code = self.reap().await;
        st.pending = None;
        if self.shut_down.load(Ordering::Acquire) {
            return Err(Error::tool(
                "shell.session",
                "the shell session was closed by a runtime shutdown; create a new session",
            ));
        }
        match code {
            Some(c) => st.exit = Some(c),
            None => st.broken = Some("the shell exited (its exit status is unknown)".into()),
        }
        let len = st.buf.len();
        Ok(RunOutput {
            output: Self::take(st, len, len),
            exit_code: code,
            status: Status::Exited,
            expect_string: String::new(),
            interrupted: false,
        })
    }

    /// The shell's exit code once it has exited (it closed the pty: give it a moment); `None`
    /// if it cannot be known (reaped elsewhere, or not gone yet).
    async fn reap(&self) -> Option<i32> {
        let mut guard = self.child.lock().await;
        let child = guard.as_mut()?;
        match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            Ok(Ok(st)) => {
                use std::os::unix::process::ExitStatusExt;
                st.code().or_else(|| st.signal().map(|s| 128 + s))
            }
            _ => None,
        }
    }

    pub(super) fn usable(&self, st: &State) -> Result<()> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(Error::tool(
                "shell.session",
                "the shell session was closed by a runtime shutdown; create a new session",
            ));
        }
        if st.closed {
            return Err(Error::tool("shell.session", "the shell session is closed"));
        }
        if let Some(why) = &st.broken {
            return Err(Error::tool(
                "shell.session",
                format!("the shell of this session was closed: {why}; create a new session"),
            ));
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

    /// Kill the shell and everything it started (setsid daemons included), reap it, remove
    /// its files. Idempotent.
    pub async fn close(&self) {
        self.interrupt_tx.send_modify(|g| *g += 1);
        let mut st = self.state.lock().await;
        st.closed = true;
        self.dead.store(true, Ordering::Release);
        let mut child = self.child.lock().await;
        if child.is_some() {
            self.target.kill(Duration::from_millis(500)).await;
        }
        if let Some(mut child) = child.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        let _ = tokio::fs::remove_dir_all(&self.dir).await;
    }
}

impl Drop for ShellSession {
    fn drop(&mut self) {
        // Not closed: still leave nothing behind, without blocking the dropping thread.
        let child = self.child.get_mut().take();
        if child.is_some() {
            hand_off(Leftover {
                target: self.target.clone(),
                child,
                dir: self.dir.clone(),
            });
        }
    }
}

/// /proc/PID/cmdline and the target of /proc/PID/exe.
async fn identity(pid: i32) -> Option<(Vec<u8>, PathBuf)> {
    let cmdline = tokio::fs::read(format!("/proc/{pid}/cmdline")).await.ok()?;
    let exe = tokio::fs::read_link(format!("/proc/{pid}/exe"))
        .await
        .ok()?;
    Some((cmdline, exe))
}
