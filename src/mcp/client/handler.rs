//! What an upstream server sends us: progress and log notifications (routed to the calls they
//! belong to, see [`super::calls`]), tool/resource/prompt list changes (to the supervisor),
//! resource updates (to our subscribers), and sampling/elicitation requests (forwarded to the
//! caller of a running tool when it can answer).

// Sampling and logging are deprecated by SEP-2577 but still what servers send.
#![allow(deprecated)]

use std::sync::Arc;

use rmcp::model::{
    ClientCapabilities, ClientInfo, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequestParams, ElicitResult, GetExtensions, GetMeta, Implementation,
    ResourceUpdatedNotificationParam,
};
use rmcp::model::{JsonRpcMessage, JsonRpcNotification, ServerNotification};
use rmcp::service::{InboundStreamOrigin, NotificationContext, RequestContext, RoleClient};
use rmcp::transport::Transport;
use rmcp::{ClientHandler, ErrorData};
use serde::de::DeserializeOwned;

use super::calls::{Answerer, CallKey, Calls};
use crate::core::{CallPeer, CancelToken, PeerRequest};

/// The rmcp client handler of one connection.
#[derive(Clone)]
pub struct UpstreamHandler {
    pub(super) calls: Arc<Calls>,
}

impl UpstreamHandler {
    /// Forward a sampling/elicitation request to the caller of the call it belongs to.
    async fn forward<T: DeserializeOwned>(
        &self,
        kind: PeerRequest,
        params: impl serde::Serialize,
        ctx: &RequestContext<RoleClient>,
    ) -> Result<T, ErrorData> {
        // Over streamable HTTP rmcp records the POST stream a request came on.
        let origin = match ctx.extensions.get::<InboundStreamOrigin>() {
            Some(InboundStreamOrigin::OutboundRequest(id)) => Some(id),
            _ => None,
        };
        let why = match self.calls.answerer(origin) {
            Answerer::Caller(peer, cancel) => return Self::ask(peer, cancel, kind, params).await,
            Answerer::Unable => "the caller of this tool call cannot answer it",
            Answerer::Nobody => "no caller of a tool of this server can answer it",
        };
        Err(ErrorData::invalid_request(
            format!("{} is not supported: {why}", kind.method()),
            None,
        ))
    }

    /// Send the request to the caller and read its answer.
    async fn ask<T: DeserializeOwned>(
        peer: Arc<dyn CallPeer>,
        cancel: CancelToken,
        kind: PeerRequest,
        params: impl serde::Serialize,
    ) -> Result<T, ErrorData> {
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
        ctx: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        self.forward(PeerRequest::Sample, params, &ctx).await
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        ctx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        self.forward(PeerRequest::Elicit, params, &ctx).await
    }

    async fn on_tool_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        self.calls.tools_changed.notify_one();
    }

    async fn on_resource_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        self.calls.catalog_changed.notify_one();
    }

    async fn on_prompt_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        self.calls.catalog_changed.notify_one();
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        self.calls.resource_updated(&params.uri);
    }
}

/// A transport wrapper that binds each outgoing `tools/call` to its call (id and progress
/// token, before the upstream can answer), and delivers progress and log notifications as they
/// are read, in order with the responses: rmcp hands notifications to the handler on spawned
/// tasks, so a call's last progress report could otherwise arrive after its result.
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
        if let JsonRpcMessage::Request(r) = &item {
            if let Some(CallKey(key)) = r.request.extensions().get::<CallKey>() {
                let token = r.request.get_meta().get_progress_token();
                self.calls.bind(*key, r.id.clone(), token);
            }
        }
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
