//! Call arguments and results: JSON or a foreign (Python) object, converted only on demand.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use super::error::Result;

/// A value owned by another runtime (a Python object) that can render itself as JSON.
pub trait ForeignValue: Send + Sync + 'static {
    /// Convert to JSON; errors name the path of the unconvertible part.
    fn to_json(&self) -> Result<Value>;
    fn as_any(&self) -> &dyn Any;
}

/// Arguments or result of a tool call.
///
/// A Python caller's dict reaches a Python tool as the same object (`Foreign`); Rust tools and
/// wire transports see `Json`. Conversion happens once, where the consumer needs the other form.
#[derive(Clone)]
pub enum Payload {
    Json(Value),
    Foreign(Arc<dyn ForeignValue>),
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Json(v) => write!(f, "Json({v})"),
            Payload::Foreign(_) => f.write_str("Foreign(..)"),
        }
    }
}

impl Payload {
    pub fn null() -> Self {
        Payload::Json(Value::Null)
    }

    /// JSON form, converting a foreign value if needed.
    pub fn to_json(&self) -> Result<Value> {
        match self {
            Payload::Json(v) => Ok(v.clone()),
            Payload::Foreign(f) => f.to_json(),
        }
    }

    /// JSON form without cloning when it already is JSON.
    pub fn into_json(self) -> Result<Value> {
        match self {
            Payload::Json(v) => Ok(v),
            Payload::Foreign(f) => f.to_json(),
        }
    }

    /// The foreign value as its concrete type, if it is one.
    pub fn foreign<T: 'static>(&self) -> Option<&T> {
        match self {
            Payload::Foreign(f) => f.as_any().downcast_ref::<T>(),
            Payload::Json(_) => None,
        }
    }
}

impl From<Value> for Payload {
    fn from(v: Value) -> Self {
        Payload::Json(v)
    }
}
