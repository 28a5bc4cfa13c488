//! MCP transport: the registry as a Model Context Protocol server (rmcp), over stdio and
//! streamable HTTP (axum).
//!
//! Every registered tool is listed with a self-contained input schema (and output schema where
//! known). A tool's failure is an `isError: true` result carrying the error type and message
//! (so the model can read it); only protocol problems (an unknown tool) are JSON-RPC errors.
//! Progress a tool reports becomes `notifications/progress` when the client sent a progress
//! token; `notifications/cancelled` — or the client going away — cancels the running tool;
//! per-tool timeouts apply. Registry changes reach clients as `notifications/tools/list_changed`,
//! both on handshake sessions and on 2026-07-28 `subscriptions/listen` streams.
//!
//! Every incoming message is checked ([`jsonrpc`]) before rmcp sees it: malformed input gets
//! the JSON-RPC error naming the problem, on both transports.
//!
//! A tool's `ctx.log` becomes `notifications/message` (honouring `logging/setLevel`), and
//! `ctx.sample` / `ctx.elicit` become `sampling/createMessage` / `elicitation/create` requests
//! to the client (`peer`). Results holding `Image` / `Audio` / `EmbeddedResource` become content
//! blocks; error results never carry `structuredContent` (`content`).
//!
//! Files: `handler` (the server), `jsonrpc` (message checks), `stdio`, `http` (+ `access`:
//! Host/Origin rules), `schema` (tool schemas as MCP clients want them), `content` (results as
//! content blocks, error results), `peer` (the client as a call's `CallPeer`).

mod access;
mod catalog;
pub mod client;
mod content;
mod handler;
mod http;
mod jsonrpc;
mod peer;
mod schema;
mod stdio;

use std::net::SocketAddr;

pub use handler::McpServer;
pub use http::serve_http;
pub use schema::self_contained;
pub use stdio::{serve_stdio, serve_transport, LineTransport};

/// Default cap on one result's serialized size.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 1024 * 1024;

/// Default cap on one incoming message (a stdio line or an HTTP body).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Behaviour shared by both MCP transports.
#[derive(Clone, Debug)]
pub struct McpOptions {
    /// Results whose JSON text is larger are truncated, with a marker saying so.
    pub max_result_bytes: usize,
    /// Largest incoming stdio message (one line), bytes; longer lines are refused.
    pub max_message_bytes: usize,
    /// Shown to clients at connection time.
    pub instructions: Option<String>,
}

impl Default for McpOptions {
    fn default() -> Self {
        McpOptions {
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            instructions: None,
        }
    }
}

/// How to serve MCP over streamable HTTP.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    pub addr: SocketAddr,
    /// URL path of the endpoint.
    pub path: String,
    /// Required for non-loopback addresses, and then a token is required too.
    pub allow_remote: bool,
    /// Bearer token every request must present.
    pub token: Option<String>,
    /// `Host` header values accepted besides the loopback names (DNS-rebinding protection);
    /// their `http`/`https` origins are accepted too.
    pub allowed_hosts: Vec<String>,
    /// `Origin` header values accepted besides the loopback origins of the bound port and
    /// those of `allowed_hosts`: `scheme://host[:port]`, `scheme://host:*` or `null`.
    pub allowed_origins: Vec<String>,
    /// Largest request body, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// rmcp's stateless mode: no sessions, every POST self-contained with a JSON answer, so any
    /// replica behind a load balancer can take any request. What needs a session is refused
    /// (GET listen streams, DELETE, resumption) — see the README's scale-out section.
    pub stateless: bool,
    /// Answers `GET /healthz` and `GET /readyz` on the same port; turned not-ready when the
    /// shutdown starts (share one with the other servers of the process).
    pub readiness: crate::serve::health::Readiness,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            path: "/mcp".into(),
            allow_remote: false,
            token: None,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            max_body_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            stateless: false,
            readiness: Default::default(),
        }
    }
}
