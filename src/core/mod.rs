//! The pure-Rust core: no pyo3 here. Everything else calls into [`Registry::call`].

pub mod error;
pub mod payload;
pub mod registry;
pub mod runtime;
pub mod schema;
pub mod tool;

pub use error::{Error, Opaque, Result};
pub use payload::{ForeignValue, Payload};
pub use registry::{next_call_id, Registered, Registry};
pub use tool::{BoxFuture, CallContext, FnTool, Tool, ToolSpec};
