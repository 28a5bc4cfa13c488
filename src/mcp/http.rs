//! MCP over streamable HTTP: rmcp's service on axum, behind a guard that
//! - checks the bearer token, then `Host` and `Origin` ([`Access`]);
//! - reads the body within the size cap (413 naming the cap) and checks the JSON-RPC message
//!   ([`jsonrpc`]), answering −32700/−32600/−32601/−32602 itself;
//! - answers a request with plain JSON when the reply is one message (no progress asked for, no
//!   listen stream), instead of an SSE stream with a tail;
//! - cancels a session's call when its client disconnects before the answer;
//! - counts requests in flight, so a shutdown ends sessions only after their calls finished.
//!
//! `GET /healthz` and `/readyz` ([`crate::serve::health`]) are served beside the endpoint,
//! outside the guard (probes carry no token and name the pod by IP). With `stateless`, rmcp
//! runs without sessions (any replica answers any POST).
//!
//! Accepted connections have `TCP_NODELAY` set ([`crate::serve::http_listener`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientJsonRpcMessage, ClientNotification,
    ClientRequest, GetMeta, RequestId,
};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::access::Access;
use super::jsonrpc::{self, Rejection};
use super::{HttpOptions, McpOptions, McpServer};
use crate::core::{Error, Registry};
use crate::serve::drain::{InFlight, TrackedBody};

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";
const SESSION_HEADER: &str = "mcp-session-id";

/// What the guard in front of the rmcp service knows.
struct Guard {
    path: String,
    token: Option<Arc<str>>,
    access: Access,
    max_body: usize,
    sessions: Arc<LocalSessionManager>,
    /// POSTs to the endpoint whose answer has not fully gone out.
    in_flight: InFlight,
}

impl Guard {
    fn is_endpoint(&self, path: &str) -> bool {
        path == self.path
            || path
                .strip_prefix(self.path.as_str())
                .is_some_and(|rest| rest.starts_with('/') || self.path.ends_with('/'))
    }
}

/// Serve MCP over streamable HTTP until `shutdown` resolves. `on_bound` gets the actual
/// address (useful with port 0).
pub async fn serve_http(
    registry: Registry,
    http: HttpOptions,
    opts: McpOptions,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> crate::core::Result<()> {
    crate::serve::check_exposure(http.addr, http.allow_remote, http.token.as_deref())?;
    if !http.path.starts_with('/') {
        return Err(Error::InvalidArguments {
            tool: "serve".into(),
            path: "--mcp-path".into(),
            message: format!("{:?} must start with '/'", http.path),
        });
    }
    if let Some(p) = crate::serve::health::PATHS
        .iter()
        .find(|p| http.path.trim_end_matches('/') == **p || http.path.starts_with(&format!("{p}/")))
    {
        return Err(Error::InvalidArguments {
            tool: "serve".into(),
            path: "--mcp-path".into(),
            message: format!("{:?} is taken by the health endpoint {p}", http.path),
        });
    }
    // The allow lists are checked before binding (the port only adds loopback origins).
    Access::new(0, &http.allowed_hosts, &http.allowed_origins).map_err(bad_flag)?;
    let listener = tokio::net::TcpListener::bind(http.addr)
        .await
        .map_err(|e| Error::Runtime(format!("cannot listen on {}: {e}", http.addr)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Runtime(format!("local_addr: {e}")))?;
    let access =
        Access::new(bound.port(), &http.allowed_hosts, &http.allowed_origins).map_err(bad_flag)?;

    let stop = CancellationToken::new();
    let sessions = Arc::new(LocalSessionManager::default());
    // rmcp keeps its own Host check (same list) behind ours.
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(access.host_names())
        .with_max_request_body_bytes(http.max_body_bytes)
        // A plain JSON reply on the stateless path when the first message is the result.
        .with_json_response(true)
        .with_legacy_session_mode(!http.stateless)
        .with_cancellation_token(stop.clone());
    let opts = Arc::new(opts);
    let service = StreamableHttpService::new(
        move || Ok(McpServer::new(registry.clone(), opts.clone())),
        sessions.clone(),
        config,
    );
    let guard = Arc::new(Guard {
        path: http.path.clone(),
        token: http
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(Arc::from),
        access,
        max_body: http.max_body_bytes,
        sessions,
        in_flight: InFlight::default(),
    });
    let in_flight = guard.in_flight.clone();
    let readiness = http.readiness.clone();
    // axum cannot nest at the root: there the service is the fallback (the health routes win).
    let app = if http.path == "/" {
        axum::Router::new().fallback_service(service)
    } else {
        axum::Router::new().nest_service(&http.path, service)
    };
    let app = app
        .layer(axum::middleware::from_fn_with_state(guard, guard_request))
        .merge(crate::serve::health::router(http.readiness));
    on_bound(bound);
    log::info!(
        "MCP streamable HTTP listening on http://{bound}{}{}",
        http.path,
        if http.stateless { " (stateless)" } else { "" }
    );
    axum::serve(crate::serve::http_listener(listener), app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            readiness.start_drain();
            log::info!(
                "MCP HTTP server shutting down: {} request(s) in flight",
                in_flight.count()
            );
            // Open SSE streams and sessions end once the calls in flight are answered (rmcp's
            // token would cancel them); then the graceful shutdown can finish.
            tokio::spawn(async move {
                in_flight.idle().await;
                stop.cancel();
            });
        })
        .await
        .map_err(|e| Error::Runtime(format!("MCP HTTP server: {e}")))
}

fn bad_flag((flag, message): (&'static str, String)) -> Error {
    Error::InvalidArguments {
        tool: "serve".into(),
        path: flag.into(),
        message,
    }
}

async fn guard_request(State(g): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    if let Some(expected) = &g.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err(why) = crate::serve::check_bearer(given, expected) {
            return unauthorized(why);
        }
    }
    if let Err(refused) = g.access.check(req.headers(), req.uri()) {
        return refused;
    }
    if req.method() != Method::POST || !g.is_endpoint(req.uri().path()) {
        return next.run(req).await;
    }
    let ticket = g.in_flight.enter();
    TrackedBody::wrap(guarded_post(&g, req, next).await, ticket)
}

async fn guarded_post(g: &Guard, req: Request, next: Next) -> Response {
    // The body is read even for a request refused below: a response sent before the body was
    // read would end the kept-alive connection.
    let (parts, body) = req.into_parts();
    let bytes = match read_body(body, g.max_body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if !accepts_json_and_sse(&parts.headers) {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "Not Acceptable: the client must accept both application/json and text/event-stream",
        )
            .into_response();
    }
    if !is_json(&parts.headers) {
        let got = parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| jsonrpc::quote(&String::from_utf8_lossy(v.as_bytes())))
            .unwrap_or_else(|| "none".into());
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Unsupported Media Type: Content-Type must be application/json, got {got}"),
        )
            .into_response();
    }
    let message = match jsonrpc::decode(&bytes) {
        Ok(m) => m,
        Err(r) => return rejection(&r),
    };
    let plan = Plan::new(&message, &parts.headers, &g.sessions);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    match plan {
        Some(plan) => plan.finish(response).await,
        None => response,
    }
}

fn unauthorized(why: &str) -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, why.to_string()).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// Whether `Accept` names both media types a POST's answer may come as (rmcp's rule, minus its
/// `q=0` exclusion: whatever rmcp accepts passes here).
fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let (mut json, mut sse) = (false, false);
    for v in headers.get_all(header::ACCEPT) {
        let Ok(v) = v.to_str() else { continue };
        for item in v.split(',') {
            let essence = item.split(';').next().unwrap_or("").trim();
            json |= essence.eq_ignore_ascii_case(JSON);
            sse |= essence.eq_ignore_ascii_case(EVENT_STREAM);
        }
    }
    json && sse
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(JSON)
        })
}

/// The whole body, or a 413 as soon as it exceeds `max` bytes (whatever Content-Length says).
async fn read_body(body: Body, max: usize) -> Result<Bytes, Response> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Payload Too Large: the request body exceeds {max} bytes (the server's \
                 --max-message-size)"
            ),
        )
            .into_response()
    };
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            (
                StatusCode::BAD_REQUEST,
                format!("Bad Request: cannot read the request body: {e}"),
            )
                .into_response()
        })?;
        if chunk.len() > max.saturating_sub(buf.len()) {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// A refused message: its JSON-RPC error, with HTTP 400 when nothing could be answered (parse
/// errors, invalid envelopes) and 200 for a request's error (the client matches it by id).
fn rejection(r: &Rejection) -> Response {
    let status = if r.is_malformed() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut resp = (status, r.to_json()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    resp
}

/// How the answer to one request goes back.
struct Plan {
    id: RequestId,
    /// Reply with JSON when the first message is the answer (nothing else will stream).
    as_json: bool,
    disconnect: Option<CancelOnDisconnect>,
}

impl Plan {
    fn new(
        message: &ClientJsonRpcMessage,
        headers: &HeaderMap,
        sessions: &Arc<LocalSessionManager>,
    ) -> Option<Self> {
        let ClientJsonRpcMessage::Request(r) = message else {
            return None;
        };
        let streams = r.request.get_meta().get_progress_token().is_some()
            || matches!(r.request, ClientRequest::SubscriptionsListenRequest(_));
        // Stateless requests are cancelled by rmcp itself when the client goes away.
        let disconnect = headers
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(|session| CancelOnDisconnect {
                sessions: sessions.clone(),
                session: session.into(),
                id: Some(r.id.clone()),
            });
        Some(Plan {
            id: r.id.clone(),
            as_json: !streams,
            disconnect,
        })
    }

    async fn finish(self, response: Response) -> Response {
        let is_sse = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(EVENT_STREAM));
        if response.status() != StatusCode::OK || !is_sse {
            if let Some(g) = self.disconnect {
                g.disarm();
            }
            return response;
        }
        let (mut parts, body) = response.into_parts();
        let mut rest = body.into_data_stream();
        let mut seen: Vec<u8> = Vec::new();
        let guard = self.disconnect;
        if self.as_json {
            let mut scanned = 0;
            loop {
                match first_data(&seen, &mut scanned) {
                    Some(data) if answers(&data, &self.id) => {
                        if let Some(g) = guard {
                            g.disarm();
                        }
                        for h in [header::CACHE_CONTROL, header::TRANSFER_ENCODING] {
                            parts.headers.remove(h);
                        }
                        parts.headers.remove("x-accel-buffering");
                        parts
                            .headers
                            .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
                        return Response::from_parts(parts, Body::from(data));
                    }
                    Some(_) => break, // something else first: stream it all
                    None => {}
                }
                match rest.next().await {
                    Some(Ok(chunk)) => seen.extend_from_slice(&chunk),
                    _ => break,
                }
            }
        }
        let head = futures::stream::once(async move { Ok::<_, axum::Error>(Bytes::from(seen)) });
        let body = Guarded {
            inner: head.chain(rest).boxed(),
            guard,
        };
        Response::from_parts(parts, Body::from_stream(body))
    }
}

/// The data of the first SSE event in `buf[..]` that has any, scanning complete events from
/// `*scanned` on (priming events and comments have none).
fn first_data(buf: &[u8], scanned: &mut usize) -> Option<Vec<u8>> {
    while let Some(end) = memchr::memmem::find(&buf[*scanned..], b"\n\n") {
        let event = &buf[*scanned..*scanned + end];
        *scanned += end + 2;
        let mut data: Vec<u8> = Vec::new();
        let mut any = false;
        for line in event.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(d) = line.strip_prefix(b"data:") {
                if any {
                    data.push(b'\n');
                }
                any = true;
                data.extend_from_slice(d.strip_prefix(b" ").unwrap_or(d));
            }
        }
        if !data.iter().all(u8::is_ascii_whitespace) {
            return Some(data);
        }
    }
    None
}

/// Whether an SSE event's data is the response (or error) to request `id`.
fn answers(data: &[u8], id: &RequestId) -> bool {
    let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(data) else {
        return false;
    };
    let id = serde_json::to_value(id).unwrap_or(Value::Null);
    m.get("id") == Some(&id) && (m.contains_key("result") || m.contains_key("error"))
}

/// Sends `notifications/cancelled` for a session's request if dropped while still armed: the
/// client went away before its answer.
struct CancelOnDisconnect {
    sessions: Arc<LocalSessionManager>,
    session: Arc<str>,
    id: Option<RequestId>,
}

impl CancelOnDisconnect {
    fn disarm(mut self) {
        self.id = None;
    }
}

impl Drop for CancelOnDisconnect {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let sessions = self.sessions.clone();
        let session = self.session.clone();
        rt.spawn(async move {
            let cancel = CancelledNotification::new(CancelledNotificationParam::new(
                Some(id),
                Some("the client disconnected".into()),
            ));
            let msg = ClientJsonRpcMessage::notification(
                ClientNotification::CancelledNotification(cancel),
            );
            if let Err(e) = sessions.accept_message(&session, msg).await {
                log::debug!("MCP HTTP: cancelling after a disconnect: {e}");
            }
        });
    }
}

/// An SSE body that disarms its guard once the stream ended (the answer went out).
struct Guarded<S> {
    inner: S,
    guard: Option<CancelOnDisconnect>,
}

impl<S> futures::Stream for Guarded<S>
where
    S: futures::Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let p = self.inner.poll_next_unpin(cx);
        if let std::task::Poll::Ready(None) = p {
            if let Some(g) = self.guard.take() {
                g.disarm();
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_first_data_skips_priming_and_comments() {
        let buf = b"data: \nid: 0/0\nretry: 3000\n\n: keep-alive\n\ndata: {\"id\":1}\nid: 1/0\n\ndata: x\n\n";
        let mut at = 0;
        assert_eq!(first_data(buf, &mut at).unwrap(), b"{\"id\":1}");
        assert_eq!(first_data(buf, &mut at).unwrap(), b"x");
        assert_eq!(first_data(buf, &mut at), None);
        let mut at = 0;
        assert_eq!(first_data(b"data: {\"a\"", &mut at), None);
        assert_eq!(at, 0);
        let mut at = 0;
        assert_eq!(
            first_data(b"data:a\r\ndata:b\r\n\n", &mut at).unwrap(),
            b"a\nb"
        );
    }

    #[test]
    fn answers_only_its_own_request() {
        let id = RequestId::Number(3);
        assert!(answers(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#, &id));
        assert!(answers(
            br#"{"jsonrpc":"2.0","id":3,"error":{"code":1}}"#,
            &id
        ));
        assert!(!answers(br#"{"jsonrpc":"2.0","id":4,"result":{}}"#, &id));
        assert!(!answers(br#"{"jsonrpc":"2.0","id":"3","result":{}}"#, &id));
        assert!(!answers(
            br#"{"jsonrpc":"2.0","method":"notifications/progress"}"#,
            &id
        ));
        assert!(!answers(b"not json", &id));
    }

    #[test]
    fn accept_and_content_type() {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(accepts_json_and_sse(&h) && is_json(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!accepts_json_and_sse(&h) && !is_json(&h));
    }
}
