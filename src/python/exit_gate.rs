//! Interpreter exit: which Python threads are inside native code, and the gate that keeps
//! them from re-taking the GIL once the interpreter finalizes. CPython before 3.14 kills a
//! thread that re-takes the GIL during finalization with a forced unwind, which crashes the
//! process when it meets a Rust frame; the atexit hook ([`evict_for_exit`]) asks threads in
//! callbacks to leave and waits for the others, and threads arriving later park for good.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use pyo3::prelude::*;

use super::gil;
use super::pythread::{in_job, Mutex};

/// Python threads that ran native code, with what the exit hook needs to know of each: whether
/// it runs a Python callback (tool functions, listeners, progress callbacks, jobs) so the hook
/// can ask it to leave, and whether it holds the GIL inside Rust code (see [`Held`]) so the
/// hook can wait for it. A thread re-taking the GIL during finalization is killed by CPython
/// with a forced unwind, which crashes the process when it meets a Rust frame.
struct BusyThread {
    /// Python's id of the thread (`threading.get_ident()`).
    ident: std::os::raw::c_long,
    depth: AtomicUsize,
    /// Inside a [`Held`] region, or on its way back to one. Per thread, so entering and
    /// leaving cost no contended write: only setting it is a fence (it pairs with the exit
    /// flag, see [`hold`]); clearing it is a plain store.
    held: AtomicBool,
}

static BUSY_THREADS: Mutex<Vec<std::sync::Arc<BusyThread>>> = Mutex::new(Vec::new());

/// Threads between deciding to attach and being attached (see [`attach_unless_exiting`]).
static ATTACHING: AtomicUsize = AtomicUsize::new(0);

/// This thread's id as Python knows it (`threading.get_ident()`).
fn ident() -> std::os::raw::c_long {
    // SAFETY: `pthread_self` has no preconditions; it is the id CPython uses for threads.
    unsafe { libc::pthread_self() as std::os::raw::c_long }
}

thread_local! {
    static BUSY: std::sync::Arc<BusyThread> = {
        let t = std::sync::Arc::new(BusyThread {
            ident: ident(),
            depth: AtomicUsize::new(0),
            held: AtomicBool::new(false),
        });
        BUSY_THREADS.lock().push(t.clone());
        t
    };
}

/// Marks this thread as running a Python callback while alive. A held thread whose callback
/// returns into an exiting interpreter leaves for good there instead of going on in Rust code
/// with the GIL (the exit hook gave callbacks only a short grace).
pub struct Busy(Option<std::sync::Arc<BusyThread>>);

impl Busy {
    pub fn enter() -> Self {
        Busy(
            BUSY.try_with(|t| {
                t.depth.fetch_add(1, Ordering::AcqRel);
                t.clone()
            })
            .ok(),
        )
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.depth.fetch_sub(1, Ordering::AcqRel);
            if gil::exiting_elsewhere() && t.held.load(Ordering::Relaxed) {
                t.held.store(false, Ordering::SeqCst);
                gil::leave_for_good();
            }
        }
    }
}

/// Whether this thread is inside a Python callback run by the runtime (a tool function, a
/// listener, a job) right now.
pub fn in_callback() -> bool {
    in_job()
        || BUSY
            .try_with(|t| t.depth.load(Ordering::Acquire) > 0)
            .unwrap_or(false)
}

/// `with_gil(f)` unless the interpreter is exiting (then `None`; the thread running the exit
/// hook may still attach). Counted in [`ATTACHING`] until attached, so the exit hook can wait
/// for threads that decided to attach just before. Marks the thread busy while `f` runs.
pub fn attach_unless_exiting<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    if !enter_attach() {
        // Dropped here, its Python references would go to pyo3's deferred queue, emptied
        // (running `__del__`s) by whichever thread enters native code next: during
        // finalization, a daemon thread under Rust frames. The process is ending anyway.
        std::mem::forget(f);
        return None;
    }
    Some(gil::with_gil(|py| {
        ATTACHING.fetch_sub(1, Ordering::SeqCst);
        let _busy = Busy::enter();
        f(py)
    }))
}

/// The exit gate: count this thread in [`ATTACHING`] (the caller takes it out once attached)
/// and say whether it may attach. SeqCst with `gil::exiting()`: either this thread sees the
/// exit or the exit hook sees the count.
fn enter_attach() -> bool {
    ATTACHING.fetch_add(1, Ordering::SeqCst);
    if gil::exiting_elsewhere() {
        ATTACHING.fetch_sub(1, Ordering::SeqCst);
        return false;
    }
    true
}

/// Mark this thread held, unless the interpreter is exiting (then it is left unmarked).
/// SeqCst with `gil::exiting()`, a Dekker pair: either this thread sees the exit or the exit
/// hook sees the mark.
fn mark_held(t: &BusyThread) -> bool {
    t.held.store(true, Ordering::SeqCst);
    if gil::exiting_elsewhere() {
        t.held.store(false, Ordering::SeqCst);
        return false;
    }
    true
}

/// A Python thread inside native code (a `#[pymethod]` that may wait on Rust work or run
/// Python code), marked for the exit hook while it holds the GIL there. CPython before 3.14
/// kills a thread that re-takes the GIL during finalization with a forced unwind, which
/// crashes the process when it meets a Rust frame. A thread can lose and re-take the GIL
/// inside native code without our doing: pyo3 releases it while normalizing an exception,
/// and Python code run from Rust (a `__del__`, a conversion hook) yields it to other threads.
/// The exit hook waits, GIL released, until no thread is held, and a thread that would enter
/// a held region (or come back to one) once the interpreter is exiting leaves for good.
pub struct Held {
    /// This guard marked the thread (the outermost region; not on the exit hook's thread).
    marked: bool,
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Enter a held region (see [`Held`]). Nested regions mark once. The thread running the exit
/// hook is never marked (the hook waits for the others).
pub fn hold(_py: Python<'_>) -> Held {
    let exit_thread = gil::closing() && gil::is_exit_thread();
    let marked = !exit_thread
        && BUSY
            .try_with(|t| {
                if t.held.load(Ordering::Relaxed) {
                    return false;
                }
                if !mark_held(t) {
                    gil::leave_for_good();
                }
                true
            })
            .unwrap_or(false);
    Held {
        marked,
        _not_send: std::marker::PhantomData,
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.marked {
            let _ = BUSY.try_with(|t| t.held.store(false, Ordering::Release));
        }
    }
}

/// `py.detach(f)` for every entry point that waits on Rust work, inside a held region. The
/// thread is not held while it waits; the way back is (the exit hook waits for it with the
/// GIL released) and, once the interpreter is exiting, any thread but the exiting one parks
/// for good instead of re-attaching: such threads are daemon threads (non-daemon ones were
/// joined before the atexit hooks ran), and the process is about to end.
pub fn detach<T, F>(_held: &Held, py: Python<'_>, f: F) -> T
where
    F: Send + FnOnce() -> T,
    T: Send,
{
    // The mark comes off while waiting (only this thread writes it: no read-modify-write).
    let unmarked = BUSY
        .try_with(|t| {
            let marked = t.held.load(Ordering::Relaxed);
            if marked {
                t.held.store(false, Ordering::Release);
            }
            marked
        })
        .unwrap_or(false);
    #[allow(clippy::disallowed_methods)] // the one gated detach
    let r = py.detach(move || {
        let r = f();
        let back = if unmarked {
            BUSY.try_with(|t| mark_held(t)).unwrap_or(false)
        } else {
            enter_attach()
        };
        if !back {
            gil::park_for_good();
        }
        r
    });
    if !unmarked {
        ATTACHING.fetch_sub(1, Ordering::SeqCst);
    }
    r
}

/// The exit hook, after [`gil::set_exiting`]: raise `SystemExit` in every other thread that is
/// inside a Python callback and wait, GIL released, up to `grace` for them to leave it (and for
/// threads about to attach to get through). `threading` ignores `SystemExit` in a thread, so a
/// daemon thread simply ends. Returns how many threads were still busy.
pub fn evict_for_exit(py: Python<'_>, grace: Duration) -> usize {
    let me = ident();
    let busy = || -> Vec<std::sync::Arc<BusyThread>> {
        let mut v = BUSY_THREADS.lock();
        v.retain(|t| std::sync::Arc::strong_count(t) > 1); // ended threads dropped theirs
        v.iter()
            .filter(|t| t.ident != me && t.depth.load(Ordering::Acquire) > 0)
            .cloned()
            .collect()
    };
    // Held threads outside a callback (one inside a callback is waited for as busy).
    let held = || -> usize {
        BUSY_THREADS
            .lock()
            .iter()
            .filter(|t| {
                t.ident != me
                    && t.held.load(Ordering::SeqCst)
                    && t.depth.load(Ordering::Acquire) == 0
            })
            .count()
    };
    for t in busy() {
        // SAFETY: attached (we hold `py`); the exception type is a valid object, and an id
        // that is no longer a thread is simply not found.
        unsafe {
            pyo3::ffi::PyThreadState_SetAsyncExc(t.ident, pyo3::ffi::PyExc_SystemExit);
        }
    }
    // Threads on their way back to the GIL, or holding it in Rust code on their way back to
    // Python, need nothing but the GIL (or just finish), so they get longer than
    // callbacks asked to leave: one left waiting would be killed by finalization.
    let start = std::time::Instant::now();
    #[allow(clippy::disallowed_methods)] // the exit thread itself
    let attaching = py.detach(|| loop {
        let (busy, attaching) = (busy().len(), ATTACHING.load(Ordering::SeqCst) + held());
        let waited = start.elapsed();
        if (busy == 0 || waited >= grace) && (attaching == 0 || waited >= grace * 10) {
            return attaching;
        }
        std::thread::sleep(Duration::from_millis(2));
    });
    if attaching > 0 {
        log::warn!(
            "{attaching} thread(s) still attaching or inside native code {:?} into interpreter exit",
            start.elapsed()
        );
    }
    busy().len()
}
