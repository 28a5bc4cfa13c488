//! A tool of an upstream MCP server, as a core [`Tool`]: the registry validates, times out and
//! cancels it like any other; this forwards the call and maps progress, cancellation and the
//! result.

use std::any::Any;
use std::sync::Arc;

use parking_lot::RwLock;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CancelledNotification, CancelledNotificationParam,
    ClientRequest, RequestId, ServerResult,
};
use rmcp::service::{Peer, PeerRequestOptions, RoleClient, ServiceError};
use serde_json::Value;

use super::calls::{CallKey, Calls, Inflight};
use super::result::into_payload;
use crate::core::{BoxFuture, CallContext, Error, Payload, Result, Tool, ToolSpec};

/// The live connection of a mount, shared by its tools.
pub(super) struct Link {
    pub calls: Arc<Calls>,
    /// None while disconnected; `down` then says why.
    pub peer: RwLock<Option<Peer<RoleClient>>>,
    pub down: RwLock<String>,
}

impl Link {
    pub fn server(&self) -> &str {
        &self.calls.server
    }

    fn unavailable(&self, tool: &str) -> Error {
        Error::tool(
            tool,
            format!(
                "MCP server '{}' is unavailable: {}",
                self.server(),
                self.down.read()
            ),
        )
    }

    fn failed(&self, tool: &str, e: ServiceError) -> Error {
        match e {
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => Error::tool(
                tool,
                format!(
                    "MCP server '{}' disconnected during the call",
                    self.server()
                ),
            ),
            ServiceError::McpError(e) => Error::tool(
                tool,
                format!(
                    "MCP server '{}' answered with an error: {}",
                    self.server(),
                    e.message
                ),
            ),
            other => Error::tool(tool, format!("MCP server '{}': {other}", self.server())),
        }
    }
}

pub(super) struct MountedTool {
    pub spec: ToolSpec,
    /// The name the upstream knows it by.
    pub upstream: String,
    pub link: Arc<Link>,
}

impl MountedTool {
    pub fn server(&self) -> &str {
        self.link.server()
    }
}

/// Forgets the call when it ends in any way, and sends `notifications/cancelled` upstream
/// when it is abandoned (cancelled, timed out, dropped) after its request went out but before
/// its answer came.
struct Pending {
    calls: Arc<Calls>,
    key: u64,
    /// Set once the request is out.
    sent: Option<(RequestId, Peer<RoleClient>)>,
    answered: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.calls.end(self.key);
        let Some((id, peer)) = self.sent.take().filter(|_| !self.answered) else {
            return;
        };
        let note = CancelledNotification::new(CancelledNotificationParam::new(
            Some(id),
            Some("cancelled by the caller".into()),
        ));
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                let _ = peer.send_notification(note.into()).await;
            });
        }
    }
}

impl Tool for MountedTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, args: Payload, ctx: CallContext) -> BoxFuture<Result<Payload>> {
        let link = self.link.clone();
        let name = self.spec.name.clone();
        let upstream = self.upstream.clone();
        Box::pin(async move {
            let arguments = match args.into_json()? {
                Value::Object(m) => Some(m),
                Value::Null => None,
                other => {
                    return Err(Error::InvalidArguments {
                        tool: name,
                        path: "<root>".into(),
                        message: format!("expected an object, got {other}"),
                    })
                }
            };
            let peer = link
                .peer
                .read()
                .clone()
                .ok_or_else(|| link.unavailable(&name))?;
            let mut params = CallToolRequestParams::new(upstream);
            params.arguments = arguments;
            let mut call = CallToolRequest::new(params);
            // Entered before sending: whatever the upstream sends about it finds it.
            let key = link.calls.begin(Inflight {
                progress: ctx.progress.clone(),
                peer: ctx.peer.clone(),
                cancel: ctx.cancel.clone(),
            });
            call.extensions.insert(CallKey(key));
            let mut pending = Pending {
                calls: link.calls.clone(),
                key,
                sent: None,
                answered: false,
            };
            let handle = peer
                .send_request_with_option(
                    ClientRequest::CallToolRequest(call),
                    PeerRequestOptions::no_options(),
                )
                .await
                .map_err(|e| link.failed(&name, e))?;
            pending.sent = Some((handle.id.clone(), peer));
            let answer = tokio::select! {
                r = handle.await_response() => r,
                _ = ctx.cancel.cancelled() => return Err(Error::Cancelled { tool: name }),
            };
            pending.answered = true;
            match answer {
                Ok(ServerResult::CallToolResult(r)) => into_payload(&name, r),
                Ok(other) => Err(Error::tool(
                    &name,
                    format!(
                        "MCP server '{}' sent an unexpected answer: {}",
                        link.server(),
                        serde_json::to_string(&other).unwrap_or_default()
                    ),
                )),
                Err(e) => Err(link.failed(&name, e)),
            }
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
