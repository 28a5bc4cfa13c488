//! Queue Python work straight to an asyncio loop's thread from a thread that must not take the
//! GIL (a tokio worker), skipping the Python job thread.
//!
//! `loop.call_soon_threadsafe` needs the GIL, so a tokio worker could only reach a loop through
//! [`super::pythread`]'s job thread: two cross-thread wake-ups (worker → job thread → loop
//! thread) where one suffices. Instead each loop gets a [`LoopWaker`]: a Rust queue plus one
//! end of a socket pair whose other end the loop watches (`loop.add_reader`, registered once
//! on the loop's own thread). Pushing a job takes a Rust lock and, when the queue was empty,
//! writes one byte; the loop's reader callback drains the queue with the GIL it already holds.
//!
//! A loop without `add_reader` (Windows' proactor) or that cannot be weakly referenced gets no
//! waker; callers then use the job thread as before.

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, LazyLock, Mutex};

use arc_swap::ArcSwapOption;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::pythread::{self, Job};
use crate::core::runtime::fork_generation;

struct State {
    jobs: Vec<Job>,
    /// A byte was written and not yet read by a drain: the next push need not write another.
    notified: bool,
    /// The loop stopped serving the queue (the runtime loop ended): pushes are refused.
    closed: bool,
}

/// A loop's queue and wake-up socket.
pub struct LoopWaker {
    state: Mutex<State>,
    tx: UnixStream,
    rx: UnixStream,
    /// Identity of the loop (its address; the waker never outlives it in use, see
    /// [`draining`]), without a reference that would keep it alive.
    loop_id: usize,
    /// The fork generation the socket pair and lock belong to.
    generation: u64,
}

thread_local! {
    /// The loop whose queue this thread is draining right now (0: none).
    static DRAINING: Cell<usize> = const { Cell::new(0) };
}

/// Whether this thread is running jobs of `lp`'s queue, i.e. it is `lp`'s thread inside a
/// callback of `lp`: work for `lp` may run right here instead of `call_soon_threadsafe`.
pub fn draining(lp: &Bound<'_, PyAny>) -> bool {
    DRAINING.with(Cell::get) == lp.as_ptr() as usize
}

impl LoopWaker {
    fn new(loop_id: usize) -> std::io::Result<Self> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok(LoopWaker {
            state: Mutex::new(State {
                jobs: Vec::new(),
                notified: false,
                closed: false,
            }),
            tx,
            rx,
            loop_id,
            generation: fork_generation(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `job` for the loop's thread; no GIL needed. Gives the job back when the loop no
    /// longer serves the queue (closed, or this is a forked child).
    pub fn push(&self, job: Job) -> Result<(), Job> {
        // Checked before locking: in a forked child the lock may be held by a thread that does
        // not exist there.
        if self.generation != fork_generation() {
            return Err(job);
        }
        let wake = {
            let mut s = self.lock();
            if s.closed {
                return Err(job);
            }
            s.jobs.push(job);
            !std::mem::replace(&mut s.notified, true)
        };
        if wake {
            // A full socket buffer means unread bytes already wake the loop.
            let _ = (&self.tx).write(&[1]);
        }
        Ok(())
    }

    /// The reader callback, on the loop's thread: run every queued job.
    fn drain(&self, py: Python<'_>) {
        let mut buf = [0u8; 64];
        while matches!((&self.rx).read(&mut buf), Ok(n) if n > 0) {}
        let jobs = {
            let mut s = self.lock();
            s.notified = false;
            std::mem::take(&mut s.jobs)
        };
        let outer = DRAINING.with(|d| d.replace(self.loop_id));
        for job in jobs {
            pythread::run_job(py, job);
        }
        DRAINING.with(|d| d.set(outer));
    }

    /// Refuse further jobs and drop the queued ones (their reply channels report that).
    fn close(&self) {
        let jobs = {
            let mut s = self.lock();
            s.closed = true;
            std::mem::take(&mut s.jobs)
        };
        drop(jobs);
    }
}

/// The loop's reader callback.
#[pyclass(frozen)]
struct Drain(Arc<LoopWaker>);

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) {
        // Runs Python code (starting tasks, resolving futures) under Rust frames.
        let _held = super::exit_gate::hold(py);
        self.0.drain(py);
    }
}

/// What the per-loop table holds.
#[pyclass(frozen)]
struct Entry(Arc<LoopWaker>);

static TABLE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
/// Loop types seen without `add_reader` support or weak references: not tried again.
static UNSUPPORTED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The waker of `lp`, registering one on first use. Call it on `lp`'s thread (the running
/// loop, or a loop not running yet): `add_reader` is not thread-safe. `None` when the loop
/// cannot have one.
pub fn for_loop(py: Python<'_>, lp: &Bound<'_, PyAny>) -> Option<Arc<LoopWaker>> {
    let table = TABLE
        .get_or_try_init(py, || {
            py.import("weakref")?
                .getattr("WeakKeyDictionary")?
                .call0()
                .map(Bound::unbind)
        })
        .ok()?
        .bind(py);
    let unsupported = UNSUPPORTED
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(pyo3::types::PySet::empty(py)?.into_any().unbind())
        })
        .ok()?
        .bind(py);
    if let Ok(Some(e)) = table
        .call_method1("get", (lp,))
        .and_then(|e| e.extract::<Option<Bound<'_, Entry>>>().map_err(Into::into))
    {
        let w = &e.get().0;
        return (w.generation == fork_generation()).then(|| w.clone());
    }
    let ty = lp.get_type();
    if unsupported.contains(&ty).unwrap_or(true) {
        return None;
    }
    let registered = (|| -> PyResult<Arc<LoopWaker>> {
        let w = Arc::new(
            LoopWaker::new(lp.as_ptr() as usize)
                .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?,
        );
        // The table first: a loop that cannot be weakly referenced fails here, before a reader
        // nobody could find again is registered.
        table.set_item(lp, Entry(w.clone()))?;
        if let Err(e) = lp.call_method1("add_reader", (w.rx.as_raw_fd(), Drain(w.clone()))) {
            let _ = table.del_item(lp);
            return Err(e);
        }
        Ok(w)
    })();
    match registered {
        Ok(w) => Some(w),
        Err(_) => {
            let _ = unsupported.call_method1("add", (ty,));
            None
        }
    }
}

/// The runtime loop's waker (lock-free to read: a forked child must not take a lock that a
/// thread of the parent may have held at the fork).
static RUNTIME: LazyLock<ArcSwapOption<LoopWaker>> = LazyLock::new(ArcSwapOption::empty);

/// The runtime loop thread calls this before running its loop.
pub fn runtime_loop_started(py: Python<'_>, lp: &Bound<'_, PyAny>) {
    RUNTIME.store(for_loop(py, lp));
}

/// The runtime loop thread calls this when its loop stops: queued jobs are dropped (a
/// coroutine start reports that it could not start) and later ones go the job thread's way.
pub fn runtime_loop_ended() {
    if let Some(w) = RUNTIME.swap(None) {
        w.close();
    }
}

/// The runtime loop's waker, if that loop is running in this process.
pub fn runtime() -> Option<Arc<LoopWaker>> {
    RUNTIME
        .load_full()
        .filter(|w| w.generation == fork_generation())
}

/// Run `job` with the GIL for the loop `waker` belongs to: straight on the loop's thread,
/// provided nothing is waiting on the ordered job thread (whatever was submitted there before,
/// e.g. a call's events, must run first); else here when this thread may take the GIL; else on
/// the job thread. Jobs check [`draining`] to tell where they run.
pub fn run_for_loop(
    waker: Option<&Arc<LoopWaker>>,
    job: impl for<'py> FnOnce(Python<'py>) + Send + 'static,
) {
    let job: Job = Box::new(job);
    // Through the loop's queue even from a thread that could run the job itself: the job
    // would only end in `call_soon_threadsafe` (Python code and a wake-up write per job),
    // while queued jobs are run in batches inside the loop's reader callback.
    let job = match waker {
        Some(w) if pythread::ordered_idle() => match w.push(job) {
            Ok(()) => return,
            Err(job) => job,
        },
        _ => job,
    };
    if pythread::may_attach() {
        return pythread::run_or_submit(job);
    }
    pythread::submit(job);
}

/// Resolve `fut` (a future of `lp`) with `value`: inline when running on `lp`'s thread from its
/// queue, else through `call_soon_threadsafe`.
pub fn resolve_on(
    py: Python<'_>,
    lp: &Bound<'_, PyAny>,
    fut: Py<PyAny>,
    ok: bool,
    value: Py<PyAny>,
) -> PyResult<()> {
    let f = super::loop_bridge::resolver(py)?;
    if draining(lp) {
        f.call1((fut, ok, value))?;
    } else {
        lp.call_method1("call_soon_threadsafe", (f, fut, ok, value))?;
    }
    Ok(())
}
