//! `agent_runtime._native.Registry`: the registry as Python sees it.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pythonize::pythonize;
use serde_json::Value;

use super::convert::{check_arg_names, payload_to_py, py_to_json, py_to_json_lenient, PyValue};
use super::errors::{from_pyerr, IntoPyResult};
use super::loop_bridge::{into_awaitable, Ready};
use super::pytool::{PyCallCtx, PyTool};
use super::task::PyTask;
use crate::core::duration::positive_secs;
use crate::core::registry::{depth_error, finished_event, started_event};
use crate::core::tool::MAX_CALL_DEPTH;
use crate::core::{
    events, runtime, CallContext, Payload, Progress, ProgressSink, Registered, Registry, ToolSpec,
};

/// A set of tools. `Registry()` is a new, independent registry; `Registry(shared=True)` is a
/// handle on the process-wide default one (what `@agent_runtime.tool` registers into).
#[pyclass(name = "Registry", module = "agent_runtime._native", subclass, frozen)]
pub struct PyRegistry {
    pub inner: Registry,
}

/// Arguments as a dict: other mappings are copied, anything else refused.
fn args_dict<'py>(py: Python<'py>, a: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
    if let Ok(d) = a.cast::<PyDict>() {
        return Ok(d.clone());
    }
    if a.hasattr("keys")? {
        let d = PyDict::new(py);
        d.update(a.cast::<pyo3::types::PyMapping>()?)?;
        return Ok(d);
    }
    Err(PyTypeError::new_err(format!(
        "tool arguments must be a dict of keyword arguments, got {}",
        a.get_type().name()?
    )))
}

/// Arguments checked against the tool's input schema: the caller's dict for a Python tool
/// (None when there are no arguments), JSON for a Rust tool.
struct Checked<'py> {
    dict: Option<Bound<'py, PyDict>>,
    json: Option<Value>,
}

impl<'py> Checked<'py> {
    /// The arguments as a call payload: JSON for a Rust tool, the caller's dict for a Python one.
    fn payload(self, py: Python<'py>) -> Payload {
        match self.json {
            Some(json) => Payload::Json(json),
            None => Payload::Foreign(Arc::new(PyValue::args(self.dict(py).unbind().into_any()))),
        }
    }

    /// The arguments as a Python dict (empty when none were given).
    fn dict(&self, py: Python<'py>) -> Bound<'py, PyDict> {
        self.dict.clone().unwrap_or_else(|| PyDict::new(py))
    }
}

/// Validate arguments once. Empty arguments of a tool that accepts none skip conversion; a
/// Python tool gets the caller's objects themselves, so values JSON cannot express are
/// validated leniently for it (see `py_to_json_lenient`), while a Rust tool needs strict JSON.
fn check<'py>(
    py: Python<'py>,
    e: &Registered,
    is_py: bool,
    args: Option<&Bound<'py, PyAny>>,
) -> PyResult<Checked<'py>> {
    let dict = match args {
        Some(a) if !a.is_none() => Some(args_dict(py, a)?).filter(|d| !d.is_empty()),
        _ => None,
    };
    let Some(d) = dict else {
        if !e.accepts_no_args() {
            e.validate(&Value::Object(Default::default())).py(py)?;
        }
        let json = (!is_py).then(|| Value::Object(Default::default()));
        return Ok(Checked { dict: None, json });
    };
    if is_py {
        check_arg_names(&d, "args").py(py)?;
        let (json, opaque) = py_to_json_lenient(d.as_any());
        e.validate_ignoring(&json, &opaque).py(py)?;
        return Ok(Checked {
            dict: Some(d),
            json: None,
        });
    }
    let json = py_to_json(d.as_any(), "args").py(py)?;
    e.validate(&json).py(py)?;
    Ok(Checked {
        dict: Some(d),
        json: Some(json),
    })
}

fn contextvars_copy(py: Python<'_>) -> PyResult<Py<PyAny>> {
    static COPY: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    COPY.import(py, "contextvars", "copy_context")?
        .call0()
        .map(|c| c.unbind())
}

fn running_loop(py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
    static GET: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    let l = GET.import(py, "asyncio", "_get_running_loop")?.call0()?;
    Ok(if l.is_none() { None } else { Some(l.unbind()) })
}

/// A per-call timeout argument: positive seconds (huge values and +inf mean "no deadline in
/// practice" and are clamped to [`crate::core::duration::FOREVER`]).
fn duration_arg(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    timeout
        .map(|t| positive_secs("timeout", t))
        .transpose()
        .map_err(pyo3::exceptions::PyValueError::new_err)
}

/// `r`, once the events and progress reports queued before it were delivered.
fn settled<T>(r: T) -> T {
    super::pythread::settle();
    r
}

/// Forward progress reports to a Python callable `fn(done, total, message)`, from whichever
/// thread reports. Its exceptions are logged, never breaking the call.
fn progress_sink(on_progress: Option<Py<PyAny>>) -> Option<ProgressSink> {
    let f = Arc::new(on_progress?);
    Some(Arc::new(move |p: &Progress| {
        // Reported on a tokio worker (a Rust or isolated tool), the callback runs on the
        // Python job thread instead; the call returns after it ran.
        let (f, p) = (f.clone(), p.clone());
        super::pythread::run_or_submit(move |py| {
            if let Err(e) = f.call1(py, (p.done, p.total, p.message)) {
                let tb = e
                    .traceback(py)
                    .and_then(|t| t.format().ok())
                    .unwrap_or_default();
                log::error!("on_progress callback failed: {e}\n{tb}");
            }
        })
    }))
}

thread_local! {
    /// Depth a call started on this thread gets: one more than the sync Python tool running
    /// here (0 outside any tool). Python code calling back into the registry from inside a
    /// tool has no `CallContext` in hand; this is how its calls still count as nested.
    static NESTED_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Whether an async Python tool ever ran with its depth in [`depth_var`]: until then reading
/// it can be skipped (most programs never nest async tools).
static ASYNC_DEPTH_USED: AtomicBool = AtomicBool::new(false);

/// The contextvar holding the depth a call started from inside an async Python tool gets (a
/// thread-local cannot follow a coroutine across awaits; the task's context does).
fn depth_var(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static VAR: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    VAR.get_or_try_init(py, || {
        Ok::<_, PyErr>(
            py.import("contextvars")?
                .getattr("ContextVar")?
                .call1(("agent_runtime.call_depth",))?
                .unbind(),
        )
    })
    .map(|v| v.bind(py))
}

/// The nesting depth of a call started now: from the sync Python tool running on this thread
/// (see [`NESTED_DEPTH`]) or the async one whose task this is.
pub(crate) fn nested_depth_py(py: Python<'_>) -> u32 {
    let here = nested_depth();
    if !ASYNC_DEPTH_USED.load(Ordering::Relaxed) {
        return here;
    }
    let task = depth_var(py)
        .and_then(|v| v.call_method1("get", (0u32,)))
        .and_then(|d| d.extract::<u32>())
        .unwrap_or(0);
    here.max(task)
}

/// A copy of `context` (the caller's contextvars; the current ones when None) in which calls
/// made by a coroutine started for `ctx` are nested one level below it.
pub(crate) fn context_nested_in(
    py: Python<'_>,
    context: Option<&Py<PyAny>>,
    ctx: &CallContext,
) -> PyResult<Py<PyAny>> {
    let copy = match context {
        Some(c) => c.bind(py).call_method0("copy")?,
        None => contextvars_copy(py)?.into_bound(py),
    };
    let set = depth_var(py)?.getattr("set")?;
    copy.call_method1("run", (set, ctx.depth.saturating_add(1)))?;
    ASYNC_DEPTH_USED.store(true, Ordering::Relaxed);
    Ok(copy.unbind())
}

/// The nesting depth of a call started now on this thread (see [`NESTED_DEPTH`]).
pub(crate) fn nested_depth() -> u32 {
    NESTED_DEPTH.with(Cell::get)
}

/// Run `f` (a sync Python tool's body, called with `ctx`) so that calls it makes on this
/// thread are nested one level below `ctx`.
pub(crate) fn run_nested<R>(ctx: &CallContext, f: impl FnOnce() -> R) -> R {
    struct Restore(u32);
    impl Drop for Restore {
        fn drop(&mut self) {
            NESTED_DEPTH.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(NESTED_DEPTH.with(|d| d.replace(ctx.depth.saturating_add(1))));
    f()
}

/// A sync Python tool on the calling thread: no thread hop, the caller's objects as they are.
fn call_inline(
    py: Python<'_>,
    e: &Registered,
    pt: &PyTool,
    dict: Option<&Bound<'_, PyDict>>,
    progress: Option<ProgressSink>,
) -> PyResult<Py<PyAny>> {
    let depth = nested_depth_py(py);
    if depth > MAX_CALL_DEPTH {
        let probe = CallContext::default().with_depth(depth);
        if let Some(err) = depth_error(e.name(), &probe) {
            return Err(super::errors::to_pyerr(py, err));
        }
    }
    let observed = events::active();
    if !observed && !pt.wants_context() {
        return Ok(pt.invoke(py, dict, None, None)?.unbind());
    }
    let call = CallContext::new().with_progress(progress).with_depth(depth);
    let t0 = Instant::now();
    started_event(e.name(), call.call_id);
    let r = pt.invoke(py, dict, Some(&call), None).map(Bound::unbind);
    if observed {
        let outcome = match &r {
            Ok(_) => Ok(()),
            Err(err) => Err(from_pyerr(py, err.clone_ref(py))),
        };
        finished_event(e.name(), call.call_id, t0, &outcome);
    }
    r
}

/// A tool spec from the registration arguments.
fn tool_spec(
    py: Python<'_>,
    name: String,
    description: String,
    input_schema: Option<&Bound<'_, PyAny>>,
    output_schema: Option<&Bound<'_, PyAny>>,
    timeout: Option<f64>,
    schema_as_given: bool,
) -> PyResult<ToolSpec> {
    let mut spec = ToolSpec::new(name).description(description);
    spec.schema_as_given = schema_as_given;
    if let Some(s) = input_schema {
        spec.input_schema = py_to_json(s, "input_schema").py(py)?;
    }
    if let Some(s) = output_schema.filter(|s| !s.is_none()) {
        spec.output_schema = Some(py_to_json(s, "output_schema").py(py)?);
    }
    spec.timeout = duration_arg(timeout)?;
    Ok(spec)
}

fn spec_to_py(py: Python<'_>, s: &ToolSpec) -> PyResult<Py<PyAny>> {
    Ok(pythonize(py, s)?.unbind())
}

/// The registry a module-level function acts on: `registry`, else the process-wide one.
fn registry_or_global(registry: Option<&PyRegistry>) -> Registry {
    registry
        .map(|r| r.inner.clone())
        .unwrap_or_else(|| Registry::global().clone())
}

impl PyRegistry {
    fn entry(&self, py: Python<'_>, name: &str) -> PyResult<Arc<Registered>> {
        self.inner.get(name).py(py)
    }

    /// The tool `name` and the caller's arguments, checked against its input schema.
    fn checked<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        args: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Arc<Registered>, Checked<'py>)> {
        let e = self.entry(py, name)?;
        let is_py = e.tool().as_any().is::<PyTool>();
        let checked = check(py, &e, is_py, args)?;
        Ok((e, checked))
    }

    /// Add `tool`, in place of the tool of that name when `replace`.
    fn add(&self, py: Python<'_>, tool: Arc<dyn crate::core::Tool>, replace: bool) -> PyResult<()> {
        if replace {
            self.inner.replace(tool).py(py)?;
        } else {
            self.inner.register_arc(tool).py(py)?;
        }
        Ok(())
    }

    /// Run a checked call to its end on this thread, without the GIL, in a copy of the
    /// caller's contextvars.
    fn call_blocking(
        held: &super::exit_gate::Held,
        py: Python<'_>,
        e: &Registered,
        args: Payload,
        timeout: Option<Duration>,
        progress: Option<ProgressSink>,
    ) -> PyResult<Payload> {
        let (ctx, pctx) = Self::ctx(py, None, Some(contextvars_copy(py)?), timeout, progress);
        let fut = e.call_prevalidated(args, ctx);
        let r = super::exit_gate::detach(held, py, || {
            settled(super::pythread::blocking(|| runtime::block_on(fut)))
        });
        // Dropped here, attached: the last reference to the context object goes without
        // pyo3's deferred-decref queue.
        drop(pctx);
        r.py(py)
    }

    /// A call context carrying the caller's loop and contextvars. The returned `Arc` lets the
    /// caller drop the Python references itself, attached (not via pyo3's deferred queue).
    fn ctx(
        py: Python<'_>,
        loop_: Option<Py<PyAny>>,
        context: Option<Py<PyAny>>,
        timeout: Option<Duration>,
        progress: Option<ProgressSink>,
    ) -> (CallContext, Arc<PyCallCtx>) {
        let p = Arc::new(PyCallCtx { loop_, context });
        let ctx = CallContext {
            foreign: Some(p.clone()),
            ..CallContext::new()
        }
        .with_timeout(timeout)
        .with_progress(progress)
        .with_depth(nested_depth_py(py));
        (ctx, p)
    }
}

#[pymethods]
impl PyRegistry {
    #[new]
    #[pyo3(signature = (*, shared = false))]
    fn new(shared: bool) -> Self {
        PyRegistry {
            inner: if shared {
                Registry::global().clone()
            } else {
                Registry::new()
            },
        }
    }

    /// Register a Python callable as a tool. The Python package's `tool` decorator derives
    /// the schema and calls this.
    #[pyo3(signature = (func, name, *, description = String::new(), input_schema = None, output_schema = None,
                        timeout = None, is_async = false, coercer = None, context_param = None, replace = false,
                        schema_as_given = false))]
    #[allow(clippy::too_many_arguments)]
    fn register(
        &self,
        py: Python<'_>,
        func: Py<PyAny>,
        name: String,
        description: String,
        input_schema: Option<&Bound<'_, PyAny>>,
        output_schema: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
        is_async: bool,
        coercer: Option<Py<PyAny>>,
        context_param: Option<String>,
        replace: bool,
        schema_as_given: bool,
    ) -> PyResult<()> {
        if !func.bind(py).is_callable() {
            return Err(PyTypeError::new_err("func must be callable"));
        }
        let spec = tool_spec(
            py,
            name,
            description,
            input_schema,
            output_schema,
            timeout,
            schema_as_given,
        )?;
        let tool = Arc::new(PyTool::new(spec, func, is_async, coercer, context_param));
        self.add(py, tool, replace)
    }

    /// Register `module.qualname` as a tool that runs in the isolation worker pool (see
    /// `agent_runtime.configure_isolation`). The `tool(isolated=True)` decorator derives the
    /// schema in this process and calls this.
    #[pyo3(signature = (module, qualname, name, *, description = String::new(), input_schema = None,
                        output_schema = None, timeout = None, is_async = false, context_param = None,
                        replace = false, schema_as_given = false))]
    #[allow(clippy::too_many_arguments)]
    fn register_isolated(
        &self,
        py: Python<'_>,
        module: String,
        qualname: String,
        name: String,
        description: String,
        input_schema: Option<&Bound<'_, PyAny>>,
        output_schema: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
        is_async: bool,
        context_param: Option<String>,
        replace: bool,
        schema_as_given: bool,
    ) -> PyResult<()> {
        if module.is_empty()
            || module == "__main__"
            || qualname.is_empty()
            || qualname.contains('<')
        {
            return Err(super::errors::to_pyerr(
                py,
                crate::core::Error::Registration(format!(
                    "isolated tool '{name}': {module}.{qualname} cannot be imported by a worker process \
                     (define it at the top level of an importable module, not in __main__ or a function)"
                )),
            ));
        }
        let spec = tool_spec(
            py,
            name,
            description,
            input_schema,
            output_schema,
            timeout,
            schema_as_given,
        )?;
        let pool = crate::worker::global().clone();
        pool.add_preload(&module);
        let target = crate::worker::Target {
            module,
            qualname,
            is_async,
            context_param,
        };
        let tool = Arc::new(crate::worker::IsolatedTool::new(spec, target, pool.clone()));
        self.add(py, tool, replace)?;
        let held = super::exit_gate::hold(py);
        super::exit_gate::detach(&held, py, || pool.warm());
        Ok(())
    }

    /// `(module, qualname)` of an isolated tool, or None for other tools and unknown names.
    fn isolated_target(&self, name: &str) -> Option<(String, String)> {
        let e = self.inner.get(name).ok()?;
        e.tool()
            .as_any()
            .downcast_ref::<crate::worker::IsolatedTool>()
            .map(|t| (t.target().module.clone(), t.target().qualname.clone()))
    }

    /// Remove a tool; True if it was registered.
    fn unregister(&self, name: &str) -> bool {
        self.inner.unregister(name)
    }

    fn __contains__(&self, name: &str) -> bool {
        self.inner.contains(name)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Tool names, sorted.
    fn names(&self) -> Vec<String> {
        self.inner.specs().into_iter().map(|s| s.name).collect()
    }

    /// The spec of one tool as a dict (raises ToolNotFound).
    fn spec(&self, py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
        spec_to_py(py, self.entry(py, name)?.spec())
    }

    /// Specs of all tools, sorted by name: dicts with name, description, input_schema,
    /// output_schema (when known) and timeout (seconds, when set).
    fn specs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let specs = self.inner.specs();
        let items = specs
            .iter()
            .map(|s| spec_to_py(py, s))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// The Python callable behind a tool, or None for Rust tools and unknown names.
    fn function(&self, py: Python<'_>, name: &str) -> Option<Py<PyAny>> {
        let e = self.inner.get(name).ok()?;
        e.tool()
            .as_any()
            .downcast_ref::<PyTool>()
            .map(|t| t.func().clone_ref(py))
    }

    /// Call a tool and wait for its result. A sync Python tool runs on this thread with the
    /// caller's objects (in a worker thread when a timeout applies, so the deadline holds);
    /// Rust tools run with the GIL released.
    #[pyo3(signature = (name, args = None, *, timeout = None, on_progress = None))]
    fn call(
        &self,
        py: Python<'_>,
        name: &str,
        args: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
        on_progress: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let held = super::exit_gate::hold(py);
        let (e, checked) = self.checked(py, name, args)?;
        let pt = e.tool().as_any().downcast_ref::<PyTool>();
        let timeout = duration_arg(timeout)?;
        let progress = progress_sink(on_progress);
        if let Some(pt) = pt {
            if !pt.is_async() && timeout.or(e.spec().timeout).is_none() {
                return call_inline(py, &e, pt, checked.dict.as_ref(), progress);
            }
            if pt.is_async() {
                if let Some(l) = running_loop(py)? {
                    if l.is(&super::loop_bridge::runtime_loop(py)?) {
                        return Err(PyRuntimeError::new_err(format!(
                            "sync call() of async tool '{name}' from the runtime's own event loop would deadlock; use `await call_async(...)`"
                        )));
                    }
                }
            }
            let args = Payload::Foreign(Arc::new(PyValue::args(
                checked.dict(py).unbind().into_any(),
            )));
            let r = Self::call_blocking(&held, py, &e, args, timeout, progress)?;
            return payload_to_py(py, r, None);
        }
        let args = Payload::Json(checked.json.unwrap_or_default());
        let r = Self::call_blocking(&held, py, &e, args, timeout, progress)?;
        payload_to_py(py, r, e.spec().output_schema.as_ref())
    }

    /// Call a tool from asyncio: `await registry.call_async(name, args)`. Async Python tools
    /// run as the caller's coroutine; sync Python tools run in a worker thread; Rust tools on
    /// tokio (finishing inline when they complete without waiting). Cancelling the awaitable
    /// cancels the call.
    #[pyo3(signature = (name, args = None, *, timeout = None, on_progress = None))]
    fn call_async<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        args: Option<&Bound<'py, PyAny>>,
        timeout: Option<f64>,
        on_progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _held = super::exit_gate::hold(py);
        let prepared = (|| -> PyResult<(Arc<Registered>, Checked<'py>, Option<Duration>)> {
            let (e, checked) = self.checked(py, name, args)?;
            Ok((e, checked, duration_arg(timeout)?))
        })();
        let (e, checked, timeout) = match prepared {
            Ok(p) => p,
            Err(err) => return Ok(Bound::new(py, Ready::new(Err(err)))?.into_any()),
        };
        let progress = progress_sink(on_progress);
        if let Some(pt) = e.tool().as_any().downcast_ref::<PyTool>() {
            // Nothing to add around the coroutine: hand it over as is.
            let plain =
                timeout.or(e.spec().timeout).is_none() && !pt.wants_context() && !events::active();
            if pt.is_async() && plain {
                return pt.invoke(py, checked.dict.as_ref(), None, None);
            }
        }
        let lp = match running_loop(py)? {
            Some(l) => l,
            None => {
                return Err(PyRuntimeError::new_err(
                    "call_async() must be awaited inside a running asyncio event loop",
                ))
            }
        };
        let (ctx, _pctx) = Self::ctx(
            py,
            Some(lp.clone_ref(py)),
            Some(contextvars_copy(py)?),
            timeout,
            progress,
        );
        let token = ctx.cancel.clone();
        let hint = e.spec().output_schema.clone();
        let payload = checked.payload(py);
        let fut = e.call_prevalidated(payload, ctx);
        into_awaitable(
            py,
            lp,
            fut,
            move |py, p| payload_to_py(py, p, hint.as_ref()),
            Some(token),
        )
    }

    /// Start a call in the background and return its `Task` at once. Unknown tools and
    /// invalid arguments raise here; everything else is reported through the task. Called
    /// from asyncio, async Python tools run on the caller's loop (so, as with asyncio tasks,
    /// they are cancelled if that loop ends first); otherwise on the runtime's loop thread.
    #[pyo3(signature = (name, args = None, *, timeout = None, on_progress = None))]
    fn spawn(
        &self,
        py: Python<'_>,
        name: &str,
        args: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
        on_progress: Option<Py<PyAny>>,
    ) -> PyResult<PyTask> {
        let held = super::exit_gate::hold(py);
        let (e, checked) = self.checked(py, name, args)?;
        let (ctx, _pctx) = Self::ctx(
            py,
            running_loop(py)?,
            Some(contextvars_copy(py)?),
            duration_arg(timeout)?,
            progress_sink(on_progress),
        );
        let payload = checked.payload(py);
        Ok(PyTask::new(super::exit_gate::detach(&held, py, || {
            e.spawn_prevalidated(payload, ctx)
        })))
    }

    fn __repr__(&self) -> String {
        format!("<agent_runtime.Registry with {} tools>", self.inner.len())
    }
}

/// Register the `diag.*` Rust tools (echo, noop, add, sleep, fail, panic, spin, call).
#[pyfunction]
#[pyo3(signature = (registry = None))]
pub fn register_diagnostic_tools(py: Python<'_>, registry: Option<&PyRegistry>) -> PyResult<()> {
    crate::builtin::diag::register(&registry_or_global(registry)).py(py)
}

/// Register built-in Rust tools by group ("fs", "edit", "search", "shell", "diag"; see
/// `crate::builtin::GROUPS`). `groups=None` registers every group except "diag".
#[pyfunction]
#[pyo3(signature = (groups = None, registry = None))]
pub fn register_builtin_tools(
    py: Python<'_>,
    groups: Option<Vec<String>>,
    registry: Option<&PyRegistry>,
) -> PyResult<()> {
    let r = registry_or_global(registry);
    let names: Vec<&str> = match &groups {
        Some(g) => g.iter().map(String::as_str).collect(),
        None => crate::builtin::default_groups(),
    };
    crate::builtin::register_groups(&r, &names).py(py)
}
