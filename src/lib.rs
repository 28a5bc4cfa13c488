//! agent-runtime: a Rust host runtime for agent tools with first-class Python bindings.
//!
//! Everything is a tool call on a [`Registry`]. Tools are Rust closures ([`FnTool`]) or Python
//! callables (registered through the `agent_runtime` Python package). The core (this crate
//! without the `python` feature) has no Python dependency.

pub mod builtin;
#[cfg(feature = "python")]
pub mod cli;
pub mod core;
#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "mcp")]
pub mod mcp;
#[cfg(feature = "python")]
pub mod python;
#[cfg(any(feature = "grpc", feature = "mcp"))]
pub mod serve;
pub mod worker;

pub use crate::core::{CallContext, Error, FnTool, Payload, Registry, Result, Tool, ToolSpec};
#[cfg(feature = "python")]
pub use crate::python::host::{Host, HostBuilder, PluginReport};
