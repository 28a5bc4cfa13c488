//! Upstream resources and prompts, proxied into the registry's stores: resource URIs (and
//! templates) kept as given, prompt names prefixed like tools. Read/get go to the upstream
//! that is connected at the time. Synced on every (re)connection and on the upstream's
//! `resources/list_changed` / `prompts/list_changed`.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams};
use rmcp::service::{Peer, RoleClient};
use serde_json::{json, Map, Value};

use super::tool::Link;
use crate::core::resources::ResourceSpec;
use crate::core::uri_template::UriTemplate;
use crate::core::{Error, FnTool, Registry, ToolSpec};

/// What one sync registered (URI or prompt name → the entry as the upstream listed it), so
/// the next one can leave unchanged entries alone and take vanished ones away, as can close.
#[derive(Default)]
pub(super) struct Proxied {
    pub uris: BTreeMap<String, Value>,
    pub prompts: BTreeMap<String, Value>,
}

impl Proxied {
    pub fn remove(&mut self, registry: &Registry) {
        for u in std::mem::take(&mut self.uris).into_keys() {
            registry.resources().unregister(&u);
        }
        for p in std::mem::take(&mut self.prompts).into_keys() {
            registry.prompts().unregister(&p);
        }
    }
}

fn field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn current(link: &Link, what: &str) -> Result<Peer<RoleClient>, Error> {
    link.peer.read().clone().ok_or_else(|| {
        Error::tool(
            what,
            format!(
                "MCP server '{}' is unavailable: {}",
                link.server(),
                link.down.read()
            ),
        )
    })
}

/// Fill `to` with `from` (`{var}` placeholders of a level-1 template).
fn expand(template: &str, args: &Map<String, Value>) -> String {
    let mut out = template.to_string();
    for (k, v) in args {
        let s = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out = out.replace(&format!("{{{k}}}"), &s);
    }
    out
}

fn reader(link: Arc<Link>, uri: String, vars: Vec<String>) -> FnTool {
    let props: Map<String, Value> = vars
        .iter()
        .map(|v| (v.clone(), json!({"type": "string"})))
        .collect();
    let spec = ToolSpec::new(format!("resource:{uri}"))
        .input_schema(json!({"type": "object", "properties": props, "required": vars}));
    FnTool::new(spec, move |args, _ctx| {
        let link = link.clone();
        let uri = uri.clone();
        async move {
            let target = match &args {
                Value::Object(m) if !m.is_empty() => expand(&uri, m),
                _ => uri.clone(),
            };
            let peer = current(&link, &target)?;
            let r = peer
                .read_resource(ReadResourceRequestParams::new(target.clone()))
                .await
                .map_err(|e| {
                    Error::tool(&target, format!("MCP server '{}': {e}", link.server()))
                })?;
            let v = serde_json::to_value(r).unwrap_or(Value::Null);
            let first = v
                .get("contents")
                .and_then(|c| c.get(0))
                .cloned()
                .unwrap_or(Value::Null);
            match (field(&first, "text"), field(&first, "blob")) {
                (Some(t), _) => Ok(json!({"text": t})),
                (None, Some(b)) => Ok(json!({"blob": b})),
                _ => Err(Error::tool(&target, "the upstream returned no contents")),
            }
        }
    })
}

fn renderer(link: Arc<Link>, upstream: String, args: &[Value]) -> FnTool {
    let mut props = Map::new();
    let mut required = Vec::new();
    for a in args {
        let Some(n) = field(a, "name") else { continue };
        let mut p = json!({"type": "string"});
        if let Some(d) = field(a, "description") {
            p["description"] = json!(d);
        }
        props.insert(n.to_string(), p);
        if a.get("required").and_then(Value::as_bool) == Some(true) {
            required.push(json!(n));
        }
    }
    let spec = ToolSpec::new(format!("prompt:{upstream}"))
        .input_schema(json!({"type": "object", "properties": props, "required": required}));
    FnTool::new(spec, move |args, _ctx| {
        let link = link.clone();
        let name = upstream.clone();
        async move {
            let peer = current(&link, &name)?;
            let mut p = GetPromptRequestParams::new(name.clone());
            p.arguments = match args {
                Value::Object(m) if !m.is_empty() => Some(
                    m.into_iter()
                        .map(|(k, v)| match v {
                            Value::String(_) => (k, v),
                            other => (k, Value::String(other.to_string())),
                        })
                        .collect(),
                ),
                _ => None,
            };
            let r = peer
                .get_prompt(p)
                .await
                .map_err(|e| Error::tool(&name, format!("MCP server '{}': {e}", link.server())))?;
            let v = serde_json::to_value(r).unwrap_or(Value::Null);
            Ok(v.get("messages")
                .cloned()
                .unwrap_or(Value::Array(Vec::new())))
        }
    })
}

/// Mirror the upstream's resources, templates and prompts into the registry's stores: new
/// ones registered (where the URI/name is free), ours kept as they are when unchanged (so our
/// clients hear of real changes only) or replaced in place (no moment without them), vanished
/// ones removed. A kind whose listing fails keeps what it had.
pub(super) async fn sync(
    registry: &Registry,
    prefix: &str,
    link: &Arc<Link>,
    peer: &Peer<RoleClient>,
    into: &mut Proxied,
) {
    let info = peer.peer_info();
    let caps = info.as_ref().map(|i| &i.capabilities);
    let warn =
        |e: String| log::warn!(target: "agent_runtime.mcp", "MCP server '{}': {e}", link.server());
    let uris = if caps.is_some_and(|c| c.resources.is_some()) {
        sync_resources(registry, link, peer, &into.uris, &warn).await
    } else {
        Some(BTreeMap::new())
    };
    settle(&mut into.uris, uris, |u| {
        registry.resources().unregister(u);
    });
    let prompts = if caps.is_some_and(|c| c.prompts.is_some()) {
        sync_prompts(registry, prefix, link, peer, &into.prompts, &warn).await
    } else {
        Some(BTreeMap::new())
    };
    settle(&mut into.prompts, prompts, |p| {
        registry.prompts().unregister(p);
    });
    link.calls.set_proxied(into.uris.keys().cloned());
}

/// What one kind proxies after a sync: `now`, unregistering what vanished from `ours`; `None`
/// (its listing failed) keeps `ours`.
fn settle(
    ours: &mut BTreeMap<String, Value>,
    now: Option<BTreeMap<String, Value>>,
    unregister: impl Fn(&str),
) {
    let Some(now) = now else { return };
    for gone in ours.keys().filter(|k| !now.contains_key(*k)) {
        unregister(gone);
    }
    *ours = now;
}

/// The listed entries of one kind (URI or prompt name → the entry as listed), against what the
/// last sync registered.
struct Mirror<'a> {
    ours: &'a BTreeMap<String, Value>,
    now: BTreeMap<String, Value>,
    seen: HashSet<String>,
}

impl<'a> Mirror<'a> {
    fn new(ours: &'a BTreeMap<String, Value>) -> Self {
        Mirror {
            ours,
            now: BTreeMap::new(),
            seen: HashSet::new(),
        }
    }

    /// Entry `key`, listed as `v`: kept as registered if unchanged, else `register(replace)`
    /// (replacing ours in place, once if the upstream lists it twice).
    fn entry(
        &mut self,
        key: String,
        v: Value,
        register: impl FnOnce(bool) -> crate::core::Result<()>,
        warn: &impl Fn(String),
        what: &str,
    ) {
        let first = self.seen.insert(key.clone());
        if first && self.ours.get(&key) == Some(&v) {
            self.now.insert(key, v);
            return;
        }
        match register(first && self.ours.contains_key(&key)) {
            Ok(()) => {
                self.now.insert(key, v);
            }
            Err(e) => warn(format!("{what} not proxied: {e}")),
        }
    }
}

/// Register the listed resources and templates; the URIs now proxied, None if listing failed.
async fn sync_resources(
    registry: &Registry,
    link: &Arc<Link>,
    peer: &Peer<RoleClient>,
    ours: &BTreeMap<String, Value>,
    warn: &impl Fn(String),
) -> Option<BTreeMap<String, Value>> {
    let mut listed: Vec<(Value, bool)> = Vec::new();
    match peer.list_all_resources().await {
        Ok(rs) => listed.extend(
            rs.into_iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .map(|v| (v, false)),
        ),
        Err(e) => {
            warn(format!("resources/list failed: {e}"));
            return None;
        }
    }
    match peer.list_all_resource_templates().await {
        Ok(ts) => listed.extend(
            ts.into_iter()
                .filter_map(|t| serde_json::to_value(t).ok())
                .map(|v| (v, true)),
        ),
        Err(e) => {
            warn(format!("resources/templates/list failed: {e}"));
            return None;
        }
    }
    let mut mirror = Mirror::new(ours);
    for (v, is_template) in listed {
        let uri = field(&v, if is_template { "uriTemplate" } else { "uri" })
            .unwrap_or_default()
            .to_string();
        let vars = match UriTemplate::parse(&uri) {
            Ok(t) if is_template => t.map(|t| t.vars().to_vec()).unwrap_or_default(),
            Ok(_) => Vec::new(),
            Err(e) => {
                warn(format!("resource '{uri}' not proxied: {e}"));
                continue;
            }
        };
        let spec = ResourceSpec {
            uri: uri.clone(),
            name: field(&v, "name").unwrap_or(&uri).to_string(),
            description: field(&v, "description").unwrap_or_default().to_string(),
            mime_type: field(&v, "mimeType").map(str::to_string),
        };
        let register = |replace| {
            let tool = Arc::new(reader(link.clone(), uri.clone(), vars));
            registry.resources().register(spec, tool, replace)
        };
        mirror.entry(uri.clone(), v, register, warn, "resource");
    }
    Some(mirror.now)
}

/// Register the listed prompts as `PREFIX.name`; the names now proxied, None if listing failed.
async fn sync_prompts(
    registry: &Registry,
    prefix: &str,
    link: &Arc<Link>,
    peer: &Peer<RoleClient>,
    ours: &BTreeMap<String, Value>,
    warn: &impl Fn(String),
) -> Option<BTreeMap<String, Value>> {
    let ps = match peer.list_all_prompts().await {
        Ok(ps) => ps,
        Err(e) => {
            warn(format!("prompts/list failed: {e}"));
            return None;
        }
    };
    let mut mirror = Mirror::new(ours);
    for p in ps {
        let v = serde_json::to_value(&p).unwrap_or(Value::Null);
        let name = if prefix.is_empty() {
            p.name.clone()
        } else {
            format!("{prefix}.{}", p.name)
        };
        let args = v
            .get("arguments")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let register = |replace| {
            let tool = Arc::new(renderer(link.clone(), p.name.clone(), &args));
            let desc = p.description.clone().unwrap_or_default();
            registry.prompts().register(&name, &desc, tool, replace)
        };
        mirror.entry(name.clone(), v, register, warn, "prompt");
    }
    Some(mirror.now)
}
