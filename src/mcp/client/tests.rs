//! `mount` end to end in Rust: one registry served over streamable HTTP in-process, mounted
//! into another.

use std::time::Duration;

use serde_json::{json, Value};

use super::{mount, Transport};
use crate::core::{CallContext, Error, FnTool, Payload, Registry, ToolSpec};
use crate::mcp::{serve_http, HttpOptions, McpOptions};

async fn upstream() -> (String, tokio::sync::oneshot::Sender<()>) {
    let reg = Registry::new();
    let add = ToolSpec::new("add").input_schema(json!({
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"]
    }));
    reg.register(FnTool::sync(add, |v| {
        Ok(json!(
            v["a"].as_i64().unwrap_or(0) + v["b"].as_i64().unwrap_or(0)
        ))
    }))
    .unwrap();
    reg.register(FnTool::new(
        ToolSpec::new("sleep"),
        |_, ctx: CallContext| async move {
            ctx.cancel.cancelled().await;
            Ok(Value::Null)
        },
    ))
    .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let http = HttpOptions {
        addr: ([127, 0, 0, 1], 0).into(),
        ..Default::default()
    };
    tokio::spawn(async move {
        let _ = serve_http(
            reg,
            http,
            McpOptions::default(),
            move |a| {
                let _ = addr_tx.send(a);
            },
            async move {
                let _ = rx.await;
            },
        )
        .await;
    });
    let addr = addr_rx.await.unwrap();
    (format!("http://{addr}/mcp"), tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_calls_validates_times_out_and_refuses_collisions() {
    let (url, stop) = upstream().await;
    let reg = Registry::new();
    let m = mount(&reg, "up", Transport::http(url.clone()))
        .await
        .unwrap();
    assert_eq!(
        m.tools(),
        vec!["up.add".to_string(), "up.sleep".to_string()]
    );
    let out = reg
        .call_json("up.add", json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    // Our server gives a non-object result as structuredContent {"result": ...}.
    assert_eq!(out, json!({"result": 42}));
    match reg.call_json("up.add", json!({"a": "x", "b": 1})).await {
        Err(Error::InvalidArguments { path, .. }) => assert_eq!(path, "a"),
        other => panic!("{other:?}"),
    }
    let ctx = CallContext::new().with_timeout(Some(Duration::from_millis(200)));
    match reg
        .call_with("up.sleep", Payload::Json(json!({})), ctx)
        .await
    {
        Err(Error::Timeout { .. }) => {}
        other => panic!("{other:?}"),
    }
    match mount(&reg, "up", Transport::http(url)).await {
        Err(Error::Registration(msg)) => {
            assert!(msg.contains("'up.add' of MCP server 'up'"), "{msg}")
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    m.close().await;
    assert!(reg.is_empty());
    let _ = stop.send(());
}
