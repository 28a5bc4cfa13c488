//! Load generator for a `python.PythonService` server (ours or any other implementation of
//! the contract): `CALLS` unary `RunTool` calls, `CONCURRENCY` of them in flight at a time,
//! over one `agent_runtime::grpc::Client` (one HTTP/2 connection).
//!
//! Every result is compared with the expected echo; failed calls and mismatches count as
//! errors. Prints one JSON line: `{"calls":..,"errors":..,"secs":..,"per_sec":..}`.
//!
//! Usage: `grpc_load ADDR TOOL ARGS_JSON CALLS CONCURRENCY [EXPECTED_JSON]`
//!
//! `EXPECTED_JSON` defaults to the `value` field of `ARGS_JSON` (the `echo(value) -> value`
//! contract); pass it for tools with another shape (`diag.echo` returns its whole arguments).
//!
//! Run: `cargo run --release --example grpc_load --features grpc -- 127.0.0.1:50051 \
//!   bench.echo '{"value": {"k": "v", "n": 1}}' 10000 64`

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent_runtime::grpc::Client;
use serde_json::{json, Value};

mod load_common;
use load_common::LoadArgs;

/// One call; `true` when it succeeded and returned the expected value.
async fn call_ok(client: &Client, tool: &str, args_json: &str, expected: &Value) -> bool {
    match client.run_tool_json(tool, args_json).await {
        Ok(text) => serde_json::from_str::<Value>(&text).is_ok_and(|v| v == *expected),
        Err(_) => false,
    }
}

async fn run(a: LoadArgs) -> Result<Value, String> {
    let client = Client::connect(&a.target)
        .await
        .map_err(|e| e.to_string())?
        .with_timeout(Duration::from_secs(30));
    // Warm up the connection (and check the tool answers as expected) outside the timing.
    if !call_ok(&client, &a.tool, &a.args_json, &a.expected).await {
        let got = client.run_tool_json(&a.tool, &a.args_json).await;
        return Err(format!("warmup call of {} did not echo: {got:?}", a.tool));
    }

    let tool: Arc<str> = Arc::from(a.tool.as_str());
    let args_json: Arc<str> = Arc::from(a.args_json.as_str());
    let expected = Arc::new(a.expected);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..a.parallel {
        let (client, tool, args_json) = (client.clone(), tool.clone(), args_json.clone());
        let (expected, next, errors) = (expected.clone(), next.clone(), errors.clone());
        let calls = a.calls;
        workers.spawn(async move {
            // Each worker takes call numbers until all `calls` are handed out.
            while next.fetch_add(1, Ordering::Relaxed) < calls {
                if !call_ok(&client, &tool, &args_json, &expected).await {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done.map_err(|e| format!("worker failed: {e}"))?;
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(json!({
        "calls": a.calls,
        "errors": errors.load(Ordering::Relaxed),
        "secs": secs,
        "per_sec": a.calls as f64 / secs,
    }))
}

fn main() -> ExitCode {
    let args = load_common::parse_args("grpc_load", "ADDR", "CONCURRENCY", false);
    load_common::main("grpc_load", args, run)
}
