//! What resources, prompts and completions share: their functions are tools (a spec with an
//! input schema and an async call — a Python callable through the same boundary as any tool),
//! called with string arguments coerced to the parameters' types, and the errors a protocol
//! maps to its own codes.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::error::Error;
use super::registry::{Registered, Registry};
use super::tool::{CallContext, Tool};
use super::Payload;

/// Why reading a resource, getting a prompt or completing failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    /// No resource has this URI (and no template matches it) / no prompt has this name.
    #[error("{0}")]
    NotFound(String),
    /// The arguments do not fit (a required prompt argument missing, a value of the wrong type).
    #[error("{0}")]
    InvalidParams(String),
    /// The function raised, timed out or returned something unusable.
    #[error("{0}")]
    Failed(Error),
}

/// A function compiled for calling (its input validator built once), like a registered tool.
pub fn compile(f: Arc<dyn Tool>) -> Result<Arc<Registered>, Error> {
    Registry::compile_entry(f)
}

/// The parameters the function's input schema declares: `(name, description)` in schema
/// order, and which are required.
pub fn params(schema: &Value) -> (Vec<(String, Option<String>)>, Vec<String>) {
    let props = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| {
            p.iter()
                .map(|(k, v)| {
                    let d = v
                        .get("description")
                        .and_then(Value::as_str)
                        .map(String::from);
                    (k.clone(), d)
                })
                .collect()
        })
        .unwrap_or_default();
    let required = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    (props, required)
}

/// Protocol arguments arrive as strings: turn each into what its parameter's schema asks for
/// (integer, number, boolean, null) when it parses as that; anything else stays a string, so
/// validation reports a value that does not fit, naming the parameter.
pub fn coerce_strings(schema: &Value, args: &mut Map<String, Value>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (k, v) in args.iter_mut() {
        let (Some(s), Some(p)) = (v.as_str(), props.get(k)) else {
            continue;
        };
        if accepts(p, "string") {
            continue;
        }
        let parsed = if accepts(p, "integer") {
            s.trim().parse::<i64>().ok().map(Value::from)
        } else {
            None
        }
        .or_else(|| {
            accepts(p, "number")
                .then(|| s.trim().parse::<f64>().ok())
                .flatten()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
        })
        .or_else(|| match (accepts(p, "boolean"), s.trim()) {
            (true, "true") => Some(Value::Bool(true)),
            (true, "false") => Some(Value::Bool(false)),
            _ => None,
        })
        .or_else(|| (accepts(p, "null") && s == "null").then_some(Value::Null));
        if let Some(x) = parsed {
            *v = x;
        }
    }
}

/// Whether a property schema admits JSON type `t` (through `type` or one level of `anyOf`).
fn accepts(p: &Value, t: &str) -> bool {
    let direct = match p.get("type") {
        Some(Value::String(s)) => s == t,
        Some(Value::Array(a)) => a.iter().any(|x| x == t),
        _ => false,
    };
    direct
        || ["anyOf", "oneOf"].iter().any(|k| {
            p.get(*k)
                .and_then(Value::as_array)
                .is_some_and(|alts| alts.iter().any(|a| accepts(a, t)))
        })
}

/// Call `f` with `args`: argument validation failures are `InvalidParams`, everything else
/// the function did wrong is `Failed`.
pub async fn run(
    f: &Registered,
    args: Map<String, Value>,
    ctx: CallContext,
) -> Result<Value, CatalogError> {
    let args = Value::Object(args);
    if let Err(e) = f.validate(&args) {
        return Err(CatalogError::InvalidParams(match e {
            Error::InvalidArguments { path, message, .. } => format!("{path}: {message}"),
            other => other.to_string(),
        }));
    }
    f.call_prevalidated(Payload::Json(args), ctx)
        .await
        .and_then(Payload::into_json)
        .map_err(CatalogError::Failed)
}

/// A change counter subscribers watch (`list_changed` notifications).
pub(crate) fn changes() -> tokio::sync::watch::Sender<u64> {
    tokio::sync::watch::Sender::new(0)
}

pub(crate) fn bump(tx: &tokio::sync::watch::Sender<u64>) {
    tx.send_modify(|v| *v = v.wrapping_add(1));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_become_what_the_schema_asks_for() {
        let schema = json!({"properties": {
            "i": {"type": "integer"}, "f": {"type": "number"}, "b": {"type": "boolean"},
            "s": {"type": "string"}, "o": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "bad": {"type": "integer"}
        }});
        let mut a = json!({"i": "12", "f": "1.5", "b": "true", "s": "7", "o": "null",
                           "bad": "x", "extra": "3"})
        .as_object()
        .cloned()
        .unwrap();
        coerce_strings(&schema, &mut a);
        assert_eq!(
            Value::Object(a),
            json!({"i": 12, "f": 1.5, "b": true, "s": "7", "o": null, "bad": "x", "extra": "3"})
        );
    }

    #[test]
    fn params_and_required_from_the_schema() {
        let (p, r) = params(&json!({
            "properties": {"a": {"type": "string", "description": "the a"}, "b": {}},
            "required": ["a"]
        }));
        assert_eq!(
            p,
            vec![("a".into(), Some("the a".into())), ("b".into(), None)]
        );
        assert_eq!(r, vec!["a".to_string()]);
        assert_eq!(params(&json!({"type": "object"})), (vec![], vec![]));
    }
}
