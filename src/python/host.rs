//! The Rust host: make Python tool modules available to Rust (in the extension or embedded),
//! discover plugins, and the design note's three operations (`run_tool`, `run_function`,
//! `run_script`) with a module allowlist.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::LazyLock;

use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use serde::Serialize;
use serde_json::Value;

use super::convert::{json_to_py, py_to_json};
use super::errors::from_pyerr;
use super::gil::with_gil;
use crate::core::{CallContext, Error, Registry, Result, ToolSpec};

/// The entry-point group installed packages use to declare tool modules.
pub const ENTRY_POINT_GROUP: &str = "agent_runtime.tools";

/// Which modules `run_function` / `run_script` may import. Process-wide: the Python API, the
/// CLI, gRPC and every `Host` share it.
#[derive(Default)]
struct Policy {
    /// Patterns: `pkg.mod` (exactly), `pkg.*` (the package and everything below), `*` (all).
    allow: Vec<String>,
    /// Modules the host imported explicitly (allowed by default).
    imported: BTreeSet<String>,
}

static POLICY: LazyLock<RwLock<Policy>> = LazyLock::new(Default::default);

fn pattern_allows(p: &str, module: &str) -> bool {
    if p == "*" {
        return true;
    }
    match p.strip_suffix(".*") {
        Some(prefix) => {
            module == prefix
                || module
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
        }
        None => p == module,
    }
}

/// Whether `run_function`/`run_script` may import `module`.
pub fn is_allowed(module: &str) -> bool {
    let p = POLICY.read();
    p.imported.contains(module) || p.allow.iter().any(|pat| pattern_allows(pat, module))
}

/// Add allowlist patterns (`pkg.mod`, `pkg.*`, or `*` for everything).
pub fn allow_modules<I: IntoIterator<Item = S>, S: Into<String>>(patterns: I) {
    POLICY
        .write()
        .allow
        .extend(patterns.into_iter().map(Into::into));
}

fn check_allowed(module: &str) -> Result<()> {
    if module.is_empty()
        || !module
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_alphanumeric() || c == '_'))
    {
        return Err(Error::NotAllowed(format!(
            "{module:?} is not a module name"
        )));
    }
    if is_allowed(module) {
        return Ok(());
    }
    let p = POLICY.read();
    let imported: Vec<&str> = p.imported.iter().map(String::as_str).collect();
    Err(Error::NotAllowed(format!(
        "module '{module}' is not in the allowlist (allowed: modules imported by the host [{}]{}{}); \
         allow it with --allow-module / agent_runtime.allow_modules() / HostBuilder::allow_module",
        imported.join(", "),
        if p.allow.is_empty() { "" } else { " and patterns " },
        p.allow.join(", ")
    )))
}

/// What happened to one plugin during discovery.
#[derive(Debug, Clone, Serialize)]
pub struct PluginReport {
    /// Entry-point name.
    pub name: String,
    /// Entry-point value (`module` or `module:function`).
    pub value: String,
    /// Distribution that declared it, when known.
    pub dist: Option<String>,
    /// The import (or registration call) error, if it failed.
    pub error: Option<String>,
}

/// Builds a [`Host`].
#[derive(Default)]
pub struct HostBuilder {
    paths: Vec<PathBuf>,
    imports: Vec<String>,
    isolate: Vec<String>,
    discover: Option<String>,
    allow: Vec<String>,
}

impl HostBuilder {
    /// Prepend a directory to Python's `sys.path`.
    pub fn python_path(mut self, dir: impl Into<PathBuf>) -> Self {
        self.paths.push(dir.into());
        self
    }

    /// Import `module` at build time (its import registers tools and hooks).
    pub fn import(mut self, module: impl Into<String>) -> Self {
        self.imports.push(module.into());
        self
    }

    /// Import `module` with its tools isolated: they run in the worker-process pool (as with
    /// `@tool(isolated=True)`), so a crash or hang in them cannot take the host down.
    pub fn isolate(mut self, module: impl Into<String>) -> Self {
        self.isolate.push(module.into());
        self
    }

    /// Import every plugin declared under the `agent_runtime.tools` entry-point group.
    pub fn discover(self) -> Self {
        self.discover_group(ENTRY_POINT_GROUP)
    }

    pub fn discover_group(mut self, group: impl Into<String>) -> Self {
        self.discover = Some(group.into());
        self
    }

    /// Allow `run_function`/`run_script` on modules matching `pattern` (`pkg.mod`, `pkg.*`, `*`).
    pub fn allow_module(mut self, pattern: impl Into<String>) -> Self {
        self.allow.push(pattern.into());
        self
    }

    /// Set up Python (initializing the interpreter when embedding with the `embed` feature),
    /// then apply paths, imports and discovery. Import errors fail the build; plugin errors
    /// are reported per plugin in [`Host::plugins`].
    pub fn build(self) -> Result<Host> {
        ensure_python()?;
        with_gil(|py| -> PyResult<()> {
            let sys_path = py.import("sys")?.getattr("path")?;
            for p in self.paths.iter().rev() {
                let s = p.to_string_lossy().to_string();
                if !sys_path.contains(&s)? {
                    sys_path.call_method1("insert", (0, s))?;
                }
            }
            Ok(())
        })
        .map_err(|e| with_gil(|py| from_pyerr(py, e)))?;
        allow_modules(self.allow);
        let host = Host {
            plugins: Vec::new(),
        };
        if !self.isolate.is_empty() {
            with_gil(|py| -> PyResult<()> {
                py.import("agent_runtime")?
                    .call_method1("isolate_modules", PyTuple::new(py, &self.isolate)?)?;
                Ok(())
            })
            .map_err(|e| with_gil(|py| from_pyerr(py, e)))?;
        }
        for m in self.isolate.iter().chain(&self.imports) {
            host.import(m)?;
        }
        let plugins = match &self.discover {
            Some(group) => host.discover(group),
            None => Vec::new(),
        };
        Ok(Host { plugins })
    }
}

/// Make sure an interpreter is running and that `import agent_runtime` binds to this crate's
/// native code (so Python `@tool`s land in the registry this process calls).
fn ensure_python() -> Result<()> {
    // SAFETY: a plain query, valid at any time.
    let initialized = unsafe { pyo3::ffi::Py_IsInitialized() } != 0;
    if !initialized {
        #[cfg(feature = "embed")]
        Python::initialize();
        #[cfg(not(feature = "embed"))]
        return Err(Error::Runtime(
            "the Python interpreter is not initialized: build with the `embed` feature to let the host start it".into(),
        ));
    }
    with_gil(|py| -> PyResult<()> {
        let modules = py.import("sys")?.getattr("modules")?;
        if !modules.contains("agent_runtime._native")? {
            super::install_embedded(py)?;
        }
        Ok(())
    })
    .map_err(|e| with_gil(|py| from_pyerr(py, e)))
}

/// A Rust handle on the Python side of the runtime: imports, plugins, calls, and the design
/// note's operations. Python tools register into [`Registry::global`], which the host uses.
pub struct Host {
    plugins: Vec<PluginReport>,
}

impl Host {
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    pub fn registry(&self) -> &'static Registry {
        Registry::global()
    }

    /// What discovery found (empty unless the builder asked for it).
    pub fn plugins(&self) -> &[PluginReport] {
        &self.plugins
    }

    /// Import `module`, whose import registers tools/hooks; it becomes allowed for
    /// `run_function`/`run_script`.
    pub fn import(&self, module: &str) -> Result<()> {
        import_module(module)
    }

    /// Import the plugins of an entry-point group, each on its own: one failing does not stop
    /// the others.
    pub fn discover(&self, group: &str) -> Vec<PluginReport> {
        discover(group)
    }

    pub fn tools(&self) -> Vec<ToolSpec> {
        self.registry().specs()
    }

    /// Call a tool with JSON arguments.
    pub async fn call(&self, name: &str, args: Value) -> Result<Value> {
        self.registry().call_json(name, args).await
    }

    /// The note's `RunTool`: JSON text in, JSON text out.
    pub async fn run_tool(&self, tool_name: &str, args_json: &str) -> Result<String> {
        run_tool(self.registry(), tool_name, args_json, CallContext::new()).await
    }

    /// The note's `RunFunction`: `module.function(*args)` with a JSON array (or `**kwargs`
    /// with a JSON object); the result as JSON text. Coroutines are awaited.
    pub async fn run_function(
        &self,
        module: &str,
        function: &str,
        args_json: &str,
    ) -> Result<String> {
        run_function(module, function, args_json).await
    }

    /// The note's `RunScript`: `module.main(*args)` with string arguments; `str()` of the result.
    pub async fn run_script(&self, script: &str, args: &[String]) -> Result<String> {
        run_script(script, args).await
    }
}

/// Import a module explicitly (and allow it).
pub fn import_module(module: &str) -> Result<()> {
    with_gil(|py| py.import(module).map(|_| ()).map_err(|e| from_pyerr(py, e)))?;
    POLICY.write().imported.insert(module.to_string());
    Ok(())
}

/// Import an entry-point group's plugins. An entry point naming a module registers its tools
/// by being imported; one naming a callable (`module:register`) is called with no arguments.
pub fn discover(group: &str) -> Vec<PluginReport> {
    with_gil(|py| {
        let eps = match entry_points(py, group) {
            Ok(e) => e,
            Err(e) => {
                return vec![PluginReport {
                    name: format!("<{group}>"),
                    value: String::new(),
                    dist: None,
                    error: Some(format!("cannot read entry points: {e}")),
                }]
            }
        };
        let mut out = Vec::new();
        for (ep, dist) in eps {
            let attr = |n: &str| {
                ep.getattr(n)
                    .and_then(|v| v.extract::<String>())
                    .unwrap_or_default()
            };
            let name = attr("name");
            let value = attr("value");
            let loaded = ep.call_method0("load").and_then(|obj| {
                if obj.is_instance_of::<pyo3::types::PyModule>() {
                    Ok(())
                } else if obj.is_callable() {
                    obj.call0().map(|_| ())
                } else {
                    Ok(())
                }
            });
            let error = match loaded {
                Ok(()) => {
                    let module = value
                        .split(':')
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_string();
                    POLICY.write().imported.insert(module);
                    None
                }
                Err(e) => {
                    let tb = e
                        .traceback(py)
                        .and_then(|t| t.format().ok())
                        .unwrap_or_default();
                    log::warn!("plugin {name} ({value}) failed to load: {e}");
                    Some(format!("{}{}", tb, e))
                }
            };
            out.push(PluginReport {
                name,
                value,
                dist,
                error,
            });
        }
        out
    })
}

/// The group's entry points with the name of the distribution declaring each, in `sys.path`
/// order, first one per name (as importlib resolves them). Walks distributions, which works
/// the same on 3.8 (no `EntryPoint.dist` there) and later.
fn entry_points<'py>(
    py: Python<'py>,
    group: &str,
) -> PyResult<Vec<(Bound<'py, PyAny>, Option<String>)>> {
    let md = py.import("importlib.metadata")?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for dist in md.call_method0("distributions")?.try_iter()? {
        let dist = dist?;
        let dist_name: Option<String> = dist
            .getattr("metadata")
            .and_then(|m| m.get_item("Name"))
            .and_then(|n| n.extract())
            .ok();
        for ep in dist.getattr("entry_points")?.try_iter()? {
            let ep = ep?;
            if ep.getattr("group")?.extract::<String>()? != group {
                continue;
            }
            let name: String = ep.getattr("name")?.extract()?;
            if seen.insert(name) {
                out.push((ep, dist_name.clone()));
            }
        }
    }
    out.sort_by_key(|(e, _)| {
        e.getattr("name")
            .and_then(|n| n.extract::<String>())
            .unwrap_or_default()
    });
    Ok(out)
}

fn parse_json(what: &str, text: &str) -> Result<Value> {
    crate::core::registry::parse_args_json(what, text)
}

/// `RunTool` over any registry (see [`crate::core::registry::run_tool`]).
pub use crate::core::registry::run_tool;

/// Run `f` with the GIL on a Python pool thread (imports and user code may block).
async fn blocking_python<T: Send + 'static>(
    f: impl FnOnce(Python<'_>) -> Result<T> + Send + 'static,
) -> Result<T> {
    super::pythread::spawn_blocking(f)
        .await
        .map_err(|_| Error::Runtime("the Python worker thread ended before answering".into()))?
}

/// Call `obj`; if it returns an awaitable, run it to completion on the runtime's loop.
fn call_and_await<'py>(
    py: Python<'py>,
    f: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let r = f.call(args, kwargs)?;
    let inspect = py.import("inspect")?;
    if inspect.call_method1("isawaitable", (&r,))?.is_truthy()? {
        let lp = super::loop_bridge::runtime_loop(py)?;
        let asyncio = py.import("asyncio")?;
        let coro = if inspect.call_method1("iscoroutine", (&r,))?.is_truthy()? {
            r
        } else {
            asyncio.call_method1("ensure_future", (r,))?
        };
        let fut = asyncio.call_method1("run_coroutine_threadsafe", (coro, lp))?;
        return fut.call_method0("result"); // waits with the GIL released
    }
    Ok(r)
}

/// `RunFunction`: import (allowlisted) `module`, call `function` with the JSON arguments.
pub async fn run_function(module: &str, function: &str, args_json: &str) -> Result<String> {
    check_allowed(module)?;
    let what = format!("{module}.{function}");
    let args = if args_json.trim().is_empty() {
        Value::Array(vec![])
    } else {
        parse_json(&what, args_json)?
    };
    if !matches!(args, Value::Array(_) | Value::Object(_)) {
        return Err(Error::InvalidArguments {
            tool: what,
            path: "<args_json>".into(),
            message: "must be a JSON array (positional arguments) or object (keyword arguments)"
                .into(),
        });
    }
    let (module, function) = (module.to_string(), function.to_string());
    blocking_python(move |py| {
        let r = (|| -> PyResult<Value> {
            let f = py.import(module.as_str())?.getattr(function.as_str())?;
            let a =
                json_to_py(py, &args, None, "args").map_err(|e| super::errors::to_pyerr(py, e))?;
            let result = match a.cast::<PyList>() {
                Ok(list) => call_and_await(py, &f, &list.to_tuple(), None)?,
                Err(_) => call_and_await(py, &f, &PyTuple::empty(py), Some(a.cast::<PyDict>()?))?,
            };
            py_to_json(&result, "result").map_err(|e| super::errors::to_pyerr(py, e))
        })();
        r.map_err(|e| from_pyerr(py, e))
    })
    .await
    .and_then(|v| serde_json::to_string(&v).map_err(|e| Error::Runtime(e.to_string())))
}

/// `RunScript`: import (allowlisted) `script` and return `str(script.main(*args))`.
pub async fn run_script(script: &str, args: &[String]) -> Result<String> {
    check_allowed(script)?;
    let (script, args) = (script.to_string(), args.to_vec());
    blocking_python(move |py| {
        let r = (|| -> PyResult<String> {
            let m = py.import(script.as_str())?;
            if !m.hasattr("main")? {
                return Err(pyo3::exceptions::PyAttributeError::new_err(format!(
                    "module '{script}' has no main() function"
                )));
            }
            let result = call_and_await(py, &m.getattr("main")?, &PyTuple::new(py, args)?, None)?;
            Ok(result.str()?.to_string())
        })();
        r.map_err(|e| from_pyerr(py, e))
    })
    .await
}

/// `RunFunction`/`RunScript` for the transports (gRPC, CLI).
pub struct PyHostOps;

impl crate::core::HostOps for PyHostOps {
    fn run_function(
        &self,
        module: String,
        function: String,
        args_json: String,
    ) -> crate::core::BoxFuture<Result<String>> {
        Box::pin(async move { run_function(&module, &function, &args_json).await })
    }

    fn run_script(
        &self,
        script: String,
        args: Vec<String>,
    ) -> crate::core::BoxFuture<Result<String>> {
        Box::pin(async move { run_script(&script, &args).await })
    }
}

#[cfg(test)]
mod tests {
    use super::pattern_allows;

    #[test]
    fn patterns() {
        assert!(pattern_allows("a.b", "a.b"));
        assert!(!pattern_allows("a.b", "a.bc"));
        assert!(pattern_allows("a.*", "a"));
        assert!(pattern_allows("a.*", "a.b.c"));
        assert!(!pattern_allows("a.*", "ab"));
        assert!(pattern_allows("*", "anything"));
    }
}
