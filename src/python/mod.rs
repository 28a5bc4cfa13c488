//! The pyo3 boundary: the `agent_runtime._native` extension module.

#[cfg(feature = "bench")]
mod bench;
pub mod catalog;
pub mod context;
pub mod convert;
pub mod errors;
pub mod exit_gate;
pub mod gil;
pub mod host;
pub mod isolation;
pub mod logbridge;
pub mod loop_bridge;
pub mod loop_waker;
#[cfg(feature = "mcp")]
pub mod mcp_mount;
mod peer_requests;
pub mod pythread;
pub mod pytool;
pub mod registry;
pub mod task;

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use std::sync::Arc;

use crate::core::events::{self, Event, EventKind};
use crate::core::{runtime, Registry};
pub use registry::PyRegistry;

/// Stop the runtime: the asyncio loop thread and the tokio runtime (cancelling their tasks),
/// waiting up to `timeout` seconds. Registered with `atexit` so it runs before finalization.
/// The next call starts them again. Refused (`RuntimeError`) from inside a tool call, which
/// runs on the threads being stopped: call it once the call has returned.
#[pyfunction]
#[pyo3(signature = (timeout = 1.0))]
fn shutdown(py: Python<'_>, timeout: f64) -> PyResult<()> {
    let held = exit_gate::hold(py);
    if inside_tool_call(py)? {
        return Err(pyo3::exceptions::PyRuntimeError::new_err(
            "agent_runtime.shutdown() cannot be called from inside a tool call (it would stop \
             the threads running that call); call it after the call has returned",
        ));
    }
    let t = crate::core::duration::from_secs("timeout", timeout)
        .map_err(pyo3::exceptions::PyValueError::new_err)?
        .min(Duration::from_secs(3600));
    loop_bridge::stop_runtime_loop(py, t.as_secs_f64())?;
    exit_gate::detach(&held, py, || runtime::shutdown(t));
    Ok(())
}

/// Whether this thread is running a tool: a Python tool function (sync, or an async one's
/// start), a job of the runtime's Python threads, or the runtime's own event loop thread.
fn inside_tool_call(py: Python<'_>) -> PyResult<bool> {
    if exit_gate::in_callback() {
        return Ok(true);
    }
    let name = py
        .import("threading")?
        .call_method0("current_thread")?
        .getattr("name")?;
    Ok(name
        .extract::<String>()
        .is_ok_and(|n| n == "agent-runtime-loop"))
}

/// Test hook: whether the calling thread belongs to the tokio runtime (a Python `logging`
/// handler asks, to prove records from tokio threads are delivered elsewhere).
#[pyfunction]
fn _on_tokio_thread() -> bool {
    gil::on_tokio_thread()
}

/// Test hook: how many times the GIL was taken on a tokio thread (should stay 0).
#[pyfunction]
fn _gil_on_tokio() -> u64 {
    gil::tokio_attaches()
}

/// Tasks spawned and not finished yet, oldest first.
#[pyfunction]
fn tasks() -> Vec<task::PyTask> {
    crate::core::live_tasks()
        .into_iter()
        .map(task::PyTask::new)
        .collect()
}

/// Subscribe `listener(event: dict)` to call events (`tool.started`, `tool.finished`,
/// `tool.failed`; all of them when `kinds` is empty). Returns an id for `unsubscribe`.
/// Listeners run on the thread that emits, or on the runtime's Python job thread when that is
/// a tokio thread (in order either way); a call returns after its events were delivered. An
/// exception in a listener is logged on the `agent_runtime` logger and never breaks the call.
#[pyfunction]
#[pyo3(signature = (kinds, listener))]
fn subscribe(kinds: Vec<String>, listener: Py<PyAny>) -> PyResult<u64> {
    let mut ks = Vec::new();
    for k in &kinds {
        ks.push(EventKind::parse(k).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!(
                "unknown event {k:?}: expected tool.started, tool.finished or tool.failed"
            ))
        })?);
    }
    let listener = Arc::new(listener);
    Ok(events::subscribe(
        &ks,
        Arc::new(move |e: &Event| {
            // Emitted on a tokio worker, the listener runs on the Python job thread instead
            // (in order; calls return only after their events were delivered).
            let (e, listener) = (e.clone(), listener.clone());
            pythread::run_or_submit(move |py| {
                let r = event_dict(py, &e).and_then(|d| listener.call1(py, (d,)));
                if let Err(err) = r {
                    let tb = err
                        .traceback(py)
                        .and_then(|t| t.format().ok())
                        .unwrap_or_default();
                    log::error!("event listener for {} failed: {err}\n{tb}", e.kind.as_str());
                }
            })
        }),
    ))
}

/// Remove an event listener; True if it was subscribed.
#[pyfunction]
fn unsubscribe(id: &Bound<'_, PyAny>) -> PyResult<bool> {
    // Extracted here so the error names the parameter on every Python version (pyo3 attaches
    // the argument name as a note, which older interpreters do not show).
    let id: u64 = id.extract().map_err(|e| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "unsubscribe(id): id must be an id returned by subscribe() (a non-negative int): {e}"
        ))
    })?;
    Ok(events::unsubscribe(id))
}

fn event_dict<'py>(py: Python<'py>, e: &Event) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("event", e.kind.as_str())?;
    d.set_item("tool", &e.tool)?;
    d.set_item("call_id", e.call_id)?;
    d.set_item("duration", e.duration.as_secs_f64())?;
    match &e.error {
        None => d.set_item("error", py.None())?,
        Some(err) => {
            let ed = PyDict::new(py);
            let type_name = match err {
                crate::core::Error::Python { type_name, .. } => type_name.clone(),
                other => other.kind().to_string(),
            };
            ed.set_item("type", type_name)?;
            ed.set_item("message", err.to_string())?;
            d.set_item("error", ed)?;
        }
    }
    Ok(d)
}

/// Run the `agent-runtime` command line with `argv`; returns the exit code.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> i32 {
    let held = exit_gate::hold(py);
    exit_gate::detach(&held, py, || crate::cli::run(argv))
}

/// Import a tool module explicitly (it becomes allowed for `run_function`/`run_script`).
#[pyfunction]
fn import_tools(py: Python<'_>, module: &str) -> PyResult<()> {
    let m = module.to_string();
    let held = exit_gate::hold(py);
    exit_gate::detach(&held, py, || host::import_module(&m)).map_err(|e| errors::to_pyerr(py, e))
}

/// Add module allowlist patterns for `run_function`/`run_script` (`pkg.mod`, `pkg.*`, `*`).
#[pyfunction]
#[pyo3(signature = (*patterns))]
fn allow_modules(patterns: Vec<String>) {
    host::allow_modules(patterns);
}

/// Import the plugins declared under an entry-point group; one report dict per plugin
/// (`name`, `value`, `dist`, `error`).
#[pyfunction]
#[pyo3(signature = (group = host::ENTRY_POINT_GROUP))]
fn discover(py: Python<'_>, group: &str) -> PyResult<Py<PyAny>> {
    let g = group.to_string();
    let held = exit_gate::hold(py);
    let reports = exit_gate::detach(&held, py, || host::discover(&g));
    Ok(pythonize::pythonize(py, &reports)?.unbind())
}

/// The note's RunTool: call `tool_name` with a JSON text of arguments; JSON text back.
#[pyfunction]
#[pyo3(signature = (tool_name, args_json = "{}"))]
fn run_tool(py: Python<'_>, tool_name: &str, args_json: &str) -> PyResult<String> {
    let (n, a) = (tool_name.to_string(), args_json.to_string());
    let held = exit_gate::hold(py);
    exit_gate::detach(&held, py, || {
        runtime::block_on(host::run_tool(
            Registry::global(),
            &n,
            &a,
            crate::core::CallContext::new(),
        ))
    })
    .map_err(|e| errors::to_pyerr(py, e))
}

/// The note's RunFunction: `module.function(*json.loads(args_json))` for allowlisted modules;
/// the result as JSON text.
#[pyfunction]
#[pyo3(signature = (module, function, args_json = "[]"))]
fn run_function(py: Python<'_>, module: &str, function: &str, args_json: &str) -> PyResult<String> {
    let (m, f, a) = (
        module.to_string(),
        function.to_string(),
        args_json.to_string(),
    );
    let held = exit_gate::hold(py);
    exit_gate::detach(&held, py, || {
        runtime::block_on(host::run_function(&m, &f, &a))
    })
    .map_err(|e| errors::to_pyerr(py, e))
}

/// The note's RunScript: `str(script.main(*args))` for allowlisted modules.
#[pyfunction]
#[pyo3(signature = (script, args = Vec::new()))]
fn run_script(py: Python<'_>, script: &str, args: Vec<String>) -> PyResult<String> {
    let s = script.to_string();
    let held = exit_gate::hold(py);
    exit_gate::detach(&held, py, || runtime::block_on(host::run_script(&s, &args)))
        .map_err(|e| errors::to_pyerr(py, e))
}

#[pyfunction]
fn _atexit(py: Python<'_>) -> PyResult<()> {
    gil::begin_exit();
    // Short grace: threads still inside a sync Python callback cannot be joined anyway.
    let r = shutdown(py, 0.5);
    // From here on threads must not touch the interpreter on their way out.
    gil::set_exiting();
    // Threads inside a Python callback would re-take the GIL during finalization and be
    // killed there by CPython (aborting the process once the kill meets a Rust frame): ask
    // them to leave first.
    let left = exit_gate::evict_for_exit(py, Duration::from_millis(500));
    if left > 0 {
        log::debug!("{left} thread(s) still inside a Python callback at exit");
    }
    r
}

/// Convert `value` to JSON and back exactly as a boundary crossing does (`schema` guides
/// bytes decoding). For tests and for checking what a value will look like on the other side.
#[pyfunction]
#[pyo3(signature = (value, schema = None))]
fn _roundtrip(
    py: Python<'_>,
    value: &Bound<'_, PyAny>,
    schema: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let hint = match schema {
        Some(s) if !s.is_none() => {
            Some(convert::py_to_json(s, "schema").map_err(|e| errors::to_pyerr(py, e))?)
        }
        _ => None,
    };
    let v = convert::py_to_json(value, "value").map_err(|e| errors::to_pyerr(py, e))?;
    Ok(convert::json_to_py(py, &v, hint.as_ref(), "value")
        .map_err(|e| errors::to_pyerr(py, e))?
        .unbind())
}

/// Import-time module setup shared by the extension and embedding hosts.
#[pymodule]
#[pyo3(name = "_native")]
pub fn native_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyRegistry>()?;
    m.add_class::<loop_bridge::Ready>()?;
    m.add_class::<context::PyContext>()?;
    m.add_class::<task::PyTask>()?;
    #[cfg(feature = "mcp")]
    {
        m.add_class::<mcp_mount::PyMcpMount>()?;
        m.add_function(wrap_pyfunction!(mcp_mount::mount_mcp, m)?)?;
    }
    m.add_function(wrap_pyfunction!(tasks, m)?)?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(import_tools, m)?)?;
    m.add_function(wrap_pyfunction!(allow_modules, m)?)?;
    m.add_function(wrap_pyfunction!(discover, m)?)?;
    m.add_function(wrap_pyfunction!(run_tool, m)?)?;
    m.add_function(wrap_pyfunction!(run_function, m)?)?;
    m.add_function(wrap_pyfunction!(run_script, m)?)?;
    m.add_function(wrap_pyfunction!(subscribe, m)?)?;
    m.add_function(wrap_pyfunction!(unsubscribe, m)?)?;
    // Rust `log` records go to Python's `logging` (logger names follow the Rust module path,
    // e.g. `agent_runtime.core.events`). A second initialisation (embedding) is harmless.
    logbridge::install(py);
    let c = errors::classes(py);
    m.add("AgentRuntimeError", c.base.bind(py))?;
    m.add("ToolNotFound", c.not_found.bind(py))?;
    m.add("InvalidArguments", c.invalid_arguments.bind(py))?;
    m.add("ConversionError", c.conversion.bind(py))?;
    m.add("ToolError", c.tool_error.bind(py))?;
    m.add("ToolTimeout", c.timeout.bind(py))?;
    m.add("Cancelled", c.cancelled.bind(py))?;
    m.add("RegistrationError", c.registration.bind(py))?;
    m.add("NotAllowed", c.not_allowed.bind(py))?;
    m.add("NotSupported", c.not_supported.bind(py))?;
    m.add("WorkerCrashed", c.worker_crashed.bind(py))?;
    m.add_function(wrap_pyfunction!(isolation::_configure_isolation, m)?)?;
    m.add_function(wrap_pyfunction!(isolation::_isolation_configured, m)?)?;
    m.add_function(wrap_pyfunction!(isolation::isolation_stats, m)?)?;
    m.add_function(wrap_pyfunction!(shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(_atexit, m)?)?;
    m.add_function(wrap_pyfunction!(_gil_on_tokio, m)?)?;
    m.add_function(wrap_pyfunction!(_on_tokio_thread, m)?)?;
    m.add_function(wrap_pyfunction!(registry::register_diagnostic_tools, m)?)?;
    m.add_function(wrap_pyfunction!(registry::register_builtin_tools, m)?)?;
    m.add_function(wrap_pyfunction!(_roundtrip, m)?)?;
    catalog::add_to(m)?;
    #[cfg(feature = "bench")]
    bench::add(m)?;
    m.add("MAX_DEPTH", convert::MAX_DEPTH)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ABI3", cfg!(feature = "abi3"))?;
    py.import("atexit")?
        .call_method1("register", (m.getattr("_atexit")?,))?;
    Ok(())
}

/// For Rust programs embedding Python: make `import agent_runtime` use this crate's native
/// module (instead of looking for an installed extension), so tools registered by Python
/// modules land in the same [`Registry::global`] the host calls.
pub fn install_embedded(py: Python<'_>) -> PyResult<()> {
    let m = PyModule::new(py, "_native")?;
    native_module(&m)?;
    let modules = py.import("sys")?.getattr("modules")?;
    modules.set_item("agent_runtime._native", m)?;
    Ok(())
}
