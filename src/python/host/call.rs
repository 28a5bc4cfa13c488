//! The design note's `RunFunction` / `RunScript`: which callables a caller may reach in an
//! allowlisted module, and calling them (coroutines on the runtime's loop, cancelled when the
//! caller goes away).
//!
//! The rule: only a public (no leading `_`), callable, module-level function *defined in* the
//! module (`f.__module__ == module.__name__`), or any callable the module exports by listing
//! it in `__all__`. No attribute paths. So dunders (`__setattr__`, `__getattribute__`,
//! `__init__` would rebind globals, read any of them or rename the module), imported functions
//! (`from os import system`), classes and other objects are refused unless exported.
//!
//! Cancellation: a coroutine (or other awaitable) runs as a task on the runtime's asyncio loop
//! and is cancelled when the returned future is dropped — a gRPC deadline or a client cancel.
//! A synchronous function cannot be interrupted: it runs to its end on a blocking-pool thread
//! and its result is dropped.

use std::future::Future;
use std::pin::Pin;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyModule, PyTuple};
use serde_json::Value;

use super::super::convert::{json_to_py, payload_to_py, py_to_json};
use super::super::errors::from_pyerr;
use super::super::loop_bridge;
use crate::core::registry::{parse_args_json, MAX_NAME_LEN};
use crate::core::text::bounded;
use crate::core::{Error, Payload, Result};

/// The rule, as said in every refusal.
const RULE: &str = "only public (no leading '_'), callable, module-level functions defined in \
                    the module or listed in its __all__ may be called, without attribute paths";

fn refuse(module: &str, function: &str, why: impl std::fmt::Display) -> Error {
    Error::NotAllowed(format!(
        "cannot call '{}.{}': {why}; {RULE}",
        bounded(module, 64),
        bounded(function, 64)
    ))
}

/// Checks that need no import: a public identifier, no dots, bounded length.
pub(crate) fn check_function_name(module: &str, function: &str) -> Result<()> {
    let why = if function.is_empty() {
        "the function name is empty"
    } else if function.len() > MAX_NAME_LEN {
        "the function name is too long"
    } else if function.contains('.') {
        "attribute paths are refused"
    } else if function.starts_with('_') {
        "names starting with '_' are private"
    } else if function.starts_with(|c: char| c.is_numeric())
        || !function.chars().all(|c| c.is_alphanumeric() || c == '_')
    {
        "not a Python identifier"
    } else {
        return Ok(());
    };
    Err(refuse(module, function, why))
}

/// `module.function` if the rule allows calling it. A public name the module does not have
/// is Python's `AttributeError`, as before.
fn resolve<'py>(
    py: Python<'py>,
    m: &Bound<'py, PyModule>,
    module: &str,
    function: &str,
) -> Result<Bound<'py, PyAny>> {
    let pyerr = |e: PyErr| from_pyerr(py, e);
    let dict = m.dict();
    // Read `__all__` and the function from the module's namespace, not through getattr:
    // a module-level `__getattr__` must not make up callables that are not exported.
    let exported = match dict.get_item("__all__").map_err(pyerr)? {
        Some(all) => match all.try_iter() {
            Ok(it) => it
                .filter_map(|x| x.ok()?.extract::<String>().ok())
                .any(|n| n == function),
            Err(_) => false,
        },
        None => false,
    };
    let obj = if exported {
        m.getattr(function).map_err(pyerr)?
    } else {
        match dict.get_item(function).map_err(pyerr)? {
            Some(o) => o,
            None => {
                return Err(pyerr(pyo3::exceptions::PyAttributeError::new_err(format!(
                    "module '{module}' has no attribute '{function}'"
                ))))
            }
        }
    };
    if !obj.is_callable() {
        let t = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        return Err(refuse(
            module,
            function,
            format!("it is not callable (a {t})"),
        ));
    }
    if exported {
        return Ok(obj);
    }
    let inspect = py.import("inspect").map_err(pyerr)?;
    let routine = inspect
        .call_method1("isroutine", (&obj,))
        .and_then(|r| r.is_truthy())
        .map_err(pyerr)?;
    if !routine {
        let what = if obj.is_instance_of::<pyo3::types::PyType>() {
            "it is a class".to_string()
        } else {
            let t = obj
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            format!("it is a {t} object, not a function")
        };
        return Err(refuse(
            module,
            function,
            format!("{what} (export it in __all__ to allow it)"),
        ));
    }
    let own_name: String = dict
        .get_item("__name__")
        .ok()
        .flatten()
        .and_then(|n| n.extract().ok())
        .unwrap_or_else(|| module.to_string());
    let defined_in: Option<String> = obj
        .getattr("__module__")
        .ok()
        .and_then(|n| n.extract().ok());
    if defined_in.as_deref() != Some(own_name.as_str()) {
        return Err(refuse(
            module,
            function,
            format!(
                "it is imported from '{}', not defined in '{own_name}' (export it in __all__ to allow it)",
                defined_in.as_deref().unwrap_or("?")
            ),
        ));
    }
    Ok(obj)
}

type Awaiting = Pin<Box<dyn Future<Output = Result<Payload>> + Send>>;

/// What calling the function gave: a value, or an awaitable now running on the loop.
enum Called {
    Value(Py<PyAny>),
    Awaiting(Awaiting),
}

/// Run `f` with the GIL on a Python pool thread (imports and user code may block).
async fn blocking_python<T: Send + 'static>(
    f: impl FnOnce(Python<'_>) -> Result<T> + Send + 'static,
) -> Result<T> {
    super::super::pythread::spawn_blocking(f)
        .await
        .map_err(|_| Error::Runtime("the Python worker thread ended before answering".into()))?
}

/// Import `module`, resolve `function` by the rule, call it with what `args` builds. An
/// awaitable result is started as a task on the runtime loop; awaiting the returned future
/// awaits it and dropping that future cancels it.
async fn call<A>(module: String, function: String, args: A) -> Result<Payload>
where
    A: for<'py> FnOnce(Python<'py>) -> Result<(Bound<'py, PyTuple>, Option<Bound<'py, PyDict>>)>
        + Send
        + 'static,
{
    let called = blocking_python(move |py| {
        let pyerr = |e: PyErr| from_pyerr(py, e);
        let m = py.import(module.as_str()).map_err(pyerr)?;
        let f = resolve(py, &m, &module, &function)?;
        let (a, kw) = args(py)?;
        let r = f.call(a, kw.as_ref()).map_err(pyerr)?;
        let inspect = py.import("inspect").map_err(pyerr)?;
        let awaitable = inspect
            .call_method1("isawaitable", (&r,))
            .and_then(|x| x.is_truthy())
            .map_err(pyerr)?;
        if !awaitable {
            return Ok(Called::Value(r.unbind()));
        }
        let is_coro = inspect
            .call_method1("iscoroutine", (&r,))
            .and_then(|x| x.is_truthy())
            .map_err(pyerr)?;
        // A task needs a coroutine; `wait_for(x, None)` is one that awaits any awaitable.
        let coro = if is_coro {
            r
        } else {
            py.import("asyncio")
                .and_then(|a| a.call_method1("wait_for", (r, py.None())))
                .map_err(pyerr)?
        }
        .unbind();
        let lp = loop_bridge::runtime_loop(py).map_err(pyerr)?;
        let what = format!("{module}.{function}");
        let make: loop_bridge::MakeCoro = Box::new(move |_| Ok(coro));
        let fut = loop_bridge::await_coroutine(what, None, move |_| Ok((lp, None, make)));
        Ok(Called::Awaiting(Box::pin(fut)))
    })
    .await?;
    match called {
        Called::Value(v) => Ok(Payload::Foreign(std::sync::Arc::new(
            super::super::convert::PyValue::result(v),
        ))),
        Called::Awaiting(fut) => fut.await,
    }
}

/// `RunFunction`: import (allowlisted) `module`, call `function` with the JSON arguments (an
/// array of positional ones or an object of keyword ones); the result as JSON text.
pub async fn run_function(module: &str, function: &str, args_json: &str) -> Result<String> {
    super::check_allowed(module)?;
    check_function_name(module, function)?;
    let what = format!("{module}.{function}");
    let args = if args_json.trim().is_empty() {
        Value::Array(vec![])
    } else {
        parse_args_json(&what, args_json)?
    };
    if !matches!(args, Value::Array(_) | Value::Object(_)) {
        return Err(Error::InvalidArguments {
            tool: what,
            path: "<args_json>".into(),
            message: "must be a JSON array (positional arguments) or object (keyword arguments)"
                .into(),
        });
    }
    let out = call(module.to_string(), function.to_string(), move |py| {
        let a = json_to_py(py, &args, None, "args")?;
        Ok(match a.cast::<PyList>() {
            Ok(list) => (list.to_tuple(), None),
            Err(_) => (
                PyTuple::empty(py),
                Some(
                    a.cast_into::<PyDict>()
                        .map_err(|e| from_pyerr(py, e.into()))?,
                ),
            ),
        })
    })
    .await?;
    let v = blocking_python(move |py| {
        let obj = payload_to_py(py, out, None).map_err(|e| from_pyerr(py, e))?;
        py_to_json(obj.bind(py), "result")
    })
    .await?;
    serde_json::to_string(&v).map_err(|e| Error::Runtime(e.to_string()))
}

/// `RunScript`: import (allowlisted) `script` and return `str(script.main(*args))`; `main`
/// obeys the same rule as `RunFunction`'s functions.
pub async fn run_script(script: &str, args: &[String]) -> Result<String> {
    super::check_allowed(script)?;
    let args = args.to_vec();
    let out = call(script.to_string(), "main".to_string(), move |py| {
        Ok((PyTuple::new(py, args).map_err(|e| from_pyerr(py, e))?, None))
    })
    .await?;
    blocking_python(move |py| {
        let obj = payload_to_py(py, out, None).map_err(|e| from_pyerr(py, e))?;
        let s = obj.bind(py).str().map_err(|e| from_pyerr(py, e))?;
        Ok(s.to_string())
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
    use super::check_function_name;
    use crate::core::Error;

    #[test]
    fn names_refused_before_any_import() {
        for f in [
            "__setattr__",
            "__getattribute__",
            "__init__",
            "_private",
            "os.system",
            "a.b",
            "",
            "1x",
            "f()",
            "f;g",
        ] {
            match check_function_name("tools", f) {
                Err(Error::NotAllowed(m)) => assert!(m.contains("cannot call 'tools."), "{m}"),
                other => panic!("{f:?}: {other:?}"),
            }
        }
        let long = "f".repeat(1 << 20);
        match check_function_name("tools", &long) {
            Err(Error::NotAllowed(m)) => assert!(m.len() < 600 && m.contains("too long"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(check_function_name("tools", "add").is_ok());
        assert!(check_function_name("tools", "main2_x").is_ok());
    }
}
