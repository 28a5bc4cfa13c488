//! The MCP server proper: the registry's tools listed and called through rmcp's
//! [`ServerHandler`], whatever the transport.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    ContentBlock, GetPromptRequestParams, GetPromptResponse, Implementation, InitializeResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, SubscribeRequestParams, SubscriptionFilter,
    Tool as McpTool, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer, SubscriptionContext};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::{Map, Value};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{catalog, jsonrpc, schema, McpOptions};
use crate::core::{CallContext, CancelToken, Error, Payload, Progress, Registry};

/// One server instance: per stdio connection, per HTTP session, or per stateless request.
pub struct McpServer {
    registry: Registry,
    opts: Arc<McpOptions>,
    /// Ends this session's `tools/list_changed` watcher when the session's handler is dropped.
    session: OnceLock<DropGuard>,
    /// Resource subscriptions and catalog notifications of this session.
    catalog: super::catalog::Session,
}

impl McpServer {
    pub fn new(registry: Registry, opts: Arc<McpOptions>) -> Self {
        McpServer {
            registry,
            opts,
            session: OnceLock::new(),
            catalog: Default::default(),
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
        // Every transport's check, repeated for embedders that bring their own transport: a
        // huge name must not reach the registry's fuzzy suggestions or the error text.
        if let Err(why) = jsonrpc::check_tool_name(&req.name) {
            return Err(McpError::invalid_params(why, None));
        }
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
            .enable_resources()
            .enable_resources_subscribe()
            .enable_resources_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_completions()
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
        self.catalog.watch(&self.registry, context.peer.clone());
        self.watch_list_changes(context.peer);
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        catalog::list_resources(&self.registry)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        catalog::list_templates(&self.registry)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        catalog::read_resource(&self.registry, request, &context)
            .await
            .map(Into::into)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.catalog.subscribe(&self.registry, &request.uri)
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.catalog.unsubscribe(&request.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        catalog::list_prompts(&self.registry)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        catalog::get_prompt(&self.registry, request, &context)
            .await
            .map(Into::into)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        catalog::complete(&self.registry, request, &context).await
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut f = SubscriptionFilter::new();
        f.tools_list_changed = requested.tools_list_changed;
        catalog::accept(requested, &mut f);
        Some(f)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let (r, ()) = tokio::join!(
            self.listen_tools(&context),
            catalog::listen(&self.registry, &context)
        );
        r
    }
}

impl McpServer {
    async fn listen_tools(&self, context: &SubscriptionContext) -> Result<(), McpError> {
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
