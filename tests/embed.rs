//! Rust embedding Python: import a module whose import registers tools, then call those tools
//! from many tokio tasks at once, with errors carrying Python's type, message and traceback.

use std::path::PathBuf;
use std::sync::Once;

use agent_runtime::{Error, Registry};
use pyo3::prelude::*;
use serde_json::json;

static INIT: Once = Once::new();

fn init() {
    INIT.call_once(|| {
        Python::initialize();
        Python::attach(|py| -> PyResult<()> {
            agent_runtime::install_embedded(py)?;
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let path = py.import("sys")?.getattr("path")?;
            path.call_method1(
                "insert",
                (0, root.join("python").to_string_lossy().to_string()),
            )?;
            path.call_method1(
                "insert",
                (0, root.join("tests").to_string_lossy().to_string()),
            )?;
            py.import("sample_tools")?;
            Ok(())
        })
        .unwrap_or_else(|e| panic!("embedding setup failed: {e}"));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_tools_registered_at_import_are_callable_from_rust() {
    init();
    let reg = Registry::global();
    assert!(reg.contains("add") && reg.contains("async_add") && reg.contains("diag.call"));
    assert_eq!(
        reg.call_json("add", json!({"a": 40, "b": 2}))
            .await
            .unwrap(),
        json!(42)
    );
    assert_eq!(
        reg.call_json("async_add", json!({"a": 1, "b": 2}))
            .await
            .unwrap(),
        json!(3)
    );
    assert_eq!(
        reg.call_json("sample.greet", json!({"name": "rust"}))
            .await
            .unwrap(),
        json!("hello rust")
    );
    let spec = reg.get("add").unwrap().spec().clone();
    assert_eq!(spec.input_schema["required"], json!(["a"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_exceptions_reach_rust_with_type_message_and_traceback() {
    init();
    let reg = Registry::global();
    match reg.call_json("fail", json!({"message": "from rust"})).await {
        Err(Error::Python {
            type_name,
            message,
            traceback,
            original,
        }) => {
            assert_eq!(type_name, "ValueError");
            assert_eq!(message, "from rust");
            let tb = traceback.expect("traceback");
            assert!(
                tb.contains("raise ValueError(message)") && tb.contains("sample_tools.py"),
                "{tb}"
            );
            assert!(original.is_some());
        }
        other => panic!("{other:?}"),
    }
    match reg.call_json("async_fail", json!({})).await {
        Err(Error::Python { type_name, .. }) => assert_eq!(type_name, "KeyError"),
        other => panic!("{other:?}"),
    }
    match reg.call_json("add", json!({"a": "x"})).await {
        Err(Error::InvalidArguments { path, .. }) => assert_eq!(path, "a"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_from_tokio_tasks() {
    init();
    let reg = Registry::global().clone();
    let mut handles = Vec::new();
    for i in 0..400i64 {
        let reg = reg.clone();
        handles.push(tokio::spawn(async move {
            let name = match i % 4 {
                0 => "add",
                1 => "async_add",
                2 => "diag.add",
                _ => "diag.call",
            };
            let args = if name == "diag.call" {
                json!({"name": "async_add", "args": {"a": i, "b": 1}})
            } else {
                json!({"a": i, "b": 1})
            };
            (i, reg.call_json(name, args).await)
        }));
    }
    for h in handles {
        let (i, r) = h.await.unwrap();
        assert_eq!(r.unwrap(), json!(i + 1), "call {i}");
    }
}

#[test]
fn blocking_calls_from_plain_threads() {
    init();
    let threads: Vec<_> = (0..8i64)
        .map(|t| {
            std::thread::spawn(move || {
                for j in 0..200i64 {
                    let v = Registry::global()
                        .call_blocking("add", json!({"a": t, "b": j}))
                        .unwrap()
                        .into_json()
                        .unwrap();
                    assert_eq!(v, json!(t + j));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let v = Registry::global()
        .call_blocking("async_add", json!({"a": 2, "b": 2}))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(v, json!(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_rust_future_cancels_the_python_coroutine() {
    init();
    Python::attach(|py| {
        py.run(
            cr#"
import asyncio, agent_runtime
state = {"started": 0, "cancelled": 0}

@agent_runtime.tool(name="embed.slow")
async def slow() -> None:
    state["started"] += 1
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        state["cancelled"] += 1
        raise
import builtins
builtins._embed_state = state
"#,
            None,
            None,
        )
        .unwrap();
    });
    let reg = Registry::global().clone();
    let r = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        reg.call("embed.slow", json!({})),
    )
    .await;
    assert!(r.is_err(), "should have timed out");
    // The cancellation is delivered to the loop thread; wait for it to be observed.
    let mut cancelled = 0;
    for _ in 0..100 {
        cancelled = Python::attach(|py| {
            py.eval(
                c"__import__('builtins')._embed_state['cancelled']",
                None,
                None,
            )
            .unwrap()
            .extract::<i64>()
            .unwrap()
        });
        if cancelled == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(cancelled, 1);
}
