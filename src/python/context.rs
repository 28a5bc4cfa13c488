//! `agent_runtime.Context`: what a Python tool sees of its own call.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use std::sync::Arc;

use super::errors::to_pyerr;
use super::peer_requests::Prepared;
use crate::core::{CallContext, CallPeer, Error, LogLevel, PeerRequest, Progress, ProgressSink};

/// Handed to a tool that declares a parameter annotated `agent_runtime.Context` (that parameter
/// is left out of the tool's schema). Reports progress, logs (to Python `logging` and, for an
/// MCP caller, as `notifications/message`), tells whether the call was cancelled, and asks an
/// MCP client for an LLM completion (`sample`) or user input (`elicit`).
#[pyclass(name = "Context", module = "agent_runtime._native", frozen)]
pub struct PyContext {
    call_id: u64,
    tool: String,
    cancel: crate::core::CancelToken,
    progress: Option<ProgressSink>,
    peer: Option<Arc<dyn CallPeer>>,
}

impl PyContext {
    pub fn new(tool: &str, ctx: &CallContext) -> Self {
        PyContext {
            call_id: ctx.call_id,
            tool: tool.to_string(),
            cancel: ctx.cancel.clone(),
            progress: ctx.progress.clone(),
            peer: ctx.peer.clone(),
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
            // The sink may run Python code (an on_progress callback) under this frame.
            let _held = super::exit_gate::hold(py);
            let p = p.clone();
            let report = Progress {
                done,
                total,
                message,
            };
            p(&report);
        }
        Ok(())
    }

    /// Log `message` at `level` (MCP's names: debug, info, notice, warning, error, critical,
    /// alert, emergency) on the `agent_runtime.tools` logger, tagged with tool and call id; an
    /// MCP client also gets it as `notifications/message` (if it wants that level), from
    /// `logger` (default: the tool's name).
    #[pyo3(signature = (message, level = "info", *, logger = None))]
    fn log(
        &self,
        py: Python<'_>,
        message: &str,
        level: &str,
        logger: Option<&str>,
    ) -> PyResult<()> {
        let Some(lvl) = LogLevel::parse(level) else {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "unknown log level {level:?}; expected one of debug, info, notice, warning, error, \
                 critical, alert, emergency"
            )));
        };
        if let Some(p) = &self.peer {
            p.log(
                lvl,
                Some(logger.unwrap_or(&self.tool)),
                serde_json::Value::String(message.to_string()),
            );
        }
        let method = match lvl {
            LogLevel::Debug => "debug",
            LogLevel::Info | LogLevel::Notice => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical | LogLevel::Alert | LogLevel::Emergency => "critical",
        };
        // Logging handlers run here, under this frame, and release the GIL for their I/O.
        let _held = super::exit_gate::hold(py);
        let py_logger = LOGGING
            .import(py, "logging", "getLogger")?
            .call1(("agent_runtime.tools",))?;
        py_logger.call_method1(
            method,
            (format!("[{} #{}] {}", self.tool, self.call_id, message),),
        )?;
        Ok(())
    }

    /// Ask the MCP client for an LLM completion (`sampling/createMessage`). `messages`: a str
    /// or a list of str / `Message` (text, `Image` or `Audio`). Resolves to a
    /// `SamplingResult` (`content`, `text`, `model`, `stop_reason`). `NotSupported` when the
    /// caller is not an MCP client with the `sampling` capability. Async tools only.
    #[pyo3(signature = (messages, *, max_tokens, system_prompt = None, temperature = None))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        messages: &Bound<'py, PyAny>,
        max_tokens: &Bound<'py, PyAny>,
        system_prompt: Option<&Bound<'py, PyAny>>,
        temperature: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args = (messages, max_tokens, system_prompt, temperature);
        let req = Prepared::new(py, PeerRequest::Sample, args)?;
        req.awaitable(py, self.peer.as_ref(), &self.cancel)
    }

    /// `sample` for sync tools: blocks this thread (not the GIL) until the client answers.
    #[pyo3(signature = (messages, *, max_tokens, system_prompt = None, temperature = None))]
    fn sample_sync<'py>(
        &self,
        py: Python<'py>,
        messages: &Bound<'py, PyAny>,
        max_tokens: &Bound<'py, PyAny>,
        system_prompt: Option<&Bound<'py, PyAny>>,
        temperature: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let args = (messages, max_tokens, system_prompt, temperature);
        let req = Prepared::new(py, PeerRequest::Sample, args)?;
        req.blocking(py, self.peer.as_ref(), &self.cancel)
    }

    /// Ask the MCP client's user for input (`elicitation/create`): `schema` is a JSON Schema
    /// dict (an object of primitive properties) or a TypedDict/dataclass type. Resolves to
    /// `{"action": "accept" | "decline" | "cancel", "content": dict | None}`. `NotSupported`
    /// when the caller is not an MCP client with the `elicitation` capability.
    fn elicit<'py>(
        &self,
        py: Python<'py>,
        message: &Bound<'py, PyAny>,
        schema: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req = Prepared::new(py, PeerRequest::Elicit, (message, schema))?;
        req.awaitable(py, self.peer.as_ref(), &self.cancel)
    }

    /// `elicit` for sync tools: blocks this thread (not the GIL) until the client answers.
    fn elicit_sync<'py>(
        &self,
        py: Python<'py>,
        message: &Bound<'py, PyAny>,
        schema: &Bound<'py, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let req = Prepared::new(py, PeerRequest::Elicit, (message, schema))?;
        req.blocking(py, self.peer.as_ref(), &self.cancel)
    }

    fn __repr__(&self) -> String {
        format!(
            "<agent_runtime.Context tool={:?} call_id={}>",
            self.tool, self.call_id
        )
    }
}
