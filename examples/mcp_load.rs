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
use serde_json::{json, Value};

mod load_common;
use load_common::LoadArgs;

/// Longest a single call may take before it counts as an error (keeps the run bounded).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

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

async fn run(a: LoadArgs) -> Result<Value, String> {
    // An object: `parse_args` refused anything else.
    let arguments = a.args.as_object().cloned().unwrap_or_default();
    let params = Arc::new(CallToolRequestParams::new(a.tool.clone()).with_arguments(arguments));
    let expected = Arc::new(a.expected);
    // Connect every client (and warm its connection up) outside the timing.
    let mut clients = Vec::new();
    for _ in 0..a.parallel {
        let c = connect(&a.target).await?;
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
        "connections": a.parallel,
        "secs": secs,
        "per_sec": a.calls as f64 / secs,
        "median_us": percentile(&all, 0.5),
        "p99_us": percentile(&all, 0.99),
    }))
}

fn main() -> ExitCode {
    let args = load_common::parse_args("mcp_load", "URL", "CONNECTIONS", true);
    load_common::main("mcp_load", args, run)
}
