//! Spawned calls: handles to await, poll, cancel and list tool calls running on tokio.

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustc_hash::FxHashMap as HashMap;
use tokio::sync::Notify;

use super::error::{Error, Result};
use super::payload::Payload;
use super::tool::{CallContext, Progress};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    TimedOut,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::TimedOut => "timed_out",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, TaskStatus::Pending | TaskStatus::Running)
    }
}

struct Times {
    status: TaskStatus,
    created: Instant,
    finished: Option<Instant>,
}

type DoneCallback = Box<dyn FnOnce(&Result<Payload>) + Send>;

struct State {
    id: u64,
    tool: String,
    times: Mutex<Times>,
    result: OnceLock<Result<Payload>>,
    done: Notify,
    ctx: CallContext,
    progress: Mutex<Option<Progress>>,
    output_schema: Option<serde_json::Value>,
    /// Run once, on the thread that completes the task (see [`TaskHandle::on_done`]).
    callbacks: Mutex<Vec<DoneCallback>>,
}

/// A spawned call. Cloning shares the task.
#[derive(Clone)]
pub struct TaskHandle(Arc<State>);

static LIVE: LazyLock<Mutex<HashMap<u64, TaskHandle>>> = LazyLock::new(|| {
    super::runtime::on_shutdown(super::runtime::ShutdownPhase::CancelTasks, |_| cancel_all());
    Default::default()
});

impl TaskHandle {
    /// Create the handle for a call about to be spawned with `ctx`; progress reports are
    /// recorded on the task and then forwarded to `ctx`'s own sink.
    pub(crate) fn new(
        tool: &str,
        output_schema: Option<serde_json::Value>,
        mut ctx: CallContext,
    ) -> (TaskHandle, CallContext) {
        let state = Arc::new_cyclic(|weak: &std::sync::Weak<State>| {
            let forward = ctx.progress.take();
            let weak = weak.clone();
            ctx.progress = Some(Arc::new(move |p: &Progress| {
                if let Some(s) = weak.upgrade() {
                    *s.progress.lock() = Some(p.clone());
                }
                if let Some(f) = &forward {
                    f(p);
                }
            }));
            State {
                id: ctx.call_id,
                tool: tool.to_string(),
                times: Mutex::new(Times {
                    status: TaskStatus::Pending,
                    created: Instant::now(),
                    finished: None,
                }),
                result: OnceLock::new(),
                done: Notify::new(),
                ctx: ctx.clone(),
                progress: Mutex::new(None),
                output_schema,
                callbacks: Mutex::new(Vec::new()),
            }
        });
        let h = TaskHandle(state);
        LIVE.lock().insert(h.id(), h.clone());
        (h, ctx)
    }

    pub(crate) fn set_running(&self) {
        let mut t = self.0.times.lock();
        if t.status == TaskStatus::Pending {
            t.status = TaskStatus::Running;
        }
    }

    pub(crate) fn complete(&self, r: Result<Payload>) {
        let status = match &r {
            Ok(_) => TaskStatus::Succeeded,
            Err(Error::Cancelled { .. }) => TaskStatus::Cancelled,
            Err(Error::Timeout { .. }) => TaskStatus::TimedOut,
            Err(_) => TaskStatus::Failed,
        };
        if self.0.result.set(r).is_ok() {
            let mut t = self.0.times.lock();
            t.status = status;
            t.finished = Some(Instant::now());
        }
        LIVE.lock().remove(&self.id());
        self.0.done.notify_waiters();
        let callbacks = std::mem::take(&mut *self.0.callbacks.lock());
        if let Some(r) = self.0.result.get() {
            for f in callbacks {
                f(r);
            }
        }
    }

    /// Run `f` with the result when the task finishes (right away if it has), on the thread
    /// that finishes it. Cheaper than a waiting future when the consumer lives elsewhere (an
    /// asyncio loop): no extra task, no extra wake-up.
    pub fn on_done(&self, f: impl FnOnce(&Result<Payload>) + Send + 'static) {
        {
            let mut cbs = self.0.callbacks.lock();
            if self.0.result.get().is_none() {
                cbs.push(Box::new(f));
                return;
            }
        }
        if let Some(r) = self.0.result.get() {
            f(r);
        }
    }

    pub fn id(&self) -> u64 {
        self.0.id
    }

    pub fn tool(&self) -> &str {
        &self.0.tool
    }

    pub fn status(&self) -> TaskStatus {
        self.0.times.lock().status
    }

    pub fn is_done(&self) -> bool {
        self.0.result.get().is_some()
    }

    /// Time since spawn, frozen when the task finishes.
    pub fn elapsed(&self) -> Duration {
        let t = self.0.times.lock();
        t.finished.unwrap_or_else(Instant::now) - t.created
    }

    /// The tool's output schema (lets boundaries rebuild bytes etc. in the result).
    pub fn output_schema(&self) -> Option<&serde_json::Value> {
        self.0.output_schema.as_ref()
    }

    /// The call's cancellation token.
    pub fn cancel_token(&self) -> crate::core::CancelToken {
        self.0.ctx.cancel.clone()
    }

    /// The latest progress report, if any.
    pub fn progress(&self) -> Option<Progress> {
        self.0.progress.lock().clone()
    }

    /// Request cancellation: the call's token is cancelled, the task finishes as `Cancelled`
    /// (a sync Python callback already running carries on in its thread; its result is dropped).
    pub fn cancel(&self) {
        self.0.ctx.cancel.cancel();
    }

    /// The result if finished.
    pub fn try_result(&self) -> Option<Result<Payload>> {
        self.0.result.get().cloned()
    }

    /// Wait for the result.
    pub async fn wait(&self) -> Result<Payload> {
        loop {
            let notified = self.0.done.notified();
            if let Some(r) = self.0.result.get() {
                return r.clone();
            }
            notified.await;
        }
    }
}

/// Tasks spawned and not yet finished, oldest first.
pub fn live_tasks() -> Vec<TaskHandle> {
    let mut v: Vec<TaskHandle> = LIVE.lock().values().cloned().collect();
    v.sort_by_key(|t| t.id());
    v
}

/// Cancel every live task (a runtime shutdown hook).
pub fn cancel_all() {
    for t in live_tasks() {
        t.cancel();
    }
}
