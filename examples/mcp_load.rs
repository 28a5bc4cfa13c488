//! Load generator for an MCP streamable-HTTP server (ours or any other): `CALLS` `tools/call`
//! requests spread over `CONNECTIONS` clients, each rmcp's own client with its own HTTP
//! connection pool, calling one at a time (so each keeps one connection alive and busy).
//!
//! Every result is compared with the expected value (as `structuredContent`, bare or wrapped
//! as `{"result": ...}` the way Python SDK servers wrap a dict); failures and mismatches count
//! as errors. Prints one JSON line:
//! `{"calls":..,"errors":..,"connections":..,"secs":..,"per_sec":..,"median_us":..,"p99_us":..}`
//! where the latencies are per request, measured by the client around each call.
//!
//! Usage: `mcp_load URL TOOL ARGS_JSON CALLS CONNECTIONS [EXPECTED_JSON]`
//!
//! `EXPECTED_JSON` defaults to the `value` field of `ARGS_JSON` (the `echo(value) -> value`
//! contract).
//!
//! Run: `cargo run --release --example mcp_load --features mcp-load -- \
//!   http://127.0.0.1:8000/mcp echo '{"value": {"k": "v", "n": 1}}' 10000 64`

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{json, Map, Value};

/// Longest a single call may take before it counts as an error (keeps the run bounded).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

struct Args {
    url: String,
    tool: String,
    arguments: Map<String, Value>,
    calls: u64,
    connections: u64,
    expected: Value,
}

fn parse_args() -> Result<Args, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.len() != 5 && argv.len() != 6 {
        return Err(
            "usage: mcp_load URL TOOL ARGS_JSON CALLS CONNECTIONS [EXPECTED_JSON]".to_string(),
        );
    }
    let arguments = match serde_json::from_str(&argv[2]) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err("ARGS_JSON must be a JSON object".to_string()),
        Err(e) => return Err(format!("ARGS_JSON is not JSON: {e}")),
    };
    let expected = match argv.get(5) {
        Some(text) => {
            serde_json::from_str(text).map_err(|e| format!("EXPECTED_JSON is not JSON: {e}"))?
        }
        None => arguments
            .get("value")
            .cloned()
            .ok_or("ARGS_JSON has no \"value\" field: pass EXPECTED_JSON")?,
    };
    let calls: u64 = argv[3]
        .parse()
        .map_err(|e| format!("CALLS must be a positive integer: {e}"))?;
    let connections: u64 = argv[4]
        .parse()
        .map_err(|e| format!("CONNECTIONS must be a positive integer: {e}"))?;
    if calls == 0 || connections == 0 {
        return Err("CALLS and CONNECTIONS must be at least 1".to_string());
    }
    Ok(Args {
        url: argv[0].clone(),
        tool: argv[1].clone(),
        arguments,
        calls,
        connections: connections.min(calls),
        expected,
    })
}

type Client = RunningService<RoleClient, ()>;

async fn connect(url: &str) -> Result<Client, String> {
    let transport = StreamableHttpClientTransport::from_uri(url);
    ().serve(transport)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))
}

/// One call: `Ok` when it returned the expected value, else what it returned.
async fn call(
    client: &Client,
    params: &CallToolRequestParams,
    expected: &Value,
) -> Result<(), String> {
    let r = tokio::time::timeout(CALL_TIMEOUT, client.call_tool(params.clone()))
        .await
        .map_err(|_| format!("no answer within {CALL_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    if r.is_error == Some(true) {
        return Err(format!("error result: {:?}", r.content));
    }
    let got = r.structured_content.unwrap_or(Value::Null);
    let wrapped = json!({ "result": expected });
    if got == *expected || got == wrapped {
        Ok(())
    } else {
        Err(format!("unexpected result: {got}"))
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1e3
}

async fn run(a: Args) -> Result<Value, String> {
    let params = Arc::new(CallToolRequestParams::new(a.tool.clone()).with_arguments(a.arguments));
    let expected = Arc::new(a.expected);
    // Connect every client (and warm its connection up) outside the timing.
    let mut clients = Vec::new();
    for _ in 0..a.connections {
        let c = connect(&a.url).await?;
        call(&c, &params, &expected)
            .await
            .map_err(|e| format!("warmup call of {}: {e}", a.tool))?;
        clients.push(c);
    }
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for client in clients {
        let (params, expected) = (params.clone(), expected.clone());
        let (next, errors) = (next.clone(), errors.clone());
        let calls = a.calls;
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let mut first_error = None;
            // Each client takes call numbers until all `calls` are handed out.
            while next.fetch_add(1, Ordering::Relaxed) < calls {
                let t = Instant::now();
                let r = call(&client, &params, &expected).await;
                latencies.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
                if let Err(e) = r {
                    errors.fetch_add(1, Ordering::Relaxed);
                    first_error.get_or_insert(e);
                }
            }
            let _ = client.cancel().await;
            (latencies, first_error)
        });
    }
    let mut all = Vec::new();
    let mut first_error = None;
    while let Some(done) = workers.join_next().await {
        let (lat, err) = done.map_err(|e| format!("worker failed: {e}"))?;
        all.extend(lat);
        if first_error.is_none() {
            first_error = err;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    all.sort_unstable();
    if let Some(e) = &first_error {
        eprintln!("mcp_load: first error: {e}");
    }
    Ok(json!({
        "calls": a.calls,
        "errors": errors.load(Ordering::Relaxed),
        "connections": a.connections,
        "secs": secs,
        "per_sec": a.calls as f64 / secs,
        "median_us": percentile(&all, 0.5),
        "p99_us": percentile(&all, 0.99),
    }))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mcp_load: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp_load: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp_load: {e}");
            ExitCode::FAILURE
        }
    }
}
