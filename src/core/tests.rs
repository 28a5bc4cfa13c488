//! Core behaviour without Python: tasks, timeouts, cancellation tokens, progress, events.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::events::{self, Event, EventKind};
use super::{CallContext, Error, FnTool, Payload, Progress, Registry, TaskStatus, ToolSpec};

fn registry() -> Registry {
    let r = Registry::new();
    crate::builtin::diag::register(&r).unwrap();
    r
}

/// A tool that waits for its cancellation token and records that it saw it.
fn watcher(flag: Arc<AtomicBool>) -> FnTool {
    FnTool::new(ToolSpec::new("core.watch"), move |_, ctx: CallContext| {
        let flag = flag.clone();
        async move {
            ctx.cancel.cancelled().await;
            flag.store(true, Ordering::SeqCst);
            Ok(Value::Null)
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_cancels_the_token_rust_tools_watch() {
    let r = registry();
    let saw = Arc::new(AtomicBool::new(false));
    r.register(watcher(saw.clone())).unwrap();
    let ctx = CallContext::new().with_timeout(Some(Duration::from_millis(30)));
    match r
        .call_with("core.watch", Payload::Json(json!({})), ctx)
        .await
    {
        Err(Error::Timeout { tool, timeout }) => {
            assert_eq!(tool, "core.watch");
            assert_eq!(timeout, Duration::from_millis(30));
        }
        other => panic!("{other:?}"),
    }
    // The token was cancelled: a tool that spawned work watching it would stop too. This
    // tool's own future was dropped at the deadline, so it never got to set the flag.
    assert!(!saw.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_default_timeout_and_override() {
    let r = Registry::new();
    r.register(FnTool::new(
        ToolSpec::new("core.slow").timeout(Duration::from_millis(20)),
        |_, _| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(Value::Null)
        },
    ))
    .unwrap();
    assert!(matches!(
        r.call_json("core.slow", json!({})).await,
        Err(Error::Timeout { .. })
    ));
    let ctx = CallContext::new().with_timeout(Some(Duration::from_millis(5)));
    match r
        .call_with("core.slow", Payload::Json(json!({})), ctx)
        .await
    {
        Err(Error::Timeout { timeout, .. }) => assert_eq!(timeout, Duration::from_millis(5)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_task_lifecycle_and_cancel() {
    // A concurrent test's runtime::shutdown() would cancel these tasks.
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let r = registry();
    let t = r
        .spawn("diag.sleep", json!({"seconds": 30}), CallContext::new())
        .unwrap();
    assert!(!t.is_done());
    assert!(super::live_tasks().iter().any(|x| x.id() == t.id()));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(t.status(), TaskStatus::Running);
    t.cancel();
    assert!(matches!(t.wait().await, Err(Error::Cancelled { .. })));
    assert_eq!(t.status(), TaskStatus::Cancelled);
    assert!(!super::live_tasks().iter().any(|x| x.id() == t.id()));

    let ok = r
        .spawn("diag.add", json!({"a": 1, "b": 2}), CallContext::new())
        .unwrap();
    assert_eq!(ok.wait().await.unwrap().into_json().unwrap(), json!(3));
    assert_eq!(ok.status(), TaskStatus::Succeeded);
    let frozen = ok.elapsed();
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(ok.elapsed(), frozen);

    let timed = r
        .spawn(
            "diag.sleep",
            json!({"seconds": 30}),
            CallContext::new().with_timeout(Some(Duration::from_millis(10))),
        )
        .unwrap();
    assert!(matches!(timed.wait().await, Err(Error::Timeout { .. })));
    assert_eq!(timed.status(), TaskStatus::TimedOut);

    let failed = r.spawn("diag.fail", json!({}), CallContext::new()).unwrap();
    assert!(failed.wait().await.is_err());
    assert_eq!(failed.status(), TaskStatus::Failed);

    assert!(matches!(
        r.spawn("nope", json!({}), CallContext::new()),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        r.spawn("diag.add", json!({"a": "x", "b": 1}), CallContext::new()),
        Err(Error::InvalidArguments { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks() {
    // A concurrent test's runtime::shutdown() would cancel these tasks.
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let r = registry();
    let tasks: Vec<_> = (0..10_000i64)
        .map(|i| {
            (
                i,
                r.spawn("diag.add", json!({"a": i, "b": i}), CallContext::new())
                    .unwrap(),
            )
        })
        .collect();
    for (i, t) in tasks {
        assert_eq!(t.wait().await.unwrap().into_json().unwrap(), json!(2 * i));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reaches_sink_and_task() {
    // A concurrent test's runtime::shutdown() would cancel these tasks.
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let r = Registry::new();
    r.register(FnTool::new(
        ToolSpec::new("core.steps"),
        |_, ctx: CallContext| async move {
            for i in 1..=3 {
                ctx.report_progress(i as f64, Some(3.0), Some(format!("step {i}")));
            }
            Ok(json!("done"))
        },
    ))
    .unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let sink = Arc::new(move |p: &Progress| g.lock().push(p.done));
    let ctx = CallContext::new().with_progress(Some(sink));
    r.call_with("core.steps", Payload::Json(json!({})), ctx)
        .await
        .unwrap();
    assert_eq!(*got.lock(), vec![1.0, 2.0, 3.0]);
    let t = r
        .spawn("core.steps", json!({}), CallContext::new())
        .unwrap();
    t.wait().await.unwrap();
    assert_eq!(t.progress().unwrap().message.as_deref(), Some("step 3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cover_success_failure_and_panics() {
    let r = registry();
    let seen: Arc<Mutex<Vec<(String, EventKind, bool)>>> = Arc::default();
    let s = seen.clone();
    let id = events::subscribe(
        &[],
        Arc::new(move |e: &Event| {
            if e.tool.starts_with("diag.") && e.call_id > 0 {
                s.lock().push((e.tool.clone(), e.kind, e.error.is_some()));
            }
        }),
    );
    let filter = |v: &[(String, EventKind, bool)], tool: &str| -> Vec<(EventKind, bool)> {
        v.iter()
            .filter(|x| x.0 == tool)
            .map(|x| (x.1, x.2))
            .collect()
    };
    r.call_json("diag.noop", json!({})).await.unwrap();
    let _ = r.call_json("diag.panic", json!({})).await;
    let _ = r.call_blocking("diag.echo", json!({}));
    events::unsubscribe(id);
    let v = seen.lock().clone();
    assert_eq!(
        filter(&v, "diag.noop"),
        vec![(EventKind::Started, false), (EventKind::Finished, false)]
    );
    assert_eq!(
        filter(&v, "diag.panic"),
        vec![(EventKind::Started, false), (EventKind::Failed, true)]
    );
    assert_eq!(
        filter(&v, "diag.echo"),
        vec![(EventKind::Started, false), (EventKind::Finished, false)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_context_follows_parent_cancellation() {
    let parent = CallContext::new();
    let child = parent.child();
    assert_ne!(parent.call_id, child.call_id);
    parent.cancel.cancel();
    assert!(child.is_cancelled());
    let counter = Arc::new(AtomicUsize::new(0));
    let c = counter.clone();
    let sink = Arc::new(move |_: &Progress| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    let p = CallContext::new().with_progress(Some(sink));
    p.child().report_progress(1.0, None, None);
    assert_eq!(counter.load(Ordering::SeqCst), 1);
}

/// RunTool's JSON text: empty text and `null` both mean "no arguments" (the object `{}`), so a
/// tool sees an object either way. (Pinned after the grpc_request fuzz target flagged `null`
/// coming back from an echo as `{}`: intended, now stated.)
#[tokio::test]
async fn run_tool_treats_empty_and_null_as_no_arguments() {
    let r = Registry::new();
    r.register(FnTool::sync(ToolSpec::new("echo"), Ok)).unwrap();
    for text in ["", "  \n", "null", " null "] {
        let out = super::registry::run_tool(&r, "echo", text, CallContext::new()).await;
        assert_eq!(out.unwrap(), "{}", "args_json {text:?}");
    }
    let err = super::registry::run_tool(&r, "echo", "[1]", CallContext::new()).await;
    assert!(
        matches!(err, Err(Error::InvalidArguments { .. })),
        "{err:?}"
    );
}
