//! `agent_runtime.Task`: a spawned call as Python sees it.

use pyo3::exceptions::{PyRuntimeError, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::convert::payload_to_py;
use super::errors::IntoPyResult;
use super::loop_bridge::{OnCancel, Ready};
use super::loop_waker;
use crate::core::{runtime, Payload, TaskHandle};

/// A tool call running in the background (from `spawn`). Await it, wait with `result()`,
/// `cancel()` it, or look at `status`, `elapsed` and `progress`.
#[pyclass(name = "Task", module = "agent_runtime._native", frozen)]
pub struct PyTask {
    handle: TaskHandle,
}

impl PyTask {
    pub fn new(handle: TaskHandle) -> Self {
        PyTask { handle }
    }
}

pub fn result_to_py(py: Python<'_>, h: &TaskHandle, p: Payload) -> PyResult<Py<PyAny>> {
    payload_to_py(py, p, h.output_schema())
}

#[pymethods]
impl PyTask {
    /// The task's id (also its call id in events).
    #[getter]
    fn id(&self) -> u64 {
        self.handle.id()
    }

    #[getter]
    fn tool(&self) -> &str {
        self.handle.tool()
    }

    /// pending, running, succeeded, failed, cancelled or timed_out.
    #[getter]
    fn status(&self) -> &'static str {
        self.handle.status().as_str()
    }

    /// Seconds since spawn (frozen once finished).
    #[getter]
    fn elapsed(&self) -> f64 {
        self.handle.elapsed().as_secs_f64()
    }

    /// The latest progress report as `{"done", "total", "message"}`, or None.
    #[getter]
    fn progress<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(p) = self.handle.progress() else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("done", p.done)?;
        d.set_item("total", p.total)?;
        d.set_item("message", p.message)?;
        Ok(Some(d))
    }

    fn done(&self) -> bool {
        self.handle.is_done()
    }

    /// Request cancellation; True if the task had not finished yet.
    fn cancel(&self) -> bool {
        let running = !self.handle.is_done();
        self.handle.cancel();
        running
    }

    /// Wait (without holding the GIL) for the result; raise the call's error. `timeout`
    /// bounds the wait only: on expiry `TimeoutError` is raised and the task keeps running.
    #[pyo3(signature = (timeout = None))]
    fn result(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let held = super::exit_gate::hold(py);
        let h = self.handle.clone();
        let wait = timeout
            .map(|t| crate::core::duration::from_secs("timeout", t))
            .transpose()
            .map_err(pyo3::exceptions::PyValueError::new_err)?;
        let r = super::exit_gate::detach(&held, py, || {
            let r = super::pythread::blocking(|| {
                runtime::block_on(async {
                    match wait {
                        Some(d) => tokio::time::timeout(d, h.wait()).await.ok(),
                        None => Some(h.wait().await),
                    }
                })
            });
            // Deliver the task's events and progress reports before its result.
            super::pythread::settle();
            r
        });
        match r {
            None => Err(PyTimeoutError::new_err(format!(
                "task {} ({}) still {} after {:.3}s",
                self.handle.id(),
                self.handle.tool(),
                self.handle.status().as_str(),
                wait.unwrap_or_default().as_secs_f64()
            ))),
            Some(r) => result_to_py(py, &self.handle, r.py(py)?),
        }
    }

    /// `await task`. Cancelling the awaiting coroutine cancels the task (as with asyncio
    /// tasks; use `asyncio.shield` to avoid that).
    fn __await__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // `loop.create_future()` is Python code, and a finished task resolves right here.
        let _held = super::exit_gate::hold(py);
        let h = self.handle.clone();
        if let Some(r) = h.try_result() {
            let v = r.py(py).and_then(|p| result_to_py(py, &h, p));
            return Bound::new(py, Ready::new(v))?.call_method0("__await__");
        }
        let lp = py.import("asyncio")?.call_method0("_get_running_loop")?;
        if lp.is_none() {
            return Err(PyRuntimeError::new_err(
                "a Task must be awaited inside a running asyncio event loop",
            ));
        }
        // Resolve an asyncio future straight from the thread that finishes the task.
        let afut = lp.call_method0("create_future")?;
        let target = afut.clone().unbind();
        // On the loop's thread (the running loop): the waker may be registered here.
        let waker = loop_waker::for_loop(py, &lp);
        let lp = lp.unbind();
        let done = h.clone();
        h.on_done(move |r| {
            // Usually on a tokio worker, which never takes the GIL: resolved on the loop's own
            // thread (or the Python job thread).
            let r = r.clone();
            loop_waker::run_for_loop(waker.as_ref(), move |py| {
                let (ok, value) = match r.py(py).and_then(|p| result_to_py(py, &done, p)) {
                    Ok(v) => (true, v),
                    Err(e) => (false, e.into_value(py).into_any()),
                };
                // Fails only when the loop is closed: then nobody is waiting.
                let _ = loop_waker::resolve_on(py, lp.bind(py), target, ok, value);
            })
        });
        // Cancelling the awaiting future cancels the task (asyncio semantics).
        afut.call_method1("add_done_callback", (OnCancel::new(move || h.cancel()),))?;
        afut.call_method0("__await__")
    }

    fn __repr__(&self) -> String {
        format!(
            "<agent_runtime.Task id={} tool={:?} status={}>",
            self.handle.id(),
            self.handle.tool(),
            self.handle.status().as_str()
        )
    }
}
