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

struct Args {
    addr: String,
    tool: String,
    args_json: String,
    calls: u64,
    concurrency: u64,
    expected: Value,
}

fn parse_args() -> Result<Args, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.len() != 5 && argv.len() != 6 {
        return Err(
            "usage: grpc_load ADDR TOOL ARGS_JSON CALLS CONCURRENCY [EXPECTED_JSON]".to_string(),
        );
    }
    let args: Value =
        serde_json::from_str(&argv[2]).map_err(|e| format!("ARGS_JSON is not JSON: {e}"))?;
    let expected = match argv.get(5) {
        Some(text) => {
            serde_json::from_str(text).map_err(|e| format!("EXPECTED_JSON is not JSON: {e}"))?
        }
        None => args
            .get("value")
            .cloned()
            .ok_or("ARGS_JSON has no \"value\" field: pass EXPECTED_JSON")?,
    };
    let calls: u64 = argv[3]
        .parse()
        .map_err(|e| format!("CALLS must be a positive integer: {e}"))?;
    let concurrency: u64 = argv[4]
        .parse()
        .map_err(|e| format!("CONCURRENCY must be a positive integer: {e}"))?;
    if calls == 0 || concurrency == 0 {
        return Err("CALLS and CONCURRENCY must be at least 1".to_string());
    }
    Ok(Args {
        addr: argv[0].clone(),
        tool: argv[1].clone(),
        args_json: argv[2].clone(),
        calls,
        concurrency: concurrency.min(calls),
        expected,
    })
}

/// One call; `true` when it succeeded and returned the expected value.
async fn call_ok(client: &Client, tool: &str, args_json: &str, expected: &Value) -> bool {
    match client.run_tool_json(tool, args_json).await {
        Ok(text) => serde_json::from_str::<Value>(&text).is_ok_and(|v| v == *expected),
        Err(_) => false,
    }
}

async fn run(a: Args) -> Result<Value, String> {
    let client = Client::connect(&a.addr)
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
    for _ in 0..a.concurrency {
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
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("grpc_load: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("grpc_load: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("grpc_load: {e}");
            ExitCode::FAILURE
        }
    }
}
