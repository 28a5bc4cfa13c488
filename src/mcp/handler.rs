//! The MCP server proper: the registry's tools listed and called through rmcp's
//! [`ServerHandler`], whatever the transport.

use std::future::Future;
use std::sync::{Arc, OnceLock};

#[allow(deprecated)] // SEP-2577: still what every client of the 2025 protocols speaks
use rmcp::model::SetLevelRequestParams;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    ContentBlock, GetPromptRequestParams, GetPromptResponse, Implementation, InitializeResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, SubscribeRequestParams, SubscriptionFilter, Tool as McpTool,
    UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer, SubscriptionContext};
use rmcp::{ErrorData as McpError, ServerHandler};
use serde_json::{Map, Value};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::peer::{McpPeer, SessionLogLevel};
use super::{catalog, content, jsonrpc, schema, McpOptions};
use crate::core::{CallContext, CallPeer, CancelToken, Payload, Progress, Registry, RichContent};

/// One server instance: per stdio connection, per HTTP session, or per stateless request.
pub struct McpServer {
    registry: Registry,
    opts: Arc<McpOptions>,
    /// Ends this session's `tools/list_changed` watcher when the session's handler is dropped.
    session: OnceLock<DropGuard>,
    /// What the client asked for with `logging/setLevel`.
    log_level: SessionLogLevel,
    /// Resource subscriptions and catalog notifications of this session.
    catalog: super::catalog::Session,
}

impl McpServer {
    pub fn new(registry: Registry, opts: Arc<McpOptions>) -> Self {
        McpServer {
            registry,
            opts,
            session: OnceLock::new(),
            log_level: SessionLogLevel::default(),
            catalog: Default::default(),
        }
    }

    fn tool_for(&self, spec: &crate::core::ToolSpec) -> McpTool {
        let input = schema::input_schema(&spec.input_schema, spec.schema_as_given);
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
        // The client as this call's peer: logs, progress, sampling and elicitation requests.
        // Log level: what the session set (`logging/setLevel`), or what a 2026-07-28 request
        // opted in to in its `_meta` (nothing without it).
        let modern = cx
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28);
        #[allow(deprecated)]
        let level = match cx.meta.log_level() {
            None if !modern => self.log_level.clone(),
            requested => SessionLogLevel::per_request(requested),
        };
        let (peer, mut outbound) = McpPeer::new(&req.name, cx.peer.clone(), level, modern);
        let mut ctx = CallContext::new().with_peer(Some(peer.clone() as Arc<dyn CallPeer>));
        // Progress and logs go out through one channel (in order, off the tool's thread);
        // before the result is returned it is flushed, so every report precedes the response
        // (a client drops progress for a request it already has the answer to).
        if let Some(token) = cx.meta.get_progress_token() {
            let sink = peer.clone();
            ctx = ctx.with_progress(Some(Arc::new(move |p: &Progress| {
                sink.progress(token.clone(), p);
            })));
        }
        let _guard = CancelOnDrop(ctx.cancel.clone());
        let cancel = ctx.cancel.clone();
        let wrapped = schema::wraps_result(entry.spec().output_schema.as_ref());
        let declares = entry.spec().output_schema.is_some();
        let call = entry.call(Payload::Json(args), ctx);
        tokio::pin!(call);
        let mut stopping = false;
        let out = loop {
            tokio::select! {
                r = &mut call => break r,
                _ = cx.ct.cancelled(), if !stopping => {
                    // `notifications/cancelled`: stop the tool and let it wind down.
                    cancel.cancel();
                    stopping = true;
                }
                // Sent from this task so rmcp routes it to this request's stream.
                Some(o) = outbound.recv() => o.send(&cx.peer).await,
            }
        };
        drop(outbound);
        // Content blocks of a mounted upstream go out as they came (annotations included).
        let rich = match &out {
            Ok(p) if !declares => p
                .foreign::<RichContent>()
                .and_then(content::upstream_blocks),
            _ => None,
        };
        if let Some(blocks) = rich {
            peer.flush().await;
            return Ok(self.blocks(&req.name, blocks));
        }
        let out = match out {
            Ok(p) => p.into_json(),
            Err(e) => Err(e),
        };
        peer.flush().await;
        Ok(match out {
            Ok(v) => self.success(&req.name, v, wrapped, declares),
            Err(e) => content::error_result(&e),
        })
    }

    /// A result of content blocks only, within the size cap.
    fn blocks(&self, tool: &str, blocks: Vec<ContentBlock>) -> CallToolResult {
        let cap = self.opts.max_result_bytes;
        let size = content::wire_size(&blocks);
        if size > cap {
            return content::error_text(format!(
                "[result of tool '{tool}' is {size} bytes of content; the server's cap is {cap} bytes (--mcp-max-result-bytes)]"
            ));
        }
        CallToolResult::success(blocks)
    }

    /// `declares`: the tool has an output schema.
    fn success(&self, tool: &str, v: Value, wrapped: bool, declares: bool) -> CallToolResult {
        let cap = self.opts.max_result_bytes;
        // Images, audio, embedded resources: content blocks, no structured copy (FastMCP's
        // shape), unless the tool declares an output schema a client will hold it to.
        if let Some(blocks) = (!declares).then(|| content::rich_blocks(&v)).flatten() {
            return self.blocks(tool, blocks);
        }
        let text = match &v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
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
            return if wrapped || declares {
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

/// Where a `tools/list_changed` goes: a handshake session's peer or a listen stream.
trait Notifier: Send + 'static {
    fn tools_changed(&self) -> impl Future<Output = bool> + Send;
}

impl Notifier for rmcp::Peer<RoleServer> {
    async fn tools_changed(&self) -> bool {
        self.notify_tool_list_changed().await.is_ok()
    }
}

/// Cancels a call when the request handler is dropped (the connection went away).
struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl ServerHandler for McpServer {
    #[allow(deprecated)] // enable_logging: SEP-2577, see set_level
    fn get_info(&self) -> InitializeResult {
        let caps = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_logging()
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

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.log_level.set(request.level);
        Ok(())
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
