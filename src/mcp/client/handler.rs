//! What an upstream server sends us: progress and log notifications (routed to the calls they
//! belong to), tool-list changes (to the supervisor), and sampling/elicitation requests
//! (forwarded to the caller of a running tool when it can answer).

// Sampling and logging are deprecated by SEP-2577 but still what servers send.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rmcp::model::{
    ClientCapabilities, ClientInfo, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequestParams, ElicitResult, Implementation, LoggingMessageNotificationParam,
    ProgressNotificationParam, ProgressToken,
};
use rmcp::model::{JsonRpcMessage, JsonRpcNotification, ServerNotification};
use rmcp::service::{NotificationContext, RequestContext, RoleClient};
use rmcp::transport::Transport;
use rmcp::{ClientHandler, ErrorData};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Notify;

use crate::core::{CallPeer, CancelToken, LogLevel, PeerRequest, Progress, ProgressSink};

/// A call waiting for its upstream result.
pub(super) struct Inflight {
    pub progress: Option<ProgressSink>,
    pub peer: Option<Arc<dyn CallPeer>>,
    pub cancel: CancelToken,
    /// Start order: the most recent call with a peer receives unattributed messages.
    pub seq: u64,
}

/// State shared by the handler, the mounted tools and the supervisor of one mount.
pub(super) struct Calls {
    pub server: String,
    map: Mutex<HashMap<ProgressToken, Inflight>>,
    seq: AtomicU64,
    pub tools_changed: Notify,
}

impl Calls {
    pub fn new(server: String) -> Self {
        Calls {
            server,
            map: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            tools_changed: Notify::new(),
        }
    }

    pub fn insert(&self, token: ProgressToken, mut call: Inflight) {
        call.seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.map.lock().insert(token, call);
    }

    pub fn remove(&self, token: &ProgressToken) {
        self.map.lock().remove(token);
    }

    /// Deliver an upstream progress report to the call it belongs to.
    pub fn progress(&self, params: ProgressNotificationParam) {
        let sink = self
            .map
            .lock()
            .get(&params.progress_token)
            .and_then(|c| c.progress.clone());
        if let Some(sink) = sink.filter(|_| params.progress.is_finite()) {
            sink(&Progress {
                done: params.progress,
                total: params.total.filter(|t| t.is_finite()),
                message: params.message,
            });
        }
    }

    /// Deliver an upstream log message to the caller of the latest call that can take it,
    /// else to the `log` crate (Python logging, logger `agent_runtime.mcp`).
    pub fn log(&self, params: LoggingMessageNotificationParam) {
        let level = serde_json::to_value(params.level)
            .ok()
            .and_then(|v| v.as_str().and_then(LogLevel::parse))
            .unwrap_or(LogLevel::Info);
        let logger = params.logger.unwrap_or_else(|| self.server.clone());
        match self.latest_peer() {
            Some((peer, _)) => peer.log(level, Some(&logger), params.data),
            None => {
                let lvl = match level {
                    LogLevel::Debug => log::Level::Debug,
                    LogLevel::Info | LogLevel::Notice => log::Level::Info,
                    LogLevel::Warning => log::Level::Warn,
                    _ => log::Level::Error,
                };
                let text = match &params.data {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                log::log!(target: "agent_runtime.mcp", lvl, "[{logger}] {text}");
            }
        }
    }

    /// The caller's side of the latest running call that has one. MCP does not tie a server's
    /// log message or request to one of our calls (stdio has no related-request channel), so
    /// the most recent call is the best guess, and exact whenever calls do not overlap.
    fn latest_peer(&self) -> Option<(Arc<dyn CallPeer>, CancelToken)> {
        self.map
            .lock()
            .values()
            .filter_map(|c| {
                c.peer
                    .as_ref()
                    .map(|p| (c.seq, p.clone(), c.cancel.clone()))
            })
            .max_by_key(|(seq, _, _)| *seq)
            .map(|(_, p, c)| (p, c))
    }
}

/// The rmcp client handler of one connection.
#[derive(Clone)]
pub struct UpstreamHandler {
    pub(super) calls: Arc<Calls>,
}

impl UpstreamHandler {
    async fn forward<T: DeserializeOwned>(
        &self,
        kind: PeerRequest,
        params: impl serde::Serialize,
    ) -> Result<T, ErrorData> {
        let Some((peer, cancel)) = self.calls.latest_peer() else {
            return Err(ErrorData::invalid_request(
                format!(
                    "{} is not supported: no caller of a tool of this server can answer it",
                    kind.method()
                ),
                None,
            ));
        };
        let params = serde_json::to_value(params)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let answer = peer
            .request(kind, params, cancel)
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        serde_json::from_value(answer).map_err(|e| {
            ErrorData::internal_error(format!("the caller's answer is malformed: {e}"), None)
        })
    }
}

impl ClientHandler for UpstreamHandler {
    fn get_info(&self) -> ClientInfo {
        // Both are forwarded to whoever called the tool; without such a caller they fail.
        let caps: ClientCapabilities =
            serde_json::from_value(serde_json::json!({"sampling": {}, "elicitation": {}}))
                .unwrap_or_default();
        ClientInfo::new(
            caps,
            Implementation::new("agent-runtime", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        _ctx: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        self.forward(PeerRequest::Sample, params).await
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        _ctx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.forward(PeerRequest::Elicit, params).await
    }

    async fn on_tool_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        self.calls.tools_changed.notify_one();
    }
}

/// A transport wrapper that delivers progress and log notifications as they are read, in
/// order with the responses: rmcp hands notifications to the handler on spawned tasks, so a
/// call's last progress report could otherwise arrive after its result.
pub(super) struct InOrder<T> {
    pub inner: T,
    pub calls: Arc<Calls>,
}

impl<T: Transport<RoleClient>> Transport<RoleClient> for InOrder<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: rmcp::service::TxJsonRpcMessage<RoleClient>,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<rmcp::service::RxJsonRpcMessage<RoleClient>> {
        loop {
            let msg = self.inner.receive().await?;
            match msg {
                JsonRpcMessage::Notification(JsonRpcNotification {
                    notification: ServerNotification::ProgressNotification(n),
                    ..
                }) => self.calls.progress(n.params),
                JsonRpcMessage::Notification(JsonRpcNotification {
                    notification: ServerNotification::LoggingMessageNotification(n),
                    ..
                }) => self.calls.log(n.params),
                other => return Some(other),
            }
        }
    }

    fn close(&mut self) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}
