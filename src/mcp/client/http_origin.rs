//! Which call a log message over streamable HTTP belongs to.
//!
//! A streamable-HTTP server sends what concerns a request (its progress, its log messages, its
//! sampling/elicitation requests, then its response) on the SSE stream answering that
//! request's POST. rmcp tags server *requests* with the stream they came on
//! (`InboundStreamOrigin`, read by the handler), but not notifications. This HTTP client —
//! reqwest under rmcp's own `StreamableHttpClient` implementation — knows which request each
//! POST carried, so it hands the log messages of a POST's stream straight to that call
//! ([`Calls::log_on`]); they never reach the generic path that can only guess. Everything
//! else passes through untouched, and so does the session's GET stream (whose messages are
//! tied to no request) — including a POST's stream resumed over GET after it broke, whose log
//! messages fall back to the guess.

// Logging is deprecated by SEP-2577 but still what servers send.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};
use http::{HeaderName, HeaderValue};
use rmcp::model::{
    ClientJsonRpcMessage, JsonRpcMessage, JsonRpcNotification, LoggingMessageNotificationParam,
    ServerJsonRpcMessage, ServerNotification,
};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::Sse;

use super::calls::Calls;

/// Most redirects followed for one request (rmcp's default client follows as many).
const MAX_REDIRECTS: usize = 10;

/// reqwest, plus routing of the log messages on each POST's response stream.
#[derive(Clone)]
pub(super) struct OriginClient {
    inner: reqwest::Client,
    calls: Arc<Calls>,
}

impl OriginClient {
    /// A client configured like rmcp's default one: no idle pooling (a response body not read
    /// to the end would stall the next request on the connection), and only same-origin
    /// 307/308 redirects, which keep the method and body and do not hand the session id or
    /// custom headers to another host.
    pub fn new(calls: Arc<Calls>) -> Result<Self, String> {
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let keeps_body = matches!(
                attempt.status(),
                reqwest::StatusCode::TEMPORARY_REDIRECT | reqwest::StatusCode::PERMANENT_REDIRECT
            );
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if !keeps_body || !same_origin {
                attempt.stop()
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else {
                attempt.follow()
            }
        });
        let inner = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .redirect(redirects)
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(OriginClient { inner, calls })
    }
}

/// The parameters of a `notifications/message` event, if that is what `data` is.
fn log_message(data: &str) -> Option<LoggingMessageNotificationParam> {
    if !data.contains("notifications/message") {
        return None;
    }
    match serde_json::from_str::<ServerJsonRpcMessage>(data).ok()? {
        JsonRpcMessage::Notification(JsonRpcNotification {
            notification: ServerNotification::LoggingMessageNotification(n),
            ..
        }) => Some(n.params),
        _ => None,
    }
}

impl StreamableHttpClient for OriginClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            StreamableHttpResponseLimits::default(),
        )
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let mut limits = StreamableHttpResponseLimits::default();
        limits.max_sse_event_size = max_sse_event_size;
        self.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            limits,
        )
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>> {
        let request = match &message {
            JsonRpcMessage::Request(r) => Some(r.id.clone()),
            _ => None,
        };
        let response = self
            .inner
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                limits,
            )
            .await?;
        let (id, (stream, sid)) = match (request, response) {
            (Some(id), StreamableHttpPostResponse::Sse(stream, sid)) => (id, (stream, sid)),
            (_, other) => return Ok(other),
        };
        let calls = self.calls.clone();
        let stream = stream
            .map(move |mut event| {
                if let Ok(sse) = &mut event {
                    if let Some(params) = sse.data.as_deref().and_then(log_message) {
                        calls.log_on(&id, params);
                        // Delivered: an event without data is skipped by rmcp (its id still
                        // counts for resuming the stream).
                        sse.data = None;
                    }
                }
                event
            })
            .boxed();
        Ok(StreamableHttpPostResponse::Sse(stream, sid))
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        self.inner
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.inner
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<Self::Error>> {
        self.inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}
