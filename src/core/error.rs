//! The one error type every entry point (Python, Rust host, transports) speaks.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A value from a foreign runtime (e.g. the original Python exception) carried through Rust
/// untouched so the boundary it came from can hand it back as-is.
#[derive(Clone)]
pub struct Opaque(pub Arc<dyn Any + Send + Sync>);

impl fmt::Debug for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Opaque(..)")
    }
}

/// Errors of registry calls. `Clone` so one failure can be reported to several observers.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("tool '{name}' not found{}", suggest(.suggestions))]
    NotFound {
        name: String,
        suggestions: Vec<String>,
    },
    #[error("invalid arguments for tool '{tool}' at {path}: {message}")]
    InvalidArguments {
        tool: String,
        /// Dotted/indexed path of the offending value, e.g. `items[3].when`; `<root>` for the whole.
        path: String,
        message: String,
    },
    /// A value that cannot cross between Python and JSON (wrong type, too deep, NaN, huge int).
    #[error("{path}: {message}")]
    Conversion { path: String, message: String },
    #[error("tool '{tool}' failed: {message}")]
    Tool { tool: String, message: String },
    #[error("tool '{tool}' timed out after {:.3}s", .timeout.as_secs_f64())]
    Timeout { tool: String, timeout: Duration },
    #[error("call to tool '{tool}' was cancelled")]
    Cancelled { tool: String },
    /// An exception raised by a Python callable.
    #[error("{type_name}: {message}")]
    Python {
        type_name: String,
        message: String,
        traceback: Option<String>,
        /// The exception object itself, so a Python caller gets back exactly what was raised.
        original: Option<Opaque>,
    },
    /// Refused by policy (a module outside the allowlist, a missing token, ...).
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// The caller cannot do what the tool asked of it (e.g. sampling from a caller that is no
    /// MCP client, or one without the capability).
    #[error("not supported: {0}")]
    NotSupported(String),
    #[error("tool registration failed: {0}")]
    Registration(String),
    #[error("runtime error: {0}")]
    Runtime(String),
    /// The worker process running an isolated tool died (signal, exit, memory limit) or was
    /// killed by the pool. The pool has replaced it; other calls are unaffected.
    #[error("worker process of tool '{tool}' crashed: {detail}{}", tail(.stderr_tail))]
    WorkerCrashed {
        tool: String,
        /// What happened, e.g. `killed by signal 11 (SIGSEGV)` or `exited with code 3`.
        detail: String,
        exit_code: Option<i32>,
        signal: Option<i32>,
        /// The worker's last stderr lines (a fatal error's Python stack, for instance).
        stderr_tail: String,
    },
}

fn tail(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("\n--- last lines of the worker's stderr ---\n{s}")
    }
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(
            " (did you mean {}?)",
            s.iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

impl Error {
    pub fn tool(tool: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Tool {
            tool: tool.into(),
            message: message.into(),
        }
    }

    pub fn conversion(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Conversion {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Short machine-friendly kind name, used by transports and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "ToolNotFound",
            Error::InvalidArguments { .. } => "InvalidArguments",
            Error::Conversion { .. } => "ConversionError",
            Error::Tool { .. } => "ToolError",
            Error::Timeout { .. } => "ToolTimeout",
            Error::Cancelled { .. } => "Cancelled",
            Error::Python { .. } => "PythonError",
            Error::NotAllowed(_) => "NotAllowed",
            Error::NotSupported(_) => "NotSupported",
            Error::Registration(_) => "RegistrationError",
            Error::Runtime(_) => "RuntimeError",
            Error::WorkerCrashed { .. } => "WorkerCrashed",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
