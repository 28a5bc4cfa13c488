//! One worker process and its threads: it runs in its own process group; one thread reads
//! its replies, one forwards its stderr (keeping the last lines for crash reports), and one
//! waits for the process itself to end — by `waitid`, not by the end of its pipes, which a
//! process it forked may hold — then kills the group, reaps it and fails its calls.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Weak};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use rustc_hash::FxHashMap as HashMap;
use serde_json::Value;
use tokio::net::unix::pipe;
use tokio::sync::{oneshot, Notify};

use super::config::PoolConfig;
use super::pool::{Inner, Pool};
use super::protocol::{self, RemoteException, Reply};
use crate::core::{runtime, Error, Opaque, ProgressSink, Result};

/// How many stderr lines a crash report keeps.
const TAIL_LINES: usize = 40;

/// Longest stderr line kept whole (longer ones are forwarded and kept in pieces).
const LINE_MAX: usize = 16 * 1024;

/// How long a worker that closed its reply pipe may take to exit before it is killed.
const EXIT_AFTER_EOF: Duration = Duration::from_secs(2);

/// How long the end of a worker waits for its reader and stderr threads to drain the pipes.
const DRAIN: Duration = Duration::from_millis(500);

pub(super) struct Pending {
    pub tx: oneshot::Sender<Result<Value>>,
    pub progress: Option<ProgressSink>,
    pub tool: Arc<str>,
}

#[derive(Default)]
pub(super) struct Pendings {
    pub map: HashMap<u64, Pending>,
    /// Set (with the map drained) once the worker ended: nothing may be added after.
    pub closed: bool,
}

struct Proc {
    child: Option<Child>,
    /// The process ended (seen by `waitid` without reaping it).
    exited: bool,
    reaped: bool,
}

pub(super) struct Worker {
    pub key: u64,
    pub pid: u32,
    pub config_gen: u64,
    /// The pool epoch it was started in (shutdown starts a new one).
    pub epoch: u64,
    writer: tokio::sync::Mutex<Option<pipe::Sender>>,
    pub pending: Mutex<Pendings>,
    /// Notified whenever a pending call is settled (answered or failed).
    pub settled: Notify,
    pings: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    proc_: Mutex<Proc>,
    proc_changed: Condvar,
    kill_reason: Mutex<Option<String>>,
    /// Killed or ending: never handed a new call.
    pub dying: AtomicBool,
    /// Abandoned async calls that ignored their cancellation (see `cancel.rs`).
    pub stuck: AtomicUsize,
    /// The reply stream ended cleanly (between frames).
    eof: AtomicBool,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    ready: Mutex<Option<oneshot::Sender<()>>>,
    /// Set when the worker ended; what a start failure reports.
    pub crash: Mutex<Option<Error>>,
    /// The thread that ends the worker; set to true (and notified) once it is done.
    pub finished: Mutex<bool>,
    pub finished_cv: Condvar,
}

impl Worker {
    /// Kill the whole process group (SIGKILL). Safe against pid reuse: the process is reaped
    /// only under `proc_`, so while `reaped` is false the pid (= pgid) is still ours.
    pub fn kill(&self, reason: impl Into<String>) {
        self.dying.store(true, Ordering::Release);
        {
            let mut r = self.kill_reason.lock();
            if r.is_none() {
                *r = Some(reason.into());
            }
        }
        let p = self.proc_.lock();
        if !p.reaped {
            killpg(self.pid);
        }
    }

    pub fn kill_reason(&self) -> Option<String> {
        self.kill_reason.lock().clone()
    }

    pub async fn write(&self, frame: &[u8]) -> std::io::Result<()> {
        let g = self.writer.lock().await;
        let Some(s) = g.as_ref() else {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        };
        let mut off = 0;
        while off < frame.len() {
            match s.try_write(&frame[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => s.writable().await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Close the worker's stdin: it finishes its calls and exits.
    pub async fn close_stdin(&self) {
        self.writer.lock().await.take();
    }

    /// Whether the worker's event loop answers within `within`.
    pub async fn ping(&self, within: Duration) -> bool {
        let id = super::pool::next_id();
        let (tx, rx) = oneshot::channel();
        self.pings.lock().insert(id, tx);
        let answered = match protocol::encode(&protocol::Request::Ping { id }) {
            Ok(frame) if self.write(&frame).await.is_ok() => {
                matches!(tokio::time::timeout(within, rx).await, Ok(Ok(())))
            }
            _ => false,
        };
        self.pings.lock().remove(&id);
        answered
    }

    pub fn tail(&self) -> String {
        self.stderr_tail
            .lock()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Settle call `id` (if still pending) with `r`.
    fn settle(&self, id: u64, r: impl FnOnce(&Pending) -> Result<Value>) {
        let p = self.pending.lock().map.remove(&id);
        if let Some(p) = p {
            let v = r(&p);
            let _ = p.tx.send(v);
            self.settled.notify_waiters();
        }
    }

    /// Wait (blocking; not on a tokio worker) until the worker ended or `timeout` passed.
    pub fn wait_finished(&self, timeout: Duration) -> bool {
        let mut f = self.finished.lock();
        if !*f {
            self.finished_cv.wait_for(&mut f, timeout);
        }
        *f
    }
}

pub(super) fn killpg(pid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pid) {
        // SAFETY: plain syscall on a process group we created (see `Worker::kill` for why the
        // id cannot have been reused).
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

/// Resident set size of `pid` in KiB, from /proc. A file read: never call it under a lock
/// that tokio tasks take.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGINT => "SIGINT",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}

/// Start a worker process and its threads; the receiver fires when it reports ready.
pub(super) fn spawn(
    pool: &Pool,
    cfg: &PoolConfig,
    config_gen: u64,
    epoch: u64,
) -> Result<(Arc<Worker>, oneshot::Receiver<()>)> {
    let program = cfg.program.as_ref().ok_or_else(|| {
        Error::Runtime(
            "no worker interpreter configured for isolated tools (set the pool's program)".into(),
        )
    })?;
    cfg.validate().map_err(Error::Runtime)?;
    if let Some(d) = &cfg.cwd {
        // Otherwise exec's ENOENT would blame the program.
        if !d.is_dir() {
            return Err(Error::Runtime(format!(
                "cannot start isolation worker: its working directory {} does not exist or is not a directory",
                d.display()
            )));
        }
    }
    let mut cmd = Command::new(program);
    cmd.args(&cfg.args)
        .envs(cfg.env.iter().map(|(k, v)| (k, v)))
        .env("AGENT_RUNTIME_WORKER", "1")
        .env("AGENT_RUNTIME_WORKER_PRELOAD", cfg.preload.join(","))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so killing it also kills whatever it started.
        .process_group(0);
    if let Some(d) = &cfg.cwd {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().map_err(|e| {
        let cwd = cfg
            .cwd
            .as_ref()
            .map(|d| format!(" in {}", d.display()))
            .unwrap_or_default();
        Error::Runtime(format!(
            "cannot start isolation worker '{}'{cwd}: {e}",
            program.display()
        ))
    })?;
    let pid = child.id();
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        killpg(pid);
        let _ = child.wait();
        return Err(Error::Runtime("worker pipes missing".into()));
    };
    let sender = {
        let h = runtime::handle();
        let _g = h.enter();
        pipe::Sender::from_owned_fd(OwnedFd::from(stdin))
    };
    let sender = match sender {
        Ok(s) => s,
        Err(e) => {
            killpg(pid);
            let _ = child.wait();
            return Err(Error::Runtime(format!("worker stdin pipe: {e}")));
        }
    };
    let (ready_tx, ready_rx) = oneshot::channel();
    let w = Arc::new(Worker {
        key: super::pool::next_id(),
        pid,
        config_gen,
        epoch,
        writer: tokio::sync::Mutex::new(Some(sender)),
        pending: Mutex::new(Pendings::default()),
        settled: Notify::new(),
        pings: Mutex::new(HashMap::default()),
        proc_: Mutex::new(Proc {
            child: Some(child),
            exited: false,
            reaped: false,
        }),
        proc_changed: Condvar::new(),
        kill_reason: Mutex::new(None),
        dying: AtomicBool::new(false),
        stuck: AtomicUsize::new(0),
        eof: AtomicBool::new(false),
        stderr_tail: Arc::new(Mutex::new(VecDeque::new())),
        ready: Mutex::new(Some(ready_tx)),
        crash: Mutex::new(None),
        finished: Mutex::new(false),
        finished_cv: Condvar::new(),
    });
    // Each pipe thread holds a sender: all dropped = both pipes drained.
    let (drained_tx, drained_rx) = mpsc::channel::<()>();
    let started = (|| {
        let tail = w.stderr_tail.clone();
        let tx = drained_tx.clone();
        std::thread::Builder::new()
            .name(format!("ar-worker-{pid}-err"))
            .spawn(move || {
                forward_stderr(stderr, tail);
                drop(tx);
            })?;
        let w2 = w.clone();
        let tx = drained_tx;
        std::thread::Builder::new()
            .name(format!("ar-worker-{pid}"))
            .spawn(move || {
                read_replies(&w2, stdout);
                drop(tx);
            })?;
        let w2 = w.clone();
        let pool = Arc::downgrade(&pool.0);
        std::thread::Builder::new()
            .name(format!("ar-worker-{pid}-wait"))
            .spawn(move || end_worker(w2, drained_rx, pool))
    })();
    if let Err(e) = started {
        w.kill("thread start failed");
        // No waiter thread: reap here (the pipe threads end with the process).
        let mut p = w.proc_.lock();
        if let Some(c) = p.child.as_mut() {
            let _ = c.wait();
        }
        p.reaped = true;
        return Err(Error::Runtime(format!("cannot start a thread: {e}")));
    }
    Ok((w, ready_rx))
}

/// Forward the worker's stderr line by line (a line longer than [`LINE_MAX`] goes out in
/// pieces: a worker printing without newlines cannot make the host buffer it all), keeping
/// the last [`TAIL_LINES`] lines for crash reports.
fn forward_stderr(stderr: std::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut r = BufReader::new(stderr);
    let mut line = Vec::new();
    let emit = |line: &mut Vec<u8>| {
        // The worker's prints and logs belong on the host's stderr, as in-process ones.
        let _ = std::io::stderr().write_all(line);
        let text = String::from_utf8_lossy(line).trim_end().to_string();
        line.clear();
        let mut t = tail.lock();
        if t.len() == TAIL_LINES {
            t.pop_front();
        }
        t.push_back(text);
    };
    loop {
        let n = match std::io::BufRead::fill_buf(&mut r) {
            Ok([]) => break,
            Ok(chunk) => {
                for piece in chunk.split_inclusive(|b| *b == b'\n') {
                    let mut piece = piece;
                    while !piece.is_empty() {
                        let take = piece.len().min(LINE_MAX - line.len());
                        line.extend_from_slice(&piece[..take]);
                        piece = &piece[take..];
                        if line.len() == LINE_MAX || line.ends_with(b"\n") {
                            emit(&mut line);
                        }
                    }
                }
                chunk.len()
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        std::io::BufRead::consume(&mut r, n);
    }
    if !line.is_empty() {
        emit(&mut line);
    }
}

/// Deliver the worker's replies until its stream ends. A broken stream kills the worker;
/// [`end_worker`] then fails its calls.
fn read_replies(w: &Worker, stdout: std::process::ChildStdout) {
    let mut r = BufReader::with_capacity(64 * 1024, stdout);
    let mut buf = Vec::new();
    loop {
        match protocol::read_frame(&mut r, &mut buf) {
            Ok(Some(())) => {}
            Ok(None) => {
                w.eof.store(true, Ordering::Release);
                // A worker exits right after closing its end; one that lingers is killed.
                let mut p = w.proc_.lock();
                if !p.exited {
                    w.proc_changed.wait_for(&mut p, EXIT_AFTER_EOF);
                }
                let linger = !p.exited;
                drop(p);
                if linger {
                    w.kill("closed its reply pipe but did not exit");
                }
                return;
            }
            Err(e) => {
                w.kill(format!("broken reply stream: {e}"));
                return;
            }
        }
        match protocol::decode(&buf) {
            Ok(reply) => deliver(w, reply),
            Err(e) => match protocol::reply_id(&buf) {
                // The framing is intact: fail that call only.
                Some(id) => w.settle(id, |p| {
                    if e.to_string().contains("recursion limit") {
                        Err(Error::conversion(
                            "result",
                            format!("the result of '{}' is nested too deeply ({e})", p.tool),
                        ))
                    } else {
                        Err(Error::tool(
                            &*p.tool,
                            format!("the worker's reply could not be decoded: {e}"),
                        ))
                    }
                }),
                None => {
                    w.kill(format!("undecodable reply frame: {e}"));
                    return;
                }
            },
        }
    }
}

fn deliver(w: &Worker, reply: Reply) {
    match reply {
        Reply::Ready { .. } => {
            if let Some(tx) = w.ready.lock().take() {
                let _ = tx.send(());
            }
        }
        Reply::Ok { id, value } => w.settle(id, |_| Ok(value)),
        Reply::Err {
            id,
            type_name,
            module,
            message,
            traceback,
            args,
        } => w.settle(id, |_| {
            let original = match (module, args) {
                (Some(module), Some(args)) => Some(Opaque(Arc::new(RemoteException {
                    module,
                    qualname: type_name.clone(),
                    args,
                }))),
                _ => None,
            };
            Err(Error::Python {
                type_name,
                message,
                traceback,
                original,
            })
        }),
        Reply::Conv { id, path, message } => {
            w.settle(id, |_| Err(Error::conversion(path, message)))
        }
        Reply::Pong { id } => {
            if let Some(tx) = w.pings.lock().remove(&id) {
                let _ = tx.send(());
            }
        }
        Reply::Progress {
            id,
            done,
            total,
            message,
        } => {
            let sink = w
                .pending
                .lock()
                .map
                .get(&id)
                .and_then(|p| p.progress.clone());
            if let Some(s) = sink {
                s(&crate::core::Progress {
                    done,
                    total,
                    message,
                });
            }
        }
    }
}

/// Block until `pid` has exited, leaving it unreaped (a zombie keeps its pid and group ours).
fn wait_exit(pid: u32) {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let opts = rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOWAIT;
    loop {
        match rustix::process::waitid(rustix::process::WaitId::Pid(pid), opts) {
            Err(rustix::io::Errno::INTR) => continue,
            // Exited, or ECHILD (cannot happen: only this thread reaps it).
            _ => return,
        }
    }
}

/// The worker's own thread: waits for the process to end, kills what is left of its group,
/// lets the pipe threads deliver what was written, reaps it and fails its calls.
fn end_worker(w: Arc<Worker>, drained: mpsc::Receiver<()>, pool: Weak<Inner>) {
    wait_exit(w.pid);
    w.dying.store(true, Ordering::Release);
    {
        let mut p = w.proc_.lock();
        p.exited = true;
        // Whatever it forked (holding the pipes or not) goes with it.
        killpg(w.pid);
    }
    w.proc_changed.notify_all();
    // Replies written before the end still count. A descendant that left the group and holds
    // a pipe does not delay the end beyond DRAIN (its thread ends when the pipe closes).
    let _ = drained.recv_timeout(DRAIN);
    let status = {
        let mut p = w.proc_.lock();
        let st = p.child.as_mut().and_then(|c| c.wait().ok());
        p.reaped = true;
        p.child = None;
        st
    };
    let reason = w.kill_reason();
    let (exit_code, signal) = match status {
        Some(s) => (s.code(), s.signal()),
        None => (None, None),
    };
    let pending: Vec<Pending> = {
        let mut p = w.pending.lock();
        p.closed = true;
        p.map.drain().map(|(_, p)| p).collect()
    };
    let retired = w.eof.load(Ordering::Acquire) && reason.is_none() && exit_code == Some(0);
    let detail = match (&reason, signal, exit_code) {
        (Some(r), _, _) => r.clone(),
        (None, Some(s), _) => format!("killed by signal {s} ({})", signal_name(s)),
        (None, None, Some(c)) => format!("exited with code {c}"),
        (None, None, None) => "ended with an unknown status".into(),
    };
    let crash = |tool: &str| Error::WorkerCrashed {
        tool: tool.to_string(),
        detail: detail.clone(),
        exit_code,
        signal,
        stderr_tail: w.tail(),
    };
    *w.crash.lock() = Some(crash(""));
    w.ready.lock().take();
    w.pings.lock().clear();
    let had_pending = !pending.is_empty();
    for p in pending {
        let _ = p.tx.send(Err(crash(&p.tool)));
    }
    w.settled.notify_waiters();
    if let Some(pool) = pool.upgrade() {
        Pool(pool).worker_ended(&w, !retired || had_pending, &detail, retired);
    }
    *w.finished.lock() = true;
    w.finished_cv.notify_all();
}
