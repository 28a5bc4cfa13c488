//! `agent_runtime.Context`: what a Python tool sees of its own call.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::errors::to_pyerr;
use crate::core::{CallContext, Error, Progress, ProgressSink};

/// Handed to a tool that declares a parameter annotated `agent_runtime.Context` (that parameter
/// is left out of the tool's schema). Reports progress, logs, and tells whether the call was
/// cancelled.
#[pyclass(name = "Context", module = "agent_runtime._native", frozen)]
pub struct PyContext {
    call_id: u64,
    tool: String,
    cancel: crate::core::CancelToken,
    progress: Option<ProgressSink>,
}

impl PyContext {
    pub fn new(tool: &str, ctx: &CallContext) -> Self {
        PyContext {
            call_id: ctx.call_id,
            tool: tool.to_string(),
            cancel: ctx.cancel.clone(),
            progress: ctx.progress.clone(),
        }
    }
}

static LOGGING: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

#[pymethods]
impl PyContext {
    /// This call's id (unique in the process; the same id events carry).
    #[getter]
    fn call_id(&self) -> u64 {
        self.call_id
    }

    /// The tool's name.
    #[getter]
    fn tool(&self) -> &str {
        &self.tool
    }

    /// True once the caller cancelled the call or its timeout passed.
    #[getter]
    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Raise `agent_runtime.Cancelled` if the call was cancelled (for sync tools' loops).
    fn check_cancelled(&self, py: Python<'_>) -> PyResult<()> {
        if self.cancel.is_cancelled() {
            return Err(to_pyerr(
                py,
                Error::Cancelled {
                    tool: self.tool.clone(),
                },
            ));
        }
        Ok(())
    }

    /// Report progress: `done` out of `total` (if known), with an optional message. Delivered
    /// to the caller's `on_progress`, `Task.progress`, MCP progress notifications, the CLI.
    /// `done` and `total` must be finite: JSON transports (MCP, gRPC, the worker pipe) cannot
    /// carry NaN or infinities.
    #[pyo3(signature = (done, total = None, message = None))]
    fn progress(
        &self,
        py: Python<'_>,
        done: f64,
        total: Option<f64>,
        message: Option<String>,
    ) -> PyResult<()> {
        for (name, v) in [("done", Some(done)), ("total", total)] {
            if let Some(v) = v.filter(|v| !v.is_finite()) {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "progress {name} must be a finite number, got {v}"
                )));
            }
        }
        if let Some(p) = &self.progress {
            let p = p.clone();
            let report = Progress {
                done,
                total,
                message,
            };
            // The sink may take the GIL itself (a Python on_progress callback); that nests fine.
            let _ = py;
            p(&report);
        }
        Ok(())
    }

    /// Log `message` on the `agent_runtime.tools` logger, tagged with tool and call id.
    #[pyo3(signature = (message, level = "info"))]
    fn log(&self, py: Python<'_>, message: &str, level: &str) -> PyResult<()> {
        let logger = LOGGING
            .import(py, "logging", "getLogger")?
            .call1(("agent_runtime.tools",))?;
        let method = match level {
            "debug" | "info" | "warning" | "error" | "critical" => level,
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "unknown log level {other:?}"
                )))
            }
        };
        logger.call_method1(
            method,
            (format!("[{} #{}] {}", self.tool, self.call_id, message),),
        )?;
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "<agent_runtime.Context tool={:?} call_id={}>",
            self.tool, self.call_id
        )
    }
}
