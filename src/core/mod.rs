//! The pure-Rust core: no pyo3 here. Everything else calls into [`Registry::call`].

pub mod cancel;
pub mod catalog;
pub mod completion;
pub mod duration;
pub mod error;
pub mod events;
pub mod host_ops;
pub mod interest;
pub mod json_text;
pub mod payload;
pub mod peer;
pub mod prompts;
pub mod registry;
pub mod resources;
pub mod rich;
pub mod runtime;
pub mod schema;
pub mod tasks;
pub mod text;
pub mod tool;
pub mod uri_template;

pub use cancel::CancelToken;
pub use error::{Error, Opaque, Result};
pub use host_ops::HostOps;
pub use payload::{ForeignValue, Payload};
pub use peer::{CallPeer, LogLevel, PeerRequest};
pub use registry::{Registered, Registry};
pub use rich::RichContent;
pub use tasks::{live_tasks, TaskHandle, TaskStatus};
pub use tool::{BoxFuture, CallContext, FnTool, Progress, ProgressSink, Tool, ToolSpec};

#[cfg(test)]
mod tests;
