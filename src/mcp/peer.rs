//! The MCP client as a tool call's [`CallPeer`]: `ctx.log` becomes `notifications/message`
//! (filtered by the session's `logging/setLevel`), `ctx.sample` / `ctx.elicit` become
//! `sampling/createMessage` / `elicitation/create` requests to the client.
//!
//! Everything a call sends (progress and logs) goes through one channel, drained by one task,
//! so it arrives in order and is flushed before the call's result. Requests are *sent* from the
//! `tools/call` handler's own task ([`Outbound`]): rmcp routes a request sent there to the
//! originating HTTP request's SSE stream, where the client is sure to be listening.

// Logging and sampling are deprecated by SEP-2577 (protocol 2026-07-28), yet they are what
// every client of the 2025 protocol versions speaks.
#![allow(deprecated)]

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use rmcp::model::{
    CancelledNotificationParam, ClientResult, CustomRequest, LoggingLevel,
    LoggingMessageNotificationParam, ProgressNotificationParam, ProgressToken, RequestId,
    ServerRequest,
};
use rmcp::service::{PeerRequestOptions, RequestHandle, RoleServer, ServiceError};
use rmcp::Peer;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::core::peer::not_supported;
use crate::core::{
    BoxFuture, CallPeer, CancelToken, Error, LogLevel, PeerRequest, Progress, Result,
};

/// The lowest level a session wants (`logging/setLevel`); everything until the client sets one.
#[derive(Clone, Default)]
pub struct SessionLogLevel(Arc<AtomicU8>);

impl SessionLogLevel {
    pub fn set(&self, level: LoggingLevel) {
        self.0.store(from_rmcp(level) as u8, Ordering::Relaxed);
    }

    /// The level one request asked for in its `_meta` (protocol 2026-07-28), or None: no log
    /// messages for it.
    pub fn per_request(level: Option<LoggingLevel>) -> Self {
        let v = level.map_or(u8::MAX, |l| from_rmcp(l) as u8);
        SessionLogLevel(Arc::new(AtomicU8::new(v)))
    }

    fn wants(&self, level: LogLevel) -> bool {
        level as u8 >= self.0.load(Ordering::Relaxed)
    }
}

fn from_rmcp(l: LoggingLevel) -> LogLevel {
    match l {
        LoggingLevel::Debug => LogLevel::Debug,
        LoggingLevel::Info => LogLevel::Info,
        LoggingLevel::Notice => LogLevel::Notice,
        LoggingLevel::Warning => LogLevel::Warning,
        LoggingLevel::Error => LogLevel::Error,
        LoggingLevel::Critical => LogLevel::Critical,
        LoggingLevel::Alert => LogLevel::Alert,
        LoggingLevel::Emergency => LogLevel::Emergency,
    }
}

fn to_rmcp(l: LogLevel) -> LoggingLevel {
    match l {
        LogLevel::Debug => LoggingLevel::Debug,
        LogLevel::Info => LoggingLevel::Info,
        LogLevel::Notice => LoggingLevel::Notice,
        LogLevel::Warning => LoggingLevel::Warning,
        LogLevel::Error => LoggingLevel::Error,
        LogLevel::Critical => LoggingLevel::Critical,
        LogLevel::Alert => LoggingLevel::Alert,
        LogLevel::Emergency => LoggingLevel::Emergency,
    }
}

/// What the forwarder of one call sends, in order.
enum Forward {
    Progress(ProgressToken, Progress),
    Log(LoggingMessageNotificationParam),
    /// Answered once everything sent before it has gone out.
    Flush(oneshot::Sender<()>),
}

/// A request for the handler's task to send (see the module doc).
pub struct Outbound {
    request: ServerRequest,
    reply: oneshot::Sender<std::result::Result<RequestHandle<RoleServer>, ServiceError>>,
}

impl Outbound {
    /// Send the request on `peer` and hand its handle back to the waiting tool.
    pub async fn send(self, peer: &Peer<RoleServer>) {
        let h = peer
            .send_request_with_option(self.request, PeerRequestOptions::no_options())
            .await;
        let _ = self.reply.send(h);
    }
}

/// Notifications of one call waiting for a slow client; beyond, new ones are dropped (memory
/// stays bounded whatever a tool logs).
const FORWARD_BACKLOG: usize = 4096;

/// One `tools/call`'s view of the client.
pub struct McpPeer {
    tool: String,
    peer: Peer<RoleServer>,
    level: SessionLogLevel,
    rt: tokio::runtime::Handle,
    forward: OnceLock<mpsc::Sender<Forward>>,
    outbound: mpsc::UnboundedSender<Outbound>,
    /// The request speaks protocol 2026-07-28 or later (no server-to-client requests).
    modern: bool,
}

impl McpPeer {
    /// The peer for one call, and the receiver of its requests, to be served by the handler.
    pub fn new(
        tool: &str,
        peer: Peer<RoleServer>,
        level: SessionLogLevel,
        modern: bool,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Outbound>) {
        let (outbound, rx) = mpsc::unbounded_channel();
        let p = McpPeer {
            tool: tool.to_string(),
            peer,
            level,
            rt: tokio::runtime::Handle::current(),
            forward: OnceLock::new(),
            outbound,
            modern,
        };
        (Arc::new(p), rx)
    }

    /// The forwarder's channel, started on first use (most calls never notify anything).
    fn forwarder(&self) -> &mpsc::Sender<Forward> {
        self.forward.get_or_init(|| {
            let (tx, mut rx) = mpsc::channel::<Forward>(FORWARD_BACKLOG);
            let peer = self.peer.clone();
            self.rt.spawn(async move {
                // After a failed send the client is gone: drop the rest, keep answering flushes.
                let mut open = true;
                while let Some(msg) = rx.recv().await {
                    match msg {
                        Forward::Progress(token, p) if open => {
                            let mut n = ProgressNotificationParam::new(token, p.done);
                            if let Some(t) = p.total {
                                n = n.with_total(t);
                            }
                            if let Some(m) = p.message {
                                n = n.with_message(m);
                            }
                            open = peer.notify_progress(n).await.is_ok();
                        }
                        Forward::Log(n) if open => {
                            open = peer.notify_logging_message(n).await.is_ok();
                        }
                        Forward::Flush(done) => {
                            let _ = done.send(());
                        }
                        _ => {}
                    }
                }
            });
            tx
        })
    }

    /// Queue a progress notification for `token`.
    pub fn progress(&self, token: ProgressToken, p: &Progress) {
        let _ = self
            .forwarder()
            .try_send(Forward::Progress(token, p.clone()));
    }

    /// Wait (bounded) until every notification queued so far has gone out.
    pub async fn flush(&self) {
        let Some(tx) = self.forward.get() else {
            return;
        };
        let (done, sent) = oneshot::channel();
        // Bounded: a stuck client must not hold the result back forever.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async move {
            if tx.send(Forward::Flush(done)).await.is_ok() {
                let _ = sent.await;
            }
        })
        .await;
    }

    fn capable(&self, kind: PeerRequest) -> std::result::Result<(), Error> {
        let info = self.peer.peer_info().filter(|_| !self.modern);
        let Some(info) = info else {
            return Err(not_supported(
                kind,
                "is not available on this connection: it needs a session opened with the \
                 initialize handshake (protocol 2025-11-25 or earlier; 2026-07-28 has no \
                 server-to-client requests)",
            ));
        };
        let caps = &info.capabilities;
        let has = match kind {
            PeerRequest::Sample => caps.sampling.is_some(),
            PeerRequest::Elicit => caps.elicitation.is_some(),
        };
        if has {
            Ok(())
        } else {
            let cap = match kind {
                PeerRequest::Sample => "sampling",
                PeerRequest::Elicit => "elicitation",
            };
            Err(not_supported(
                kind,
                &format!("is not available: the MCP client did not declare the '{cap}' capability"),
            ))
        }
    }
}

impl CallPeer for McpPeer {
    fn log(&self, level: LogLevel, logger: Option<&str>, data: Value) {
        if !self.level.wants(level) {
            return;
        }
        let mut n = LoggingMessageNotificationParam::new(to_rmcp(level), data);
        n.logger = logger.map(str::to_string);
        let _ = self.forwarder().try_send(Forward::Log(n));
    }

    fn request(
        &self,
        kind: PeerRequest,
        params: Value,
        cancel: CancelToken,
    ) -> BoxFuture<Result<Value>> {
        let checked = self.capable(kind);
        let outbound = self.outbound.clone();
        let tool = self.tool.clone();
        Box::pin(async move {
            checked?;
            let request =
                ServerRequest::CustomRequest(CustomRequest::new(kind.method(), Some(params)));
            let (reply, handle) = oneshot::channel();
            let ended = || {
                not_supported(
                    kind,
                    "cannot be sent: the tools/call request it belongs to has ended",
                )
            };
            outbound
                .send(Outbound { request, reply })
                .map_err(|_| ended())?;
            let handle = handle
                .await
                .map_err(|_| ended())?
                .map_err(|e| service_error(kind, &tool, e))?;
            let mut pending = PendingRequest {
                peer: handle.peer.clone(),
                id: Some(handle.id.clone()),
            };
            let answer = tokio::select! {
                r = handle.await_response() => r,
                _ = cancel.cancelled() => return Err(Error::Cancelled { tool }),
            };
            pending.id = None;
            match answer.map_err(|e| service_error(kind, &tool, e))? {
                ClientResult::CustomResult(r) => Ok(r.0),
                other => serde_json::to_value(other).map_err(|e| {
                    Error::tool(&tool, format!("{}: unreadable answer: {e}", kind.method()))
                }),
            }
        })
    }
}

fn service_error(kind: PeerRequest, tool: &str, e: ServiceError) -> Error {
    match e {
        ServiceError::McpError(e) if e.code.0 == -32601 => not_supported(
            kind,
            &format!("is not supported by the MCP client: {}", e.message),
        ),
        ServiceError::McpError(e) => Error::tool(
            tool,
            format!(
                "the MCP client answered {} with error {}: {}",
                kind.method(),
                e.code.0,
                e.message
            ),
        ),
        ServiceError::TransportClosed => Error::Cancelled {
            tool: tool.to_string(),
        },
        other => not_supported(kind, &format!("could not be sent: {other}")),
    }
}

/// Sends `notifications/cancelled` for a request still pending when its waiter goes away (the
/// tool's timeout or cancellation).
struct PendingRequest {
    peer: Peer<RoleServer>,
    id: Option<RequestId>,
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let peer = self.peer.clone();
            crate::core::runtime::cached_handle().spawn(async move {
                let n = CancelledNotificationParam::new(
                    Some(id),
                    Some("the tool call was cancelled or timed out".into()),
                );
                let _ = peer.notify_cancelled(n).await;
            });
        }
    }
}
