//! The thread-safe tool registry every entry point calls into.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures::FutureExt;
use parking_lot::Mutex;
use rustc_hash::FxHashMap as HashMap;
use serde_json::Value;

use super::completion::Completions;
use super::error::{Error, Result};
use super::events::{self, Event, EventKind};
use super::payload::Payload;
use super::prompts::PromptStore;
use super::resources::ResourceStore;
use super::schema::ArgsValidator;
use super::tasks::TaskHandle;
use super::text::bounded;
use super::tool::{CallContext, Tool, ToolSpec, MAX_CALL_DEPTH};

/// A tool as stored in a registry: the tool and its compiled input validator.
pub struct Registered {
    tool: Arc<dyn Tool>,
    /// The tool's name, shared cheaply with every call.
    name: Arc<str>,
    validator: ArgsValidator,
    /// Whether `{}` passes the input schema: lets boundaries skip converting empty arguments.
    empty_ok: bool,
}

impl Registered {
    pub fn spec(&self) -> &ToolSpec {
        self.tool.spec()
    }

    pub fn name(&self) -> &str {
        &self.tool.spec().name
    }

    pub fn tool(&self) -> &Arc<dyn Tool> {
        &self.tool
    }

    /// True when calling without arguments is valid (decided once, at registration).
    pub fn accepts_no_args(&self) -> bool {
        self.empty_ok
    }

    /// Check arguments against the input schema.
    pub fn validate(&self, args: &Value) -> Result<()> {
        self.validator.validate(self.name(), args)
    }

    /// Check arguments, ignoring errors at the JSON pointers in `opaque` (see
    /// [`crate::core::schema::ArgsValidator::validate_ignoring`]).
    pub fn validate_ignoring(&self, args: &Value, opaque: &[String]) -> Result<()> {
        self.validator.validate_ignoring(self.name(), args, opaque)
    }

    /// Validate `args` (converting a foreign payload to JSON only for the check) and start the
    /// call. A panic in the tool, when creating or polling its future, becomes `Error::Tool`.
    pub fn call(
        &self,
        args: Payload,
        ctx: CallContext,
    ) -> impl Future<Output = Result<Payload>> + Send + 'static {
        let checked = self.validate_payload(&args);
        let started = checked.map(|()| self.start(args, ctx));
        async move {
            match started {
                Ok(fut) => fut.await,
                Err(e) => Err(e),
            }
        }
    }

    /// Start a call whose arguments the caller has already validated with [`Registered::validate`].
    pub fn call_prevalidated(
        &self,
        args: Payload,
        ctx: CallContext,
    ) -> impl Future<Output = Result<Payload>> + Send + 'static {
        self.start(args, ctx)
    }

    /// Spawn a call whose arguments were already validated. The call is polled once right
    /// here (like asyncio's eager tasks): one that finishes without waiting never touches the
    /// scheduler; the rest continues on the runtime. Callers holding a language lock (the GIL)
    /// should release it around this.
    pub fn spawn_prevalidated(&self, args: Payload, ctx: CallContext) -> TaskHandle {
        let (task, ctx) = TaskHandle::new(self.name(), self.spec().output_schema.clone(), ctx);
        let mut fut = Box::pin(self.start(args, ctx));
        let h = super::runtime::cached_handle();
        {
            let _g = h.enter();
            task.set_running();
            let waker = futures::task::noop_waker();
            if let std::task::Poll::Ready(r) = fut
                .as_mut()
                .poll(&mut std::task::Context::from_waker(&waker))
            {
                task.complete(r);
                return task;
            }
        }
        // Completes the task as cancelled if the runtime drops it (shutdown) before it ends.
        struct Guard(Option<TaskHandle>);
        impl Drop for Guard {
            fn drop(&mut self) {
                if let Some(t) = self.0.take() {
                    let tool = t.tool().to_string();
                    t.complete(Err(Error::Cancelled { tool }));
                }
            }
        }
        let mut guard = Guard(Some(task.clone()));
        h.spawn(async move {
            let r = fut.await;
            if let Some(t) = guard.0.take() {
                t.complete(r);
            }
        });
        task
    }

    /// The timeout a call with `ctx` gets: the per-call one, else the tool's default.
    pub fn effective_timeout(&self, ctx: &CallContext) -> Option<Duration> {
        ctx.timeout.or(self.spec().timeout)
    }

    /// The call itself, wrapped with what every call gets wherever it came from: timeout,
    /// cancellation through `ctx.cancel`, panic capture and lifecycle events.
    fn start(
        &self,
        args: Payload,
        ctx: CallContext,
    ) -> impl Future<Output = Result<Payload>> + Send + 'static {
        let name = self.name.clone();
        let timeout = self.effective_timeout(&ctx);
        let token = ctx.cancel.clone();
        let call_id = ctx.call_id;
        let t0 = Instant::now();
        // Refused before it starts (no events): a call nested deeper than the limit.
        let started = match depth_error(&name, &ctx) {
            Some(e) => Err(e),
            None => {
                started_event(&name, call_id);
                let tool = self.tool.clone();
                Ok(std::panic::catch_unwind(AssertUnwindSafe(|| {
                    tool.call(args, ctx)
                })))
            }
        };
        async move {
            let fut = started?;
            let r = match fut {
                Err(p) => Err(panic_error(&name, p)),
                Ok(fut) => {
                    let mut run = std::pin::pin!(AssertUnwindSafe(fut).catch_unwind());
                    // Most calls finish on their first poll: skip arming the timer and the
                    // cancellation watch for them.
                    match futures::poll!(run.as_mut()) {
                        std::task::Poll::Ready(r) => {
                            r.unwrap_or_else(|p| Err(panic_error(&name, p)))
                        }
                        std::task::Poll::Pending => {
                            let deadline = async {
                                match timeout {
                                    Some(d) => {
                                        tokio::time::sleep(d.saturating_sub(t0.elapsed())).await
                                    }
                                    None => std::future::pending().await,
                                }
                            };
                            tokio::select! {
                                biased;
                                r = run => r.unwrap_or_else(|p| Err(panic_error(&name, p))),
                                _ = token.cancelled() => Err(Error::Cancelled { tool: name.to_string() }),
                                _ = deadline => {
                                    // Tell the tool (Rust tools watch the token; dropping the
                                    // future cancels an async Python coroutine).
                                    token.cancel();
                                    Err(Error::Timeout { tool: name.to_string(), timeout: timeout.unwrap_or_default() })
                                }
                            }
                        }
                    }
                }
            };
            finished_event(&name, call_id, t0, &r);
            r
        }
    }

    /// Like [`Registered::call`], run to completion on the current thread. Without a timeout
    /// the tool runs right here ([`Tool::call_blocking`]); with one it runs as a future so the
    /// deadline can be enforced.
    pub fn call_blocking(&self, args: Payload, ctx: CallContext) -> Result<Payload> {
        self.validate_payload(&args)?;
        if let Some(e) = depth_error(self.name(), &ctx) {
            return Err(e);
        }
        if self.effective_timeout(&ctx).is_some() {
            return super::runtime::block_on(self.start(args, ctx));
        }
        let t0 = Instant::now();
        let call_id = ctx.call_id;
        started_event(self.name(), call_id);
        let tool = &self.tool;
        let r = std::panic::catch_unwind(AssertUnwindSafe(|| tool.call_blocking(args, ctx)))
            .unwrap_or_else(|p| Err(panic_error(self.name(), p)));
        finished_event(self.name(), call_id, t0, &r);
        r
    }

    fn validate_payload(&self, args: &Payload) -> Result<()> {
        match args {
            Payload::Json(v) => self.validate(v),
            Payload::Foreign(f) => self.validate(&f.to_json()?),
        }
    }
}

/// Emit `tool.started` (cheap when nobody listens). Public for boundaries that run a tool
/// without going through [`Registered::call`] (a Python tool called inline from Python).
pub fn started_event(tool: &str, call_id: u64) {
    if events::active() {
        events::emit(&Event {
            kind: EventKind::Started,
            tool: tool.to_string(),
            call_id,
            duration: Duration::ZERO,
            error: None,
        });
    }
}

/// Emit `tool.finished` or `tool.failed` for a call that started at `t0`.
pub fn finished_event<T>(tool: &str, call_id: u64, t0: Instant, r: &Result<T>) {
    if events::active() {
        events::emit(&Event {
            kind: if r.is_ok() {
                EventKind::Finished
            } else {
                EventKind::Failed
            },
            tool: tool.to_string(),
            call_id,
            duration: t0.elapsed(),
            error: r.as_ref().err().cloned(),
        });
    }
}

/// The error for a call of `tool` nested deeper than [`MAX_CALL_DEPTH`], or None. Public for
/// boundaries that run a tool without going through [`Registered::call`].
pub fn depth_error(tool: &str, ctx: &CallContext) -> Option<Error> {
    (ctx.depth > MAX_CALL_DEPTH).then(|| {
        Error::tool(
            tool,
            format!(
                "call depth limit {MAX_CALL_DEPTH} exceeded: '{tool}' was called {} calls deep \
                 (tools calling tools without end? check for a recursion)",
                ctx.depth
            ),
        )
    })
}

fn panic_error(tool: &str, p: Box<dyn std::any::Any + Send>) -> Error {
    let msg = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".into());
    Error::tool(tool, format!("tool panicked: {msg}"))
}

type Map = HashMap<String, Arc<Registered>>;

/// The longest tool name, in bytes: registration refuses longer ones and lookups of longer
/// ones fail fast (they cannot exist).
pub const MAX_NAME_LEN: usize = 256;

/// A set of tools by name. Cloning is cheap and shares the set.
///
/// Lookups read an immutable snapshot (no lock, no contention between calling threads);
/// changes copy the map and swap it in, serialized by `write`.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    tools: ArcSwap<Map>,
    write: Mutex<()>,
    /// Bumped on every change of the tool set, so transports can tell clients (MCP
    /// `tools/list_changed`) without polling.
    changes: tokio::sync::watch::Sender<u64>,
    /// What the registry serves besides tools (MCP resources, prompts, completions).
    resources: ResourceStore,
    prompts: PromptStore,
    completions: Completions,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            tools: ArcSwap::default(),
            write: Mutex::new(()),
            changes: tokio::sync::watch::Sender::new(0),
            resources: ResourceStore::default(),
            prompts: PromptStore::default(),
            completions: Completions::default(),
        }
    }
}

static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::new);

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide default registry (`@agent_runtime.tool` registers here).
    pub fn global() -> &'static Registry {
        &GLOBAL
    }

    /// The registry's resources (static and templates).
    pub fn resources(&self) -> &ResourceStore {
        &self.inner.resources
    }

    /// The registry's prompts.
    pub fn prompts(&self) -> &PromptStore {
        &self.inner.prompts
    }

    /// The registry's completion function.
    pub fn completions(&self) -> &Completions {
        &self.inner.completions
    }

    /// A function compiled as a tool entry (validator built), for stores that call functions
    /// the way tools are called (resources, prompts).
    pub(crate) fn compile_entry(tool: Arc<dyn Tool>) -> Result<Arc<Registered>> {
        Self::entry(tool)
    }

    fn entry(tool: Arc<dyn Tool>) -> Result<Arc<Registered>> {
        let spec = tool.spec();
        if spec.name.is_empty() {
            return Err(Error::Registration("tool name must not be empty".into()));
        }
        if spec.name.len() > MAX_NAME_LEN {
            return Err(Error::Registration(format!(
                "tool name '{}' is longer than {MAX_NAME_LEN} bytes",
                bounded(&spec.name, 64)
            )));
        }
        let validator = ArgsValidator::compile(&spec.name, &spec.input_schema)?;
        let empty_ok = validator
            .validate(&spec.name, &Value::Object(Default::default()))
            .is_ok();
        let name: Arc<str> = Arc::from(spec.name.as_str());
        Ok(Arc::new(Registered {
            tool,
            name,
            validator,
            empty_ok,
        }))
    }

    /// Add a tool; an existing tool of the same name is an error (see [`Registry::replace`]).
    pub fn register(&self, tool: impl Tool) -> Result<()> {
        self.register_arc(Arc::new(tool))
    }

    pub fn register_arc(&self, tool: Arc<dyn Tool>) -> Result<()> {
        let e = Self::entry(tool)?;
        self.update(|m| {
            if m.contains_key(e.name()) {
                return Err(Error::Registration(format!(
                    "a tool named '{}' is already registered",
                    e.name()
                )));
            }
            m.insert(e.name().to_string(), e);
            Ok(())
        })
    }

    /// Apply `f` to a copy of the map and publish it if `f` succeeds.
    fn update<R>(&self, f: impl FnOnce(&mut Map) -> Result<R>) -> Result<R> {
        let _w = self.inner.write.lock();
        let mut m: Map = (**self.inner.tools.load()).clone();
        let r = f(&mut m)?;
        self.inner.tools.store(Arc::new(m));
        self.inner.changes.send_modify(|v| *v = v.wrapping_add(1));
        Ok(r)
    }

    /// A receiver that wakes (`changed().await`) whenever a tool is registered, replaced or
    /// removed. The value is a change counter.
    pub fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Add or replace a tool, returning the spec of the one replaced.
    pub fn replace(&self, tool: Arc<dyn Tool>) -> Result<Option<ToolSpec>> {
        let e = Self::entry(tool)?;
        let old = self.update(|m| Ok(m.insert(e.name().to_string(), e)))?;
        Ok(old.map(|o| o.spec().clone()))
    }

    /// Remove a tool; `true` if it was there.
    pub fn unregister(&self, name: &str) -> bool {
        if !self.contains(name) {
            return false;
        }
        self.update(|m| Ok(m.remove(name).is_some()))
            .unwrap_or(false)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.inner.tools.load().contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.inner.tools.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Look a tool up; `NotFound` suggests close names. A name longer than any tool's can be
    /// ([`MAX_NAME_LEN`]) fails at once: no hashing of megabytes, no fuzzy matching, and the
    /// error shows only a bounded prefix of it.
    pub fn get(&self, name: &str) -> Result<Arc<Registered>> {
        if name.len() > MAX_NAME_LEN {
            return Err(Error::NotFound {
                name: format!(
                    "{} (longer than the {MAX_NAME_LEN}-byte limit of tool names)",
                    bounded(name, 64)
                ),
                suggestions: Vec::new(),
            });
        }
        let r = self.inner.tools.load();
        match r.get(name) {
            Some(e) => Ok(e.clone()),
            None => Err(Error::NotFound {
                name: bounded(name, MAX_NAME_LEN).into_owned(),
                suggestions: suggestions(name, r.keys()),
            }),
        }
    }

    /// Specs of all tools, sorted by name.
    pub fn specs(&self) -> Vec<ToolSpec> {
        let mut v: Vec<ToolSpec> = self
            .inner
            .tools
            .load()
            .values()
            .map(|e| e.spec().clone())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Call a tool by name with a fresh context.
    pub async fn call(&self, name: &str, args: impl Into<Payload>) -> Result<Payload> {
        self.call_with(name, args.into(), CallContext::new()).await
    }

    /// Start a call on the runtime and return its handle at once. Unknown tools and invalid
    /// arguments fail here; everything else is reported through the handle.
    pub fn spawn(
        &self,
        name: &str,
        args: impl Into<Payload>,
        ctx: CallContext,
    ) -> Result<TaskHandle> {
        let e = self.get(name)?;
        let args = normalize(args.into());
        e.validate_payload(&args)?;
        Ok(e.spawn_prevalidated(args, ctx))
    }

    /// Call a tool by name with JSON in and out.
    pub async fn call_json(&self, name: &str, args: Value) -> Result<Value> {
        self.call(name, args).await?.into_json()
    }

    pub async fn call_with(&self, name: &str, args: Payload, ctx: CallContext) -> Result<Payload> {
        let e = self.get(name)?;
        e.call(normalize(args), ctx).await
    }

    /// Call and wait on the current thread. A sync Python tool runs right here (no thread hop),
    /// so this is the lowest-latency way for a Rust thread to invoke a Python callback.
    pub fn call_blocking(&self, name: &str, args: impl Into<Payload>) -> Result<Payload> {
        self.get(name)?
            .call_blocking(normalize(args.into()), CallContext::new())
    }
}

/// Missing arguments mean "no arguments".
fn normalize(args: Payload) -> Payload {
    match args {
        Payload::Json(Value::Null) => Payload::Json(Value::Object(Default::default())),
        p => p,
    }
}

fn suggestions<'a>(name: &str, names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let lname = name.to_lowercase();
    let max_dist = (lname.chars().count() / 4).max(2);
    let mut scored: Vec<(usize, &String)> = names
        .filter_map(|n| {
            let ln = n.to_lowercase();
            let d = strsim::damerau_levenshtein(&lname, &ln);
            let contains = lname.len() >= 3 && (ln.contains(&lname) || lname.contains(&ln));
            (d <= max_dist || contains).then_some((d, n))
        })
        .collect();
    scored.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().take(3).map(|(_, n)| n.clone()).collect()
}

/// Parse a JSON text of arguments: syntax errors are `InvalidArguments` at `<args_json>`, an
/// integer beyond 64 bits a `Conversion` error at its path under `args`.
pub fn parse_args_json(what: &str, text: &str) -> Result<Value> {
    super::json_text::parse(text, "args")?.map_err(|e| Error::InvalidArguments {
        tool: bounded(what, MAX_NAME_LEN).into_owned(),
        path: "<args_json>".into(),
        message: format!("not valid JSON: {e}"),
    })
}

/// The design note's `RunTool`: JSON text in (empty means `{}`), JSON text out.
pub async fn run_tool(
    registry: &Registry,
    tool_name: &str,
    args_json: &str,
    ctx: CallContext,
) -> Result<String> {
    let args = if args_json.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        parse_args_json(tool_name, args_json)?
    };
    let out = registry
        .call_with(tool_name, Payload::Json(args), ctx)
        .await?
        .into_json()?;
    serde_json::to_string(&out)
        .map_err(|e| Error::tool(tool_name, format!("result is not JSON: {e}")))
}

#[cfg(test)]
mod name_limit_tests {
    use super::*;
    use crate::core::{FnTool, ToolSpec};

    fn noop(name: &str) -> FnTool {
        FnTool::new(ToolSpec::new(name), |_, _| async { Ok(Value::Null) })
    }

    #[test]
    fn over_long_names_are_refused_and_never_fuzzy_matched() {
        let r = Registry::new();
        r.register(noop("echo")).unwrap();
        r.register(noop(&"a".repeat(MAX_NAME_LEN))).unwrap();
        match r.register(noop(&"b".repeat(MAX_NAME_LEN + 1))) {
            Err(Error::Registration(m)) => {
                assert!(m.contains("longer than 256 bytes") && m.len() < 200, "{m}")
            }
            other => panic!("{other:?}"),
        }
        // A 4 MiB name: NotFound at once, no suggestions, a short message.
        let huge = format!("echo{}", "x".repeat(4 << 20));
        match r.get(&huge) {
            Err(e @ Error::NotFound { .. }) => {
                let Error::NotFound { suggestions, .. } = &e else {
                    unreachable!()
                };
                assert!(suggestions.is_empty());
                let m = e.to_string();
                assert!(m.len() < 300 && m.contains("256-byte limit"), "{m}");
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        // Names within the limit still get suggestions, shown printable.
        match r.get("ecoh\n") {
            Err(e) => {
                let m = e.to_string();
                assert!(
                    m.contains("did you mean 'echo'") && m.contains("ecoh\\n"),
                    "{m}"
                );
            }
            Ok(_) => panic!("found"),
        }
    }

    #[test]
    fn big_integers_in_args_json_are_conversion_errors() {
        match parse_args_json("t", r#"{"n": 123456789012345678901234567890}"#) {
            Err(Error::Conversion { path, .. }) => assert_eq!(path, "args.n"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_args_json("t", "{nope"),
            Err(Error::InvalidArguments { .. })
        ));
    }
}
