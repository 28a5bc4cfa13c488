//! Call lifecycle events (`tool.started`, `tool.finished`, `tool.failed`) for observers in Rust
//! and Python. Emission costs one atomic load when nobody listens.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::sync::LazyLock;

use super::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Started,
    Finished,
    Failed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Started => "tool.started",
            EventKind::Finished => "tool.finished",
            EventKind::Failed => "tool.failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tool.started" => Some(EventKind::Started),
            "tool.finished" => Some(EventKind::Finished),
            "tool.failed" => Some(EventKind::Failed),
            _ => None,
        }
    }
}

/// One lifecycle event of one call.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub tool: String,
    pub call_id: u64,
    /// Time since the call started (zero for `Started`).
    pub duration: Duration,
    /// For `Failed`: the error.
    pub error: Option<Error>,
}

pub type Listener = Arc<dyn Fn(&Event) + Send + Sync>;

struct Sub {
    id: u64,
    kinds: Vec<EventKind>,
    f: Listener,
}

static ACTIVE: AtomicBool = AtomicBool::new(false);
static NEXT: AtomicU64 = AtomicU64::new(1);
static SUBS: LazyLock<ArcSwap<Vec<Arc<Sub>>>> = LazyLock::new(Default::default);
static WRITE: Mutex<()> = Mutex::new(());

/// Subscribe `f` to the given kinds (all kinds when empty). Returns an id for [`unsubscribe`].
/// Listeners run synchronously on the thread that emits, so they should be quick; a panicking
/// listener is logged and skipped.
pub fn subscribe(kinds: &[EventKind], f: Listener) -> u64 {
    let _w = WRITE.lock();
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut v = (**SUBS.load()).clone();
    v.push(Arc::new(Sub {
        id,
        kinds: kinds.to_vec(),
        f,
    }));
    ACTIVE.store(true, Ordering::Release);
    SUBS.store(Arc::new(v));
    id
}

/// Remove a listener; true if it was subscribed.
pub fn unsubscribe(id: u64) -> bool {
    let _w = WRITE.lock();
    let mut v = (**SUBS.load()).clone();
    let before = v.len();
    v.retain(|s| s.id != id);
    ACTIVE.store(!v.is_empty(), Ordering::Release);
    let removed = v.len() != before;
    SUBS.store(Arc::new(v));
    removed
}

/// Whether anybody listens (lets hot paths skip building events).
#[inline]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

pub fn emit(e: &Event) {
    if !active() {
        return;
    }
    for s in SUBS.load().iter() {
        if s.kinds.is_empty() || s.kinds.contains(&e.kind) {
            if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (s.f)(e))) {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                log::error!("event listener for {} panicked: {msg}", e.kind.as_str());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_filter_unsubscribe() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        // Other tests emit concurrently: only count this test's tool.
        let id = subscribe(
            &[EventKind::Failed],
            Arc::new(move |e: &Event| {
                if e.tool == "events-test" {
                    s2.lock().push(e.call_id)
                }
            }),
        );
        let ev = |kind, call_id| Event {
            kind,
            tool: "events-test".into(),
            call_id,
            duration: Duration::ZERO,
            error: None,
        };
        emit(&ev(EventKind::Started, 1));
        emit(&ev(EventKind::Failed, 2));
        let bad = subscribe(&[], Arc::new(|_: &Event| panic!("listener bug")));
        emit(&ev(EventKind::Failed, 3));
        assert!(unsubscribe(bad));
        assert!(unsubscribe(id));
        assert!(!unsubscribe(id));
        emit(&ev(EventKind::Failed, 4));
        assert_eq!(*seen.lock(), vec![2, 3]);
    }
}
