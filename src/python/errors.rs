//! The exception hierarchy and the mapping between `core::Error` and Python exceptions.

use std::sync::Arc;

use pyo3::exceptions::{PyException, PyLookupError, PyTimeoutError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::core::{Error, Opaque};
use crate::worker::RemoteException;

/// The exception classes, built once at first use. They use multiple inheritance
/// (`ToolNotFound` is also a `LookupError`, …) so callers can catch either family.
pub struct Classes {
    pub base: Py<PyType>,
    pub not_found: Py<PyType>,
    pub invalid_arguments: Py<PyType>,
    pub conversion: Py<PyType>,
    pub tool_error: Py<PyType>,
    pub timeout: Py<PyType>,
    pub cancelled: Py<PyType>,
    pub registration: Py<PyType>,
    pub not_allowed: Py<PyType>,
    pub not_supported: Py<PyType>,
    pub worker_crashed: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

fn make(
    py: Python<'_>,
    name: &str,
    bases: Vec<Bound<'_, PyType>>,
    doc: &str,
) -> PyResult<Py<PyType>> {
    let ns = PyDict::new(py);
    ns.set_item("__module__", "agent_runtime")?;
    ns.set_item("__doc__", doc)?;
    let t = py
        .get_type::<PyType>()
        .call1((name, PyTuple::new(py, bases)?, ns))?;
    Ok(t.cast_into::<PyType>()?.unbind())
}

pub fn classes(py: Python<'_>) -> &Classes {
    CLASSES
        .get_or_try_init(py, || -> PyResult<Classes> {
            let base = make(py, "AgentRuntimeError", vec![py.get_type::<PyException>()], "Base of all agent_runtime errors.")?;
            let b = || base.bind(py).clone();
            Ok(Classes {
                not_found: make(
                    py,
                    "ToolNotFound",
                    vec![b(), py.get_type::<PyLookupError>()],
                    "No tool of that name is registered. Attributes: name, suggestions.",
                )?,
                invalid_arguments: make(
                    py,
                    "InvalidArguments",
                    vec![b(), py.get_type::<PyValueError>()],
                    "Arguments do not match the tool's input schema. Attributes: tool, path.",
                )?,
                conversion: make(
                    py,
                    "ConversionError",
                    vec![b(), py.get_type::<PyTypeError>()],
                    "A value cannot cross between Python and JSON. Attribute: path.",
                )?,
                tool_error: make(
                    py,
                    "ToolError",
                    vec![b()],
                    "A tool failed (a Rust error or panic, or a remote exception). Attributes: tool, type_name, traceback.",
                )?,
                timeout: make(
                    py,
                    "ToolTimeout",
                    vec![b(), py.get_type::<PyTimeoutError>()],
                    "A call ran past its timeout. Attributes: tool, timeout.",
                )?,
                cancelled: make(py, "Cancelled", vec![b()], "The call was cancelled. Attribute: tool.")?,
                registration: make(
                    py,
                    "RegistrationError",
                    vec![b(), py.get_type::<PyValueError>()],
                    "A tool could not be registered (duplicate name, bad schema).",
                )?,
                not_allowed: make(
                    py,
                    "NotAllowed",
                    vec![b(), py.get_type::<pyo3::exceptions::PyPermissionError>()],
                    "Refused by policy: a module outside the allowlist, a missing or wrong token.",
                )?,
                not_supported: make(
                    py,
                    "NotSupported",
                    vec![b()],
                    "The caller cannot do what the tool asked of it: sampling or elicitation from a caller \
                     that is not an MCP client with that capability (a Python call(), gRPC, the CLI).",
                )?,
                worker_crashed: make(
                    py,
                    "WorkerCrashed",
                    vec![b()],
                    "The worker process of an isolated tool died (signal, exit, memory limit) or was killed; \
                     the pool replaced it. Attributes: tool, detail, exit_code, signal, stderr_tail.",
                )?,
                base,
            })
        })
        .unwrap_or_else(|e| panic!("cannot create agent_runtime exception classes: {e}"))
}

/// A Python exception carried through Rust, to be re-raised as the same object.
pub struct HeldErr(pub PyErr);

/// Describe a Python exception for Rust callers, keeping the original object.
pub fn from_pyerr(py: Python<'_>, err: PyErr) -> Error {
    let value = err.value(py);
    let type_name = value
        .get_type()
        .qualname()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    let message = value.str().map(|s| s.to_string()).unwrap_or_default();
    let traceback = format_traceback(py, &err);
    Error::Python {
        type_name,
        message,
        traceback,
        original: Some(Opaque(Arc::new(HeldErr(err)))),
    }
}

fn format_traceback(py: Python<'_>, err: &PyErr) -> Option<String> {
    let tb = py.import("traceback").ok()?;
    let lines = tb
        .call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )
        .ok()?;
    let parts: Vec<String> = lines.extract().ok()?;
    Some(parts.concat())
}

/// A `t(msg)` exception, created now: pyo3 normalizes a lazy one (as `set_attrs` needs) with
/// the GIL released, and a daemon thread that re-takes the GIL during interpreter exit is
/// killed by CPython in the middle of Rust frames.
fn instance(py: Python<'_>, t: &Py<PyType>, msg: String) -> PyErr {
    t.bind(py)
        .call1((msg,))
        .map(PyErr::from_value)
        .unwrap_or_else(|e| e)
}

fn set_attrs(py: Python<'_>, e: &PyErr, attrs: &[(&str, Py<PyAny>)]) {
    let v = e.value(py);
    for (k, val) in attrs {
        // Attribute setting on a fresh exception instance cannot meaningfully fail.
        let _ = v.setattr(*k, val.bind(py));
    }
}

/// Map a core error to the Python exception a caller should see.
pub fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    let c = classes(py);
    let msg = e.to_string();
    let new = |t: &Py<PyType>| instance(py, t, msg.clone());
    let s = |x: &str| {
        x.into_pyobject(py)
            .map(|o| o.into_any().unbind())
            .unwrap_or_else(|_| py.None())
    };
    match e {
        Error::Python {
            original: Some(o),
            ref type_name,
            ref message,
            ref traceback,
        } => match o.0.downcast_ref::<HeldErr>() {
            Some(h) => h.0.clone_ref(py),
            None => {
                o.0.downcast_ref::<RemoteException>()
                    .and_then(|r| rebuild_remote(py, r, traceback.as_deref()))
                    .unwrap_or_else(|| {
                        remote_error(py, c, None, type_name, message, traceback.as_deref())
                    })
            }
        },
        Error::Python {
            type_name,
            message,
            traceback,
            original: None,
        } => remote_error(py, c, None, &type_name, &message, traceback.as_deref()),
        Error::NotFound {
            ref name,
            ref suggestions,
        } => {
            let err = new(&c.not_found);
            let sugg = suggestions
                .clone()
                .into_pyobject(py)
                .map(|o| o.into_any().unbind())
                .unwrap_or_else(|_| py.None());
            set_attrs(py, &err, &[("name", s(name)), ("suggestions", sugg)]);
            err
        }
        Error::InvalidArguments {
            ref tool, ref path, ..
        } => {
            let err = new(&c.invalid_arguments);
            set_attrs(py, &err, &[("tool", s(tool)), ("path", s(path))]);
            err
        }
        Error::Conversion { ref path, .. } => {
            let err = new(&c.conversion);
            set_attrs(py, &err, &[("path", s(path))]);
            err
        }
        Error::Tool { ref tool, .. } => {
            let err = new(&c.tool_error);
            set_attrs(
                py,
                &err,
                &[
                    ("tool", s(tool)),
                    ("type_name", py.None()),
                    ("traceback", py.None()),
                ],
            );
            err
        }
        Error::Timeout { ref tool, timeout } => {
            let err = new(&c.timeout);
            let t = timeout
                .as_secs_f64()
                .into_pyobject(py)
                .map(|o| o.into_any().unbind())
                .unwrap_or_else(|_| py.None());
            set_attrs(py, &err, &[("tool", s(tool)), ("timeout", t)]);
            err
        }
        Error::Cancelled { ref tool } => {
            let err = new(&c.cancelled);
            set_attrs(py, &err, &[("tool", s(tool))]);
            err
        }
        Error::Registration(_) => new(&c.registration),
        Error::NotAllowed(_) => new(&c.not_allowed),
        Error::NotSupported(_) => new(&c.not_supported),
        Error::Runtime(_) => new(&c.base),
        Error::WorkerCrashed {
            ref tool,
            ref detail,
            exit_code,
            signal,
            ref stderr_tail,
        } => {
            let err = new(&c.worker_crashed);
            let num = |n: Option<i32>| {
                n.and_then(|n| n.into_pyobject(py).ok())
                    .map(|o| o.into_any().unbind())
                    .unwrap_or_else(|| py.None())
            };
            set_attrs(
                py,
                &err,
                &[
                    ("tool", s(tool)),
                    ("detail", s(detail)),
                    ("exit_code", num(exit_code)),
                    ("signal", num(signal)),
                    ("stderr_tail", s(stderr_tail)),
                ],
            );
            err
        }
    }
}

/// The exception an isolated tool raised, rebuilt by class name from the classes this process
/// has already imported and its JSON `args` (never unpickled), with the worker's traceback as
/// its `__cause__`; None if it cannot be rebuilt (the caller then gets `ToolError`).
fn rebuild_remote(py: Python<'_>, r: &RemoteException, tb: Option<&str>) -> Option<PyErr> {
    static REBUILD: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let f = REBUILD
        .import(py, "agent_runtime._worker", "rebuild_exception")
        .ok()?;
    let exc = f
        .call1((&r.module, &r.qualname, &r.args, tb))
        .ok()
        .filter(|e| !e.is_none())?;
    Some(PyErr::from_value(exc))
}

/// A Python exception known only by description (e.g. from another process).
fn remote_error(
    py: Python<'_>,
    c: &Classes,
    tool: Option<&str>,
    type_name: &str,
    message: &str,
    traceback: Option<&str>,
) -> PyErr {
    let err = instance(py, &c.tool_error, format!("{type_name}: {message}"));
    let s = |x: &str| {
        x.into_pyobject(py)
            .map(|o| o.into_any().unbind())
            .unwrap_or_else(|_| py.None())
    };
    set_attrs(
        py,
        &err,
        &[
            ("tool", tool.map(s).unwrap_or_else(|| py.None())),
            ("type_name", s(type_name)),
            ("traceback", traceback.map(s).unwrap_or_else(|| py.None())),
        ],
    );
    err
}

pub trait IntoPyResult<T> {
    fn py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for crate::core::Result<T> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_pyerr(py, e))
    }
}
