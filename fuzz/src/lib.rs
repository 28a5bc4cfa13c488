//! Harnesses shared by the fuzz targets. Each takes the fuzzer's bytes, drives one entry point
//! of agent-runtime and panics (= a finding) when the outcome is not well-formed: a panic or
//! abort inside the runtime, an error of the wrong kind, an error without a path or message,
//! or a successful result that differs from what the tool must return.
//!
//! Still to come (its code lands later): `worker_frame`, for the worker pool's framing in
//! `src/worker/protocol.rs`: decode arbitrary bytes as frames (never panic, never allocate what a
//! length prefix merely claims), re-encode every frame that decodes and compare. Add it as a
//! harness here, a `[[bin]]` in Cargo.toml, `fuzz_targets/worker_frame.rs` and seeds in
//! `seeds/worker_frame/`; `fuzz/run` picks it up.

use std::sync::LazyLock;
use std::time::Duration;

use agent_runtime::core::registry::{parse_args_json, run_tool};
use agent_runtime::core::{CallContext, Error, FnTool, Registry, ToolSpec};
use agent_runtime::grpc::pb::python_service_server::PythonService;
use agent_runtime::grpc::pb::{
    RunFunctionRequest, RunFunctionResponse, RunScriptRequest, RunScriptResponse, RunToolRequest,
    RunToolResponse,
};
use agent_runtime::grpc::Service;
use prost::Message;
use serde_json::{json, Value};

/// Input schemas of the shapes real tools have: what `agent_runtime.schema` derives from
/// Python signatures (defaults, Optional → anyOf, enums, nested models via `$ref`) and what
/// hand-written Rust tools declare (bounds, patterns, formats, unique items, multipleOf).
fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        ("fuzz.any", json!({"type": "object"})),
        (
            "fuzz.add",
            json!({"type": "object",
                   "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "default": 1}},
                   "required": ["a"], "additionalProperties": false}),
        ),
        (
            "fuzz.search",
            json!({"type": "object",
                   "properties": {
                       "query": {"type": "string", "minLength": 1, "maxLength": 200},
                       "limit": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 1000}, {"type": "null"}]},
                       "mode": {"enum": ["fast", "exact", 3, null]},
                       "ratio": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.01},
                       "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z][a-z0-9_-]*$"},
                                "uniqueItems": true, "maxItems": 16},
                       "when": {"type": "string", "format": "date-time"}
                   },
                   "required": ["query"], "additionalProperties": false}),
        ),
        (
            "fuzz.model",
            json!({"type": "object",
                   "$defs": {
                       "Item": {"type": "object",
                                "properties": {"name": {"type": "string"},
                                               "qty": {"type": "integer", "minimum": 0},
                                               "children": {"type": "array", "items": {"$ref": "#/$defs/Item"}}},
                                "required": ["name"]},
                   },
                   "properties": {
                       "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
                       "meta": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]},
                                "propertyNames": {"maxLength": 32}},
                       "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"const": 1.5}], "items": false},
                       "choice": {"oneOf": [{"type": "string"}, {"type": "integer", "multipleOf": 7}]}
                   },
                   "required": ["items"]}),
        ),
    ]
}

/// A registry holding the `diag.*` tools that end without waiting (sleep and spin could run
/// for as long as an input asks; diag.panic aborts under libFuzzer's panic hook, and its
/// panic → ToolError path has its own unit test) and an echo tool per schema in [`schemas`].
pub fn registry() -> Registry {
    let r = Registry::new();
    agent_runtime::builtin::diag::register(&r).expect("diag tools register");
    for slow_or_aborting in ["diag.sleep", "diag.spin", "diag.panic"] {
        r.unregister(slow_or_aborting);
    }
    for (name, schema) in schemas() {
        r.register(FnTool::sync(ToolSpec::new(name).input_schema(schema), Ok))
            .expect("fuzz schema compiles");
    }
    r
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(registry);

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
});

fn check_invalid_arguments(e: &Error, tool: &str, what: &str) {
    match e {
        Error::InvalidArguments {
            tool: t,
            path,
            message,
        } => {
            assert_eq!(t, tool, "{what}: error names the wrong tool: {e:?}");
            assert!(!path.is_empty(), "{what}: error without a path: {e:?}");
            assert!(
                !message.is_empty(),
                "{what}: error without a message: {e:?}"
            );
        }
        other => panic!("{what}: expected InvalidArguments, got {other:?}"),
    }
}

/// `args_json`: bytes → `parse_args_json` → every schema's `Registered::validate`; valid
/// arguments are then called through the echo tool, which must return them unchanged.
pub fn args_json(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let value = match parse_args_json("fuzz", &text) {
        Ok(v) => v,
        Err(e) => {
            check_invalid_arguments(&e, "fuzz", "parse");
            if let Error::InvalidArguments { path, .. } = &e {
                assert_eq!(path, "<args_json>", "parse error at the wrong path: {e:?}");
            }
            return;
        }
    };
    // What was parsed prints and parses back to the same value.
    let printed = serde_json::to_string(&value).expect("a parsed Value serializes");
    let again: Value = serde_json::from_str(&printed).expect("printed JSON parses");
    assert_eq!(again, value, "JSON round trip changed the value: {printed}");

    for (name, _) in schemas() {
        let entry = REGISTRY.get(name).expect("registered");
        match entry.validate(&value) {
            Ok(()) => {
                let out = REGISTRY
                    .call_blocking(name, value.clone())
                    .and_then(|p| p.into_json())
                    .unwrap_or_else(|e| panic!("{name}: valid arguments failed: {e:?}"));
                assert_eq!(out, value, "{name}: echo changed the arguments");
            }
            Err(e) => {
                check_invalid_arguments(&e, name, name);
                if value.is_null() {
                    continue; // a call treats null as "no arguments" ({}), by design
                }
                // The same arguments through the registry fail the same way.
                let via_call = REGISTRY.call_blocking(name, value.clone());
                assert!(
                    matches!(&via_call, Err(e2) if e2.to_string() == e.to_string()),
                    "{name}: validate said {e:?}, call said {via_call:?}"
                );
            }
        }
    }
}

/// Status codes a `PythonService` call may end with; INTERNAL or UNKNOWN would mean a bug.
fn check_status(s: &tonic::Status, rpc: &str) {
    use tonic::Code;
    assert!(
        matches!(
            s.code(),
            Code::NotFound
                | Code::InvalidArgument
                | Code::DeadlineExceeded
                | Code::Cancelled
                | Code::PermissionDenied
                | Code::Unimplemented
        ),
        "{rpc}: unexpected status {s:?}"
    );
    assert!(!s.message().is_empty(), "{rpc}: status without a message");
}

/// Optional `grpc-timeout` header value taken from the front of the input: a length byte
/// (0 = no header) and that many bytes.
fn split_timeout(data: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match data.split_first() {
        Some((&n, rest)) if n > 0 && (n as usize) <= rest.len() && n <= 12 => {
            let (t, rest) = rest.split_at(n as usize);
            (Some(t), rest)
        }
        Some((_, rest)) => (None, rest),
        None => (None, data),
    }
}

fn request<T>(msg: T, timeout: Option<&[u8]>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(v) = timeout.and_then(|t| tonic::metadata::MetadataValue::try_from(t).ok()) {
        req.metadata_mut().insert("grpc-timeout", v);
    }
    req
}

/// Run a handler future to its end; nothing here may wait, so a generous bound means a hang.
fn finish<F: std::future::Future>(fut: F) -> F::Output {
    RUNTIME.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("request handling hung")
    })
}

/// `grpc_request`: bytes → `[kind][timeout len][timeout][protobuf]`; the protobuf is decoded
/// as the kind's request message, and a decodable one goes through the service's handler
/// exactly as tonic would pass it (no Python host: RunFunction/RunScript are UNIMPLEMENTED).
pub fn grpc_request(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let (timeout, body) = split_timeout(rest);
    let svc = Service::new(REGISTRY.clone(), None);
    match kind % 3 {
        0 => {
            let Ok(msg) = RunToolRequest::decode(body) else {
                return;
            };
            let echo = (msg.tool_name == "diag.echo" || msg.tool_name == "fuzz.any")
                .then(|| msg.args_json.clone());
            match finish(svc.run_tool(request(msg, timeout))) {
                Ok(resp) => {
                    let r: RunToolResponse = resp.into_inner();
                    if r.error.is_empty() {
                        let out: Value = serde_json::from_str(&r.result_json)
                            .unwrap_or_else(|e| panic!("result_json is not JSON ({e}): {r:?}"));
                        if let Some(args) = echo {
                            // Empty text and `null` both mean "no arguments" ({}).
                            let sent = if args.trim().is_empty() {
                                json!({})
                            } else {
                                serde_json::from_str(&args).expect("accepted args are JSON")
                            };
                            let sent = if sent.is_null() { json!({}) } else { sent };
                            assert_eq!(out, sent, "echo over RunTool changed the arguments");
                        }
                    } else {
                        assert!(r.result_json.is_empty(), "both result and error: {r:?}");
                    }
                    let _ = r.encode_to_vec();
                }
                Err(s) => check_status(&s, "RunTool"),
            }
            // Also the core entry point directly, with a deadline: same classification.
            let ctx = CallContext::new().with_timeout(Some(Duration::from_millis(50)));
            let msg = RunToolRequest::decode(body).expect("decoded before");
            if let Err(e) = finish(run_tool(&REGISTRY, &msg.tool_name, &msg.args_json, ctx)) {
                assert!(!e.to_string().is_empty());
                assert!(
                    !matches!(e, Error::Registration(_) | Error::Runtime(_)),
                    "run_tool: internal error for a request: {e:?}"
                );
            }
        }
        1 => {
            let Ok(msg) = RunFunctionRequest::decode(body) else {
                return;
            };
            match finish(svc.run_function(request(msg, timeout))) {
                Ok(resp) => panic!(
                    "RunFunction without a host answered {:?}",
                    resp.into_inner() as RunFunctionResponse
                ),
                Err(s) => {
                    check_status(&s, "RunFunction");
                    assert_eq!(s.code(), tonic::Code::Unimplemented);
                }
            }
        }
        _ => {
            let Ok(msg) = RunScriptRequest::decode(body) else {
                return;
            };
            match finish(svc.run_script(request(msg, timeout))) {
                Ok(resp) => panic!(
                    "RunScript without a host answered {:?}",
                    resp.into_inner() as RunScriptResponse
                ),
                Err(s) => {
                    check_status(&s, "RunScript");
                    assert_eq!(s.code(), tonic::Code::Unimplemented);
                }
            }
        }
    }
}
