//! The MCP server driven by rmcp's own client over an in-memory duplex stream: handshake,
//! tool listing, results, error results, protocol errors, progress, cancellation and
//! `tools/list_changed`. No Python involved.

use std::sync::Arc;
use std::time::Duration;

use agent_runtime::mcp::{McpOptions, McpServer};
use agent_runtime::{CallContext, Error, FnTool, Registry, ToolSpec};
use parking_lot::Mutex;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientRequest, ProgressNotificationParam, ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RoleClient};
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{json, Map, Value};
use tokio::sync::Notify;

/// (progress, total, message) as received.
type Report = (f64, Option<f64>, Option<String>);

#[derive(Default, Clone)]
struct Client {
    progress: Arc<Mutex<Vec<Report>>>,
    list_changed: Arc<Notify>,
}

impl ClientHandler for Client {
    async fn on_progress(
        &self,
        p: ProgressNotificationParam,
        _cx: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().push((p.progress, p.total, p.message));
    }

    async fn on_tool_list_changed(&self, _cx: NotificationContext<RoleClient>) {
        self.list_changed.notify_one();
    }
}

/// The registry under test, and what `wait_cancel` signals once its call was cancelled.
fn registry() -> (Registry, Arc<Notify>) {
    let r = Registry::new();
    let seen = Arc::new(Notify::new());
    let seen2 = seen.clone();
    agent_runtime::builtin::diag::register(&r).unwrap();
    r.register(FnTool::new(
        ToolSpec::new("steps")
            .description("Report progress n times, then return n.")
            .input_schema(json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})),
        |v: Value, ctx: CallContext| async move {
            let n = v["n"].as_u64().unwrap_or(0);
            for i in 1..=n {
                ctx.report_progress(i as f64, Some(n as f64), Some(format!("step {i}")));
            }
            Ok(json!(n))
        },
    ))
    .unwrap();
    r.register(FnTool::new(
        ToolSpec::new("wait_cancel").input_schema(json!({"type": "object"})),
        move |_v: Value, ctx: CallContext| {
            let seen = seen2.clone();
            async move {
                ctx.cancel.cancelled().await;
                seen.notify_one();
                Err::<Value, _>(Error::Cancelled {
                    tool: "wait_cancel".into(),
                })
            }
        },
    ))
    .unwrap();
    (r, seen)
}

fn args(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

async fn connect(
    r: &Registry,
    opts: McpOptions,
) -> (rmcp::service::RunningService<RoleClient, Client>, Client) {
    let (a, b) = tokio::io::duplex(1 << 16);
    let server = McpServer::new(r.clone(), Arc::new(opts));
    tokio::spawn(async move {
        let (rd, wr) = tokio::io::split(b);
        if let Ok(s) = server.serve((rd, wr)).await {
            let _ = s.waiting().await;
        }
    });
    let handler = Client::default();
    let (rd, wr) = tokio::io::split(a);
    let client = handler.clone().serve((rd, wr)).await.expect("handshake");
    (client, handler)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_calls_and_reports_errors() {
    let (r, _) = registry();
    let (client, _) = connect(&r, McpOptions::default()).await;
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("agent-runtime")
    );

    let tools = client.list_all_tools().await.unwrap();
    let add = tools
        .iter()
        .find(|t| t.name == "diag.add")
        .expect("diag.add listed");
    assert_eq!(add.input_schema["type"], "object");
    assert_eq!(add.input_schema["required"], json!(["a", "b"]));
    // A non-object output schema is wrapped so structuredContent can be an object.
    let out = add.output_schema.as_ref().expect("output schema");
    assert_eq!(out["properties"]["result"]["type"], "integer");

    let res = client
        .call_tool(
            CallToolRequestParams::new("diag.add").with_arguments(args(json!({"a": 2, "b": 40}))),
        )
        .await
        .unwrap();
    assert_eq!(res.is_error, Some(false));
    assert_eq!(res.structured_content, Some(json!({"result": 42})));
    assert_eq!(
        res.content[0].as_text().map(|t| t.text.as_str()),
        Some("42")
    );

    // Tool failure: an error result with type and message, not a protocol error.
    let res = client
        .call_tool(
            CallToolRequestParams::new("diag.fail")
                .with_arguments(args(json!({"message": "boom"}))),
        )
        .await
        .unwrap();
    assert_eq!(res.is_error, Some(true));
    // Never structuredContent on an error (clients hold it to the output schema): the detail
    // is in the text and in `_meta`.
    assert!(res.structured_content.is_none());
    let err = &res.meta.as_ref().unwrap().0["agent-runtime/error"];
    assert_eq!(err["type"], "ToolError");
    assert!(err["message"].as_str().unwrap().contains("boom"));

    // Bad arguments name the field.
    let res = client
        .call_tool(
            CallToolRequestParams::new("diag.add").with_arguments(args(json!({"a": "x", "b": 1}))),
        )
        .await
        .unwrap();
    assert_eq!(res.is_error, Some(true));
    let err = &res.meta.as_ref().unwrap().0["agent-runtime/error"];
    assert_eq!(err["type"], "InvalidArguments");
    assert_eq!(err["path"], "a");

    // A panicking tool is an error result, and the server keeps serving.
    let res = client
        .call_tool(CallToolRequestParams::new("diag.panic").with_arguments(args(json!({}))))
        .await
        .unwrap();
    assert_eq!(res.is_error, Some(true));

    // Unknown tool: a protocol error naming the tool (with a suggestion).
    let e = client
        .call_tool(CallToolRequestParams::new("diag.ad").with_arguments(args(json!({}))))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("diag.ad") && msg.contains("diag.add"), "{msg}");

    let res = client
        .call_tool(
            CallToolRequestParams::new("diag.echo").with_arguments(args(json!({"x": [1, 2]}))),
        )
        .await
        .unwrap();
    assert_eq!(res.structured_content, Some(json!({"x": [1, 2]})));
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_results_are_truncated_with_a_marker() {
    let (r, _) = registry();
    let opts = McpOptions {
        max_result_bytes: 100,
        ..Default::default()
    };
    let (client, _) = connect(&r, opts).await;
    let big = "x".repeat(1000);
    let res = client
        .call_tool(CallToolRequestParams::new("diag.echo").with_arguments(args(json!({"s": big}))))
        .await
        .unwrap();
    let text = &res.content[0].as_text().unwrap().text;
    assert!(
        text.contains("[truncated: result of tool 'diag.echo' is 1008 bytes"),
        "{text}"
    );
    assert!(res.structured_content.is_none());
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_cancellation_and_list_changes() {
    let (r, cancelled) = registry();
    let (client, handler) = connect(&r, McpOptions::default()).await;

    let req = ClientRequest::CallToolRequest(CallToolRequest::new(
        CallToolRequestParams::new("steps").with_arguments(args(json!({"n": 3}))),
    ));
    let h = client
        .send_request_with_option(req, PeerRequestOptions::no_options())
        .await
        .unwrap();
    let resp = h.await_response().await.unwrap();
    assert!(matches!(resp, ServerResult::CallToolResult(_)));
    // Notifications are sent before the response, but handled asynchronously by the client
    // (bounded at 10 s: a loaded machine can take a while).
    for _ in 0..1000 {
        if handler.progress.lock().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // rmcp's client runs each notification's handler in its own task, so they may land here
    // in any order (the server sends them in order over one stream): compare sorted.
    let mut got = handler.progress.lock().clone();
    got.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(
        got,
        vec![
            (1.0, Some(3.0), Some("step 1".into())),
            (2.0, Some(3.0), Some("step 2".into())),
            (3.0, Some(3.0), Some("step 3".into())),
        ]
    );

    // notifications/cancelled reaches the tool's cancel token.
    let req = ClientRequest::CallToolRequest(CallToolRequest::new(
        CallToolRequestParams::new("wait_cancel").with_arguments(args(json!({}))),
    ));
    let h = client
        .send_request_with_option(req, PeerRequestOptions::no_options())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.cancel(Some("test".into())).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), cancelled.notified())
        .await
        .expect("the tool saw its cancel token fire after notifications/cancelled");

    // Registering a tool at runtime notifies the session.
    r.register(FnTool::sync(ToolSpec::new("late"), |_| Ok(json!(1))))
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), handler.list_changed.notified())
        .await
        .expect("tools/list_changed after register");
    assert!(client
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .any(|t| t.name == "late"));
    assert!(r.unregister("late"));
    tokio::time::timeout(Duration::from_secs(10), handler.list_changed.notified())
        .await
        .expect("tools/list_changed after unregister");
    client.cancel().await.unwrap();
}

type RawWriter = tokio::io::WriteHalf<tokio::io::DuplexStream>;
type RawLines =
    tokio::io::Lines<tokio::io::BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>>;
type ServerTask = tokio::task::JoinHandle<agent_runtime::Result<()>>;

/// The server on `LineTransport` over a duplex pipe, driven with raw lines (what the official
/// clients cannot send). Returns the client's ends: write lines, read answers.
fn raw_server(r: &Registry, max_line: usize) -> (RawWriter, RawLines, ServerTask) {
    use tokio::io::AsyncBufReadExt;
    let (a, b) = tokio::io::duplex(1 << 16);
    let (srd, swr) = tokio::io::split(b);
    let transport = agent_runtime::mcp::LineTransport::new(srd, swr, max_line);
    let server = tokio::spawn(agent_runtime::mcp::serve_transport(
        r.clone(),
        McpOptions::default(),
        transport,
        std::future::pending(),
    ));
    let (crd, cwr) = tokio::io::split(a);
    (cwr, tokio::io::BufReader::new(crd).lines(), server)
}

async fn answer<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut tokio::io::Lines<R>) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("an answer within 10 s")
        .unwrap()
        .expect("a line");
    serde_json::from_str(&line).unwrap()
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}
{"jsonrpc":"2.0","method":"notifications/initialized"}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_line_is_answered_and_serving_goes_on() {
    use tokio::io::AsyncWriteExt;
    let (r, _) = registry();
    let (mut w, mut lines, _server) = raw_server(&r, 4096);
    w.write_all(INIT.as_bytes()).await.unwrap();
    assert_eq!(answer(&mut lines).await["id"], 0);
    let long = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\",\"p\":\"{}\"}}\n",
        "x".repeat(10_000)
    );
    let cases: Vec<(String, i64, Value)> = vec![
        ("not json\n".into(), -32700, Value::Null),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"diag.add","arguments":[1]}}"#.to_string() + "\n",
            -32602,
            json!(1),
        ),
        (
            r#"{"jsonrpc":"2.0","id":"s","method":"tools/call"}"#.to_string() + "\n",
            -32602,
            json!("s"),
        ),
        (r#"{"jsonrpc":"2.0","id":2,"method":"x/y"}"#.to_string() + "\n", -32601, json!(2)),
        (r#"[{"jsonrpc":"2.0","id":3,"method":"ping"}]"#.to_string() + "\n", -32600, Value::Null),
        (long, -32600, Value::Null),
    ];
    for (line, code, id) in cases {
        w.write_all(line.as_bytes()).await.unwrap();
        let a = answer(&mut lines).await;
        assert_eq!(
            (a["error"]["code"].as_i64(), &a["id"]),
            (Some(code), &id),
            "{a}"
        );
    }
    w.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"diag.add\",\"arguments\":{\"a\":1,\"b\":2}}}\n")
        .await
        .unwrap();
    let a = answer(&mut lines).await;
    assert_eq!(a["id"], 4);
    assert_eq!(a["result"]["structuredContent"], json!({"result": 3}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_of_input_cancels_running_calls() {
    use tokio::io::AsyncWriteExt;
    let (r, cancelled) = registry();
    let (mut w, mut lines, server) = raw_server(&r, 1 << 20);
    w.write_all(INIT.as_bytes()).await.unwrap();
    assert_eq!(answer(&mut lines).await["id"], 0);
    w.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"wait_cancel\"}}\n")
        .await
        .unwrap();
    w.flush().await.unwrap();
    // Give the call time to start, then hang up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    w.shutdown().await.unwrap();
    drop(w);
    tokio::time::timeout(Duration::from_secs(10), cancelled.notified())
        .await
        .expect("the tool saw its cancel token");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server ends after its input")
        .unwrap()
        .unwrap();
}
