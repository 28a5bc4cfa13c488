//! MCP client side: mount another MCP server's tools into a registry, so they are called like
//! any other tool (schema validation, timeouts, cancellation, progress) and re-served by every
//! transport without any of them knowing where a tool lives.
//!
//! Files: `connect` (transports: a stdio child process or streamable HTTP), `http_origin`
//! (which call a log message on an HTTP response stream belongs to), `handler` (what the
//! upstream sends us: progress, logs, list changes, sampling/elicitation requests), `calls`
//! (the calls in flight and routing to their callers), `tool` (a mounted tool, a core `Tool`),
//! `result` (upstream results as payloads/errors), `catalog` (proxied resources and prompts),
//! `subscribe` (upstream resource subscriptions following our clients'),
//! `supervise` (the mount: list sync, reconnection with backoff, close).
//!
//! This side never uses the server handler's internals: the two only share the core.

mod calls;
mod catalog;
mod config;
mod connect;
mod handler;
mod http_origin;
mod result;
mod subscribe;
mod supervise;
mod tool;

pub use config::{load_config, mount_all, parse_config, parse_server_spec, ServerEntry};
pub use connect::Transport;
pub use supervise::{mount, mount_with, Mount, MountOptions};

#[cfg(test)]
mod tests;
