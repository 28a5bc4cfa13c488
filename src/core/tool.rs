//! What a tool is: a spec plus an async call.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::Result;
use super::payload::Payload;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Describes a tool to callers: what it is, what it takes, how long it may run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments object.
    #[serde(default = "empty_object_schema")]
    pub input_schema: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Default timeout of a call, in seconds on the wire.
    #[serde(default, with = "opt_secs", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// The schemas were given by the tool's author (not derived): transports list them exactly
    /// as given (`$schema`, `$defs`, `$ref` kept) rather than normalized.
    #[serde(skip)]
    pub schema_as_given: bool,
}

pub fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object"})
}

impl ToolSpec {
    pub fn new(name: impl Into<String>) -> Self {
        ToolSpec {
            name: name.into(),
            description: String::new(),
            input_schema: empty_object_schema(),
            output_schema: None,
            timeout: None,
            schema_as_given: false,
        }
    }

    pub fn description(mut self, d: impl Into<String>) -> Self {
        self.description = d.into();
        self
    }

    pub fn input_schema(mut self, s: Value) -> Self {
        self.input_schema = s;
        self
    }

    pub fn output_schema(mut self, s: Value) -> Self {
        self.output_schema = Some(s);
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let v: Option<f64> = Option::deserialize(d)?;
        v.map(|s| crate::core::duration::from_secs("timeout", s))
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

/// A progress report from a running tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub done: f64,
    pub total: Option<f64>,
    pub message: Option<String>,
}

/// Receives progress reports of a call (and of the calls it makes on the same context).
pub type ProgressSink = Arc<dyn Fn(&Progress) + Send + Sync>;

static CALL_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A fresh call id, unique in this process.
pub fn next_call_id() -> u64 {
    CALL_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Per-call information handed to a tool.
#[derive(Clone, Default)]
pub struct CallContext {
    /// Unique per call in this process.
    pub call_id: u64,
    /// Cancelled when the caller cancels, the call times out, or the runtime shuts down. Rust
    /// tools doing long work should check it (`is_cancelled`, `cancelled().await`).
    pub cancel: crate::core::CancelToken,
    /// Per-call timeout; overrides the tool's default.
    pub timeout: Option<Duration>,
    pub progress: Option<ProgressSink>,
    /// The caller's side, where the transport can carry a tool's logs and requests (MCP).
    pub peer: Option<Arc<dyn super::CallPeer>>,
    /// Data owned by the boundary that started the call (e.g. the caller's asyncio loop and
    /// contextvars), passed through the core opaquely.
    pub foreign: Option<Arc<dyn Any + Send + Sync>>,
    /// How many calls this one is nested in (0 for a call from outside any tool); each
    /// [`CallContext::child`] adds one. Calls deeper than [`MAX_CALL_DEPTH`] are refused.
    pub depth: u32,
}

/// How deep tools calling tools may nest. Each level of a nested call through a blocking
/// boundary (a sync Python tool calling back into the registry) holds a thread until the
/// innermost call returns; a runaway recursion would otherwise exhaust the blocking pool.
pub const MAX_CALL_DEPTH: u32 = 64;

impl CallContext {
    /// A fresh context with a new call id.
    pub fn new() -> Self {
        CallContext {
            call_id: next_call_id(),
            ..Default::default()
        }
    }

    pub fn with_timeout(mut self, t: Option<Duration>) -> Self {
        self.timeout = t;
        self
    }

    pub fn with_progress(mut self, p: Option<ProgressSink>) -> Self {
        self.progress = p;
        self
    }

    pub fn with_peer(mut self, p: Option<Arc<dyn super::CallPeer>>) -> Self {
        self.peer = p;
        self
    }

    /// Context for a nested call made by a tool while handling this one: a new call id, the
    /// same caller environment (so Python callbacks still see the original caller's
    /// contextvars and event loop), progress going to the same sink, and cancellation that
    /// follows this call's.
    pub fn child(&self) -> CallContext {
        CallContext {
            call_id: next_call_id(),
            cancel: self.cancel.child_token(),
            timeout: None,
            progress: self.progress.clone(),
            peer: self.peer.clone(),
            foreign: self.foreign.clone(),
            depth: self.depth.saturating_add(1),
        }
    }

    /// The same context at nesting depth `depth` (for boundaries that start a call on behalf
    /// of a running tool without holding its context, e.g. Python code inside a Python tool).
    pub fn with_depth(mut self, depth: u32) -> Self {
        self.depth = depth;
        self
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Report progress to whoever asked for it (a no-op otherwise). JSON cannot carry NaN or
    /// infinities: a report whose `done` is not finite is dropped, a non-finite `total` is
    /// sent as unknown (None).
    pub fn report_progress(&self, done: f64, total: Option<f64>, message: Option<String>) {
        if let Some(p) = self.progress.as_ref().filter(|_| done.is_finite()) {
            p(&Progress {
                done,
                total: total.filter(|t| t.is_finite()),
                message,
            });
        }
    }

    pub fn foreign<T: 'static>(&self) -> Option<&T> {
        self.foreign.as_deref().and_then(|f| f.downcast_ref::<T>())
    }
}

/// A callable tool. Implemented by Rust tools and by the Python boundary's `PyTool`.
pub trait Tool: Send + Sync + 'static {
    fn spec(&self) -> &ToolSpec;

    /// Start a call. Arguments were already validated against `spec().input_schema`.
    fn call(&self, args: Payload, ctx: CallContext) -> BoxFuture<Result<Payload>>;

    /// Run a call to completion on the current thread. Tools that can do better than driving
    /// their future with a thread-parking executor (a sync Python callable) override this.
    fn call_blocking(&self, args: Payload, ctx: CallContext) -> Result<Payload> {
        super::runtime::block_on(self.call(args, ctx))
    }

    fn as_any(&self) -> &dyn Any;
}

type AsyncFn = dyn Fn(Value, CallContext) -> BoxFuture<Result<Value>> + Send + Sync;

/// A Rust tool from a closure over JSON values.
pub struct FnTool {
    spec: ToolSpec,
    f: Arc<AsyncFn>,
}

impl FnTool {
    /// An async tool: `f` returns a future producing the JSON result.
    pub fn new<F, Fut>(spec: ToolSpec, f: F) -> Self
    where
        F: Fn(Value, CallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        FnTool {
            spec,
            f: Arc::new(move |v, c| Box::pin(f(v, c))),
        }
    }

    /// A tool whose body is synchronous and quick (no blocking I/O).
    pub fn sync<F>(spec: ToolSpec, f: F) -> Self
    where
        F: Fn(Value) -> Result<Value> + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        FnTool::new(spec, move |v, _| {
            let f = f.clone();
            async move { f(v) }
        })
    }
}

impl Tool for FnTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, args: Payload, ctx: CallContext) -> BoxFuture<Result<Payload>> {
        let f = self.f.clone();
        Box::pin(async move {
            let v = args.into_json()?;
            f(v, ctx).await.map(Payload::Json)
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
