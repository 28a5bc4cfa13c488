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

/// A request ready to go: its JSON parameters and what reads the answer.
pub struct Prepared {
    kind: PeerRequest,
    params: Value,
    /// `agent_runtime._peer` function turning the answer (Python from JSON) into the result.
    reader: &'static str,
}

impl Prepared {
    /// Build the parameters with `agent_runtime._peer.<builder>(*args)`.
    pub fn new<'py>(
        py: Python<'py>,
        kind: PeerRequest,
        builder: &str,
        args: impl pyo3::call::PyCallArgs<'py>,
        reader: &'static str,
    ) -> PyResult<Self> {
        let params = helper(py, builder)?.call1(args)?;
        let params = py_to_json(&params, "params").map_err(|e| to_pyerr(py, e))?;
        Ok(Prepared {
            kind,
            params,
            reader,
        })
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
        what: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        static GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let lp = GET.import(py, "asyncio", "_get_running_loop")?.call0()?;
        if lp.is_none() {
            return Err(PyRuntimeError::new_err(format!(
                "ctx.{what}() must be awaited in an async tool; a sync tool calls ctx.{what}_sync()"
            )));
        }
        let reader = self.reader;
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
        what: &str,
    ) -> PyResult<Py<PyAny>> {
        static GET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        if !GET
            .import(py, "asyncio", "_get_running_loop")?
            .call0()?
            .is_none()
        {
            // Blocking here would stall every coroutine of that loop.
            return Err(PyRuntimeError::new_err(format!(
                "ctx.{what}_sync() would block a running event loop; an async tool awaits ctx.{what}()"
            )));
        }
        let reader = self.reader;
        let fut = self.send(peer, cancel);
        let r = py.detach(|| runtime::block_on(fut));
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
