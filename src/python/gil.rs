//! Attaching Rust threads to Python cheaply.
//!
//! `Python::attach` on a thread without a Python thread state creates one and destroys it again
//! (~15 µs). Threads that call Python repeatedly (tokio workers, the blocking pool, host threads)
//! instead keep theirs: attach once, then detach while idle (granian's `blocking.rs` pattern).
//! Later attaches find the kept state and cost well under a microsecond.
//!
//! Tokio threads never attach: Python work that starts there goes to [`super::pythread`].
//! [`with_gil`] counts attaches made on a tokio thread anyway ([`tokio_attaches`], exposed to
//! the tests as `_native._gil_on_tokio()`), so a regression shows up as a failing test.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;

/// Set once the interpreter is going away; kept states are then leaked, not released.
pub(crate) static FINALIZING: AtomicBool = AtomicBool::new(false);

struct Kept {
    gstate: ffi::PyGILState_STATE,
    tstate: *mut ffi::PyThreadState,
}

impl Drop for Kept {
    fn drop(&mut self) {
        // SAFETY: `tstate` is this thread's own state saved by `PyEval_SaveThread` in `keep()`;
        // restoring it re-attaches this thread, and releasing the matching `PyGILState_Ensure`
        // destroys the state and detaches. Skipped once the interpreter is finalizing, when
        // touching it is unsafe (the state is then reclaimed with the interpreter).
        unsafe {
            if FINALIZING.load(Ordering::Acquire) || ffi::Py_IsInitialized() == 0 {
                return;
            }
            ffi::PyEval_RestoreThread(self.tstate);
            ffi::PyGILState_Release(self.gstate);
        }
    }
}

thread_local! {
    static CHECKED: Cell<bool> = const { Cell::new(false) };
    static KEPT: RefCell<Option<Kept>> = const { RefCell::new(None) };
}

/// Make sure this thread owns a Python thread state that outlives single calls.
#[inline]
pub fn keep_thread_state() {
    if CHECKED.with(|c| c.get()) {
        return;
    }
    keep_slow();
}

#[cold]
fn keep_slow() {
    CHECKED.with(|c| c.set(true));
    // SAFETY: plain queries and, when this thread has no Python state yet, the documented
    // Ensure → SaveThread sequence that leaves the state alive but detached.
    unsafe {
        if ffi::Py_IsInitialized() == 0 || FINALIZING.load(Ordering::Acquire) {
            CHECKED.with(|c| c.set(false));
            return;
        }
        // Threads created by Python (and threads already attached) have a state of their own.
        if !ffi::PyGILState_GetThisThreadState().is_null() {
            return;
        }
        let gstate = ffi::PyGILState_Ensure();
        let tstate = ffi::PyEval_SaveThread();
        KEPT.with(|k| *k.borrow_mut() = Some(Kept { gstate, tstate }));
    }
}

/// Attaches made on a tokio thread (a bug: they stall the runtime behind the GIL).
static TOKIO_ATTACHES: AtomicU64 = AtomicU64::new(0);

/// How many times the GIL was taken on a tokio thread since start-up.
pub fn tokio_attaches() -> u64 {
    TOKIO_ATTACHES.load(Ordering::Relaxed)
}

/// Whether this thread belongs to the tokio runtime: a worker, or a blocking-pool thread of
/// it (both run inside a tokio task; a thread merely inside `block_on` or `Handle::enter`
/// does not).
#[inline]
pub fn on_tokio_thread() -> bool {
    tokio::task::try_id().is_some()
}

/// True once the interpreter is exiting (set by the atexit hook): threads must not attach.
/// Sequentially consistent, like the attach counter and the per-thread held marks it pairs
/// with (see [`super::exit_gate`]): a thread bumps the counter or sets its mark, then reads
/// this; the exit hook sets this, then reads them; one of them sees the other.
#[inline]
pub fn exiting() -> bool {
    FINALIZING.load(Ordering::SeqCst)
}

/// Set first thing in the exit hook, before the runtime is stopped: from then on the runtime's
/// event loop thread is not started again (a daemon thread calling meanwhile would restart it,
/// and a loop thread inside Rust code at finalization is killed there by CPython).
static CLOSING: AtomicBool = AtomicBool::new(false);

/// The exit hook has begun (see [`CLOSING`]) on this thread, the one that finalizes.
pub fn begin_exit() {
    *EXIT_THREAD.lock() = Some(std::thread::current().id());
    CLOSING.store(true, Ordering::SeqCst);
}

/// Whether the exit hook has begun: nothing that runs Python code on a thread of the runtime's
/// own is started any more.
pub fn closing() -> bool {
    CLOSING.load(Ordering::SeqCst)
}

static EXIT_THREAD: parking_lot::Mutex<Option<std::thread::ThreadId>> =
    parking_lot::Mutex::new(None);

/// Called by the exit hook (on the thread that finalizes): from now on no other thread
/// attaches.
pub fn set_exiting() {
    FINALIZING.store(true, Ordering::SeqCst);
}

/// For a thread about to re-attach after waiting on Rust work: once the interpreter is
/// exiting, every thread but the finalizing one parks here for good instead (re-attaching
/// would have CPython kill it, which aborts the process when the kill unwinds Rust frames).
/// Such threads are daemon threads; the process is about to end.
pub fn park_if_exiting() {
    if exiting_elsewhere() {
        park_for_good();
    }
}

/// The interpreter is exiting and this is not the thread running the exit hook: this thread
/// must not attach any more.
pub fn exiting_elsewhere() -> bool {
    exiting() && !is_exit_thread()
}

/// Whether this thread runs the exit hook (and so finalizes the interpreter).
pub fn is_exit_thread() -> bool {
    *EXIT_THREAD.lock() == Some(std::thread::current().id())
}

/// The end of a thread that must never touch the interpreter again.
pub fn park_for_good() -> ! {
    loop {
        std::thread::park();
    }
}

/// The end of a Python thread that holds the GIL inside Rust code while the interpreter is
/// exiting: it releases the GIL and parks for good (see [`park_for_good`]), never to run
/// Python code again.
pub fn leave_for_good() -> ! {
    // SAFETY: this thread holds the GIL (the callers are attached); saving its state releases
    // it, and the state is never restored: the thread parks until the process ends.
    unsafe {
        ffi::PyEval_SaveThread();
    }
    park_for_good()
}

/// `Python::attach` with a kept thread state.
#[inline]
pub fn with_gil<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    if on_tokio_thread() {
        TOKIO_ATTACHES.fetch_add(1, Ordering::Relaxed);
        log::debug!("the GIL was taken on a tokio thread");
    }
    keep_thread_state();
    Python::attach(f)
}
