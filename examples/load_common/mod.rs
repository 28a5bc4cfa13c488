//! What the load generators `grpc_load` and `mcp_load` share: their command line
//! (`TARGET TOOL ARGS_JSON CALLS PARALLEL [EXPECTED_JSON]`) and the `main` that runs one on a
//! tokio runtime and prints its JSON line.

// Each example compiles its own copy and reads only the fields its protocol needs.
#![allow(dead_code)]

use std::future::Future;
use std::process::ExitCode;

use serde_json::Value;

/// The parsed command line of a load generator.
pub struct LoadArgs {
    /// Where the server listens (an address or URL).
    pub target: String,
    pub tool: String,
    /// `ARGS_JSON` as given (sent as is where the protocol carries JSON text).
    pub args_json: String,
    pub args: Value,
    pub calls: u64,
    /// Calls in flight at a time (concurrency, connections), at most `calls`.
    pub parallel: u64,
    /// The result every call must return: `EXPECTED_JSON`, else the `value` field of `ARGS_JSON`.
    pub expected: Value,
}

/// Parse `TARGET TOOL ARGS_JSON CALLS PARALLEL [EXPECTED_JSON]`; `target` and `parallel` are the
/// names of the first and fifth argument in `name`'s usage line and errors. `object_args`
/// refuses an `ARGS_JSON` that is not a JSON object.
pub fn parse_args(
    name: &str,
    target: &str,
    parallel: &str,
    object_args: bool,
) -> Result<LoadArgs, String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.len() != 5 && argv.len() != 6 {
        return Err(format!(
            "usage: {name} {target} TOOL ARGS_JSON CALLS {parallel} [EXPECTED_JSON]"
        ));
    }
    let args: Value =
        serde_json::from_str(&argv[2]).map_err(|e| format!("ARGS_JSON is not JSON: {e}"))?;
    if object_args && !args.is_object() {
        return Err("ARGS_JSON must be a JSON object".to_string());
    }
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
    let n: u64 = argv[4]
        .parse()
        .map_err(|e| format!("{parallel} must be a positive integer: {e}"))?;
    if calls == 0 || n == 0 {
        return Err(format!("CALLS and {parallel} must be at least 1"));
    }
    Ok(LoadArgs {
        target: argv[0].clone(),
        tool: argv[1].clone(),
        args_json: argv[2].clone(),
        args,
        calls,
        parallel: n.min(calls),
        expected,
    })
}

/// Run `run(args)` on a multi-thread tokio runtime and print the JSON line it returns. Exit
/// status 2 for a bad command line, 1 when the run fails (the error on stderr, after `name: `).
pub fn main<A, F>(name: &str, args: Result<A, String>, run: impl FnOnce(A) -> F) -> ExitCode
where
    F: Future<Output = Result<Value, String>>,
{
    let args = match args {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
