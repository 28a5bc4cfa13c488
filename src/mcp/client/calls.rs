//! The calls in flight to one upstream, and where what the upstream sends about them goes.
//!
//! A call is entered before its request is sent (keyed by its start order) and bound to its
//! JSON-RPC id and progress token as the request goes out ([`super::handler::InOrder`] sees
//! them), so nothing the upstream sends can arrive before the call is known:
//!
//! - progress: by its token, always exact;
//! - log messages and sampling/elicitation requests: exact when they name the call — over
//!   streamable HTTP, what arrives on the SSE stream of a call's POST is that call's
//!   ([`super::http_origin`] for logs, rmcp's `InboundStreamOrigin` for requests). Otherwise
//!   (stdio, or the HTTP session's GET stream) MCP does not say which call they belong to: they
//!   go to the most recent call whose caller can take them — exact whenever one call is in
//!   flight.

// Logging is deprecated by SEP-2577 but still what servers send.
#![allow(deprecated)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use rmcp::model::{
    LoggingMessageNotificationParam, ProgressNotificationParam, ProgressToken, RequestId,
};
use serde_json::Value;
use tokio::sync::Notify;

use crate::core::{CallPeer, CancelToken, LogLevel, Progress, ProgressSink, Registry};

/// What a call's caller can take: its progress callback and its client (an MCP caller).
pub(super) struct Inflight {
    pub progress: Option<ProgressSink>,
    pub peer: Option<Arc<dyn CallPeer>>,
    pub cancel: CancelToken,
}

/// Marks an outgoing `tools/call` (in the request's extensions, never on the wire) with the
/// key of its call, so the transport can bind the call to the request's id and token.
#[derive(Clone, Copy, Debug)]
pub(super) struct CallKey(pub u64);

struct Entry {
    call: Inflight,
    id: Option<RequestId>,
    token: Option<ProgressToken>,
}

#[derive(Default)]
struct Table {
    /// By key: start order, so the last entry is the most recent call.
    calls: BTreeMap<u64, Entry>,
    by_id: HashMap<RequestId, u64>,
    by_token: HashMap<ProgressToken, u64>,
}

/// Who answers a request of the upstream.
pub(super) enum Answerer {
    /// The caller of the call the request belongs to (or the best guess).
    Caller(Arc<dyn CallPeer>, CancelToken),
    /// The request belongs to a call whose caller cannot answer.
    Unable,
    /// No call in flight has a caller that can answer.
    Nobody,
}

/// State shared by the handler, the transport wrappers, the mounted tools and the supervisor
/// of one mount.
pub(super) struct Calls {
    pub server: String,
    table: Mutex<Table>,
    next: AtomicU64,
    /// Upstream `tools/list_changed` (for the supervisor).
    pub tools_changed: Notify,
    /// Upstream `resources/list_changed` or `prompts/list_changed` (for the supervisor).
    pub catalog_changed: Notify,
    registry: Registry,
    /// URIs (and URI templates) of the upstream resources this mount proxies.
    proxied: RwLock<HashSet<String>>,
}

impl Calls {
    pub fn new(server: String, registry: Registry) -> Self {
        Calls {
            server,
            table: Mutex::new(Table::default()),
            next: AtomicU64::new(0),
            tools_changed: Notify::new(),
            catalog_changed: Notify::new(),
            registry,
            proxied: RwLock::new(HashSet::new()),
        }
    }

    /// Enter a call about to be sent; returns its key.
    pub fn begin(&self, call: Inflight) -> u64 {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.table.lock().calls.insert(
            key,
            Entry {
                call,
                id: None,
                token: None,
            },
        );
        key
    }

    /// The request of call `key` is going out with this id and progress token.
    pub fn bind(&self, key: u64, id: RequestId, token: Option<ProgressToken>) {
        let mut t = self.table.lock();
        let Some(e) = t.calls.get_mut(&key) else {
            return; // already abandoned
        };
        e.id = Some(id.clone());
        e.token = token.clone();
        t.by_id.insert(id, key);
        if let Some(tok) = token {
            t.by_token.insert(tok, key);
        }
    }

    /// Forget call `key` (answered, failed or abandoned).
    pub fn end(&self, key: u64) {
        let mut t = self.table.lock();
        if let Some(e) = t.calls.remove(&key) {
            if let Some(id) = e.id {
                t.by_id.remove(&id);
            }
            if let Some(tok) = e.token {
                t.by_token.remove(&tok);
            }
        }
    }

    /// How many calls are in flight.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.table.lock().calls.len()
    }

    /// Deliver an upstream progress report to the call it belongs to.
    pub fn progress(&self, params: ProgressNotificationParam) {
        let sink = {
            let t = self.table.lock();
            t.by_token
                .get(&params.progress_token)
                .and_then(|k| t.calls.get(k))
                .and_then(|e| e.call.progress.clone())
        };
        if let Some(sink) = sink.filter(|_| params.progress.is_finite()) {
            sink(&Progress {
                done: params.progress,
                total: params.total.filter(|t| t.is_finite()),
                message: params.message,
            });
        }
    }

    /// A log message that does not say which call it belongs to: to the caller of the most
    /// recent call that has one, else to Python logging.
    pub fn log(&self, params: LoggingMessageNotificationParam) {
        let peer = self.latest().map(|(p, _)| p);
        self.deliver_log(peer, params);
    }

    /// A log message that arrived on the response stream of request `id`: to that call's
    /// caller, or to Python logging if the caller cannot take it. A request no longer in
    /// flight (its stream outlived it) counts as unattributed.
    pub fn log_on(&self, id: &RequestId, params: LoggingMessageNotificationParam) {
        let found = {
            let t = self.table.lock();
            t.by_id
                .get(id)
                .and_then(|k| t.calls.get(k))
                .map(|e| e.call.peer.clone())
        };
        match found {
            Some(peer) => self.deliver_log(peer, params),
            None => self.log(params),
        }
    }

    /// Who answers a sampling/elicitation request: the caller of the call it arrived with
    /// (`origin`, the id of that call's request, when the transport knows it), else the most
    /// recent call's caller that can answer.
    pub fn answerer(&self, origin: Option<&RequestId>) -> Answerer {
        if let Some(id) = origin {
            let t = self.table.lock();
            if let Some(e) = t.by_id.get(id).and_then(|k| t.calls.get(k)) {
                return match &e.call.peer {
                    Some(p) => Answerer::Caller(p.clone(), e.call.cancel.clone()),
                    None => Answerer::Unable,
                };
            }
        }
        match self.latest() {
            Some((p, c)) => Answerer::Caller(p, c),
            None => Answerer::Nobody,
        }
    }

    /// The caller's side of the most recent call that has one.
    fn latest(&self) -> Option<(Arc<dyn CallPeer>, CancelToken)> {
        let t = self.table.lock();
        t.calls.values().rev().find_map(|e| {
            e.call
                .peer
                .as_ref()
                .map(|p| (p.clone(), e.call.cancel.clone()))
        })
    }

    fn deliver_log(
        &self,
        peer: Option<Arc<dyn CallPeer>>,
        params: LoggingMessageNotificationParam,
    ) {
        let level = serde_json::to_value(params.level)
            .ok()
            .and_then(|v| v.as_str().and_then(LogLevel::parse))
            .unwrap_or(LogLevel::Info);
        let logger = params.logger.unwrap_or_else(|| self.server.clone());
        match peer {
            Some(peer) => peer.log(level, Some(&logger), params.data),
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

    /// Record the URIs this mount now proxies (for `resources/updated`).
    pub fn set_proxied(&self, uris: impl IntoIterator<Item = String>) {
        *self.proxied.write() = uris.into_iter().collect();
    }

    /// Upstream `notifications/resources/updated`: tell our subscribers, if the URI is one
    /// this mount proxies (itself, or an instance of one of its templates).
    pub fn resource_updated(&self, uri: &str) {
        if self.owns(uri) {
            self.registry.resources().notify_updated(uri);
        }
    }

    /// Whether `uri` is read through this mount.
    pub fn owns(&self, uri: &str) -> bool {
        let proxied = self.proxied.read();
        proxied.contains(uri)
            || self
                .registry
                .resources()
                .resolve(uri)
                .is_some_and(|(r, _)| proxied.contains(&r.spec().uri))
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::resources::ResourceSpec;
    use crate::core::{BoxFuture, FnTool, PeerRequest, Result, ToolSpec};

    struct Rec(Mutex<Vec<Value>>);

    impl CallPeer for Rec {
        fn log(&self, _: LogLevel, _: Option<&str>, data: Value) {
            self.0.lock().push(data);
        }
        fn request(&self, _: PeerRequest, _: Value, _: CancelToken) -> BoxFuture<Result<Value>> {
            Box::pin(async { Ok(Value::Null) })
        }
    }

    fn call(peer: Option<Arc<Rec>>) -> Inflight {
        Inflight {
            progress: None,
            peer: peer.map(|p| p as Arc<dyn CallPeer>),
            cancel: CancelToken::new(),
        }
    }

    fn msg(text: &str) -> LoggingMessageNotificationParam {
        serde_json::from_value(serde_json::json!({"level": "info", "data": text})).unwrap()
    }

    #[test]
    fn logs_and_requests_go_to_their_call_else_to_the_latest_that_can_take_them() {
        let calls = Calls::new("s".into(), Registry::new());
        let (a, b) = (
            Arc::new(Rec(Mutex::new(vec![]))),
            Arc::new(Rec(Mutex::new(vec![]))),
        );
        let ka = calls.begin(call(Some(a.clone())));
        let kb = calls.begin(call(Some(b.clone())));
        let kc = calls.begin(call(None));
        calls.bind(ka, RequestId::Number(1), None);
        calls.bind(kb, RequestId::Number(2), None);
        calls.bind(kc, RequestId::Number(3), None);
        calls.log_on(&RequestId::Number(1), msg("to a"));
        calls.log(msg("to b, the latest with a caller"));
        calls.log_on(&RequestId::Number(9), msg("unknown id: to b"));
        assert_eq!(a.0.lock().as_slice(), &[Value::from("to a")]);
        assert_eq!(b.0.lock().len(), 2);
        assert!(matches!(
            calls.answerer(Some(&RequestId::Number(1))),
            Answerer::Caller(..)
        ));
        assert!(matches!(
            calls.answerer(Some(&RequestId::Number(3))),
            Answerer::Unable
        ));
        calls.end(ka);
        calls.end(kb);
        assert!(matches!(calls.answerer(None), Answerer::Nobody));
        calls.end(kc);
        assert_eq!(calls.in_flight(), 0);
        assert!(calls.table.lock().by_id.is_empty());
        // A call abandoned before its request went out is not bound afterwards.
        let kd = calls.begin(call(None));
        calls.end(kd);
        calls.bind(kd, RequestId::Number(4), None);
        assert!(calls.table.lock().by_id.is_empty());
    }

    #[test]
    fn resource_updates_pass_for_the_uris_of_this_mount_only() {
        let reg = Registry::new();
        let reader = |uri: &str, vars: serde_json::Value| {
            let spec = ToolSpec::new(format!("resource:{uri}"))
                .input_schema(serde_json::json!({"type": "object", "properties": vars}));
            Arc::new(FnTool::sync(spec, |_| Ok(Value::from("x"))))
        };
        for (uri, vars) in [
            ("up://a", serde_json::json!({})),
            ("up://t/{id}", serde_json::json!({"id": {"type": "string"}})),
            ("other://b", serde_json::json!({})),
        ] {
            let spec = ResourceSpec {
                uri: uri.into(),
                name: uri.into(),
                description: String::new(),
                mime_type: None,
            };
            reg.resources()
                .register(spec, reader(uri, vars), false)
                .unwrap();
        }
        let calls = Calls::new("s".into(), reg.clone());
        calls.set_proxied(["up://a".to_string(), "up://t/{id}".to_string()]);
        let mut updates = reg.resources().updates();
        for uri in ["up://a", "other://b", "up://t/7", "nowhere://x"] {
            calls.resource_updated(uri);
        }
        assert_eq!(updates.try_recv().unwrap(), "up://a");
        assert_eq!(updates.try_recv().unwrap(), "up://t/7");
        assert!(updates.try_recv().is_err());
        assert!(calls.owns("up://t/1") && !calls.owns("other://b"));
    }
}
