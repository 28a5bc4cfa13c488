//! Python ↔ JSON conversion with error paths and a nesting limit.
//!
//! Rules (documented in the README): int must fit in 64 bits (else a clear error, never a wrap);
//! NaN and ±Inf are refused (JSON has no such numbers); bytes/bytearray become base64 strings
//! and come back as bytes where the schema says `contentEncoding: base64`; tuples become arrays;
//! dict keys must be str. Nesting deeper than [`MAX_DEPTH`] is an error, never a stack overflow.

use std::any::Any;

use base64::Engine;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};
use serde_json::{Map, Number, Value};

use crate::core::{Error, ForeignValue, Result, RichContent};

/// Deepest nesting accepted in either direction (serde_json's own parse limit is 128 too).
pub const MAX_DEPTH: usize = 128;

enum Seg {
    Key(String),
    Index(usize),
}

struct ConvError {
    segs: Vec<Seg>,
    message: String,
}

impl ConvError {
    fn new(message: String) -> Self {
        ConvError {
            segs: Vec::new(),
            message,
        }
    }

    fn at(mut self, s: Seg) -> Self {
        self.segs.push(s);
        self
    }

    fn into_error(self, root: &str) -> Error {
        let mut path = root.to_string();
        for s in self.segs.iter().rev() {
            match s {
                Seg::Key(k) => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(k);
                }
                Seg::Index(i) => path.push_str(&format!("[{i}]")),
            }
        }
        Error::conversion(
            if path.is_empty() {
                "<root>".into()
            } else {
                path
            },
            self.message,
        )
    }
}

/// Convert a Python value to JSON; errors read like `args.items[3].when: datetime is not serializable`.
pub fn py_to_json(obj: &Bound<'_, PyAny>, root: &str) -> Result<Value> {
    to_json(obj, 0).map_err(|e| e.into_error(root))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into())
}

fn to_json(obj: &Bound<'_, PyAny>, depth: usize) -> std::result::Result<Value, ConvError> {
    if let Ok(s) = obj.cast::<PyString>() {
        return s
            .to_cow()
            .map(|s| Value::String(s.into_owned()))
            .map_err(|e| ConvError::new(format!("str is not valid UTF-8: {e}")));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        let repr = obj.repr().map(|r| r.to_string()).unwrap_or_default();
        let shown = if repr.len() > 40 {
            format!("{}…", &repr[..40])
        } else {
            repr
        };
        return Err(ConvError::new(format!(
            "integer {shown} does not fit in 64 bits (JSON numbers cross as i64/u64/f64; pass it as a str)"
        )));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        return Number::from_f64(v).map(Value::Number).ok_or_else(|| {
            ConvError::new(format!(
                "float {v} is not valid JSON (NaN and infinities are refused)"
            ))
        });
    }
    if depth >= MAX_DEPTH {
        return Err(ConvError::new(format!(
            "nesting deeper than {MAX_DEPTH} levels"
        )));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut m = Map::with_capacity(d.len());
        for (k, v) in d.iter() {
            let key = match k.cast::<PyString>() {
                Ok(s) => s
                    .to_cow()
                    .map_err(|e| ConvError::new(format!("dict key is not valid UTF-8: {e}")))?
                    .into_owned(),
                Err(_) => return Err(ConvError::new(non_str_key(&k))),
            };
            let val = to_json(&v, depth + 1).map_err(|e| e.at(Seg::Key(key.clone())))?;
            m.insert(key, val);
        }
        return Ok(Value::Object(m));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        let mut out = Vec::with_capacity(l.len());
        for (i, v) in l.iter().enumerate() {
            out.push(to_json(&v, depth + 1).map_err(|e| e.at(Seg::Index(i)))?);
        }
        return Ok(Value::Array(out));
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        let mut out = Vec::with_capacity(t.len());
        for (i, v) in t.iter().enumerate() {
            out.push(to_json(&v, depth + 1).map_err(|e| e.at(Seg::Index(i)))?);
        }
        return Ok(Value::Array(out));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(b.as_bytes()),
        ));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Value::String(
            base64::engine::general_purpose::STANDARD.encode(b.to_vec()),
        ));
    }
    if let Some(json) = content_to_json(obj) {
        return json.and_then(|j| to_json(&j, depth + 1));
    }
    Err(ConvError::new(format!(
        "{} is not serializable",
        type_name(obj)
    )))
}

/// `agent_runtime.Image` / `Audio` / `EmbeddedResource`: their `to_json()` (the MCP content
/// block). Reached only for values no JSON rule matched, so plain data pays nothing.
fn content_to_json<'py>(
    obj: &Bound<'py, PyAny>,
) -> Option<std::result::Result<Bound<'py, PyAny>, ConvError>> {
    static CLASSES: pyo3::sync::PyOnceLock<Option<Py<PyTuple>>> = pyo3::sync::PyOnceLock::new();
    let py = obj.py();
    let classes = CLASSES
        .get_or_init(py, || {
            let m = py.import("agent_runtime.content").ok()?;
            let get = |n: &str| m.getattr(n).ok();
            PyTuple::new(py, [get("Image")?, get("Audio")?, get("EmbeddedResource")?])
                .ok()
                .map(Bound::unbind)
        })
        .as_ref()?;
    if !obj.is_instance(classes.bind(py)).unwrap_or(false) {
        return None;
    }
    Some(
        obj.call_method0("to_json")
            .map_err(|e| ConvError::new(format!("{}.to_json() failed: {e}", type_name(obj)))),
    )
}

fn non_str_key(k: &Bound<'_, PyAny>) -> String {
    let r = k.repr().map(|r| r.to_string()).unwrap_or_default();
    format!("dict key {r} ({}) is not a str", type_name(k))
}

/// Keyword arguments for a Python tool: every name must be a str (as for a Rust tool, whose
/// arguments cross as JSON), else a `ConversionError` at `root` like the JSON conversion's,
/// rather than CPython's "keywords must be strings" from inside the call.
pub fn check_arg_names(d: &Bound<'_, PyDict>, root: &str) -> Result<()> {
    for (k, _) in d.iter() {
        if !k.is_instance_of::<PyString>() {
            return Err(ConvError::new(non_str_key(&k)).into_error(root));
        }
    }
    Ok(())
}

/// Path of the value being converted, as a stack-allocated chain (no allocation unless used).
struct PathNode<'a> {
    parent: Option<&'a PathNode<'a>>,
    key: Option<&'a str>,
    index: usize,
}

impl PathNode<'_> {
    fn pointer(&self) -> String {
        let mut segs = Vec::new();
        let mut cur = Some(self);
        while let Some(n) = cur {
            if n.parent.is_some() {
                segs.push(match n.key {
                    Some(k) => k.replace('~', "~0").replace('/', "~1"),
                    None => n.index.to_string(),
                });
            }
            cur = n.parent;
        }
        segs.iter().rev().map(|s| format!("/{s}")).collect()
    }
}

/// JSON for *validating* a Python caller's arguments to a Python tool, which receives the
/// original objects: values JSON cannot represent never fail here. Enums become their value,
/// dataclasses and pydantic models their fields, sets lists, big ints and non-finite floats
/// approximations; anything else becomes `null` and its JSON pointer is returned so schema
/// errors at those places are ignored.
pub fn py_to_json_lenient(obj: &Bound<'_, PyAny>) -> (Value, Vec<String>) {
    let mut opaque = Vec::new();
    let root = PathNode {
        parent: None,
        key: None,
        index: 0,
    };
    let v = lenient(obj, &root, 0, &mut opaque);
    (v, opaque)
}

fn lenient(
    obj: &Bound<'_, PyAny>,
    path: &PathNode<'_>,
    depth: usize,
    opaque: &mut Vec<String>,
) -> Value {
    if depth < MAX_DEPTH {
        if let Ok(d) = obj.cast::<PyDict>() {
            let mut m = Map::with_capacity(d.len());
            for (k, v) in d.iter() {
                // Lossy, so a key holding lone surrogates is still named (with U+FFFD) in
                // validation errors rather than as "".
                let key = match k.cast::<PyString>() {
                    Ok(s) => s.to_string_lossy().into_owned(),
                    Err(_) => k
                        .str()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                };
                let node = PathNode {
                    parent: Some(path),
                    key: Some(&key),
                    index: 0,
                };
                let val = lenient(&v, &node, depth + 1, opaque);
                m.insert(key.clone(), val);
            }
            return Value::Object(m);
        }
        if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
            if let Ok(it) = obj.try_iter() {
                let mut out = Vec::new();
                for (i, v) in it.enumerate() {
                    let node = PathNode {
                        parent: Some(path),
                        key: None,
                        index: i,
                    };
                    out.push(match v {
                        Ok(v) => lenient(&v, &node, depth + 1, opaque),
                        Err(_) => Value::Null,
                    });
                }
                return Value::Array(out);
            }
        }
    }
    match to_json(obj, MAX_DEPTH.saturating_sub(1).min(depth)) {
        Ok(v) => v,
        Err(_) => {
            if let Some(v) = approximate(obj, path, depth, opaque) {
                return v;
            }
            opaque.push(path.pointer());
            Value::Null
        }
    }
}

/// JSON stand-ins for common non-JSON Python values (validation only).
fn approximate(
    obj: &Bound<'_, PyAny>,
    path: &PathNode<'_>,
    depth: usize,
    opaque: &mut Vec<String>,
) -> Option<Value> {
    let py = obj.py();
    if obj.is_instance_of::<PyInt>() {
        return obj
            .extract::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number);
    }
    if depth >= MAX_DEPTH {
        return None;
    }
    let enum_type = py.import("enum").and_then(|m| m.getattr("Enum")).ok()?;
    if obj.is_instance(&enum_type).unwrap_or(false) {
        return obj
            .getattr("value")
            .ok()
            .map(|v| lenient(&v, path, depth + 1, opaque));
    }
    if obj.is_instance_of::<pyo3::types::PySet>()
        || obj.is_instance_of::<pyo3::types::PyFrozenSet>()
    {
        let l = PyList::new(py, obj.try_iter().ok()?.flatten()).ok()?;
        return Some(lenient(l.as_any(), path, depth, opaque));
    }
    let fields = if obj.hasattr("__dataclass_fields__").unwrap_or(false)
        && !obj.is_instance_of::<pyo3::types::PyType>()
    {
        py.import("dataclasses")
            .and_then(|m| m.getattr("asdict"))
            .and_then(|f| f.call1((obj,)))
            .ok()
    } else if obj.hasattr("model_dump").unwrap_or(false)
        && !obj.is_instance_of::<pyo3::types::PyType>()
    {
        obj.call_method0("model_dump").ok()
    } else {
        None
    }?;
    Some(lenient(&fields, path, depth + 1, opaque))
}

/// Convert JSON to Python. `hint` (a JSON Schema) turns base64 strings back into bytes.
pub fn json_to_py<'py>(
    py: Python<'py>,
    v: &Value,
    hint: Option<&Value>,
    root: &str,
) -> Result<Bound<'py, PyAny>> {
    to_py(py, v, hint, 0).map_err(|e| e.into_error(root))
}

fn is_base64(schema: &Value) -> bool {
    schema.get("contentEncoding").and_then(Value::as_str) == Some("base64")
}

/// For a string value: does the schema ask for bytes?
fn wants_bytes(schema: &Value) -> bool {
    if is_base64(schema) {
        return true;
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            let strings: Vec<&Value> = alts
                .iter()
                .filter(|a| a.get("type").and_then(Value::as_str) == Some("string"))
                .collect();
            return !strings.is_empty() && strings.iter().all(|a| is_base64(a));
        }
    }
    false
}

/// The subschema for an array/object member, looking through anyOf/oneOf for a matching type.
fn member_schema<'a>(schema: &'a Value, json_type: &str) -> Option<&'a Value> {
    if schema.get("type").and_then(Value::as_str) == Some(json_type) {
        return Some(schema);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            if let Some(a) = alts
                .iter()
                .find(|a| a.get("type").and_then(Value::as_str) == Some(json_type))
            {
                return Some(a);
            }
        }
    }
    None
}

fn to_py<'py>(
    py: Python<'py>,
    v: &Value,
    hint: Option<&Value>,
    depth: usize,
) -> std::result::Result<Bound<'py, PyAny>, ConvError> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)
                    .map_err(|e| ConvError::new(e.to_string()))?
                    .into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)
                    .map_err(|e| ConvError::new(e.to_string()))?
                    .into_any()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(s) => {
            if hint.is_some_and(wants_bytes) {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| ConvError::new(format!("expected base64-encoded bytes: {e}")))?;
                PyBytes::new(py, &raw).into_any()
            } else {
                PyString::new(py, s).into_any()
            }
        }
        Value::Array(a) => {
            if depth >= MAX_DEPTH {
                return Err(ConvError::new(format!(
                    "nesting deeper than {MAX_DEPTH} levels"
                )));
            }
            let h = hint.and_then(|h| member_schema(h, "array"));
            let items = h.and_then(|h| h.get("items")).filter(|i| i.is_object());
            let prefix = h
                .and_then(|h| h.get("prefixItems"))
                .and_then(Value::as_array);
            let list = PyList::empty(py);
            for (i, x) in a.iter().enumerate() {
                let ih = prefix.and_then(|p| p.get(i)).or(items);
                let item = to_py(py, x, ih, depth + 1).map_err(|e| e.at(Seg::Index(i)))?;
                list.append(item)
                    .map_err(|e| ConvError::new(e.to_string()))?;
            }
            list.into_any()
        }
        Value::Object(m) => {
            if depth >= MAX_DEPTH {
                return Err(ConvError::new(format!(
                    "nesting deeper than {MAX_DEPTH} levels"
                )));
            }
            let h = hint.and_then(|h| member_schema(h, "object"));
            let props = h.and_then(|h| h.get("properties"));
            let extra = h
                .and_then(|h| h.get("additionalProperties"))
                .filter(|a| a.is_object());
            let d = PyDict::new(py);
            for (k, x) in m {
                let kh = props.and_then(|p| p.get(k)).or(extra);
                let item = to_py(py, x, kh, depth + 1).map_err(|e| e.at(Seg::Key(k.clone())))?;
                d.set_item(k, item)
                    .map_err(|e| ConvError::new(e.to_string()))?;
            }
            d.into_any()
        }
    })
}

/// A Python object travelling through the core as a payload.
pub struct PyValue {
    pub obj: Py<PyAny>,
    /// Name of the root in conversion error paths: `args` or `result`.
    pub root: &'static str,
}

impl PyValue {
    pub fn args(obj: Py<PyAny>) -> Self {
        PyValue { obj, root: "args" }
    }

    pub fn result(obj: Py<PyAny>) -> Self {
        PyValue {
            obj,
            root: "result",
        }
    }
}

const EXITING: &str = "a Python value could not be converted (the interpreter is exiting)";

impl ForeignValue for PyValue {
    fn to_json(&self) -> Result<Value> {
        if super::pythread::may_attach() {
            return super::exit_gate::attach_unless_exiting(|py| {
                py_to_json(self.obj.bind(py), self.root)
            })
            .unwrap_or_else(|| Err(Error::Runtime(EXITING.into())));
        }
        // On a tokio thread (a Rust consumer of a Python result: gRPC, MCP, a Rust tool):
        // convert on the Python job thread and wait, letting tokio hand this worker's other
        // tasks to another thread meanwhile.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        // SAFETY: the job only dereferences the pointer while this function waits below for
        // its answer (or for the job to be dropped unrun at exit), so `self` outlives it.
        let this = self as *const PyValue as usize;
        let wait = move || {
            super::pythread::submit(Box::new(move |py| {
                let v = unsafe { &*(this as *const PyValue) };
                let _ = tx.send(py_to_json(v.obj.bind(py), v.root));
            }));
            rx.recv().unwrap_or_else(|_| {
                Err(Error::Runtime(
                    "the interpreter is exiting: cannot convert a Python value".into(),
                ))
            })
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A call's result for a Python caller: a Python object as it is, JSON made Python (with
/// `hint`, the output schema, turning base64 strings back into bytes).
pub fn payload_to_py(
    py: Python<'_>,
    p: crate::core::Payload,
    hint: Option<&Value>,
) -> PyResult<Py<PyAny>> {
    let to_err = |e| super::errors::to_pyerr(py, e);
    match p {
        crate::core::Payload::Foreign(f) => {
            if let Some(v) = f.as_any().downcast_ref::<PyValue>() {
                return Ok(v.obj.clone_ref(py));
            }
            if let Some(r) = f.as_any().downcast_ref::<RichContent>() {
                return rich_to_py(py, r);
            }
            let v = f.to_json().map_err(to_err)?;
            Ok(json_to_py(py, &v, hint, "result").map_err(to_err)?.unbind())
        }
        crate::core::Payload::Json(v) => {
            Ok(json_to_py(py, &v, hint, "result").map_err(to_err)?.unbind())
        }
    }
}

/// Content blocks (a mounted MCP tool's rich result) as `agent_runtime.content` objects: one
/// object for one block, else a list mixing `str` and objects; blocks without a class (a
/// `resource_link`) stay dicts. A malformed block raises `ConversionError` naming it.
fn rich_to_py(py: Python<'_>, r: &RichContent) -> PyResult<Py<PyAny>> {
    static FROM_BLOCKS: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
    let to_err = |e| super::errors::to_pyerr(py, e);
    let blocks = PyList::empty(py);
    for (i, b) in r.blocks().iter().enumerate() {
        blocks.append(json_to_py(py, b, None, &format!("result[{i}]")).map_err(to_err)?)?;
    }
    let f = FROM_BLOCKS.get_or_try_init(py, || {
        py.import("agent_runtime.content")
            .and_then(|m| m.getattr("_from_blocks"))
            .map(Bound::unbind)
    })?;
    f.bind(py).call1((blocks,)).map(Bound::unbind).map_err(|e| {
        to_err(Error::conversion(
            "result",
            format!("an upstream MCP content block is malformed: {e}"),
        ))
    })
}
