//! Pool scheduling: which worker a call goes to, starting workers on demand, releasing and
//! recycling them, stats and shutdown.
//!
//! A sync call takes a worker for itself (it runs on the worker's main thread, and cancelling
//! or timing it out kills the worker, which must not take other calls down with it); async
//! calls share a worker (up to `max_async_per_worker`) and are cancelled in place first (see
//! `cancel.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde_json::Value;
use tokio::sync::{oneshot, Notify};

use super::cancel::{Abandon, Lease};
use super::config::{PoolConfig, PoolStats, Target, WorkerStats};
use super::process::{self, rss_kb, Pending, Worker};
use super::protocol::{self, Request};
use crate::core::{runtime, CallContext, Error, Result};

pub(super) struct Slot {
    pub w: Arc<Worker>,
    pub in_flight: usize,
    pub exclusive: bool,
    pub retiring: Option<Instant>,
    pub last_used: Instant,
    pub calls: u64,
}

#[derive(Default)]
pub(super) struct State {
    pub slots: Vec<Slot>,
    pub starting: usize,
    /// Bumped by shutdown: workers still starting from before are discarded.
    pub epoch: u64,
    fork_gen: u64,
}

pub(super) struct Inner {
    config: Mutex<(u64, Arc<PoolConfig>)>,
    state: Mutex<State>,
    freed: Notify,
    pub monitor: Mutex<Option<JoinHandle<()>>>,
    pub monitor_wake: Condvar,
    pub monitor_lock: Mutex<bool>,
    /// Set while `shutdown` runs: no warm starts.
    closing: AtomicBool,
    started: AtomicU64,
    crashed: AtomicU64,
    recycled: AtomicU64,
    calls: AtomicU64,
}

/// A pool of worker processes. Cheap to clone (a handle).
#[derive(Clone)]
pub struct Pool(pub(super) Arc<Inner>);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id for a call, ping or worker.
pub(super) fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Close the worker's stdin: it finishes and exits; the monitor kills it if it lingers.
pub(super) fn retire(w: &Arc<Worker>) {
    let w = w.clone();
    runtime::handle().spawn(async move { w.close_stdin().await });
}

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
        config.validate().map_err(Error::Runtime)?;
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

    pub(super) fn state(&self) -> parking_lot::MutexGuard<'_, State> {
        let mut st = self.0.state.lock();
        let g = runtime::fork_generation();
        if st.fork_gen != g {
            // A forked child: the workers (and their threads) belong to the parent.
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
        let (need, epoch) = {
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
        let id = next_id();
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
            // The worker is gone or going; its end fails the pending call with the cause.
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
        // fork/exec and the cwd check are blocking syscalls: off the tokio workers.
        let p = self.clone();
        let c = cfg.clone();
        let (w, ready) = tokio::task::spawn_blocking(move || process::spawn(&p, &c, gen, epoch))
            .await
            .map_err(|e| Error::Runtime(format!("worker start failed: {e}")))??;
        guard.w = Some(w.clone());
        let ok = tokio::time::timeout(cfg.start_timeout, ready).await;
        let mut st = self.state();
        guard.finish(&mut st);
        let result = match ok {
            Ok(Ok(())) if st.epoch == epoch => {
                // Started with settings replaced meanwhile: it must not run a call.
                let stale = self.0.config.lock().0 != gen;
                st.slots.push(Slot {
                    w: w.clone(),
                    in_flight: 0,
                    exclusive: false,
                    retiring: stale.then(Instant::now),
                    last_used: Instant::now(),
                    calls: 0,
                });
                if stale {
                    retire(&w);
                }
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

    pub(super) fn release(&self, w: &Arc<Worker>) {
        let (config_gen, cfg) = self.0.config.lock().clone();
        // Read before the lock: a /proc read must not hold up tasks waiting for the state.
        let rss = cfg.recycle_rss_mb.and_then(|_| rss_kb(w.pid));
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
                    .is_some_and(|m| rss.is_some_and(|kb| kb > m.saturating_mul(1024)));
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

    /// Hand `w` no new calls (it will be replaced); its calls in flight go on.
    pub(super) fn drain(&self, w: &Worker) {
        let mut st = self.state();
        if let Some(s) = st.slots.iter_mut().find(|s| s.w.key == w.key) {
            s.retiring.get_or_insert_with(Instant::now);
        }
        drop(st);
        self.warm();
    }

    /// Calls in flight on `w` (0 once it left the pool).
    pub(super) fn in_flight(&self, w: &Worker) -> usize {
        self.state()
            .slots
            .iter()
            .find(|s| s.w.key == w.key)
            .map_or(0, |s| s.in_flight)
    }

    /// A worker ended (called from its own thread once its calls are failed).
    pub(super) fn worker_ended(&self, w: &Worker, crashed: bool, detail: &str, retired: bool) {
        let current = {
            let mut st = self.state();
            st.slots.retain(|s| s.w.key != w.key);
            st.epoch == w.epoch
        };
        if crashed {
            self.0.crashed.fetch_add(1, Ordering::Relaxed);
        }
        self.0.freed.notify_waiters();
        if !retired && current && !self.0.closing.load(Ordering::Acquire) {
            log::warn!("isolation worker {} ended: {detail}", w.pid);
        }
        // Not after a shutdown: that would start the runtime (and workers) again unasked.
        if current {
            self.warm();
        }
    }

    pub fn stats(&self) -> PoolStats {
        let (mut workers, starting) = {
            let st = self.state();
            let w: Vec<WorkerStats> = st
                .slots
                .iter()
                .map(|s| WorkerStats {
                    pid: s.w.pid,
                    calls: s.calls,
                    in_flight: s.in_flight,
                    exclusive: s.exclusive,
                    retiring: s.retiring.is_some(),
                    rss_kb: None,
                })
                .collect();
            (w, st.starting)
        };
        for w in &mut workers {
            w.rss_kb = rss_kb(w.pid);
        }
        PoolStats {
            workers,
            starting,
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
            s.w.wait_finished(deadline.saturating_duration_since(Instant::now()));
        }
        self.stop_monitor();
        self.0.closing.store(false, Ordering::Release);
        self.0.freed.notify_waiters();
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
