//! Attaching Rust threads to Python cheaply.
//!
//! `Python::attach` on a thread without a Python thread state creates one and destroys it again
//! (~15 µs). Threads that call Python repeatedly (tokio workers, the blocking pool, host threads)
//! instead keep theirs: attach once, then detach while idle (granian's `blocking.rs` pattern).
//! Later attaches find the kept state and cost well under a microsecond.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// `Python::attach` with a kept thread state.
#[inline]
pub fn with_gil<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    keep_thread_state();
    Python::attach(f)
}
