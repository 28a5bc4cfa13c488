//! Resources, prompts and completions over MCP: the registry's stores answered through rmcp,
//! plus what a session keeps (its resource subscriptions) and the notifications it gets
//! (`resources/list_changed`, `prompts/list_changed`, `resources/updated` for subscribed URIs).
//!
//! Errors as the official SDKs give them: an unknown URI is `-32002` "Resource not found"
//! (with the URI as data), an unknown prompt or a missing/ill-typed argument `-32602`, a
//! function that raised `-32603` naming the resource or prompt, the exception type and message.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, GetPromptRequestParams, GetPromptResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ReadResourceRequestParams,
    ReadResourceResult, Reference, ResourceUpdatedNotificationParam, SubscriptionFilter,
};
use rmcp::service::{RequestContext, RoleServer, SubscriptionContext};
use rmcp::ErrorData as McpError;
use serde_json::{json, Map, Value};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::core::catalog::CatalogError;
use crate::core::completion::CompletionRequest;
use crate::core::interest::Held;
use crate::core::resources::{ResourceBody, MAX_URI_LEN};
use crate::core::text::bounded;
use crate::core::{CallContext, Error, Registry};

/// The most suggestions one completion answer carries (the protocol's limit).
const MAX_COMPLETIONS: usize = 100;

/// Most URIs one session may subscribe to (memory stays bounded).
const MAX_SUBSCRIPTIONS: usize = 10_000;

/// The rmcp result type for the JSON of a complete result (`resultType` is dropped again for
/// peers older than 2026-07-28).
fn typed<T: serde::de::DeserializeOwned>(mut v: Value) -> Result<T, McpError> {
    v["resultType"] = Value::String("complete".into());
    serde_json::from_value(v)
        .map_err(|e| McpError::internal_error(format!("building the result failed: {e}"), None))
}

/// Run `fut` (a read, a prompt, a completion) unless the client cancels the request first.
async fn cancellable<T>(
    cx: &RequestContext<RoleServer>,
    f: impl FnOnce(CallContext) -> futures::future::BoxFuture<'static, Result<T, CatalogError>>,
) -> Result<T, CatalogError> {
    let ctx = CallContext::new();
    let cancel = ctx.cancel.clone();
    let fut = f(ctx);
    tokio::select! {
        r = fut => r,
        _ = cx.ct.cancelled() => {
            cancel.cancel();
            Err(CatalogError::Failed(Error::Cancelled { tool: "request".into() }))
        }
    }
}

fn failed(what: &str, e: &Error) -> McpError {
    let (type_name, message, traceback) = super::content::error_parts(e);
    let mut data = json!({"type": type_name, "message": message});
    if let Some(tb) = traceback {
        data["traceback"] = Value::String(tb);
    }
    McpError::internal_error(format!("{what} failed: {type_name}: {message}"), Some(data))
}

fn to_mcp(what: &str, uri: Option<&str>, e: CatalogError) -> McpError {
    match e {
        CatalogError::NotFound(m) => match uri {
            Some(u) => McpError::resource_not_found(m, Some(json!({"uri": bounded(u, 200)}))),
            None => McpError::invalid_params(m, None),
        },
        // Already names the resource or prompt.
        CatalogError::InvalidParams(m) => McpError::invalid_params(m, None),
        CatalogError::Failed(e) => failed(what, &e),
    }
}

pub fn list_resources(registry: &Registry) -> Result<ListResourcesResult, McpError> {
    let items: Vec<Value> = registry
        .resources()
        .list()
        .into_iter()
        .map(|s| {
            let mut o = json!({"uri": s.uri, "name": s.name});
            if !s.description.is_empty() {
                o["description"] = Value::String(s.description);
            }
            if let Some(m) = s.mime_type {
                o["mimeType"] = Value::String(m);
            }
            o
        })
        .collect();
    typed(json!({ "resources": items }))
}

pub fn list_templates(registry: &Registry) -> Result<ListResourceTemplatesResult, McpError> {
    let items: Vec<Value> = registry
        .resources()
        .templates()
        .into_iter()
        .map(|s| {
            let mut o = json!({"uriTemplate": s.uri, "name": s.name});
            if !s.description.is_empty() {
                o["description"] = Value::String(s.description);
            }
            if let Some(m) = s.mime_type {
                o["mimeType"] = Value::String(m);
            }
            o
        })
        .collect();
    typed(json!({ "resourceTemplates": items }))
}

pub async fn read_resource(
    registry: &Registry,
    req: ReadResourceRequestParams,
    cx: &RequestContext<RoleServer>,
) -> Result<ReadResourceResult, McpError> {
    let uri = req.uri;
    let what = format!("reading resource '{}'", bounded(&uri, 200));
    let reg = registry.clone();
    let u = uri.clone();
    let (res, body) = cancellable(cx, move |ctx| {
        Box::pin(async move { reg.resources().read(&u, ctx).await })
    })
    .await
    .map_err(|e| to_mcp(&what, Some(&uri), e))?;
    // Without a declared MIME type, what the body is (as the Python SDK does for text).
    let mime = res.spec().mime_type.clone().unwrap_or_else(|| {
        match body {
            ResourceBody::Text(_) => "text/plain",
            ResourceBody::Blob(_) => "application/octet-stream",
        }
        .into()
    });
    let mut c = json!({ "uri": uri, "mimeType": mime });
    match body {
        ResourceBody::Text(t) => c["text"] = Value::String(t),
        ResourceBody::Blob(b) => c["blob"] = Value::String(b),
    }
    typed(json!({ "contents": [c] }))
}

pub fn list_prompts(registry: &Registry) -> Result<ListPromptsResult, McpError> {
    let items: Vec<Value> = registry
        .prompts()
        .list()
        .into_iter()
        .map(|p| {
            let args: Vec<Value> = p
                .arguments
                .into_iter()
                .map(|a| {
                    let mut o = json!({"name": a.name, "required": a.required});
                    if let Some(d) = a.description {
                        o["description"] = Value::String(d);
                    }
                    o
                })
                .collect();
            let mut o = json!({"name": p.name, "arguments": args});
            if !p.description.is_empty() {
                o["description"] = Value::String(p.description);
            }
            o
        })
        .collect();
    typed(json!({ "prompts": items }))
}

pub async fn get_prompt(
    registry: &Registry,
    req: GetPromptRequestParams,
    cx: &RequestContext<RoleServer>,
) -> Result<GetPromptResult, McpError> {
    let name = req.name;
    let what = format!("prompt '{}'", bounded(&name, 200));
    let reg = registry.clone();
    let n = name.clone();
    let args = req.arguments.unwrap_or_default();
    let (spec, messages) = cancellable(cx, move |ctx| {
        Box::pin(async move { reg.prompts().get(&n, args, ctx).await })
    })
    .await
    .map_err(|e| to_mcp(&what, None, e))?;
    let mut out = json!({ "messages": messages });
    if !spec.description.is_empty() {
        out["description"] = Value::String(spec.description);
    }
    // A message the client's SDK would not accept is the function's fault: say which.
    typed(out).map_err(|e| {
        McpError::internal_error(
            format!("{what} returned a message MCP cannot carry: {}", e.message),
            None,
        )
    })
}

pub async fn complete(
    registry: &Registry,
    req: CompleteRequestParams,
    cx: &RequestContext<RoleServer>,
) -> Result<CompleteResult, McpError> {
    let (ref_type, ref_name) = match &req.r#ref {
        Reference::Prompt(p) => ("prompt", p.name.clone()),
        Reference::Resource(r) => ("resource", r.uri.clone()),
        _ => {
            return Err(McpError::invalid_params(
                "unknown completion reference type",
                None,
            ))
        }
    };
    let context: Map<String, Value> = req
        .context
        .and_then(|c| c.arguments)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let request = CompletionRequest {
        ref_type: ref_type.into(),
        ref_name,
        argument: req.argument.name,
        value: req.argument.value,
        context,
    };
    let reg = registry.clone();
    let mut values = cancellable(cx, move |ctx| {
        Box::pin(async move { reg.completions().complete(request, ctx).await })
    })
    .await
    .map_err(|e| to_mcp("completion", None, e))?;
    let total = values.len();
    values.truncate(MAX_COMPLETIONS);
    typed(json!({"completion": {
        "values": values,
        "total": total,
        "hasMore": total > MAX_COMPLETIONS,
    }}))
}

/// What one MCP session keeps: the URIs it subscribed to, and the task sending it the
/// catalog's notifications (ended when the session's handler is dropped).
/// Holding a URI tells the registry's sources (a mounted server subscribes upstream).
#[derive(Default)]
pub struct Session {
    subscribed: Arc<Mutex<HashMap<String, Held>>>,
    watcher: OnceLock<DropGuard>,
}

impl Session {
    pub fn subscribe(&self, registry: &Registry, uri: &str) -> Result<(), McpError> {
        if registry.resources().resolve(uri).is_none() {
            return Err(McpError::resource_not_found(
                format!("Resource not found: {}", bounded(uri, 200)),
                Some(json!({"uri": bounded(uri, 200)})),
            ));
        }
        let mut s = self.subscribed.lock();
        if s.len() >= MAX_SUBSCRIPTIONS && !s.contains_key(uri) {
            return Err(McpError::invalid_params(
                format!("too many subscriptions (at most {MAX_SUBSCRIPTIONS} per session)"),
                None,
            ));
        }
        if !s.contains_key(uri) {
            s.insert(uri.to_string(), registry.resources().interest().hold(uri));
        }
        Ok(())
    }

    pub fn unsubscribe(&self, uri: &str) {
        if uri.len() <= MAX_URI_LEN {
            self.subscribed.lock().remove(uri);
        }
    }

    /// Forward list changes and updates of subscribed URIs to `peer` until the session ends.
    pub fn watch(&self, registry: &Registry, peer: rmcp::Peer<RoleServer>) {
        let stop = CancellationToken::new();
        if self.watcher.set(stop.clone().drop_guard()).is_err() {
            return;
        }
        let mut resources = registry.resources().watch_changes();
        resources.mark_unchanged();
        let mut prompts = registry.prompts().watch_changes();
        prompts.mark_unchanged();
        let mut updates = registry.resources().updates();
        let subscribed = self.subscribed.clone();
        tokio::spawn(async move {
            loop {
                let sent = tokio::select! {
                    _ = stop.cancelled() => break,
                    r = resources.changed() => match r {
                        Ok(()) => peer.notify_resource_list_changed().await.is_ok(),
                        Err(_) => break,
                    },
                    r = prompts.changed() => match r {
                        Ok(()) => peer.notify_prompt_list_changed().await.is_ok(),
                        Err(_) => break,
                    },
                    r = updates.recv() => match r {
                        Ok(uri) if subscribed.lock().contains_key(&uri) => peer
                            .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                            .await
                            .is_ok(),
                        Ok(_) => true,
                        // Fell behind: the skipped updates are lost for this session only.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                        Err(_) => break,
                    },
                };
                if !sent {
                    break;
                }
            }
        });
    }
}

/// The parts of a `subscriptions/listen` filter this module serves.
pub fn accept(requested: &SubscriptionFilter, into: &mut SubscriptionFilter) {
    into.resources_list_changed = requested.resources_list_changed;
    into.prompts_list_changed = requested.prompts_list_changed;
    into.resource_subscriptions = requested.resource_subscriptions.clone();
}

/// Serve the catalog's part of a `subscriptions/listen` stream until it ends.
pub async fn listen(registry: &Registry, context: &SubscriptionContext) {
    let acc = context.accepted();
    let want_resources = acc.resources_list_changed == Some(true);
    let want_prompts = acc.prompts_list_changed == Some(true);
    let uris: HashSet<String> = acc
        .resource_subscriptions
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let interest = registry.resources().interest();
    let _held: Vec<Held> = uris.iter().map(|u| interest.hold(u)).collect();
    let mut resources = registry.resources().watch_changes();
    resources.mark_unchanged();
    let mut prompts = registry.prompts().watch_changes();
    prompts.mark_unchanged();
    let mut updates = registry.resources().updates();
    let sink = context.sink();
    loop {
        let sent = tokio::select! {
            _ = context.cancelled() => return,
            r = resources.changed() => match r {
                Ok(()) if want_resources => sink.notify_resource_list_changed().await.is_ok(),
                Ok(()) => true,
                Err(_) => return,
            },
            r = prompts.changed() => match r {
                Ok(()) if want_prompts => sink.notify_prompt_list_changed().await.is_ok(),
                Ok(()) => true,
                Err(_) => return,
            },
            r = updates.recv() => match r {
                Ok(uri) if uris.contains(&uri) => sink.notify_resource_updated(uri).await.is_ok(),
                Ok(_) => true,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                Err(_) => return,
            },
        };
        if !sent {
            return;
        }
    }
}
