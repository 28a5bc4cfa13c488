//! The Rust gRPC client against the server, in one process (no Python needed).

use std::net::SocketAddr;
use std::time::Duration;

use agent_runtime::grpc::{serve, Client, ClientError, ServeOptions};
use agent_runtime::Registry;
use serde_json::json;
use tokio::sync::oneshot;

async fn start(
    token: Option<&str>,
    port: u16,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<agent_runtime::Result<()>>,
) {
    let reg = Registry::new();
    agent_runtime::builtin::diag::register(&reg).unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (addr_tx, addr_rx) = oneshot::channel();
    let opts = ServeOptions {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        token: token.map(String::from),
        ..Default::default()
    };
    let h = tokio::spawn(async move {
        serve(
            reg,
            None,
            opts,
            move |a| {
                let _ = addr_tx.send(a);
            },
            async move {
                let _ = stop_rx.await;
            },
        )
        .await
    });
    (addr_rx.await.unwrap(), stop_tx, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_tool_results_errors_and_timeouts() {
    let (addr, stop, h) = start(None, 0).await;
    let c = Client::connect(&addr.to_string()).await.unwrap();
    assert_eq!(
        c.run_tool("diag.add", &json!({"a": 2, "b": 3}))
            .await
            .unwrap(),
        json!(5)
    );
    assert_eq!(c.run_tool_json("diag.noop", "").await.unwrap(), "null");
    match c.run_tool("nope", &json!({})).await {
        Err(ClientError::Status(s)) => assert_eq!(s.code(), tonic::Code::NotFound),
        other => panic!("{other:?}"),
    }
    match c.run_tool_json("diag.add", "{oops").await {
        Err(ClientError::Status(s)) => assert_eq!(s.code(), tonic::Code::InvalidArgument),
        other => panic!("{other:?}"),
    }
    match c.run_tool("diag.fail", &json!({"message": "no"})).await {
        Err(ClientError::Remote(e)) => assert_eq!(e, "ToolError: diag.fail: no"),
        other => panic!("{other:?}"),
    }
    let quick = c.clone().with_timeout(Duration::from_millis(100));
    match quick.run_tool("diag.sleep", &json!({"seconds": 10})).await {
        Err(ClientError::Status(s)) => assert_eq!(s.code(), tonic::Code::DeadlineExceeded),
        other => panic!("{other:?}"),
    }
    // Without the Python host, RunFunction/RunScript are UNIMPLEMENTED.
    match c.run_function("m", "f", &[]).await {
        Err(ClientError::Status(s)) => assert_eq!(s.code(), tonic::Code::Unimplemented),
        other => panic!("{other:?}"),
    }
    // Many at once.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..200i64 {
        let c = c.clone();
        set.spawn(async move { (i, c.run_tool("diag.add", &json!({"a": i, "b": i})).await) });
    }
    while let Some(r) = set.join_next().await {
        let (i, v) = r.unwrap();
        assert_eq!(v.unwrap(), json!(2 * i));
    }
    stop.send(()).unwrap();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth() {
    let (addr, stop, h) = start(Some("tok"), 0).await;
    let c = Client::connect(&addr.to_string()).await.unwrap();
    match c.run_tool("diag.noop", &json!({})).await {
        Err(ClientError::Status(s)) => assert_eq!(s.code(), tonic::Code::Unauthenticated),
        other => panic!("{other:?}"),
    }
    let c = c.with_token("tok");
    assert_eq!(
        c.run_tool("diag.noop", &json!({})).await.unwrap(),
        json!(null)
    );
    stop.send(()).unwrap();
    h.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_unavailable_until_the_server_is_up() {
    // Reserve a free port, release it, and start the server there a little later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = Client::connect_lazy(&format!("127.0.0.1:{port}"))
        .unwrap()
        .with_retries(6);
    let server = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        start(None, port).await
    });
    assert_eq!(
        c.run_tool("diag.add", &json!({"a": 1, "b": 1}))
            .await
            .unwrap(),
        json!(2)
    );
    let (_, stop, h) = server.await.unwrap();
    stop.send(()).unwrap();
    h.await.unwrap().unwrap();
    // No retries: UNAVAILABLE surfaces.
    let dead = Client::connect_lazy(&format!("127.0.0.1:{port}"))
        .unwrap()
        .with_retries(0);
    match dead.run_tool("diag.noop", &json!({})).await {
        Err(ClientError::Status(s)) => assert_eq!(s.code(), tonic::Code::Unavailable),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_numbers_and_tokens() {
    let (addr, stop, h) = start(Some("tok"), 0).await;
    let anon = Client::connect(&addr.to_string()).await.unwrap();
    // Missing and wrong tokens: the same status, the same message.
    let mut answers = Vec::new();
    for c in [anon.clone(), anon.clone().with_token("nope")] {
        match c.run_tool("diag.noop", &json!({})).await {
            Err(ClientError::Status(s)) => answers.push((s.code(), s.message().to_string())),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, tonic::Code::Unauthenticated);

    let c = anon.with_token("tok");
    // A 3 MiB unknown name: NOT_FOUND with a short message (not RESOURCE_EXHAUSTED).
    let huge = "n".repeat(3 << 20);
    match c.run_tool_json(&huge, "{}").await {
        Err(ClientError::Status(s)) => {
            assert_eq!(s.code(), tonic::Code::NotFound);
            assert!(s.message().len() < 1000, "{}", s.message().len());
        }
        other => panic!("{other:?}"),
    }
    // Integers beyond 64 bits: INVALID_ARGUMENT naming the path, never a float.
    match c
        .run_tool_json("diag.echo", r#"{"value": 123456789012345678901234567890}"#)
        .await
    {
        Err(ClientError::Status(s)) => {
            assert_eq!(s.code(), tonic::Code::InvalidArgument);
            assert!(s.message().contains("args.value"), "{}", s.message());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.run_tool_json("diag.echo", r#"{"value": 18446744073709551615}"#)
            .await
            .unwrap(),
        r#"{"value":18446744073709551615}"#
    );
    // 100k-deep nesting: a clean INVALID_ARGUMENT.
    let deep = format!(
        r#"{{"value": {}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    match c.run_tool_json("diag.echo", &deep).await {
        Err(ClientError::Status(s)) => assert_eq!(s.code(), tonic::Code::InvalidArgument),
        other => panic!("{other:?}"),
    }
    stop.send(()).unwrap();
    h.await.unwrap().unwrap();
}
