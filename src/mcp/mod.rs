//! MCP transport: the registry as a Model Context Protocol server (rmcp), over stdio and
//! streamable HTTP (axum).
//!
//! Every registered tool is listed with a self-contained input schema (and output schema where
//! known). A tool's failure is an `isError: true` result carrying the error type and message
//! (so the model can read it); only protocol problems (an unknown tool) are JSON-RPC errors.
//! Progress a tool reports becomes `notifications/progress` when the client sent a progress
//! token; `notifications/cancelled` cancels the running tool; per-tool timeouts apply.
//! Registry changes reach clients as `notifications/tools/list_changed`, both on handshake
//! sessions and on 2026-07-28 `subscriptions/listen` streams.

mod schema;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ServerCapabilities, SubscriptionFilter, Tool as McpTool,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer, SubscriptionContext};
use rmcp::{ErrorData as McpError, ServerHandler, ServiceExt};
use serde_json::{Map, Value};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::core::{CallContext, CancelToken, Error, Payload, Progress, Registry};

pub use schema::self_contained;

/// Default cap on one result's serialized size.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 1024 * 1024;

/// Behaviour shared by both MCP transports.
#[derive(Clone, Debug)]
pub struct McpOptions {
    /// Results whose JSON text is larger are truncated, with a marker saying so.
    pub max_result_bytes: usize,
    /// Shown to clients at connection time.
    pub instructions: Option<String>,
}

impl Default for McpOptions {
    fn default() -> Self {
        McpOptions {
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            instructions: None,
        }
    }
}

/// One server instance: per stdio connection, per HTTP session, or per stateless request.
pub struct McpServer {
    registry: Registry,
    opts: Arc<McpOptions>,
    /// Ends this session's `tools/list_changed` watcher when the session's handler is dropped.
    session: OnceLock<DropGuard>,
}

impl McpServer {
    pub fn new(registry: Registry, opts: Arc<McpOptions>) -> Self {
        McpServer {
            registry,
            opts,
            session: OnceLock::new(),
        }
    }

    fn tool_for(&self, spec: &crate::core::ToolSpec) -> McpTool {
        let input = schema::input_schema(&spec.input_schema);
        let description = (!spec.description.is_empty()).then(|| spec.description.clone().into());
        let mut t = McpTool::new_with_raw(spec.name.clone(), description, Arc::new(input));
        if let (Some(out), _) = schema::output_schema(spec.output_schema.as_ref()) {
            t = t.with_raw_output_schema(Arc::new(out));
        }
        t
    }

    async fn run(
        &self,
        req: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, McpError> {
        let entry = match self.registry.get(&req.name) {
            Ok(e) => e,
            // Unknown tool: a protocol error (-32602), as the MCP spec has it.
            Err(e) => return Err(McpError::invalid_params(e.to_string(), None)),
        };
        let args = Value::Object(req.arguments.unwrap_or_default());
        let mut ctx = CallContext::new();
        // Progress goes out through one channel (in order, off the tool's thread); before the
        // result is returned the channel is flushed, so every report precedes the response
        // (a client drops progress for a request it already has the answer to).
        let mut flush: Option<tokio::sync::mpsc::UnboundedSender<Forward>> = None;
        if let Some(token) = cx.meta.get_progress_token() {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Forward>();
            let sink = tx.clone();
            ctx = ctx.with_progress(Some(Arc::new(move |p: &Progress| {
                let _ = sink.send(Forward::Progress(p.clone()));
            })));
            flush = Some(tx);
            let peer = cx.peer.clone();
            tokio::spawn(async move {
                let mut open = true;
                while let Some(msg) = rx.recv().await {
                    match msg {
                        Forward::Progress(p) if open => {
                            let mut n = ProgressNotificationParam::new(token.clone(), p.done);
                            if let Some(t) = p.total {
                                n = n.with_total(t);
                            }
                            if let Some(m) = p.message {
                                n = n.with_message(m);
                            }
                            open = peer.notify_progress(n).await.is_ok();
                        }
                        Forward::Progress(_) => {}
                        Forward::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            });
        }
        let _guard = CancelOnDrop(ctx.cancel.clone());
        let cancel = ctx.cancel.clone();
        let wrapped = schema::wraps_result(entry.spec().output_schema.as_ref());
        let call = entry.call(Payload::Json(args), ctx);
        tokio::pin!(call);
        let out = tokio::select! {
            r = &mut call => r,
            _ = cx.ct.cancelled() => {
                // `notifications/cancelled`: stop the tool and let it wind down.
                cancel.cancel();
                call.await
            }
        };
        let out = match out {
            Ok(p) => p.into_json(),
            Err(e) => Err(e),
        };
        if let Some(tx) = flush {
            let (done, sent) = tokio::sync::oneshot::channel();
            if tx.send(Forward::Flush(done)).is_ok() {
                // Bounded: a stuck client must not hold the result back forever.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), sent).await;
            }
        }
        Ok(match out {
            Ok(v) => self.success(&req.name, v, wrapped),
            Err(e) => error_result(&e),
        })
    }

    fn success(&self, tool: &str, v: Value, wrapped: bool) -> CallToolResult {
        let text = match &v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let cap = self.opts.max_result_bytes;
        if text.len() > cap {
            let total = text.len();
            let mut cut = cap;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let marker = format!(
                "\n[truncated: result of tool '{tool}' is {total} bytes; the server's cap is {cap} bytes (--mcp-max-result-bytes)]"
            );
            let body = format!("{}{marker}", &text[..cut]);
            // The structured copy would not fit either, and a partial one would not match the
            // output schema: a tool that declares one gets an error result instead.
            return if wrapped || self.declares_output(tool) {
                CallToolResult::error(vec![ContentBlock::text(body)])
            } else {
                CallToolResult::success(vec![ContentBlock::text(body)])
            };
        }
        let structured = match v {
            Value::Object(m) if !wrapped => Value::Object(m),
            other => {
                let mut m = Map::new();
                m.insert(schema::RESULT_KEY.into(), other);
                Value::Object(m)
            }
        };
        let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
        r.structured_content = Some(structured);
        r
    }

    fn declares_output(&self, tool: &str) -> bool {
        self.registry
            .get(tool)
            .map(|e| e.spec().output_schema.is_some())
            .unwrap_or(false)
    }

    /// Send `tools/list_changed` to `peer` on every registry change until the session ends.
    fn watch_list_changes(&self, notify: impl Notifier) {
        let stop = CancellationToken::new();
        if self.session.set(stop.clone().drop_guard()).is_err() {
            return; // already watching for this session
        }
        let mut changes = self.registry.watch_changes();
        changes.mark_unchanged();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    r = changes.changed() => {
                        if r.is_err() || !notify.tools_changed().await {
                            break;
                        }
                    }
                }
            }
        });
    }
}

/// What the progress forwarder of one call receives.
enum Forward {
    Progress(Progress),
    /// Answered once everything sent before it has gone out.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Where a `tools/list_changed` goes: a handshake session's peer or a listen stream.
trait Notifier: Send + 'static {
    fn tools_changed(&self) -> impl Future<Output = bool> + Send;
}

impl Notifier for rmcp::Peer<RoleServer> {
    async fn tools_changed(&self) -> bool {
        self.notify_tool_list_changed().await.is_ok()
    }
}

/// An error result: text `Type: message` (plus the traceback of a Python error) and the same
/// as structured content `{"error": {"type", "message", "kind", "traceback"?}}`.
fn error_result(e: &Error) -> CallToolResult {
    let (type_name, message, traceback) = match e {
        Error::Python {
            type_name,
            message,
            traceback,
            ..
        } => (type_name.clone(), message.clone(), traceback.clone()),
        other => (other.kind().to_string(), other.to_string(), None),
    };
    let text = match &traceback {
        Some(tb) => format!("{type_name}: {message}\n\n{tb}"),
        None => format!("{type_name}: {message}"),
    };
    let mut err = Map::new();
    err.insert("type".into(), Value::String(type_name));
    err.insert("message".into(), Value::String(message));
    err.insert("kind".into(), Value::String(e.kind().into()));
    if let Error::InvalidArguments { path, .. } = e {
        err.insert("path".into(), Value::String(path.clone()));
    }
    if let Some(tb) = traceback {
        err.insert("traceback".into(), Value::String(tb));
    }
    let mut m = Map::new();
    m.insert("error".into(), Value::Object(err));
    let mut r = CallToolResult::error(vec![ContentBlock::text(text)]);
    r.structured_content = Some(Value::Object(m));
    r
}

/// Cancels a call when the request handler is dropped (the connection went away).
struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> InitializeResult {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        let mut info = InitializeResult::new(caps).with_server_info(Implementation::new(
            "agent-runtime",
            env!("CARGO_PKG_VERSION"),
        ));
        if let Some(i) = &self.opts.instructions {
            info = info.with_instructions(i.clone());
        }
        info
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = self
            .registry
            .specs()
            .iter()
            .map(|s| self.tool_for(s))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<McpTool> {
        let e = self.registry.get(name).ok()?;
        Some(self.tool_for(e.spec()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        self.run(request, context).await.map(CallToolResponse::from)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.watch_list_changes(context.peer);
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut f = SubscriptionFilter::new();
        f.tools_list_changed = requested.tools_list_changed;
        Some(f)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let mut changes = self.registry.watch_changes();
        changes.mark_unchanged();
        let wants = context.accepted().tools_list_changed == Some(true);
        loop {
            tokio::select! {
                _ = context.cancelled() => return Ok(()),
                r = changes.changed() => {
                    if r.is_err() {
                        return Ok(());
                    }
                    if wants && context.sink().notify_tool_list_changed().await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

fn runtime_err(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Runtime(format!("{what}: {e}"))
}

/// The process's real stdout for the protocol, with fd 1 pointed at stderr: a stray `print()`
/// in a tool (Python or native) must not corrupt the JSON-RPC stream.
fn protocol_stdout() -> crate::core::Result<tokio::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: dup/dup2 on the process's standard descriptors; the duplicate is owned below.
    let fd = unsafe { libc::dup(1) };
    if fd < 0 {
        return Err(runtime_err("dup(stdout)")(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor this function owns.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    // SAFETY: replaces fd 1 with a copy of fd 2; both stay open.
    if unsafe { libc::dup2(2, 1) } < 0 {
        return Err(runtime_err("dup2(stderr, stdout)")(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(tokio::fs::File::from_std(file))
}

/// Serve MCP over stdin/stdout until the client closes stdin or `shutdown` resolves.
pub async fn serve_stdio(
    registry: Registry,
    opts: McpOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> crate::core::Result<()> {
    let out = protocol_stdout()?;
    let server = McpServer::new(registry, Arc::new(opts));
    let running = server
        .serve((tokio::io::stdin(), out))
        .await
        .map_err(|e| Error::Runtime(format!("MCP stdio: {e}")))?;
    let ct = running.cancellation_token();
    tokio::select! {
        r = running.waiting() => {
            r.map_err(|e| Error::Runtime(format!("MCP stdio: {e}")))?;
        }
        _ = shutdown => ct.cancel(),
    }
    Ok(())
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
    /// `Host` header values accepted besides the loopback names (DNS-rebinding protection).
    pub allowed_hosts: Vec<String>,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            path: "/mcp".into(),
            allow_remote: false,
            token: None,
            allowed_hosts: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
        }
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
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

    crate::serve::check_exposure(http.addr, http.allow_remote, http.token.as_deref())?;
    if !http.path.starts_with('/') {
        return Err(Error::InvalidArguments {
            tool: "serve".into(),
            path: "--mcp-path".into(),
            message: format!("{:?} must start with '/'", http.path),
        });
    }
    let listener = tokio::net::TcpListener::bind(http.addr)
        .await
        .map_err(|e| Error::Runtime(format!("cannot listen on {}: {e}", http.addr)))?;
    let bound = listener.local_addr().map_err(runtime_err("local_addr"))?;

    let stop = CancellationToken::new();
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    hosts.extend(http.allowed_hosts.iter().cloned());
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_max_request_body_bytes(http.max_body_bytes)
        // A plain JSON reply when the first message is the result (rmcp still switches to
        // SSE when progress or other notifications come first): cheaper for clients.
        .with_json_response(true)
        .with_cancellation_token(stop.clone());
    let opts = Arc::new(opts);
    let service = StreamableHttpService::new(
        move || Ok(McpServer::new(registry.clone(), opts.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let token: Option<Arc<str>> = http
        .token
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(Arc::from);
    let app =
        axum::Router::new()
            .nest_service(&http.path, service)
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let token = token.clone();
                    async move {
                        if let Some(expected) = token {
                            let given = req
                                .headers()
                                .get(axum::http::header::AUTHORIZATION)
                                .and_then(|v| v.to_str().ok());
                            if let Err(why) = crate::serve::check_bearer(given, &expected) {
                                return unauthorized(why);
                            }
                        }
                        next.run(req).await
                    }
                },
            ));
    on_bound(bound);
    log::info!(
        "MCP streamable HTTP listening on http://{bound}{}",
        http.path
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Ends open SSE streams and sessions so the graceful shutdown can finish.
            stop.cancel();
            log::info!("MCP HTTP server shutting down");
        })
        .await
        .map_err(runtime_err("MCP HTTP server"))
}

fn unauthorized(why: &str) -> axum::response::Response {
    use axum::http::{header, HeaderValue, StatusCode};
    use axum::response::IntoResponse;
    let mut r = (StatusCode::UNAUTHORIZED, why.to_string()).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}
