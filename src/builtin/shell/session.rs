//! One persistent bash in a pty: starting, reading, closing.

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use super::options::{RunOptions, SessionOptions, Status};
use super::proc::kill_tree;
use super::pty::open_pty;
use super::text::{clean, find, shell_quote};
use super::{io_err, RunOutput};
use crate::core::{Error, Result};

pub(super) const MARK: u8 = 0x1e;
/// While idle, keep at most this much unread output of background jobs.
pub(super) const IDLE_BUFFER_CAP: usize = 8 << 20;

pub(super) struct State {
    pub(super) buf: Vec<u8>,
    /// Everything before this offset was already searched for the pending marker.
    pub(super) scan: usize,
    pub(super) seq: u64,
    /// Sequence number of a command whose marker has not arrived yet.
    pub(super) pending: Option<u64>,
    pub(super) exit: Option<i32>,
    pub(super) closed: bool,
}

/// One persistent bash in a pty.
pub struct ShellSession {
    pub(super) master: AsyncFd<OwnedFd>,
    pub(super) pid: i32,
    pub(super) child: parking_lot::Mutex<Option<tokio::process::Child>>,
    pub(super) state: tokio::sync::Mutex<State>,
    pub(super) interrupt_tx: watch::Sender<u64>,
    pub(super) nonce: String,
    pub(super) dir: PathBuf,
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

    pub(super) fn marker(&self, seq: u64) -> Vec<u8> {
        let mut m = vec![MARK];
        m.extend_from_slice(format!("ART{}_{}_", self.nonce, seq).as_bytes());
        m
    }

    pub(super) fn marker_line(&self, seq: u64) -> String {
        format!(
            "builtin printf '\\036ART{}_{}_%d\\036' \"$?\"\n",
            self.nonce, seq
        )
    }

    pub(super) fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
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
    pub(super) fn drain_now(&self, st: &mut State) -> bool {
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
    pub(super) fn find_marker(st: &mut State, marker: &[u8]) -> Option<(usize, usize, i32, bool)> {
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
    pub(super) fn take(st: &mut State, upto: usize, consume: usize) -> String {
        let out = clean(&st.buf[..upto]);
        st.buf.drain(..consume);
        st.scan = 0;
        out
    }

    pub(super) fn exited_output(&self, st: &mut State) -> RunOutput {
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

    pub(super) fn usable(&self, st: &State) -> Result<()> {
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
