//! MCP client side: mount another MCP server's tools into a registry, so they are called like
//! any other tool (schema validation, timeouts, cancellation, progress) and re-served by every
//! transport without any of them knowing where a tool lives.
//!
//! Files: `connect` (transports: a stdio child process or streamable HTTP), `handler` (what the
//! upstream sends us: progress, logs, list changes, sampling/elicitation requests), `tool` (a
//! mounted tool, a core `Tool`), `result` (upstream results as payloads/errors), `supervise`
//! (the mount: tool-list sync, reconnection with backoff, close).
//!
//! This side never uses the server handler's internals: the two only share the core.

mod catalog;
mod config;
mod connect;
mod handler;
mod result;
mod supervise;
mod tool;

pub use config::{load_config, mount_all, parse_config, parse_server_spec, ServerEntry};
pub use connect::Transport;
pub use supervise::{mount, mount_with, Mount, MountOptions};

#[cfg(test)]
mod tests;
