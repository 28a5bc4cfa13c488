//! MCP over HTTP for replicas: stateless mode, the health routes beside the endpoint, and the
//! endpoint at any path (the root included) — raw HTTP/1.1, no Python.

use std::net::SocketAddr;

use agent_runtime::mcp::{serve_http, HttpOptions, McpOptions};
use agent_runtime::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

async fn start(path: &str, stateless: bool) -> (SocketAddr, oneshot::Sender<()>) {
    let reg = Registry::new();
    agent_runtime::builtin::diag::register(&reg).unwrap();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let (addr_tx, addr_rx) = oneshot::channel();
    let http = HttpOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        path: path.into(),
        stateless,
        ..Default::default()
    };
    tokio::spawn(serve_http(
        reg,
        http,
        McpOptions::default(),
        move |a| {
            let _ = addr_tx.send(a);
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    (addr_rx.await.unwrap(), stop)
}

async fn request(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: application/json, text/event-stream\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        addr.port(),
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
const CALL: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"diag.add","arguments":{"a":2,"b":3}}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_endpoint_at_any_path_with_health_beside_it() {
    for path in ["/", "/mcp", "/a/b/"] {
        let (addr, stop) = start(path, true).await;
        let init = request(addr, "POST", path, INIT).await;
        assert!(init.starts_with("HTTP/1.1 200"), "{path}: {init}");
        assert!(
            !init.to_ascii_lowercase().contains("mcp-session-id"),
            "{init}"
        );
        // No session: a call without one is answered, as JSON.
        let call = request(addr, "POST", path, CALL).await;
        assert!(call.starts_with("HTTP/1.1 200"), "{path}: {call}");
        assert!(call
            .to_ascii_lowercase()
            .contains("content-type: application/json"));
        assert!(
            call.contains(r#""structuredContent":{"result":5}"#),
            "{call}"
        );
        assert!(request(addr, "GET", "/healthz", "")
            .await
            .starts_with("HTTP/1.1 200"));
        let ready = request(addr, "GET", "/readyz", "").await;
        assert!(
            ready.starts_with("HTTP/1.1 200") && ready.ends_with("ready\n"),
            "{ready}"
        );
        let _ = stop.send(());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateful_by_default_and_health_paths_are_reserved() {
    let (addr, stop) = start("/mcp", false).await;
    let init = request(addr, "POST", "/mcp", INIT).await;
    assert!(
        init.to_ascii_lowercase().contains("mcp-session-id"),
        "{init}"
    );
    let _ = stop.send(());
    for path in ["/healthz", "/readyz/", "/readyz/x"] {
        let http = HttpOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            path: path.into(),
            ..Default::default()
        };
        let err = serve_http(
            Registry::new(),
            http,
            McpOptions::default(),
            |_| {},
            async {},
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("health endpoint"), "{path}: {err}");
    }
}
