//! The worker-process pool: long-lived worker processes, each in its own process group, that
//! run isolated tools. One thread per worker reads its replies (and reaps it); one forwards
//! its stderr (keeping the last lines for crash reports); one monitor thread per pool enforces
//! the memory limit, idle shrink and retirement.
//!
//! Scheduling: a sync call takes a worker for itself (it runs on the worker's main thread, and
//! cancelling or timing it out kills the worker, which must not take other calls down with
//! it); async calls share a worker (up to `max_async_per_worker`) and are cancelled with a
//! cancel frame first, killing the worker only if the call does not stop within
//! `cancel_grace`.

use std::collections::VecDeque;
use std::io::{BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use parking_lot::{Condvar, Mutex};
use rustc_hash::FxHashMap as HashMap;
use serde::Serialize;
use serde_json::Value;
use tokio::net::unix::pipe;
use tokio::sync::{oneshot, Notify};

use super::protocol::{self, RemoteException, Reply, Request};
use crate::core::{runtime, CallContext, Error, Opaque, ProgressSink, Result};

/// How many stderr lines a crash report keeps.
const TAIL_LINES: usize = 40;

/// Pool settings. Changes apply to workers started afterwards; running workers are retired
/// once idle.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// The worker's program (the Python interpreter). Required.
    pub program: Option<PathBuf>,
    /// Arguments that make `program` run the worker main (`-m agent_runtime._worker`).
    pub args: Vec<String>,
    /// Extra environment variables (on top of the host's environment).
    pub env: Vec<(String, String)>,
    /// Working directory of workers (default: the host's).
    pub cwd: Option<PathBuf>,
    /// Maximum number of workers.
    pub size: usize,
    /// Workers kept alive (and started ahead of demand when a tool is registered).
    pub min_workers: usize,
    /// Retire a worker after this many calls.
    pub max_calls: Option<u64>,
    /// Hard memory limit: a worker whose RSS exceeds this during a call is killed and the call
    /// fails with `WorkerCrashed`.
    pub max_rss_mb: Option<u64>,
    /// Soft limit: a worker over this RSS after a call is retired (recycled).
    pub recycle_rss_mb: Option<u64>,
    /// Retire workers idle this long (down to `min_workers`).
    pub idle_timeout: Option<Duration>,
    /// Async calls in flight on one worker.
    pub max_async_per_worker: usize,
    /// How long a new worker may take to import its modules and report ready.
    pub start_timeout: Duration,
    /// How long a cancelled async call may take to stop before its worker is killed.
    pub cancel_grace: Duration,
    /// Modules every new worker imports before reporting ready (warm start).
    pub preload: Vec<String>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            program: None,
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            size: std::thread::available_parallelism().map_or(2, |n| n.get()),
            min_workers: 1,
            max_calls: None,
            max_rss_mb: None,
            recycle_rss_mb: None,
            idle_timeout: Some(Duration::from_secs(300)),
            max_async_per_worker: 64,
            start_timeout: Duration::from_secs(60),
            cancel_grace: Duration::from_secs(1),
            preload: Vec::new(),
        }
    }
}

/// What runs in the worker: `module.qualname`.
#[derive(Debug, Clone)]
pub struct Target {
    pub module: String,
    pub qualname: String,
    pub is_async: bool,
    pub context_param: Option<String>,
}

/// One worker as `stats()` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStats {
    pub pid: u32,
    pub calls: u64,
    pub in_flight: usize,
    pub exclusive: bool,
    pub retiring: bool,
    pub rss_kb: Option<u64>,
}

/// Pool counters and workers.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStats {
    pub workers: Vec<WorkerStats>,
    pub starting: usize,
    pub started: u64,
    pub crashed: u64,
    pub recycled: u64,
    pub calls: u64,
}

struct Pending {
    tx: oneshot::Sender<Result<Value>>,
    progress: Option<ProgressSink>,
    tool: Arc<str>,
}

#[derive(Default)]
struct Pendings {
    map: HashMap<u64, Pending>,
    /// Set (with the map drained) once the worker ended: nothing may be added after.
    closed: bool,
}

struct Proc {
    child: Option<Child>,
    reaped: bool,
}

struct Worker {
    key: u64,
    pid: u32,
    config_gen: u64,
    /// The pool epoch it was started in (shutdown starts a new one).
    epoch: u64,
    writer: tokio::sync::Mutex<Option<pipe::Sender>>,
    pending: Mutex<Pendings>,
    proc_: Mutex<Proc>,
    kill_reason: Mutex<Option<String>>,
    /// Killed or ending: never handed a new call.
    dying: AtomicBool,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    ready: Mutex<Option<oneshot::Sender<()>>>,
    /// Set when the worker ended; what a start failure reports.
    crash: Mutex<Option<Error>>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl Worker {
    /// Kill the whole process group (SIGKILL). Safe against pid reuse: the reader thread reaps
    /// the leader under `proc_`, so while `reaped` is false the pid (= pgid) is still ours.
    fn kill(&self, reason: impl Into<String>) {
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

    async fn write(&self, frame: &[u8]) -> std::io::Result<()> {
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

    fn tail(&self) -> String {
        self.stderr_tail
            .lock()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn killpg(pid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pid) {
        // SAFETY: plain syscall on a process group we created (see `Worker::kill` for why the
        // id cannot have been reused).
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

/// Resident set size of `pid` in KiB, from /proc.
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

struct Slot {
    w: Arc<Worker>,
    in_flight: usize,
    exclusive: bool,
    retiring: Option<Instant>,
    last_used: Instant,
    calls: u64,
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    starting: usize,
    /// Bumped by shutdown: workers still starting from before are discarded.
    epoch: u64,
    fork_gen: u64,
}

struct Inner {
    config: Mutex<(u64, Arc<PoolConfig>)>,
    state: Mutex<State>,
    freed: Notify,
    monitor: Mutex<Option<JoinHandle<()>>>,
    monitor_wake: Condvar,
    monitor_lock: Mutex<bool>,
    /// Set while `shutdown` runs: no warm starts.
    closing: AtomicBool,
    started: AtomicU64,
    crashed: AtomicU64,
    recycled: AtomicU64,
    calls: AtomicU64,
}

/// A pool of worker processes. Cheap to clone (a handle).
#[derive(Clone)]
pub struct Pool(Arc<Inner>);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Pool {
    pub fn new(config: PoolConfig) -> Self {
        Pool(Arc::new(Inner {
            config: Mutex::new((0, Arc::new(config))),
            state: Mutex::new(State {
                fork_gen: runtime::fork_generation(),
                ..State::default()
            }),
            freed: Notify::new(),
            monitor: Mutex::new(None),
            monitor_wake: Condvar::new(),
            monitor_lock: Mutex::new(false),
            closing: AtomicBool::new(false),
            started: AtomicU64::new(0),
            crashed: AtomicU64::new(0),
            recycled: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        }))
    }

    pub fn config(&self) -> Arc<PoolConfig> {
        self.0.config.lock().1.clone()
    }

    /// Replace the configuration. Idle workers started with the old one are retired now, busy
    /// ones after their calls.
    pub fn configure(&self, config: PoolConfig) -> Result<()> {
        if config.size == 0 {
            return Err(Error::Runtime(
                "isolation pool size must be at least 1".into(),
            ));
        }
        if config.max_async_per_worker == 0 {
            return Err(Error::Runtime(
                "max_async_per_worker must be at least 1".into(),
            ));
        }
        {
            let mut c = self.0.config.lock();
            if *c.1 == config {
                return Ok(());
            }
            c.0 += 1;
            c.1 = Arc::new(config);
        }
        let mut st = self.state();
        let now = Instant::now();
        for s in st.slots.iter_mut() {
            if s.retiring.is_none() {
                s.retiring = Some(now);
                if s.in_flight == 0 {
                    retire(&s.w);
                }
            }
        }
        drop(st);
        self.0.freed.notify_waiters();
        Ok(())
    }

    /// Add a module every new worker imports at start.
    pub fn add_preload(&self, module: &str) {
        let mut c = self.0.config.lock();
        if !c.1.preload.iter().any(|m| m == module) {
            let mut cfg = (*c.1).clone();
            cfg.preload.push(module.to_string());
            // Same generation: running workers import the module lazily on their first call.
            c.1 = Arc::new(cfg);
        }
    }

    fn state(&self) -> parking_lot::MutexGuard<'_, State> {
        let mut st = self.0.state.lock();
        let g = runtime::fork_generation();
        if st.fork_gen != g {
            // A forked child: the workers (and their reader threads) belong to the parent.
            std::mem::forget(std::mem::take(&mut st.slots));
            st.starting = 0;
            st.fork_gen = g;
        }
        st
    }

    /// Start workers up to `min_workers` in the background (warm start).
    pub fn warm(&self) {
        if self.0.closing.load(Ordering::Acquire) {
            return;
        }
        let cfg = self.config();
        if cfg.program.is_none() {
            return;
        }
        let need = {
            let mut st = self.state();
            let live = st
                .slots
                .iter()
                .filter(|s| s.retiring.is_none() && !s.w.dying.load(Ordering::Acquire))
                .count()
                + st.starting;
            let need = cfg.min_workers.min(cfg.size).saturating_sub(live);
            // Counted now, under the lock, so concurrent warm() calls do not overshoot.
            st.starting += need;
            (need, st.epoch)
        };
        let (need, epoch) = need;
        for _ in 0..need {
            let p = self.clone();
            runtime::handle().spawn(async move {
                if let Err(e) = p.start_worker_reserved(epoch).await {
                    log::warn!("isolation worker failed to start: {e}");
                }
            });
        }
    }

    /// Run `target` with `args` in a worker.
    pub async fn call(
        &self,
        tool: Arc<str>,
        target: &Target,
        args: &Value,
        ctx: &CallContext,
    ) -> Result<Value> {
        let exclusive = !target.is_async;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let frame = protocol::encode(&Request::Call {
            id,
            tool: &tool,
            module: &target.module,
            qualname: &target.qualname,
            is_async: target.is_async,
            context_param: target.context_param.as_deref(),
            call_id: ctx.call_id,
            args,
        })
        .map_err(|e| Error::conversion("args", e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        let mut pending = Some(Pending {
            tx,
            progress: ctx.progress.clone(),
            tool: tool.clone(),
        });
        let lease = loop {
            let lease = self.acquire(exclusive).await.map_err(|e| match e {
                // A worker that failed to start: report it against the tool being called.
                Error::WorkerCrashed {
                    detail,
                    exit_code,
                    signal,
                    stderr_tail,
                    ..
                } => Error::WorkerCrashed {
                    tool: tool.to_string(),
                    detail: format!("the worker failed to start: {detail}"),
                    exit_code,
                    signal,
                    stderr_tail,
                },
                e => e,
            })?;
            let mut p = lease.w.pending.lock();
            // A worker that ended since it was picked: pick again (the call was not sent).
            if !p.closed {
                if let Some(entry) = pending.take() {
                    p.map.insert(id, entry);
                }
                drop(p);
                break lease;
            }
        };
        let w = lease.w.clone();
        let mut guard = Abandon {
            lease: Some(lease),
            w: w.clone(),
            id,
            exclusive,
            tool: tool.clone(),
        };
        if let Err(e) = w.write(&frame).await {
            // The worker is gone or going; its reader fails the pending call with the cause.
            w.kill(format!("cannot send the call to the worker: {e}"));
        }
        let r = rx.await.unwrap_or_else(|_| {
            Err(Error::Runtime(format!(
                "worker of tool '{tool}' dropped the call"
            )))
        });
        guard.done();
        r
    }

    async fn acquire(&self, exclusive: bool) -> Result<Lease> {
        loop {
            let freed = self.0.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            let cfg = self.config();
            let start = {
                let mut st = self.state();
                let pick = st
                    .slots
                    .iter_mut()
                    .filter(|s| {
                        s.retiring.is_none() && !s.exclusive && !s.w.dying.load(Ordering::Acquire)
                    })
                    .filter(|s| {
                        if exclusive {
                            s.in_flight == 0
                        } else {
                            s.in_flight < cfg.max_async_per_worker
                        }
                    })
                    .min_by_key(|s| s.in_flight);
                if let Some(s) = pick {
                    s.in_flight += 1;
                    s.exclusive = exclusive;
                    return Ok(Lease {
                        pool: self.clone(),
                        w: s.w.clone(),
                    });
                }
                let live = st
                    .slots
                    .iter()
                    .filter(|s| s.retiring.is_none() && !s.w.dying.load(Ordering::Acquire))
                    .count();
                if live + st.starting < cfg.size {
                    st.starting += 1;
                    Some(st.epoch)
                } else {
                    None
                }
            };
            if let Some(epoch) = start {
                let p = self.clone();
                // In a task of its own: if this caller gives up, the worker still joins the pool.
                match runtime::handle()
                    .spawn(async move { p.start_worker_reserved(epoch).await })
                    .await
                {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(Error::Runtime(format!("worker start failed: {e}"))),
                }
            }
            freed.await;
        }
    }

    /// Start a worker (a `starting` slot is already counted) and add it to the pool once ready.
    async fn start_worker_reserved(&self, epoch: u64) -> Result<()> {
        let (gen, cfg) = self.0.config.lock().clone();
        // Undoes the reservation and kills the worker if this future is dropped (runtime shut
        // down) before the worker joined the pool: no orphan processes, no stale count.
        let mut guard = Starting {
            pool: self.clone(),
            epoch,
            w: None,
        };
        if self.state().epoch != epoch {
            return Err(Error::Runtime("the isolation pool was shut down".into()));
        }
        let (w, ready) = self.spawn_process(&cfg, gen, epoch)?;
        guard.w = Some(w.clone());
        let ok = tokio::time::timeout(cfg.start_timeout, ready).await;
        let mut st = self.state();
        guard.finish(&mut st);
        let result = match ok {
            Ok(Ok(())) if st.epoch == epoch => {
                st.slots.push(Slot {
                    w: w.clone(),
                    in_flight: 0,
                    exclusive: false,
                    retiring: None,
                    last_used: Instant::now(),
                    calls: 0,
                });
                self.0.started.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Ok(Ok(())) => {
                w.kill("the isolation pool was shut down");
                Err(Error::Runtime("the isolation pool was shut down".into()))
            }
            Ok(Err(_)) => Err(w.crash.lock().clone().unwrap_or_else(|| {
                Error::Runtime("isolation worker exited before it was ready".into())
            })),
            Err(_) => {
                w.kill(format!(
                    "did not report ready within {:.1}s",
                    cfg.start_timeout.as_secs_f64()
                ));
                Err(Error::WorkerCrashed {
                    tool: String::new(),
                    detail: format!(
                        "the worker did not start within {:.1}s",
                        cfg.start_timeout.as_secs_f64()
                    ),
                    exit_code: None,
                    signal: None,
                    stderr_tail: w.tail(),
                })
            }
        };
        drop(st);
        self.ensure_monitor();
        self.0.freed.notify_waiters();
        result
    }

    fn spawn_process(
        &self,
        cfg: &PoolConfig,
        config_gen: u64,
        epoch: u64,
    ) -> Result<(Arc<Worker>, oneshot::Receiver<()>)> {
        let program = cfg.program.as_ref().ok_or_else(|| {
            Error::Runtime(
                "no worker interpreter configured for isolated tools (set the pool's program)"
                    .into(),
            )
        })?;
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
            Error::Runtime(format!(
                "cannot start isolation worker '{}': {e}",
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
            key: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            pid,
            config_gen,
            epoch,
            writer: tokio::sync::Mutex::new(Some(sender)),
            pending: Mutex::new(Pendings::default()),
            proc_: Mutex::new(Proc {
                child: Some(child),
                reaped: false,
            }),
            kill_reason: Mutex::new(None),
            dying: AtomicBool::new(false),
            stderr_tail: Arc::new(Mutex::new(VecDeque::new())),
            ready: Mutex::new(Some(ready_tx)),
            crash: Mutex::new(None),
            reader: Mutex::new(None),
        });
        let tail = w.stderr_tail.clone();
        let err_thread = std::thread::Builder::new()
            .name(format!("ar-worker-{pid}-err"))
            .spawn(move || forward_stderr(stderr, tail))
            .map_err(|e| Error::Runtime(format!("cannot start a thread: {e}")));
        let err_thread = match err_thread {
            Ok(t) => t,
            Err(e) => {
                w.kill("thread start failed");
                reap(&w);
                return Err(e);
            }
        };
        let pool = Arc::downgrade(&self.0);
        let w2 = w.clone();
        let reader = std::thread::Builder::new()
            .name(format!("ar-worker-{pid}"))
            .spawn(move || read_replies(w2, stdout, err_thread, pool));
        match reader {
            Ok(t) => *w.reader.lock() = Some(t),
            Err(e) => {
                w.kill("thread start failed");
                reap(&w);
                return Err(Error::Runtime(format!("cannot start a thread: {e}")));
            }
        }
        Ok((w, ready_rx))
    }

    fn release(&self, w: &Arc<Worker>) {
        let cfg = self.config();
        let config_gen = self.0.config.lock().0;
        let mut st = self.state();
        if let Some(s) = st.slots.iter_mut().find(|s| s.w.key == w.key) {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.exclusive = false;
            }
            s.calls += 1;
            s.last_used = Instant::now();
            if s.retiring.is_none() {
                let too_many = cfg.max_calls.is_some_and(|m| s.calls >= m);
                let too_big = cfg
                    .recycle_rss_mb
                    .is_some_and(|m| rss_kb(w.pid).is_some_and(|kb| kb > m * 1024));
                if too_many || too_big || s.w.config_gen != config_gen {
                    s.retiring = Some(Instant::now());
                    self.0.recycled.fetch_add(1, Ordering::Relaxed);
                }
            }
            if s.retiring.is_some() && s.in_flight == 0 {
                retire(&s.w);
            }
        }
        self.0.calls.fetch_add(1, Ordering::Relaxed);
        let current = st.epoch == w.epoch;
        drop(st);
        self.0.freed.notify_waiters();
        if current {
            self.warm();
        }
    }

    /// Remove a worker that ended (called by its reader thread).
    fn remove(&self, w: &Worker, crashed: bool) {
        let mut st = self.state();
        st.slots.retain(|s| s.w.key != w.key);
        drop(st);
        if crashed {
            self.0.crashed.fetch_add(1, Ordering::Relaxed);
        }
        self.0.freed.notify_waiters();
    }

    pub fn stats(&self) -> PoolStats {
        let st = self.state();
        PoolStats {
            workers: st
                .slots
                .iter()
                .map(|s| WorkerStats {
                    pid: s.w.pid,
                    calls: s.calls,
                    in_flight: s.in_flight,
                    exclusive: s.exclusive,
                    retiring: s.retiring.is_some(),
                    rss_kb: rss_kb(s.w.pid),
                })
                .collect(),
            starting: st.starting,
            started: self.0.started.load(Ordering::Relaxed),
            crashed: self.0.crashed.load(Ordering::Relaxed),
            recycled: self.0.recycled.load(Ordering::Relaxed),
            calls: self.0.calls.load(Ordering::Relaxed),
        }
    }

    /// Kill every worker and wait (up to `timeout`) until each is reaped. Calls in flight fail
    /// with `WorkerCrashed`. The pool starts new workers on the next call.
    pub fn shutdown(&self, timeout: Duration) {
        self.0.closing.store(true, Ordering::Release);
        let slots = {
            let mut st = self.state();
            st.epoch += 1;
            // Starts in progress belong to the old epoch; they kill their worker themselves.
            st.starting = 0;
            std::mem::take(&mut st.slots)
        };
        for s in &slots {
            s.w.kill("the isolation pool was shut down");
        }
        let deadline = Instant::now() + timeout;
        for s in &slots {
            let t = s.w.reader.lock().take();
            if let Some(t) = t {
                while !t.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                if t.is_finished() {
                    let _ = t.join();
                }
            }
        }
        *self.0.monitor_lock.lock() = true;
        self.0.monitor_wake.notify_all();
        if let Some(m) = self.0.monitor.lock().take() {
            if std::thread::current().id() != m.thread().id() {
                let _ = m.join();
            }
        }
        *self.0.monitor_lock.lock() = false;
        self.0.closing.store(false, Ordering::Release);
        self.0.freed.notify_waiters();
    }

    fn ensure_monitor(&self) {
        let mut m = self.0.monitor.lock();
        if m.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let weak = Arc::downgrade(&self.0);
        *m = std::thread::Builder::new()
            .name("ar-worker-monitor".into())
            .spawn(move || monitor(weak))
            .ok();
    }
}

/// Close the worker's stdin: it finishes and exits; the monitor kills it if it lingers.
fn retire(w: &Arc<Worker>) {
    let w = w.clone();
    runtime::handle().spawn(async move {
        w.writer.lock().await.take();
    });
}

fn reap(w: &Worker) -> Option<std::process::ExitStatus> {
    let mut p = w.proc_.lock();
    let st = p.child.as_mut().and_then(|c| c.wait().ok());
    p.reaped = true;
    p.child = None;
    st
}

fn forward_stderr(stderr: std::process::ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut r = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match std::io::BufRead::read_until(&mut r, b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                // The worker's prints and logs belong on the host's stderr, as in-process ones.
                let _ = std::io::stderr().write_all(&line);
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                let mut t = tail.lock();
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(text);
            }
        }
    }
}

fn read_replies(
    w: Arc<Worker>,
    stdout: std::process::ChildStdout,
    err_thread: JoinHandle<()>,
    pool: Weak<Inner>,
) {
    let mut r = BufReader::with_capacity(64 * 1024, stdout);
    let mut buf = Vec::new();
    let mut graceful = false;
    loop {
        match protocol::read_frame(&mut r, &mut buf) {
            Ok(Some(())) => {}
            Ok(None) => {
                graceful = true;
                break;
            }
            Err(e) => {
                w.kill(format!("broken reply stream: {e}"));
                break;
            }
        }
        match protocol::decode(&buf) {
            Ok(reply) => deliver(&w, reply),
            Err(e) => match protocol::reply_id(&buf) {
                Some(id) => {
                    if let Some(p) = w.pending.lock().map.remove(&id) {
                        let _ = p.tx.send(Err(Error::tool(
                            &*p.tool,
                            format!("the worker's reply could not be decoded: {e}"),
                        )));
                    }
                }
                None => {
                    w.kill(format!("undecodable reply frame: {e}"));
                    break;
                }
            },
        }
    }
    w.dying.store(true, Ordering::Release);
    // Kill the group before reaping (the unreaped leader keeps the pgid ours): takes down
    // anything the worker started, and a worker that closed its stdout but lives on.
    {
        let p = w.proc_.lock();
        if !p.reaped {
            killpg(w.pid);
        }
    }
    let status = reap(&w);
    // The stderr tail is complete once the forwarder sees EOF (everything in the group is dead).
    let deadline = Instant::now() + Duration::from_millis(500);
    while !err_thread.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    if err_thread.is_finished() {
        let _ = err_thread.join();
    }
    let reason = w.kill_reason.lock().clone();
    let (exit_code, signal) = match status {
        Some(s) => (s.code(), s.signal()),
        None => (None, None),
    };
    let pending: Vec<Pending> = {
        let mut p = w.pending.lock();
        p.closed = true;
        p.map.drain().map(|(_, p)| p).collect()
    };
    let retired = graceful && reason.is_none() && exit_code == Some(0);
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
    let had_pending = !pending.is_empty();
    for p in pending {
        let _ = p.tx.send(Err(crash(&p.tool)));
    }
    if let Some(pool) = pool.upgrade() {
        let pool = Pool(pool);
        pool.remove(&w, !retired || had_pending);
        let current = pool.state().epoch == w.epoch;
        if !retired && current && !pool.0.closing.load(Ordering::Acquire) {
            log::warn!("isolation worker {} ended: {detail}", w.pid);
        }
        // Not after a shutdown: that would start the runtime (and workers) again unasked.
        if current {
            pool.warm();
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
        Reply::Ok { id, value } => {
            if let Some(p) = w.pending.lock().map.remove(&id) {
                let _ = p.tx.send(Ok(value));
            }
        }
        Reply::Err {
            id,
            type_name,
            message,
            traceback,
            pickle,
        } => {
            if let Some(p) = w.pending.lock().map.remove(&id) {
                let pickle =
                    pickle.and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
                let _ = p.tx.send(Err(Error::Python {
                    type_name,
                    message,
                    traceback,
                    original: Some(Opaque(Arc::new(RemoteException { pickle }))),
                }));
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

fn monitor(pool: Weak<Inner>) {
    loop {
        let Some(inner) = pool.upgrade() else { return };
        let p = Pool(inner);
        let cfg = p.config();
        let mut busy = false;
        {
            let mut st = p.state();
            let now = Instant::now();
            let live = st.slots.iter().filter(|s| s.retiring.is_none()).count();
            let mut excess = live.saturating_sub(cfg.min_workers);
            for s in st.slots.iter_mut() {
                if let Some(since) = s.retiring {
                    if now.duration_since(since) > Duration::from_secs(5) && s.in_flight == 0 {
                        s.w.kill("did not exit within 5s of being retired");
                    }
                    continue;
                }
                if s.in_flight > 0 {
                    busy = true;
                    if let Some(max) = cfg.max_rss_mb {
                        if let Some(kb) = rss_kb(s.w.pid) {
                            if kb > max * 1024 {
                                s.w.kill(format!(
                                    "exceeded the memory limit: RSS {} MB > max_rss_mb={max}",
                                    kb / 1024
                                ));
                            }
                        }
                    }
                } else if let Some(idle) = cfg.idle_timeout {
                    if excess > 0 && now.duration_since(s.last_used) > idle {
                        s.retiring = Some(now);
                        excess -= 1;
                        retire(&s.w);
                    }
                }
            }
        }
        let tick = if busy && cfg.max_rss_mb.is_some() {
            Duration::from_millis(10)
        } else {
            Duration::from_millis(200)
        };
        let mut stop = p.0.monitor_lock.lock();
        if *stop {
            return;
        }
        p.0.monitor_wake.wait_for(&mut stop, tick);
        if *stop {
            return;
        }
    }
}

/// A worker start in progress (one `starting` reservation of `epoch`).
struct Starting {
    pool: Pool,
    epoch: u64,
    w: Option<Arc<Worker>>,
}

impl Starting {
    /// The start is over (whatever its outcome): give the reservation back.
    fn finish(&mut self, st: &mut State) {
        if st.epoch == self.epoch {
            st.starting = st.starting.saturating_sub(1);
        }
        self.epoch = u64::MAX;
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if self.epoch == u64::MAX {
            return;
        }
        if let Some(w) = &self.w {
            w.kill("its start was abandoned (the isolation pool or runtime shut down)");
        }
        let mut st = self.pool.state();
        if st.epoch == self.epoch {
            st.starting = st.starting.saturating_sub(1);
        }
        drop(st);
        self.pool.0.freed.notify_waiters();
    }
}

/// A reserved place on a worker; released when dropped.
struct Lease {
    pool: Pool,
    w: Arc<Worker>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.release(&self.w);
    }
}

/// Cleans up after a call whose caller went away (timeout, cancellation).
struct Abandon {
    lease: Option<Lease>,
    w: Arc<Worker>,
    id: u64,
    exclusive: bool,
    tool: Arc<str>,
}

impl Abandon {
    fn done(&mut self) {
        self.lease.take();
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if self.lease.is_none() {
            return;
        }
        if !self.w.pending.lock().map.contains_key(&self.id) {
            return;
        }
        if self.exclusive {
            // A sync call cannot be interrupted: replace the worker (killed before the lease
            // goes back, so it is never handed out again).
            self.w.kill(format!(
                "killed to stop an abandoned (timed out or cancelled) call to '{}'",
                self.tool
            ));
            self.lease.take();
            return;
        }
        let Some(lease) = self.lease.take() else {
            return;
        };
        let id = self.id;
        let grace = lease.pool.config().cancel_grace;
        let tool = self.tool.clone();
        runtime::handle().spawn(async move {
            let w = lease.w.clone();
            if let Ok(frame) = protocol::encode(&Request::Cancel { id }) {
                let _ = w.write(&frame).await;
            }
            let t0 = Instant::now();
            while t0.elapsed() < grace {
                if !w.pending.lock().map.contains_key(&id) {
                    drop(lease);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            w.kill(format!(
                "killed because a cancelled call to '{tool}' did not stop within {:.1}s",
                grace.as_secs_f64()
            ));
            drop(lease);
        });
    }
}

static GLOBAL: OnceLock<Pool> = OnceLock::new();

/// The process-wide pool isolated tools use.
pub fn global() -> &'static Pool {
    GLOBAL.get_or_init(|| {
        // Worker pipes live on the runtime: its shutdown kills and reaps the workers first.
        crate::core::runtime::on_shutdown(
            crate::core::runtime::ShutdownPhase::StopServices,
            shutdown_global,
        );
        Pool::new(PoolConfig::default())
    })
}

/// Shut the global pool down if it was ever used.
pub fn shutdown_global(timeout: Duration) {
    if let Some(p) = GLOBAL.get() {
        p.shutdown(timeout);
    }
}
