//! Python functions as a registry's resources, prompts and completion function. Each is a
//! `PyTool` (so sync functions run on the Python threads and coroutines on an asyncio loop,
//! exactly as tools do); `agent_runtime`'s decorators derive the schema and wrap the function
//! so its result is already in the form the core expects.

use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pythonize::pythonize;

use super::convert::py_to_json;
use super::errors::IntoPyResult;
use super::pytool::PyTool;
use super::registry::PyRegistry;
use crate::core::completion;
use crate::core::resources::ResourceSpec;
use crate::core::{Registry, ToolSpec};

fn callable(py: Python<'_>, func: &Py<PyAny>) -> PyResult<()> {
    if func.bind(py).is_callable() {
        Ok(())
    } else {
        Err(PyTypeError::new_err("func must be callable"))
    }
}

/// The spec of the `PyTool` through which `func` reads a resource or renders a prompt (`kind`);
/// its errors and events call it `<kind> <name>`.
fn function_spec(
    py: Python<'_>,
    func: &Py<PyAny>,
    kind: &str,
    name: &str,
    description: &str,
    input_schema: &Bound<'_, PyAny>,
) -> PyResult<ToolSpec> {
    callable(py, func)?;
    let schema = py_to_json(input_schema, "input_schema").py(py)?;
    Ok(ToolSpec::new(format!("{kind} {name}"))
        .description(description)
        .input_schema(schema))
}

fn registry(r: &Bound<'_, PyRegistry>) -> Registry {
    r.get().inner.clone()
}

/// Register `func` as the resource (or template, when `uri` has `{placeholders}`) `uri`.
#[pyfunction]
#[pyo3(signature = (registry_, func, uri, name, *, description, mime_type, input_schema,
                    is_async, coercer = None, context_param = None, replace = false))]
#[allow(clippy::too_many_arguments)]
pub fn _register_resource(
    py: Python<'_>,
    registry_: &Bound<'_, PyRegistry>,
    func: Py<PyAny>,
    uri: String,
    name: String,
    description: String,
    mime_type: Option<String>,
    input_schema: &Bound<'_, PyAny>,
    is_async: bool,
    coercer: Option<Py<PyAny>>,
    context_param: Option<String>,
    replace: bool,
) -> PyResult<()> {
    let spec = function_spec(py, &func, "resource", &name, &description, input_schema)?;
    let reader = Arc::new(PyTool::new(spec, func, is_async, coercer, context_param));
    let rs = ResourceSpec {
        uri,
        name,
        description,
        mime_type,
    };
    let reg = registry(registry_);
    // Attached: a refused reader's Python references are dropped here, not deferred.
    reg.resources().register(rs, reader, replace).py(py)
}

/// Register `func` as the prompt `name`; its parameters are the prompt's arguments.
#[pyfunction]
#[pyo3(signature = (registry_, func, name, *, description, input_schema, is_async,
                    coercer = None, context_param = None, replace = false))]
#[allow(clippy::too_many_arguments)]
pub fn _register_prompt(
    py: Python<'_>,
    registry_: &Bound<'_, PyRegistry>,
    func: Py<PyAny>,
    name: String,
    description: String,
    input_schema: &Bound<'_, PyAny>,
    is_async: bool,
    coercer: Option<Py<PyAny>>,
    context_param: Option<String>,
    replace: bool,
) -> PyResult<()> {
    let spec = function_spec(py, &func, "prompt", &name, &description, input_schema)?;
    let render = Arc::new(PyTool::new(spec, func, is_async, coercer, context_param));
    let reg = registry(registry_);
    reg.prompts()
        .register(&name, &description, render, replace)
        .py(py)
}

/// Set the completion function: called with keyword arguments `ref_type`, `ref_name`,
/// `argument`, `value`, `context`; returns a list of str. `None` removes it.
#[pyfunction]
#[pyo3(signature = (registry_, func, *, is_async = false))]
pub fn _set_completion(
    py: Python<'_>,
    registry_: &Bound<'_, PyRegistry>,
    func: Option<Py<PyAny>>,
    is_async: bool,
) -> PyResult<()> {
    let reg = registry(registry_);
    let Some(func) = func else {
        reg.completions().clear();
        return Ok(());
    };
    callable(py, &func)?;
    let tool_spec = ToolSpec::new("completion").input_schema(completion::input_schema());
    let f = Arc::new(PyTool::new(tool_spec, func, is_async, None, None));
    reg.completions().set(f).py(py)
}

/// Remove the resource or template registered under `uri`; True if it was there.
#[pyfunction]
pub fn _remove_resource(registry_: &Bound<'_, PyRegistry>, uri: &str) -> bool {
    registry(registry_).resources().unregister(uri)
}

/// Remove a prompt; True if it was there.
#[pyfunction]
pub fn _remove_prompt(registry_: &Bound<'_, PyRegistry>, name: &str) -> bool {
    registry(registry_).prompts().unregister(name)
}

/// Specs (dicts) of the static resources (`templates=False`) or the templates, sorted by URI.
#[pyfunction]
#[pyo3(signature = (registry_, *, templates = false))]
pub fn _resources(
    py: Python<'_>,
    registry_: &Bound<'_, PyRegistry>,
    templates: bool,
) -> PyResult<Py<PyAny>> {
    let r = registry(registry_);
    let specs = if templates {
        r.resources().templates()
    } else {
        r.resources().list()
    };
    Ok(pythonize(py, &specs)?.unbind())
}

/// Specs (dicts) of the prompts, sorted by name.
#[pyfunction]
pub fn _prompts(py: Python<'_>, registry_: &Bound<'_, PyRegistry>) -> PyResult<Py<PyAny>> {
    Ok(pythonize(py, &registry(registry_).prompts().list())?.unbind())
}

/// Tell the clients subscribed to `uri` that its contents changed.
#[pyfunction]
pub fn _notify_resource_updated(registry_: &Bound<'_, PyRegistry>, uri: &str) {
    registry(registry_).resources().notify_updated(uri);
}

pub fn add_to(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_register_resource, m)?)?;
    m.add_function(wrap_pyfunction!(_register_prompt, m)?)?;
    m.add_function(wrap_pyfunction!(_set_completion, m)?)?;
    m.add_function(wrap_pyfunction!(_remove_resource, m)?)?;
    m.add_function(wrap_pyfunction!(_remove_prompt, m)?)?;
    m.add_function(wrap_pyfunction!(_resources, m)?)?;
    m.add_function(wrap_pyfunction!(_prompts, m)?)?;
    m.add_function(wrap_pyfunction!(_notify_resource_updated, m)?)?;
    Ok(())
}
