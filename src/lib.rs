//! agent-runtime: a Rust host runtime for agent tools with first-class Python bindings.
//!
//! Everything is a tool call on a [`Registry`]. Tools are Rust closures ([`FnTool`]) or Python
//! callables (registered through the `agent_runtime` Python package). The core (this crate
//! without the `python` feature) has no Python dependency.

// Public namespaces: the built-in tool groups and the transports.
pub mod builtin;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "mcp")]
pub mod mcp;
#[cfg(feature = "swerex")]
pub mod swerex;

// Internals: reachable only through the re-exports below.
#[cfg(feature = "python")]
pub(crate) mod cli;
pub(crate) mod core;
#[cfg(feature = "python")]
pub(crate) mod python;
#[cfg(any(feature = "grpc", feature = "mcp", feature = "swerex"))]
pub(crate) mod serve;
// The fuzz targets (built with `--cfg fuzzing`) drive the worker framing directly.
#[cfg(fuzzing)]
pub mod worker;
#[cfg(not(fuzzing))]
pub(crate) mod worker;

// The public surface, in one place.
pub use crate::core::catalog::CatalogError;
pub use crate::core::completion::{self, CompletionRequest, Completions};
pub use crate::core::duration;
pub use crate::core::events::{self, Event, EventKind};
pub use crate::core::peer;
pub use crate::core::prompts::{PromptArgument, PromptSpec, PromptStore};
pub use crate::core::registry::{parse_args_json, run_tool, MAX_NAME_LEN};
pub use crate::core::resources::{ResourceBody, ResourceSpec, ResourceStore};
pub use crate::core::runtime::shutdown;
pub use crate::core::tool::MAX_CALL_DEPTH;
pub use crate::core::{
    live_tasks, BoxFuture, CallContext, CallPeer, CancelToken, Error, FnTool, ForeignValue,
    HostOps, LogLevel, Opaque, Payload, PeerRequest, Progress, ProgressSink, Registered, Registry,
    Result, RichContent, TaskHandle, TaskStatus, Tool, ToolSpec,
};
#[cfg(feature = "python")]
pub use crate::python::host::{Host, HostBuilder, PluginReport};
#[cfg(feature = "python")]
pub use crate::python::install_embedded;
/// The process-wide pool of worker processes that isolated tools run in.
pub use crate::worker::global as isolation_pool;
pub use crate::worker::{
    IsolatedTool, Pool, PoolConfig, PoolStats, RemoteException, Target, WorkerStats,
};
