//! A Rust program that embeds Python, imports `examples/tools.py` (whose import registers
//! tools) and calls Python and Rust tools concurrently from tokio tasks.
//!
//! Run: `cargo run --release --example embed_host --features embed`

use std::path::PathBuf;
use std::time::Instant;

use agent_runtime::{Host, Registry};
use base64::Engine;
use serde_json::json;

#[tokio::main]
async fn main() -> agent_runtime::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let host = Host::builder()
        .python_path(root.join("python")) // the agent_runtime package (not needed when pip-installed)
        .python_path(root.join("examples"))
        .import("tools")
        .build()?;
    println!("{} tools:", host.tools().len());
    for t in host.tools() {
        println!(
            "  {:<12} {}",
            t.name,
            t.description.lines().next().unwrap_or("")
        );
    }

    let t0 = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..20 {
        calls.spawn(async move {
            let reg = Registry::global();
            let r = match i % 4 {
                0 => {
                    reg.call_json(
                        "word_count",
                        json!({"text": format!("call {i} call"), "top": 1}),
                    )
                    .await
                }
                1 => {
                    reg.call_json(
                        "fetch_many",
                        json!({"urls": [format!("u{i}")], "delay": 0.05}),
                    )
                    .await
                }
                2 => {
                    let data =
                        base64::engine::general_purpose::STANDARD.encode(format!("blob {i}"));
                    reg.call_json("hash.sha256", json!({ "data": data })).await
                }
                _ => reg.call_json("diag.add", json!({"a": i, "b": 1})).await,
            };
            (i, r)
        });
    }
    while let Some(done) = calls.join_next().await {
        let (i, r) = done.map_err(|e| agent_runtime::Error::Runtime(e.to_string()))?;
        println!("call {i:>2}: {}", r?);
    }
    println!("20 concurrent calls in {:?}", t0.elapsed());

    match host.call("divide", json!({"a": 1, "b": 0})).await {
        Err(agent_runtime::Error::Python {
            type_name, message, ..
        }) => println!("Python error crossed into Rust: {type_name}: {message}"),
        other => println!("unexpected: {other:?}"),
    }
    println!(
        "run_tool: {}",
        host.run_tool("word_count", r#"{"text": "x y x"}"#).await?
    );
    println!(
        "run_function: {}",
        host.run_function("tools", "word_count", r#"["a b"]"#)
            .await?
    );
    match host.run_function("os", "getcwd", "[]").await {
        Err(e) => println!("allowlist: {e}"),
        Ok(v) => println!("unexpected: {v}"),
    }
    Ok(())
}
