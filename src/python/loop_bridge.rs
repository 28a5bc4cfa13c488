//! asyncio ↔ tokio without pyo3-async-runtimes' per-await overhead.
//!
//! * Rust awaiting a Python coroutine: one `call_soon_threadsafe` to start it as a task on the
//!   target loop, one done-callback that completes a tokio oneshot. Dropping the Rust future
//!   cancels the task.
//! * Python awaiting Rust: the future is polled once inline (GIL released); if it is already
//!   done the caller gets a `Ready` awaitable (no loop round trip at all). Otherwise it runs on
//!   tokio and completes an asyncio future with a single `call_soon_threadsafe`; cancelling
//!   that future aborts the Rust task.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCFunction, PyModule, PyTuple};
use tokio::sync::oneshot;

use super::convert::PyValue;
use super::errors::{from_pyerr, to_pyerr};
use super::pythread;
use crate::core::{runtime, Error, Payload, Result};

const LOOP_PY: &std::ffi::CStr = cr#"
import asyncio, os, threading

_lock = threading.Lock()
_state = None


def get_loop(on_start, on_exit):
    global _state
    with _lock:
        s = _state
        if s is not None and s[0] == os.getpid() and s[2].is_alive():
            return s[1]
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def run():
            asyncio.set_event_loop(loop)
            on_start(loop)
            loop.call_soon(started.set)
            try:
                while True:
                    try:
                        loop.run_forever()
                        break  # loop.stop(): shutdown asked for it
                    except BaseException:  # noqa: BLE001
                        # A tool raised KeyboardInterrupt/SystemExit: its task already holds
                        # the exception (its caller gets it); keep serving the others.
                        continue
            finally:
                on_exit()
                try:
                    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
                    for t in tasks:
                        t.cancel()
                    if tasks:
                        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                    loop.run_until_complete(loop.shutdown_asyncgens())
                finally:
                    loop.close()

        t = threading.Thread(target=run, name="agent-runtime-loop", daemon=True)
        t.start()
        started.wait()
        _state = (os.getpid(), loop, t)
        return loop


def stop(timeout):
    global _state
    with _lock:
        s, _state = _state, None
    if s is None or s[0] != os.getpid():
        return
    _, loop, t = s
    try:
        loop.call_soon_threadsafe(loop.stop)
    except RuntimeError:
        return
    t.join(timeout)
"#;

static LOOP_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
static LOOP_CACHE: Mutex<Option<(u32, Py<PyAny>)>> = Mutex::new(None);

fn loop_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    LOOP_MODULE
        .get_or_try_init(py, || {
            PyModule::from_code(
                py,
                LOOP_PY,
                c"agent_runtime/_loop.py",
                c"agent_runtime._loop",
            )
            .map(|m| m.unbind())
        })
        .map(|m| m.bind(py))
}

/// The runtime-owned asyncio loop (a daemon thread), started on first use and after fork.
pub fn runtime_loop(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let pid = std::process::id();
    if let Some((p, l)) = LOOP_CACHE.lock().as_ref() {
        if *p == pid {
            return Ok(l.clone_ref(py));
        }
    }
    if super::gil::closing() {
        return Err(PyRuntimeError::new_err(
            "the runtime's event loop is not started again (the interpreter is exiting)",
        ));
    }
    // On the loop thread before it runs: the waker through which tokio threads queue
    // coroutine starts for it.
    let on_start = PyCFunction::new_closure(py, None, None, |args, _| -> PyResult<()> {
        super::loop_waker::runtime_loop_started(args.py(), &args.get_item(0)?);
        Ok(())
    })?;
    // Clears the cache should the loop thread ever end, so the next call starts a new one.
    let on_exit = PyCFunction::new_closure(py, None, None, |_, _| {
        LOOP_CACHE.lock().take();
        super::loop_waker::runtime_loop_ended();
    })?;
    let l = loop_module(py)?
        .call_method1("get_loop", (on_start, on_exit))?
        .unbind();
    *LOOP_CACHE.lock() = Some((pid, l.clone_ref(py)));
    Ok(l)
}

/// Stop the runtime loop thread, cancelling its tasks.
pub fn stop_runtime_loop(py: Python<'_>, timeout: f64) -> PyResult<()> {
    LOOP_CACHE.lock().take();
    loop_module(py)?.call_method1("stop", (timeout,))?;
    Ok(())
}

// ---------------------------------------------------------------- Rust awaiting Python

pub type MakeCoro = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;
type Reply = oneshot::Sender<Result<Py<PyAny>>>;

#[derive(Default)]
struct Shared {
    task: Mutex<Option<Py<PyAny>>>,
    /// The loop the task runs on (set when its start is scheduled).
    loop_: Mutex<Option<Py<PyAny>>>,
    cancelled: AtomicBool,
    /// Where the result goes; taken by whoever answers first.
    reply: Mutex<Option<Reply>>,
}

/// What starting a coroutine needs: its factory and the caller's contextvars.
type StartArgs = (MakeCoro, Option<Py<PyAny>>);

#[pyclass]
struct Starter {
    inner: Mutex<Option<StartArgs>>,
    shared: Arc<Shared>,
    loop_: Py<PyAny>,
}

#[pymethods]
impl Starter {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        let _held = super::exit_gate::hold(py);
        let Some((make, context)) = self.inner.lock().take() else {
            return Ok(());
        };
        let Some(tx) = self.shared.reply.lock().take() else {
            return Ok(());
        };
        if self.shared.cancelled.load(Ordering::Acquire) {
            return Ok(()); // dropping `tx` reports cancellation
        }
        let coro = match make(py) {
            Ok(c) => c.into_bound(py),
            Err(e) => {
                let _ = tx.send(Err(from_pyerr(py, e)));
                return Ok(());
            }
        };
        let done = Done {
            tx: Mutex::new(Some(tx)),
        };
        let task = match create_task(py, self.loop_.bind(py), coro, context) {
            Ok(t) => t,
            Err(e) => {
                if let Some(tx) = done.tx.lock().take() {
                    let _ = tx.send(Err(from_pyerr(py, e)));
                }
                return Ok(());
            }
        };
        if task.call_method0("done")?.is_truthy()? {
            // Finished during its eager first step: reply without another loop iteration.
            done.__call__(py, &task);
            return Ok(());
        }
        task.call_method1("add_done_callback", (done,))?;
        let mut slot = self.shared.task.lock();
        if self.shared.cancelled.load(Ordering::Acquire) {
            drop(slot);
            task.call_method0("cancel")?;
        } else {
            *slot = Some(task.unbind());
        }
        Ok(())
    }
}

impl Drop for Starter {
    fn drop(&mut self) {
        // Never ran (its loop closed first): dropping the reply reports a cancellation.
        if self.inner.get_mut().take().is_some() {
            self.shared.reply.lock().take();
        }
    }
}

/// Answers the caller if a scheduled start never got to run (its job was dropped at exit).
struct Unscheduled {
    shared: Arc<Shared>,
    scheduled: bool,
}

impl Drop for Unscheduled {
    fn drop(&mut self) {
        if !self.scheduled {
            if let Some(tx) = self.shared.reply.lock().take() {
                let _ = tx.send(Err(Error::Runtime(
                    "the coroutine could not be started (the interpreter is exiting)".into(),
                )));
            }
        }
    }
}

/// Start `coro` as a task on `lp` inside (a copy of) `context`. On 3.12+ the task starts
/// eagerly: a coroutine that finishes without suspending never waits for a loop iteration.
fn create_task<'py>(
    py: Python<'py>,
    lp: &Bound<'py, PyAny>,
    coro: Bound<'py, PyAny>,
    context: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    if py.version_info() >= (3, 12) {
        static TASK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let task_type = TASK.import(py, "asyncio", "Task")?;
        let kw = pyo3::types::PyDict::new(py);
        kw.set_item("loop", lp)?;
        kw.set_item("eager_start", true)?;
        if let Some(c) = context {
            kw.set_item("context", c.bind(py).call_method0("copy")?)?;
        }
        return task_type.call((coro,), Some(&kw));
    }
    // Creating the task inside the caller's context makes its contextvars visible.
    match context {
        Some(ctx) => ctx
            .bind(py)
            .call_method0("copy")?
            .call_method1("run", (lp.getattr("create_task")?, coro)),
        None => lp.call_method1("create_task", (coro,)),
    }
}

#[pyclass]
struct Done {
    tx: Mutex<Option<Reply>>,
}

#[pymethods]
impl Done {
    fn __call__(&self, py: Python<'_>, task: &Bound<'_, PyAny>) {
        let _held = super::exit_gate::hold(py);
        let Some(tx) = self.tx.lock().take() else {
            return;
        };
        if task
            .call_method0("cancelled")
            .and_then(|c| c.is_truthy())
            .unwrap_or(false)
        {
            return; // dropping `tx` reports cancellation
        }
        let r = match task.call_method0("result") {
            Ok(v) => Ok(v.unbind()),
            Err(e) => Err(from_pyerr(py, e)),
        };
        let _ = tx.send(r);
    }
}

/// Cancels the Python task if the Rust future is dropped before it finished.
struct CancelOnDrop {
    shared: Arc<Shared>,
    armed: bool,
}

impl CancelOnDrop {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.shared.cancelled.store(true, Ordering::Release);
        let task = self.shared.task.lock().take();
        let Some(task) = task else {
            return; // not started yet: the starter sees `cancelled`
        };
        let lp = self.shared.loop_.lock().take();
        // Often dropped on a tokio worker (a timeout, an aborted awaitable): no GIL there.
        pythread::run_or_submit(move |py| {
            if let (Some(lp), Ok(cancel)) = (lp, task.bind(py).getattr("cancel")) {
                // The loop may already be closed; then the task is gone anyway.
                let _ = lp.bind(py).call_method1("call_soon_threadsafe", (cancel,));
            }
        });
    }
}

/// Where and how to start a coroutine, decided with the GIL: the target loop, the caller's
/// contextvars, and the coroutine factory.
pub type Prepared = (Py<PyAny>, Option<Py<PyAny>>, MakeCoro);

/// Run a coroutine as a task on an asyncio loop and await its result from Rust. `prepare`
/// picks the loop and makes the factory; it runs right away on this thread when it may take
/// the GIL, else (never on a tokio worker) on the thread of the loop `direct` wakes, which
/// then starts the task without another hop, or else on the Python job thread. Dropping the
/// future cancels the task.
pub fn await_coroutine(
    tool: String,
    direct: Option<Arc<super::loop_waker::LoopWaker>>,
    prepare: impl for<'py> FnOnce(Python<'py>) -> Result<Prepared> + Send + 'static,
) -> impl Future<Output = Result<Payload>> + Send + 'static {
    let (tx, rx) = oneshot::channel();
    let shared = Arc::new(Shared::default());
    *shared.reply.lock() = Some(tx);
    let mut pending = Unscheduled {
        shared: shared.clone(),
        scheduled: false,
    };
    super::loop_waker::run_for_loop(direct.as_ref(), move |py| {
        pending.scheduled = true; // answered below either way
        let sh = pending.shared.clone();
        let fail = |e: Error| {
            if let Some(tx) = sh.reply.lock().take() {
                let _ = tx.send(Err(e));
            }
        };
        let (lp, context, make) = match prepare(py) {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        *sh.loop_.lock() = Some(lp.clone_ref(py));
        let starter = Starter {
            inner: Mutex::new(Some((make, context))),
            shared: sh.clone(),
            loop_: lp.clone_ref(py),
        };
        let lp = lp.bind(py);
        if super::loop_waker::draining(lp) {
            // Already on the loop's thread, inside one of its callbacks.
            if let Err(e) = starter.__call__(py) {
                e.write_unraisable(py, None);
            }
        } else if let Err(e) = lp.call_method1("call_soon_threadsafe", (starter,)) {
            fail(from_pyerr(py, e)); // a closed loop
        }
    });
    let mut guard = CancelOnDrop {
        shared,
        armed: true,
    };
    async move {
        let r = rx.await;
        guard.disarm(); // finished: nothing to cancel
        match r {
            Ok(Ok(obj)) => Ok(Payload::Foreign(Arc::new(PyValue::result(obj)))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Cancelled { tool }),
        }
    }
}

// ---------------------------------------------------------------- Python awaiting Rust

/// An awaitable whose result is already known: awaiting it costs no loop iteration.
#[pyclass(module = "agent_runtime._native")]
pub struct Ready {
    result: Mutex<Option<PyResult<Py<PyAny>>>>,
}

impl Ready {
    pub fn new(r: PyResult<Py<PyAny>>) -> Self {
        Ready {
            result: Mutex::new(Some(r)),
        }
    }

    fn step(&self) -> PyResult<Py<PyAny>> {
        match self.result.lock().take() {
            Some(Ok(v)) => Err(PyStopIteration::new_err((v,))),
            Some(Err(e)) => Err(e),
            None => Err(PyRuntimeError::new_err("cannot reuse already awaited call")),
        }
    }
}

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self) -> PyResult<Py<PyAny>> {
        self.step()
    }

    fn send(&self, _value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.step()
    }

    #[pyo3(signature = (typ, val=None, tb=None))]
    fn throw(
        &self,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _ = tb;
        self.result.lock().take();
        let exc = match val {
            Some(v) if !v.is_none() => v.clone(),
            _ => typ.clone(),
        };
        Err(PyErr::from_value(exc))
    }

    fn close(&self) {
        self.result.lock().take();
    }
}

static RESOLVE: PyOnceLock<Py<PyCFunction>> = PyOnceLock::new();

/// `_resolve(fut, ok, value)`, run on the loop thread: complete `fut` unless it was cancelled.
pub fn resolver(py: Python<'_>) -> PyResult<&Bound<'_, PyCFunction>> {
    RESOLVE
        .get_or_try_init(py, || {
            PyCFunction::new_closure(
                py,
                Some(c"_resolve"),
                None,
                |args: &Bound<'_, PyTuple>, _kw| -> PyResult<()> {
                    let _held = super::exit_gate::hold(args.py());
                    let fut = args.get_item(0)?;
                    if fut.call_method0("done")?.is_truthy()? {
                        return Ok(());
                    }
                    let value = args.get_item(2)?;
                    if args.get_item(1)?.is_truthy()? {
                        fut.call_method1("set_result", (value,))?;
                    } else {
                        fut.call_method1("set_exception", (value,))?;
                    }
                    Ok(())
                },
            )
            .map(|f| f.unbind())
        })
        .map(|f| f.bind(py))
}

/// An asyncio done-callback that runs `on_cancel` if the future was cancelled.
#[pyclass]
pub struct OnCancel {
    on_cancel: Box<dyn Fn() + Send + Sync>,
}

impl OnCancel {
    pub fn new(on_cancel: impl Fn() + Send + Sync + 'static) -> Self {
        OnCancel {
            on_cancel: Box::new(on_cancel),
        }
    }
}

#[pymethods]
impl OnCancel {
    fn __call__(&self, fut: &Bound<'_, PyAny>) {
        let _held = super::exit_gate::hold(fut.py());
        if fut
            .call_method0("cancelled")
            .and_then(|c| c.is_truthy())
            .unwrap_or(false)
        {
            (self.on_cancel)();
        }
    }
}

/// Turn a Rust future into something Python can `await` on `loop_`.
///
/// `convert` runs with the GIL on completion to produce the Python result. Cancelling the
/// awaitable cancels `cancel` and drops the future.
pub fn into_awaitable<'py, F, C>(
    py: Python<'py>,
    loop_: Py<PyAny>,
    fut: F,
    convert: C,
    cancel: Option<crate::core::CancelToken>,
) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<Payload>> + Send + 'static,
    C: for<'a> FnOnce(Python<'a>, Payload) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let held = super::exit_gate::hold(py);
    let mut fut = Box::pin(fut);
    // Eager first poll, like asyncio's eager tasks: most tool calls finish without waiting.
    // The rest runs on the runtime that first poll used: timers and I/O the future registered
    // there would make tokio panic on another one (after a `shutdown()` meanwhile, a new
    // runtime; the task is then cancelled, which resolves the awaitable with `Cancelled`).
    let (first, rt) = super::exit_gate::detach(&held, py, || {
        let h = runtime::cached_handle();
        let entered = h.enter();
        let waker = futures::task::noop_waker();
        let first = match fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        };
        drop(entered);
        (first, h)
    });
    if let Some(r) = first {
        let r = match r {
            Ok(p) => convert(py, p),
            Err(e) => Err(to_pyerr(py, e)),
        };
        return Ok(Bound::new(py, Ready::new(r))?.into_any());
    }
    let afut = loop_.bind(py).call_method0("create_future")?;
    let target = afut.clone().unbind();
    // Called on the loop's thread (the running loop): the waker may be registered here.
    let waker = super::loop_waker::for_loop(py, loop_.bind(py));
    let finish: Finish = Box::new(move |r: Result<Payload>| {
        // Usually on a tokio worker, which never takes the GIL: resolved on the loop's own
        // thread (or the Python job thread).
        super::loop_waker::run_for_loop(waker.as_ref(), move |py| {
            let (ok, value) = match r.map_err(|e| to_pyerr(py, e)).and_then(|p| convert(py, p)) {
                Ok(v) => (true, v),
                Err(e) => (false, e.into_value(py).into_any()),
            };
            if let Err(e) = super::loop_waker::resolve_on(py, loop_.bind(py), target, ok, value) {
                // Only when the loop is closed: nobody is waiting any more.
                tracing_unraisable(py, e);
            }
        });
    });
    let mut guard = FinishOnDrop(Some(finish));
    let handle = rt.spawn(async move {
        let r = fut.await;
        if let Some(f) = guard.0.take() {
            f(r);
        }
    });
    afut.call_method1(
        "add_done_callback",
        (OnCancel::new({
            let abort = handle.abort_handle();
            move || {
                // The token first: tools watching it (and spawned work) stop too; then drop
                // the future, which cancels an awaited Python coroutine.
                if let Some(t) = &cancel {
                    t.cancel();
                }
                abort.abort();
            }
        }),),
    )?;
    Ok(afut)
}

type Finish = Box<dyn FnOnce(Result<Payload>) + Send>;

/// Resolves the awaitable even when its tokio task is dropped unfinished (a runtime shutdown):
/// the awaiting coroutine gets an error instead of waiting forever. (When the awaitable itself
/// was cancelled, resolving it is a no-op.)
struct FinishOnDrop(Option<Finish>);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f(Err(Error::Runtime(
                "the runtime was shut down before the call finished".into(),
            )));
        }
    }
}

fn tracing_unraisable(py: Python<'_>, e: PyErr) {
    if !e.is_instance_of::<PyRuntimeError>(py) {
        e.write_unraisable(py, None);
    }
}
