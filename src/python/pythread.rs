//! Threads that run Python for the runtime, so no tokio thread ever takes the GIL.
//!
//! A tokio worker that attaches queues behind whichever thread holds the GIL (with thousands
//! of async Python tasks in flight, every completion waited its turn on a worker, stalling
//! all other tasks of that worker). Python work that starts on a tokio thread goes here:
//!
//! * [`submit`]: short jobs (event listeners, progress callbacks, starting a coroutine on its
//!   loop, resolving an awaitable, cancelling a Python task, converting a result) run in order
//!   on one thread, which drains its queue in batches under a single attach. When a job there
//!   blocks on a call ([`blocking`]), another thread drains the queue until it returns. Work
//!   for an asyncio loop skips this thread when nothing is queued on it: see
//!   [`super::loop_waker`].
//! * [`spawn_blocking`]: jobs that may block (sync Python tools) on a growable pool. A job
//!   submitted from inside a pool job (a tool calling a tool) never waits for a free thread, so
//!   nesting cannot deadlock the pool. A thread that finished a job spins briefly ([`SPIN`])
//!   before parking, so back-to-back hand-offs need no wake-up.
//!
//! Both kinds of threads keep their Python thread state between jobs (granian's
//! `BlockingRunner` pattern, see [`super::gil`]). Once the interpreter is exiting they stop
//! attaching ([`super::exit_gate`]): queued jobs are dropped (their reply channels report
//! cancellation).

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::sync::oneshot;

use super::gil;

// std's futex-based lock and condition variable here, not parking_lot's: parking_lot keeps
// parked threads in a process-wide table whose entries live on those threads' stacks. After
// fork() the parent's idle pool threads do not exist, glibc hands their stacks to new threads,
// and the child's next parking_lot operation on that table walked overwritten entries
// (seen: "misaligned pointer dereference" in parking_lot_core, then an abort).
pub(super) struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    pub(super) const fn new(v: T) -> Self {
        Mutex(std::sync::Mutex::new(v))
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, T> {
        // A panic while holding it cannot leave the queue half-updated in a way that matters.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

struct Condvar(std::sync::Condvar);

impl Condvar {
    const fn new() -> Self {
        Condvar(std::sync::Condvar::new())
    }

    fn notify_one(&self) {
        self.0.notify_one();
    }

    fn notify_all(&self) {
        self.0.notify_all();
    }

    fn wait<'a, T>(&self, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(g).unwrap_or_else(|e| e.into_inner())
    }

    /// Wait at most `d`; also says whether the time ran out.
    fn wait_for<'a, T>(&self, g: MutexGuard<'a, T>, d: Duration) -> (MutexGuard<'a, T>, bool) {
        let (g, r) = self.0.wait_timeout(g, d).unwrap_or_else(|e| e.into_inner());
        (g, r.timed_out())
    }
}

/// A unit of Python work.
pub type Job = Box<dyn for<'py> FnOnce(Python<'py>) + Send>;

thread_local! {
    /// Set on the ordered thread and on pool threads while they run a job.
    static IN_JOB: Cell<bool> = const { Cell::new(false) };
    /// Set on threads draining the ordered queue.
    static IS_DRAINER: Cell<bool> = const { Cell::new(false) };
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
        super::exit_gate::attach_unless_exiting(job);
    } else {
        submit(Box::new(job));
    }
}

// ---------------------------------------------------------------- the ordered thread

/// The ordered queue. Jobs carry sequence numbers so [`settle`] can tell when every job
/// submitted before a point has finished, even with stand-in drainers running batches in
/// parallel (see [`blocking`]).
struct Queue {
    jobs: VecDeque<(u64, Job)>,
    /// Sequence number of the first job of each batch being run.
    running: Vec<u64>,
    next: u64,
}

impl Queue {
    /// Every job numbered below this has finished (or was dropped).
    fn done_below(&self) -> u64 {
        let queued = self.jobs.front().map_or(self.next, |(seq, _)| *seq);
        self.running.iter().copied().fold(queued, u64::min)
    }
}

struct Ordered {
    queue: Mutex<Queue>,
    ready: Condvar,
    settled: Condvar,
    /// Jobs submitted and not finished: lets [`settle`] return at once in the common case.
    pending: AtomicU64,
    /// The fork generation the thread was started in (a forked child starts its own).
    generation: Mutex<Option<u64>>,
}

static ORDERED: LazyLock<Ordered> = LazyLock::new(|| Ordered {
    queue: Mutex::new(Queue {
        jobs: VecDeque::new(),
        running: Vec::new(),
        next: 0,
    }),
    ready: Condvar::new(),
    settled: Condvar::new(),
    pending: AtomicU64::new(0),
    generation: Mutex::new(None),
});

/// Most jobs run under one attach before the GIL is offered to other threads again.
const BATCH: usize = 256;

/// Queue `job` for the ordered Python thread (FIFO).
pub fn submit(job: Job) {
    let o = &*ORDERED;
    ensure_ordered_thread(o);
    o.pending.fetch_add(1, Ordering::AcqRel);
    {
        let mut q = o.queue.lock();
        let seq = q.next;
        q.next += 1;
        q.jobs.push_back((seq, job));
    }
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
        let mut q = o.queue.lock();
        std::mem::forget(std::mem::take(&mut q.jobs));
        q.running.clear();
        o.pending.store(0, Ordering::Release);
    }
    DRAINERS.store(0, Ordering::Release);
    WANTED.store(1, Ordering::Release);
    if spawn_drainer(o) {
        *g = Some(generation);
    }
}

/// Threads draining the ordered queue, and how many are wanted: one, plus one for each job
/// blocked waiting on a call (see [`blocking`]).
static DRAINERS: AtomicUsize = AtomicUsize::new(0);
static WANTED: AtomicUsize = AtomicUsize::new(1);

fn spawn_drainer(o: &'static Ordered) -> bool {
    DRAINERS.fetch_add(1, Ordering::AcqRel);
    let spawned = std::thread::Builder::new()
        .name("agent-runtime-py".into())
        .spawn(move || ordered_loop(o));
    if let Err(e) = spawned {
        DRAINERS.fetch_sub(1, Ordering::AcqRel);
        log::error!("cannot start the Python job thread: {e}");
        return false;
    }
    true
}

/// Run `wait` (a call waiting for its result, GIL released). On the ordered thread another
/// thread drains the queue meanwhile: the call may need a job queued behind the one waiting
/// (a listener calling a tool whose result is converted or whose coroutine is started by a
/// job), which would otherwise never run.
pub fn blocking<R>(wait: impl FnOnce() -> R) -> R {
    if !IS_DRAINER.with(Cell::get) {
        return wait();
    }
    WANTED.fetch_add(1, Ordering::AcqRel);
    if DRAINERS.load(Ordering::Acquire) < WANTED.load(Ordering::Acquire) {
        spawn_drainer(&ORDERED);
    }
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            WANTED.fetch_sub(1, Ordering::AcqRel);
            ORDERED.ready.notify_all(); // a surplus drainer may retire
        }
    }
    let _done = Done;
    wait()
}

fn ordered_loop(o: &'static Ordered) {
    IN_JOB.with(|c| c.set(true));
    IS_DRAINER.with(|c| c.set(true));
    loop {
        let (first, batch): (u64, Vec<Job>) = {
            let mut q = o.queue.lock();
            while q.jobs.is_empty() {
                if retire() {
                    return;
                }
                q = o.ready.wait(q);
            }
            let n = q.jobs.len().min(BATCH);
            let first = q.jobs.front().map_or(0, |(seq, _)| *seq);
            q.running.push(first);
            (first, q.jobs.drain(..n).map(|(_, j)| j).collect())
        };
        let n = batch.len() as u64;
        // Once exiting, jobs are dropped unrun (their Python references go to pyo3's deferred
        // queue, their reply channels report cancellation).
        super::exit_gate::attach_unless_exiting(|py| {
            for job in batch {
                if gil::exiting() {
                    break;
                }
                run_job(py, job);
            }
        });
        o.pending.fetch_sub(n, Ordering::AcqRel);
        let mut q = o.queue.lock();
        if let Some(i) = q.running.iter().position(|s| *s == first) {
            q.running.swap_remove(i);
        }
        o.settled.notify_all();
    }
}

/// Whether this drainer is surplus (a blocked job it stood in for has returned).
fn retire() -> bool {
    let mut n = DRAINERS.load(Ordering::Acquire);
    while n > WANTED.load(Ordering::Acquire) {
        match DRAINERS.compare_exchange(n, n - 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(cur) => n = cur,
        }
    }
    false
}

/// Run one job, logging (not propagating) a panic.
pub(crate) fn run_job(py: Python<'_>, job: Job) {
    if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(py))) {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        log::error!("a Python job panicked: {msg}");
    }
}

/// Whether the ordered thread has nothing queued or running: work for a loop may then go to
/// it directly (see [`super::loop_waker`]) without overtaking anything submitted before.
pub fn ordered_idle() -> bool {
    ORDERED.pending.load(Ordering::Acquire) == 0
}

/// Wait (GIL released by the caller) until every job submitted before this call has run:
/// a call returns only after its events and progress reports were delivered. A no-op on the
/// ordered thread itself (it would wait for itself). Once the interpreter is exiting, a
/// thread other than the finalizing one never returns from here (see
/// [`gil::park_if_exiting`]).
pub fn settle() {
    gil::park_if_exiting();
    let o = &*ORDERED;
    if o.pending.load(Ordering::Acquire) == 0 || IS_DRAINER.with(Cell::get) || gil::exiting() {
        return;
    }
    let mut q = o.queue.lock();
    let target = q.next;
    while q.done_below() < target && !gil::exiting() {
        q = o.settled.wait_for(q, Duration::from_millis(50)).0;
    }
}

// ---------------------------------------------------------------- the blocking pool

struct Pool {
    /// The fork generation the counters below describe (a forked child has no pool threads).
    generation: AtomicU64,
    queue: Mutex<VecDeque<Job>>,
    ready: Condvar,
    threads: AtomicUsize,
    /// Threads looking for a job (spinning or parked).
    idle: AtomicUsize,
    /// Jobs in `queue`, readable without the lock by a spinning thread.
    queued: AtomicUsize,
    /// Threads waiting on `ready`, changed under the queue lock: a submitter signals the
    /// condition variable (a system call) only when someone waits on it.
    parked: AtomicUsize,
    /// A thread is spinning for the next job (at most one at a time).
    spinning: AtomicBool,
}

static POOL: LazyLock<Pool> = LazyLock::new(|| Pool {
    generation: AtomicU64::new(crate::core::runtime::fork_generation()),
    queue: Mutex::new(VecDeque::new()),
    ready: Condvar::new(),
    threads: AtomicUsize::new(0),
    idle: AtomicUsize::new(0),
    queued: AtomicUsize::new(0),
    parked: AtomicUsize::new(0),
    spinning: AtomicBool::new(false),
});

/// Threads beyond which top-level jobs queue (as tokio's blocking pool does).
const MAX_THREADS: usize = 512;
/// An idle pool thread exits after this long.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// How long a pool thread that just finished a job keeps looking for the next one before it
/// parks, and how long a tokio thread waiting for a sync tool's result polls before it parks.
/// Waking a parked thread costs a futex round trip and a scheduler hand-over (tens of µs on a
/// busy machine) where the work itself often takes a few µs. Bounded, and the pool has at
/// most one spinner; after the first microseconds the spin yields the CPU between checks.
pub const SPIN: Duration = Duration::from_micros(50);
/// Pure spinning (no `yield`) for this long, then yielding checks until [`SPIN`].
const SPIN_HOT: Duration = Duration::from_micros(2);

/// Poll `ready` until it gives a value or [`SPIN`] has passed: a busy wait for hand-offs
/// that usually complete within microseconds. Never holds the GIL.
pub fn spin_for<T>(mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = ready() {
            return Some(v);
        }
        let waited = start.elapsed();
        if waited >= SPIN {
            return None;
        }
        if waited < SPIN_HOT {
            for _ in 0..16 {
                std::hint::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
    }
}

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
    let notify = {
        let mut q = p.queue.lock();
        let generation = crate::core::runtime::fork_generation();
        if p.generation.swap(generation, Ordering::AcqRel) != generation {
            // A forked child: the parent's threads and queued jobs do not exist here.
            std::mem::forget(std::mem::take(&mut *q));
            p.threads.store(0, Ordering::Release);
            p.idle.store(0, Ordering::Release);
            p.queued.store(0, Ordering::Release);
            p.parked.store(0, Ordering::Release);
            p.spinning.store(false, Ordering::Release);
        }
        q.push_back(job);
        p.queued.fetch_add(1, Ordering::AcqRel);
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
        p.parked.load(Ordering::Acquire) > 0
    };
    if notify {
        p.ready.notify_one();
    }
    rx
}

fn pop(p: &Pool, q: &mut VecDeque<Job>) -> Option<Job> {
    let j = q.pop_front()?;
    p.queued.fetch_sub(1, Ordering::AcqRel);
    Some(j)
}

/// The next job for a pool thread, or `None` once it has been idle for [`KEEP_ALIVE`].
fn next_job(p: &'static Pool) -> Option<Job> {
    p.idle.fetch_add(1, Ordering::AcqRel);
    struct Idle(&'static Pool);
    impl Drop for Idle {
        fn drop(&mut self) {
            self.0.idle.fetch_sub(1, Ordering::AcqRel);
        }
    }
    let _idle = Idle(p);
    // One thread at a time spins (no lock taken until a job shows up), so a caller handing
    // over jobs back to back finds it awake.
    if !p.spinning.swap(true, Ordering::AcqRel) {
        let got = spin_for(|| {
            if p.queued.load(Ordering::Acquire) == 0 {
                return None;
            }
            pop(p, &mut p.queue.lock())
        });
        p.spinning.store(false, Ordering::Release);
        if got.is_some() {
            return got;
        }
    }
    let mut q = p.queue.lock();
    loop {
        if let Some(j) = pop(p, &mut q) {
            return Some(j);
        }
        p.parked.fetch_add(1, Ordering::AcqRel);
        let (g, timed_out) = p.ready.wait_for(q, KEEP_ALIVE);
        q = g;
        p.parked.fetch_sub(1, Ordering::AcqRel);
        if timed_out && q.is_empty() {
            return None;
        }
    }
}

fn pool_loop(p: &'static Pool) {
    loop {
        let Some(job) = next_job(p) else {
            p.threads.fetch_sub(1, Ordering::AcqRel);
            return;
        };
        IN_JOB.with(|c| c.set(true));
        super::exit_gate::attach_unless_exiting(|py| run_job(py, job));
        IN_JOB.with(|c| c.set(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::runtime;

    #[test]
    fn tokio_threads_are_recognised_and_callers_in_block_on_are_not() {
        assert!(may_attach());
        let on_worker = runtime::block_on(runtime::handle().spawn(async { may_attach() }));
        assert_eq!(on_worker.ok(), Some(false));
        let on_blocking = runtime::block_on(runtime::handle().spawn_blocking(may_attach));
        assert_eq!(on_blocking.ok(), Some(false));
        // A caller waiting in `block_on` (a Python thread with the GIL released) may attach.
        let in_block_on = runtime::block_on(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            may_attach()
        });
        assert!(in_block_on);
    }
}
