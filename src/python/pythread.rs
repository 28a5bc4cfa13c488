//! Threads that run Python for the runtime, so no tokio thread ever takes the GIL.
//!
//! A tokio worker that attaches queues behind whichever thread holds the GIL (with thousands
//! of async Python tasks in flight, every completion waited its turn on a worker, stalling
//! all other tasks of that worker). Python work that starts on a tokio thread goes here:
//!
//! * [`submit`]: short jobs (event listeners, progress callbacks, starting a coroutine on its
//!   loop, resolving an awaitable, cancelling a Python task) run in order on one thread, which
//!   drains its queue in batches under a single attach.
//! * [`spawn_blocking`]: jobs that may block (sync Python tools) on a growable pool. A job
//!   submitted from inside a pool job (a tool calling a tool) never waits for a free thread, so
//!   nesting cannot deadlock the pool.
//!
//! Both kinds of threads keep their Python thread state between jobs (granian's
//! `BlockingRunner` pattern, see [`super::gil`]). Once the interpreter is exiting they stop
//! attaching: queued jobs are dropped (their reply channels report cancellation).

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use pyo3::prelude::*;
use tokio::sync::oneshot;

use super::gil;

/// A unit of Python work.
pub type Job = Box<dyn for<'py> FnOnce(Python<'py>) + Send>;

thread_local! {
    /// Set on the ordered thread and on pool threads while they run a job.
    static IN_JOB: Cell<bool> = const { Cell::new(false) };
}

/// True while this thread runs a job of this module.
pub fn in_job() -> bool {
    IN_JOB.with(Cell::get)
}

/// Whether this thread may take the GIL itself: not a tokio thread (a worker, or a blocking
/// thread of the runtime, which runs Rust work only).
#[inline]
pub fn may_attach() -> bool {
    !gil::on_tokio_thread()
}

/// Run `job` with the GIL: right here when this thread may attach, else on the ordered thread.
pub fn run_or_submit(job: impl for<'py> FnOnce(Python<'py>) + Send + 'static) {
    if may_attach() {
        if gil::exiting() {
            return;
        }
        gil::with_gil(job);
    } else {
        submit(Box::new(job));
    }
}

// ---------------------------------------------------------------- the ordered thread

struct Ordered {
    queue: Mutex<VecDeque<Job>>,
    ready: Condvar,
    /// Jobs submitted / finished (or dropped): [`settle`] waits for the second to catch up.
    submitted: AtomicU64,
    finished: AtomicU64,
    settled: Condvar,
    settle_lock: Mutex<()>,
    /// The fork generation the thread was started in (a forked child starts its own).
    generation: Mutex<Option<u64>>,
}

static ORDERED: LazyLock<Ordered> = LazyLock::new(|| Ordered {
    queue: Mutex::new(VecDeque::new()),
    ready: Condvar::new(),
    submitted: AtomicU64::new(0),
    finished: AtomicU64::new(0),
    settled: Condvar::new(),
    settle_lock: Mutex::new(()),
    generation: Mutex::new(None),
});

/// Most jobs run under one attach before the GIL is offered to other threads again.
const BATCH: usize = 256;

/// Queue `job` for the ordered Python thread (FIFO).
pub fn submit(job: Job) {
    let o = &*ORDERED;
    ensure_ordered_thread(o);
    o.submitted.fetch_add(1, Ordering::AcqRel);
    o.queue.lock().push_back(job);
    o.ready.notify_one();
}

fn ensure_ordered_thread(o: &'static Ordered) {
    let generation = crate::core::runtime::fork_generation();
    let mut g = o.generation.lock();
    if *g == Some(generation) {
        return;
    }
    // A forked child: the parent's queue belongs to threads that do not exist here.
    if g.is_some() {
        let stale = std::mem::take(&mut *o.queue.lock()).len() as u64;
        o.finished.fetch_add(stale, Ordering::AcqRel);
    }
    let spawned = std::thread::Builder::new()
        .name("agent-runtime-py".into())
        .spawn(move || ordered_loop(o));
    match spawned {
        Ok(_) => *g = Some(generation),
        Err(e) => log::error!("cannot start the Python job thread: {e}"),
    }
}

fn ordered_loop(o: &'static Ordered) {
    IN_JOB.with(|c| c.set(true));
    loop {
        let batch: Vec<Job> = {
            let mut q = o.queue.lock();
            while q.is_empty() {
                o.ready.wait(&mut q);
            }
            let n = q.len().min(BATCH);
            q.drain(..n).collect()
        };
        let n = batch.len() as u64;
        if gil::exiting() {
            // Not attaching any more: drop the jobs (their Python references go to pyo3's
            // deferred queue, their reply channels report cancellation).
            drop(batch);
        } else {
            gil::with_gil(|py| {
                for job in batch {
                    run_job(py, job);
                }
            });
        }
        o.finished.fetch_add(n, Ordering::AcqRel);
        let _g = o.settle_lock.lock();
        o.settled.notify_all();
    }
}

fn run_job(py: Python<'_>, job: Job) {
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(py))) {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        log::error!("a Python job panicked: {msg}");
    }
}

/// Wait (GIL released by the caller) until every job submitted before this call has run:
/// a call returns only after its events and progress reports were delivered. A no-op on the
/// ordered thread itself (it would wait for itself). Once the interpreter is exiting, a
/// thread other than the finalizing one never returns from here (see
/// [`gil::park_if_exiting`]).
pub fn settle() {
    gil::park_if_exiting();
    let o = &*ORDERED;
    let target = o.submitted.load(Ordering::Acquire);
    if o.finished.load(Ordering::Acquire) >= target || in_job() || gil::exiting() {
        return;
    }
    let mut g = o.settle_lock.lock();
    while o.finished.load(Ordering::Acquire) < target && !gil::exiting() {
        o.settled.wait_for(&mut g, Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------- the blocking pool

struct Pool {
    /// The fork generation the counters below describe (a forked child has no pool threads).
    generation: AtomicU64,
    queue: Mutex<VecDeque<Job>>,
    ready: Condvar,
    threads: AtomicUsize,
    idle: AtomicUsize,
}

static POOL: LazyLock<Pool> = LazyLock::new(|| Pool {
    generation: AtomicU64::new(crate::core::runtime::fork_generation()),
    queue: Mutex::new(VecDeque::new()),
    ready: Condvar::new(),
    threads: AtomicUsize::new(0),
    idle: AtomicUsize::new(0),
});

/// Threads beyond which top-level jobs queue (as tokio's blocking pool does).
const MAX_THREADS: usize = 512;
/// An idle pool thread exits after this long.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Run `f` with the GIL on a pool thread; the result arrives on the returned channel (closed
/// without a value if the job was dropped at interpreter exit or panicked).
pub fn spawn_blocking<T: Send + 'static>(
    f: impl for<'py> FnOnce(Python<'py>) -> T + Send + 'static,
) -> oneshot::Receiver<T> {
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move |py| {
        let _ = tx.send(f(py));
    });
    let p = &*POOL;
    let nested = in_job();
    {
        let mut q = p.queue.lock();
        let generation = crate::core::runtime::fork_generation();
        if p.generation.swap(generation, Ordering::AcqRel) != generation {
            // A forked child: the parent's threads and queued jobs do not exist here.
            std::mem::forget(std::mem::take(&mut *q));
            p.threads.store(0, Ordering::Release);
            p.idle.store(0, Ordering::Release);
        }
        q.push_back(job);
        // A nested job (from inside a pool job) always gets a thread: its parent waits for it.
        let need = p.idle.load(Ordering::Acquire) < q.len();
        let threads = p.threads.load(Ordering::Acquire);
        if need && (nested || threads < MAX_THREADS) {
            p.threads.fetch_add(1, Ordering::AcqRel);
            let spawned = std::thread::Builder::new()
                .name("agent-runtime-py".into())
                .spawn(move || pool_loop(p));
            if let Err(e) = spawned {
                p.threads.fetch_sub(1, Ordering::AcqRel);
                log::error!("cannot start a Python pool thread: {e}");
            }
        }
    }
    p.ready.notify_one();
    rx
}

fn pool_loop(p: &'static Pool) {
    loop {
        let job = {
            let mut q = p.queue.lock();
            loop {
                if let Some(j) = q.pop_front() {
                    break Some(j);
                }
                p.idle.fetch_add(1, Ordering::AcqRel);
                let timed_out = p.ready.wait_for(&mut q, KEEP_ALIVE).timed_out();
                p.idle.fetch_sub(1, Ordering::AcqRel);
                if timed_out && q.is_empty() {
                    break None;
                }
            }
        };
        let Some(job) = job else {
            p.threads.fetch_sub(1, Ordering::AcqRel);
            return;
        };
        if gil::exiting() {
            drop(job);
            continue;
        }
        IN_JOB.with(|c| c.set(true));
        gil::with_gil(|py| run_job(py, job));
        IN_JOB.with(|c| c.set(false));
    }
}
