//! `mount` end to end in Rust: one registry served over streamable HTTP in-process, mounted
//! into another.

use std::time::Duration;

use serde_json::{json, Value};

use super::{mount, Transport};
use crate::core::resources::ResourceSpec;
use crate::core::{CallContext, Error, FnTool, Payload, Registry, ToolSpec};
use crate::mcp::{serve_http, HttpOptions, McpOptions};

async fn upstream() -> (String, tokio::sync::oneshot::Sender<()>) {
    upstream_with(Registry::new()).await
}

async fn upstream_with(reg: Registry) -> (String, tokio::sync::oneshot::Sender<()>) {
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

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..400 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: not reached in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_subscriptions_follow_our_clients() {
    let up = Registry::new();
    for uri in ["r://a", "r://b"] {
        let spec = ResourceSpec {
            uri: uri.into(),
            name: uri.into(),
            description: String::new(),
            mime_type: None,
        };
        let reader = FnTool::sync(ToolSpec::new(format!("resource:{uri}")), |_| Ok(json!("x")));
        up.resources()
            .register(spec, std::sync::Arc::new(reader), false)
            .unwrap();
    }
    let (url, stop) = upstream_with(up.clone()).await;
    let reg = Registry::new();
    let m = mount(&reg, "up", Transport::http(url)).await.unwrap();
    assert_eq!(reg.resources().list().len(), 2);
    let upstream_subs = || up.resources().interest().uris();
    // Two holders of one URI subscribe upstream once; a URI not proxied is not asked for.
    let a1 = reg.resources().interest().hold("r://a");
    let a2 = reg.resources().interest().hold("r://a");
    let other = reg.resources().interest().hold("x://elsewhere");
    eventually("subscribed upstream", || {
        upstream_subs() == vec!["r://a".to_string()]
    })
    .await;
    drop(a1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(upstream_subs(), vec!["r://a".to_string()]);
    drop(a2);
    eventually("unsubscribed upstream", || upstream_subs().is_empty()).await;
    // Reconnecting subscribes the new connection again.
    let b = reg.resources().interest().hold("r://b");
    eventually("b subscribed", || {
        upstream_subs() == vec!["r://b".to_string()]
    })
    .await;
    m.reconnect().await.unwrap();
    // The old session's subscription goes with it; the new connection's replaces it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    eventually("b subscribed after reconnect", || {
        upstream_subs() == vec!["r://b".to_string()]
    })
    .await;
    drop((b, other));
    m.close().await;
    assert!(reg.resources().list().is_empty());
    let _ = stop.send(());
}
