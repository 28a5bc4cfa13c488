//! The Rust `Host` embedding Python (feature `embed`): imports, calls, allowlist, the note's
//! operations, plugin reports.

use std::path::PathBuf;
use std::sync::OnceLock;

use agent_runtime::{Error, Host};
use serde_json::json;

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        Host::builder()
            .python_path(root.join("python"))
            .python_path(root.join("tests"))
            .import("sample_tools")
            .import("grpccli_mod")
            .allow_module("json")
            .build()
            .unwrap_or_else(|e| panic!("host: {e}"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_imports_and_calls_python_tools_concurrently() {
    let h = host();
    assert!(h.tools().iter().any(|t| t.name == "add"));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..100i64 {
        set.spawn(async move {
            let name = if i % 2 == 0 { "add" } else { "async_add" };
            (i, host().call(name, json!({"a": i, "b": 1})).await)
        });
    }
    while let Some(r) = set.join_next().await {
        let (i, v) = r.unwrap();
        assert_eq!(v.unwrap(), json!(i + 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn note_operations_and_allowlist() {
    let h = host();
    assert_eq!(h.run_tool("add", r#"{"a": 1, "b": 2}"#).await.unwrap(), "3");
    assert!(matches!(
        h.run_tool("add", "{nope").await,
        Err(Error::InvalidArguments { .. })
    ));
    // Imported explicitly → allowed.
    assert_eq!(
        h.run_function("sample_tools", "add", "[2, 5]")
            .await
            .unwrap(),
        "7"
    );
    // Allowed by pattern.
    assert_eq!(
        h.run_function("json", "dumps", r#"[{"a": 1}]"#)
            .await
            .unwrap(),
        r#""{\"a\": 1}""#
    );
    match h.run_function("os", "getcwd", "[]").await {
        Err(Error::NotAllowed(msg)) => {
            assert!(msg.contains("'os' is not in the allowlist"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        h.run_script("subprocess", &["x".into()]).await,
        Err(Error::NotAllowed(_))
    ));
    match h.run_function("sample_tools", "fail", r#"["boom"]"#).await {
        Err(Error::Python {
            type_name, message, ..
        }) => assert_eq!(
            (type_name.as_str(), message.as_str()),
            ("ValueError", "boom")
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_errors_are_errors() {
    let h = host();
    match h.import("no_such_module_abc") {
        Err(Error::Python { type_name, .. }) => assert_eq!(type_name, "ModuleNotFoundError"),
        other => panic!("{other:?}"),
    }
    // No plugins are installed under this group: an empty report, not an error.
    assert!(h.discover("agent_runtime.tests.none").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_function_reaches_only_public_functions_of_the_module() {
    let h = host();
    for (f, why) in [
        ("__setattr__", "private"),
        ("__getattribute__", "private"),
        ("__init__", "private"),
        ("system", "imported from 'posix'"),
        ("Hidden", "it is a class"),
        ("SECRET", "not callable"),
        ("time.sleep", "attribute paths"),
    ] {
        match h.run_function("grpccli_mod", f, r#"["x"]"#).await {
            Err(Error::NotAllowed(msg)) => {
                assert!(
                    msg.contains(why) && msg.contains("only public"),
                    "{f}: {msg}"
                )
            }
            other => panic!("{f}: {other:?}"),
        }
    }
    match h.run_script("grpccli_mod", &[]).await {
        Err(Error::NotAllowed(msg)) => assert!(msg.contains("grpccli_mod.main"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.run_function("grpccli_mod", "own_name", "[]")
            .await
            .unwrap(),
        r#""grpccli_mod""#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_run_function_cancels_its_coroutine() {
    let h = host();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("m.txt");
    let args = serde_json::to_string(&json!([marker.to_str().unwrap(), 3.0])).unwrap();
    let r = tokio::time::timeout(
        std::time::Duration::from_millis(1000),
        h.run_function("grpccli_mod", "slow_marker", &args),
    )
    .await;
    assert!(r.is_err(), "{r:?}");
    let read = || std::fs::read_to_string(&marker).unwrap_or_default();
    for _ in 0..200 {
        if read().contains("cancelled") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(read().contains("cancelled"), "{}", read());
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(!read().contains("ran on"), "{}", read());
}
