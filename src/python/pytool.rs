//! Python callables as registry tools.

use std::any::Any;
use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tokio::sync::oneshot;

use super::context::PyContext;
use super::convert::{json_to_py, PyValue};
use super::errors::{from_pyerr, to_pyerr};
use super::gil;
use super::loop_bridge::{await_coroutine, runtime_loop, MakeCoro};
use super::pythread;
use crate::core::{runtime, BoxFuture, CallContext, Error, Payload, Result, Tool, ToolSpec};

/// What the Python boundary attaches to a call's context: where the caller's asyncio loop and
/// contextvars are, so callbacks started from Rust see them.
pub struct PyCallCtx {
    pub loop_: Option<Py<PyAny>>,
    pub context: Option<Py<PyAny>>,
}

struct Inner {
    spec: ToolSpec,
    func: Py<PyAny>,
    is_async: bool,
    /// Converts JSON-decoded kwargs into the annotated types (bytes, enums, dataclasses, …).
    coercer: Option<Py<PyAny>>,
    /// Name of the parameter that receives an `agent_runtime.Context`.
    context_param: Option<String>,
}

/// A registered Python callable (sync function, coroutine function or callable object).
#[derive(Clone)]
pub struct PyTool(Arc<Inner>);

impl PyTool {
    pub fn new(
        spec: ToolSpec,
        func: Py<PyAny>,
        is_async: bool,
        coercer: Option<Py<PyAny>>,
        context_param: Option<String>,
    ) -> Self {
        PyTool(Arc::new(Inner {
            spec,
            func,
            is_async,
            coercer,
            context_param,
        }))
    }

    pub fn func(&self) -> &Py<PyAny> {
        &self.0.func
    }

    pub fn is_async(&self) -> bool {
        self.0.is_async
    }

    /// Whether the function takes an `agent_runtime.Context`.
    pub fn wants_context(&self) -> bool {
        self.0.context_param.is_some()
    }

    /// Keyword arguments for the callable: a Python caller's dict as-is, or JSON made Python.
    pub fn kwargs<'py>(&self, py: Python<'py>, args: &Payload) -> PyResult<Bound<'py, PyDict>> {
        match args {
            Payload::Foreign(f) => match f.as_any().downcast_ref::<PyValue>() {
                Some(v) => Ok(v.obj.bind(py).cast::<PyDict>()?.clone()),
                None => self.json_kwargs(py, &args.to_json().map_err(|e| to_pyerr(py, e))?),
            },
            Payload::Json(v) => self.json_kwargs(py, v),
        }
    }

    fn json_kwargs<'py>(
        &self,
        py: Python<'py>,
        v: &serde_json::Value,
    ) -> PyResult<Bound<'py, PyDict>> {
        let obj = json_to_py(py, v, Some(&self.0.spec.input_schema), "args")
            .map_err(|e| to_pyerr(py, e))?;
        let obj = match &self.0.coercer {
            Some(c) => c.bind(py).call1((obj,))?,
            None => obj,
        };
        obj.cast_into::<PyDict>().map_err(|e| {
            PyTypeError::new_err(format!(
                "tool arguments must be an object, got {}",
                e.into_inner().get_type()
            ))
        })
    }

    /// Call the function with `kwargs` (plus its `Context`, if it takes one), inside a copy of
    /// `contextvars` when given.
    pub fn invoke<'py>(
        &self,
        py: Python<'py>,
        kwargs: Option<&Bound<'py, PyDict>>,
        call: Option<&CallContext>,
        contextvars: Option<&Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _busy = super::exit_gate::Busy::enter();
        let f = self.0.func.bind(py);
        let with_ctx;
        let kwargs = match &self.0.context_param {
            Some(param) => {
                let fresh;
                let call = match call {
                    Some(c) => c,
                    None => {
                        fresh = CallContext::new();
                        &fresh
                    }
                };
                // A copy: the caller's dict is never modified.
                let d = match kwargs {
                    Some(k) => k.copy()?,
                    None => PyDict::new(py),
                };
                d.set_item(
                    param,
                    Bound::new(py, PyContext::new(&self.0.spec.name, call))?,
                )?;
                with_ctx = d;
                Some(&with_ctx)
            }
            None => kwargs.filter(|k| !k.is_empty()),
        };
        match (contextvars, kwargs) {
            (Some(c), kw) => c
                .bind(py)
                .call_method0("copy")?
                .call_method("run", (f,), kw),
            (None, None) => f.call0(),
            (None, kw) => f.call((), kw),
        }
    }

    /// Run the sync callable on this (attached) thread, inside the caller's contextvars when
    /// the call carries them.
    fn run_sync(&self, py: Python<'_>, args: &Payload, call: &CallContext) -> Result<Payload> {
        let contextvars = call.foreign::<PyCallCtx>().and_then(|p| p.context.as_ref());
        super::registry::run_nested(call, || {
            self.kwargs(py, args)
                .and_then(|kw| self.invoke(py, Some(&kw), Some(call), contextvars))
                .map(|r| Payload::Foreign(Arc::new(PyValue::result(r.unbind()))))
                .map_err(|e| from_pyerr(py, e))
        })
    }
}

/// The error for a sync call whose pool job ended without an answer.
fn lost(tool: String) -> Error {
    if gil::exiting() {
        Error::Cancelled { tool }
    } else {
        Error::tool(tool, "the Python callback thread panicked")
    }
}

impl Tool for PyTool {
    fn spec(&self) -> &ToolSpec {
        &self.0.spec
    }

    fn call(&self, args: Payload, ctx: CallContext) -> BoxFuture<Result<Payload>> {
        let name = self.0.spec.name.clone();
        let this = self.clone();
        if !self.0.is_async {
            // On a Python pool thread: a sync callback may block. Should the call time out or
            // be cancelled, the callback runs on in its thread and its result is dropped.
            let rx = pythread::spawn_blocking(move |py| this.run_sync(py, &args, &ctx));
            return Box::pin(async move { rx.await.unwrap_or_else(|_| Err(lost(name))) });
        }
        // Find the target loop and schedule the coroutine's start on it (on this thread when
        // it may take the GIL, else from the Python job thread).
        // A call without a caller's loop runs on the runtime loop: a tokio thread queues the
        // start straight to that loop's thread.
        let direct = ctx
            .foreign::<PyCallCtx>()
            .and_then(|p| p.loop_.as_ref())
            .is_none()
            .then(super::loop_waker::runtime)
            .flatten();
        Box::pin(await_coroutine(name, direct, move |py| {
            let pctx = ctx.foreign::<PyCallCtx>();
            let lp = match pctx.and_then(|p| p.loop_.as_ref()) {
                Some(l) => l.clone_ref(py),
                None => runtime_loop(py).map_err(|e| from_pyerr(py, e))?,
            };
            // A copy of the caller's contextvars carrying this call's depth (limit checks).
            let contextvars = Some(
                super::registry::context_nested_in(py, pctx.and_then(|p| p.context.as_ref()), &ctx)
                    .map_err(|e| from_pyerr(py, e))?,
            );
            let make: MakeCoro = Box::new(move |py: Python<'_>| {
                let kw = this.kwargs(py, &args)?;
                // Created on the loop thread; contextvars apply through the task.
                this.invoke(py, Some(&kw), Some(&ctx), None)
                    .map(Bound::unbind)
            });
            Ok((lp, contextvars, make))
        }))
    }

    fn call_blocking(&self, args: Payload, ctx: CallContext) -> Result<Payload> {
        if self.0.is_async {
            return runtime::block_on(self.call(args, ctx));
        }
        if pythread::may_attach() {
            return super::exit_gate::attach_unless_exiting(|py| self.run_sync(py, &args, &ctx))
                .unwrap_or_else(|| Err(lost(self.0.spec.name.clone())));
        }
        // A tokio thread, blocked anyway: poll briefly for the pool thread's answer before
        // parking (a short tool answers within microseconds, a wake-up costs tens).
        let name = self.0.spec.name.clone();
        let this = self.clone();
        let mut rx = pythread::spawn_blocking(move |py| this.run_sync(py, &args, &ctx));
        let r = match pythread::spin_for(|| match rx.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => None,
            r => Some(r.ok()),
        }) {
            Some(r) => r,
            None => runtime::block_on(rx).ok(),
        };
        r.unwrap_or_else(|| Err(lost(name)))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
