//! `Context.sample` / `Context.elicit` (and their `_sync` forms): requests a tool sends to the
//! client that made the call, through the call's [`CallPeer`]. Parameters are built and answers
//! read by `agent_runtime._peer` (Python); this file moves them across.

use std::sync::Arc;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use serde_json::Value;

use super::convert::{json_to_py, py_to_json};
use super::errors::to_pyerr;
use super::loop_bridge::into_awaitable;
use crate::core::peer::not_supported;
use crate::core::{runtime, BoxFuture, CallPeer, CancelToken, Payload, PeerRequest};

static PEER_MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// `agent_runtime._peer.<name>`.
pub fn helper<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    PEER_MODULE
        .get_or_try_init(py, || py.import("agent_runtime._peer").map(Bound::unbind))?
        .bind(py)
        .getattr(name)
}

/// The names around a request: the `ctx.<method>()` that sends it, and the `agent_runtime._peer`
/// functions building its parameters and turning the answer (Python from JSON) into the result.
struct Names {
    method: &'static str,
    builder: &'static str,
    reader: &'static str,
}

fn names(kind: PeerRequest) -> Names {
    match kind {
        PeerRequest::Sample => Names {
            method: "sample",
            builder: "sample_params",
            reader: "sample_result",
        },
        PeerRequest::Elicit => Names {
            method: "elicit",
            builder: "elicit_params",
            reader: "elicit_result",
        },
    }
}

/// A request ready to go: its kind and JSON parameters.
pub struct Prepared {
    kind: PeerRequest,
    params: Value,
}

impl Prepared {
    /// Build the parameters of a `kind` request from the `ctx` method's arguments.
    pub fn new<'py>(
        py: Python<'py>,
        kind: PeerRequest,
        args: impl pyo3::call::PyCallArgs<'py>,
    ) -> PyResult<Self> {
        let params = helper(py, names(kind).builder)?.call1(args)?;
        let params = py_to_json(&params, "params").map_err(|e| to_pyerr(py, e))?;
        Ok(Prepared { kind, params })
    }

    fn send(
        self,
        peer: Option<&Arc<dyn CallPeer>>,
        cancel: &CancelToken,
    ) -> BoxFuture<crate::core::Result<Value>> {
        match peer {
            Some(p) => p.request(self.kind, self.params, cancel.clone()),
            None => {
                let e = not_supported(
                    self.kind,
                    "needs an MCP client that declared the capability; this call came from \
                     elsewhere (a Python call(), gRPC, the CLI)",
                );
                Box::pin(async move { Err(e) })
            }
        }
    }

    /// An awaitable resolving to the answer (on the running asyncio loop).
    pub fn awaitable<'py>(
        self,
        py: Python<'py>,
        peer: Option<&Arc<dyn CallPeer>>,
        cancel: &CancelToken,
    ) -> PyResult<Bound<'py, PyAny>> {
        static GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let Names { method, reader, .. } = names(self.kind);
        let lp = GET.import(py, "asyncio", "_get_running_loop")?.call0()?;
        if lp.is_none() {
            return Err(PyRuntimeError::new_err(format!(
                "ctx.{method}() must be awaited in an async tool; a sync tool calls ctx.{method}_sync()"
            )));
        }
        let fut = self.send(peer, cancel);
        into_awaitable(
            py,
            lp.unbind(),
            async move { fut.await.map(Payload::Json) },
            move |py, p| read(py, p, reader),
            None,
        )
    }

    /// Wait for the answer on this thread (a sync tool's), without the GIL.
    pub fn blocking(
        self,
        py: Python<'_>,
        peer: Option<&Arc<dyn CallPeer>>,
        cancel: &CancelToken,
    ) -> PyResult<Py<PyAny>> {
        static GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let Names { method, reader, .. } = names(self.kind);
        if !GET
            .import(py, "asyncio", "_get_running_loop")?
            .call0()?
            .is_none()
        {
            // Blocking here would stall every coroutine of that loop.
            return Err(PyRuntimeError::new_err(format!(
                "ctx.{method}_sync() would block a running event loop; an async tool awaits ctx.{method}()"
            )));
        }
        let fut = self.send(peer, cancel);
        let held = super::exit_gate::hold(py);
        let r = super::exit_gate::detach(&held, py, || runtime::block_on(fut));
        match r {
            Ok(v) => read(py, Payload::Json(v), reader),
            Err(e) => Err(to_pyerr(py, e)),
        }
    }
}

fn read(py: Python<'_>, p: Payload, reader: &str) -> PyResult<Py<PyAny>> {
    let v = p.into_json().map_err(|e| to_pyerr(py, e))?;
    let obj = json_to_py(py, &v, None, "answer").map_err(|e| to_pyerr(py, e))?;
    Ok(helper(py, reader)?.call1((obj,))?.unbind())
}
