//! How failures go over the wire: runtime exceptions as SWE-ReX's HTTP 511
//! `{"swerexception": {message, class_path, traceback, extra_info}}` (its `RemoteRuntime`
//! re-raises the class named by `class_path`), protocol errors as FastAPI answers them
//! (`{"detail": ...}` with 401, 413 or 422).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::core::Error;

/// SWE-ReX's class paths, so the client re-raises its own exception types.
pub mod class {
    pub const NON_ZERO_EXIT: &str = "swerex.exceptions.NonZeroExitCodeError";
    pub const COMMAND_TIMEOUT: &str = "swerex.exceptions.CommandTimeoutError";
    pub const BASH_SYNTAX: &str = "swerex.exceptions.BashIncorrectSyntaxError";
    pub const SESSION_EXISTS: &str = "swerex.exceptions.SessionExistsError";
    pub const SESSION_MISSING: &str = "swerex.exceptions.SessionDoesNotExistError";
    pub const RUNTIME_ERROR: &str = "builtins.RuntimeError";
    pub const VALUE_ERROR: &str = "builtins.ValueError";
    pub const TIMEOUT_ERROR: &str = "builtins.TimeoutError";
}

/// An exception raised by the runtime, for the client to re-raise.
#[derive(Debug, Clone, PartialEq)]
pub struct Exception {
    pub class_path: &'static str,
    pub message: String,
    pub extra_info: Map<String, Value>,
}

impl Exception {
    pub fn new(class_path: &'static str, message: impl Into<String>) -> Self {
        Exception {
            class_path,
            message: message.into(),
            extra_info: Map::new(),
        }
    }

    pub fn with_info(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra_info.insert(key.into(), value.into());
        self
    }

    pub fn to_json(&self) -> Value {
        let name = self
            .class_path
            .rsplit('.')
            .next()
            .unwrap_or(self.class_path);
        json!({"swerexception": {
            "message": self.message,
            "class_path": self.class_path,
            // No Python frames to show; the client logs this text as the remote traceback.
            "traceback": format!("{name}: {}\n", self.message),
            "extra_info": self.extra_info,
        }})
    }
}

impl From<Error> for Exception {
    /// A core error as the closest Python built-in exception.
    fn from(e: Error) -> Self {
        let class = match &e {
            Error::InvalidArguments { .. } | Error::Conversion { .. } => class::VALUE_ERROR,
            Error::Timeout { .. } => class::TIMEOUT_ERROR,
            _ => class::RUNTIME_ERROR,
        };
        Exception::new(class, e.to_string())
    }
}

impl IntoResponse for Exception {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(511).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.to_json())).into_response()
    }
}

/// A protocol-level refusal, answered as FastAPI does: `{"detail": ...}`.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub detail: Value,
}

impl HttpError {
    pub fn new(status: StatusCode, detail: impl Into<Value>) -> Self {
        HttpError {
            status,
            detail: detail.into(),
        }
    }

    /// One pydantic-style validation error (422).
    pub fn invalid(kind: &str, loc: Vec<Value>, msg: impl Into<String>, input: Value) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!([{"type": kind, "loc": loc, "msg": msg.into(), "input": input}]),
        )
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({"detail": self.detail}))).into_response()
    }
}

/// What a handler can fail with.
#[derive(Debug)]
pub enum Failure {
    Raise(Exception),
    Http(HttpError),
}

impl From<Exception> for Failure {
    fn from(e: Exception) -> Self {
        Failure::Raise(e)
    }
}

impl From<HttpError> for Failure {
    fn from(e: HttpError) -> Self {
        Failure::Http(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Raise(e.into())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Raise(e) => e.into_response(),
            Failure::Http(e) => e.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_wire_form() {
        let e = Exception::new(class::COMMAND_TIMEOUT, "too slow").with_info("output", "partial");
        let v = e.to_json();
        let x = &v["swerexception"];
        assert_eq!(x["class_path"], "swerex.exceptions.CommandTimeoutError");
        assert_eq!(x["message"], "too slow");
        assert_eq!(x["extra_info"]["output"], "partial");
        assert!(x["traceback"]
            .as_str()
            .unwrap()
            .starts_with("CommandTimeoutError"));
        let r = e.into_response();
        assert_eq!(r.status().as_u16(), 511);
    }
}
