//! Harnesses shared by the fuzz targets. Each takes the fuzzer's bytes, drives one entry point
//! of agent-runtime and panics (= a finding) when the outcome is not well-formed: a panic or
//! abort inside the runtime, an error of the wrong kind, an error without a path or message,
//! or a successful result that differs from what the tool must return.
//!
//! `worker_frame` covers the isolated worker pool's framing (`src/worker/protocol.rs`): the
//! input is read as a stream of length-prefixed frames and checked against a reference model
//! (including that a length prefix alone allocates nothing), each frame body is decoded as a
//! worker `Reply` and checked field by field (and against `reply_id`, the pool's fallback for
//! undecodable replies), and `Request`s built from the input must come back unchanged through
//! `encode` → `read_frame`.

use std::io::{self, Read};
use std::sync::LazyLock;
use std::time::Duration;

use agent_runtime::{parse_args_json, run_tool};
use agent_runtime::{CallContext, Error, FnTool, Registry, ToolSpec};
use agent_runtime::grpc::pb::python_service_server::PythonService;
use agent_runtime::grpc::pb::{
    RunFunctionRequest, RunFunctionResponse, RunScriptRequest, RunScriptResponse, RunToolRequest,
    RunToolResponse,
};
use agent_runtime::grpc::Service;
use agent_runtime::worker::protocol::{self, Reply, Request, FRAME_PREALLOC, MAX_FRAME};
use libfuzzer_sys::arbitrary::{Arbitrary, Unstructured};
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

/// How a byte stream must split into frames: bodies, then a clean end or the error kind.
fn frame_model(data: &[u8]) -> (Vec<&[u8]>, Option<io::ErrorKind>) {
    let mut bodies = Vec::new();
    let mut rest = data;
    loop {
        if rest.is_empty() {
            return (bodies, None);
        }
        let Some((prefix, after)) = rest.split_first_chunk::<4>() else {
            return (bodies, Some(io::ErrorKind::UnexpectedEof));
        };
        let n = u32::from_le_bytes(*prefix) as usize;
        if n > MAX_FRAME {
            return (bodies, Some(io::ErrorKind::InvalidData));
        }
        if after.len() < n {
            return (bodies, Some(io::ErrorKind::UnexpectedEof));
        }
        let (body, after) = after.split_at(n);
        bodies.push(body);
        rest = after;
    }
}

/// A reader handing out at most `step` bytes per call, as a pipe does.
struct Chunked<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.step.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Every frame `read_frame` yields from `r` until the stream ends or fails. The buffer may
/// only grow with bytes that arrived: never to what a length prefix merely claims.
fn read_all(r: &mut impl Read, available: usize) -> (Vec<Vec<u8>>, Option<io::Error>) {
    let bound = 2 * available + FRAME_PREALLOC;
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    loop {
        let got = protocol::read_frame(r, &mut buf);
        assert!(
            buf.capacity() <= bound,
            "read_frame allocated {} bytes for a {available}-byte stream",
            buf.capacity()
        );
        match got {
            Ok(Some(())) => frames.push(buf.clone()),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

/// A decoded reply must carry exactly what its JSON body says.
fn check_reply(reply: &Reply, body: &[u8]) {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!("decoded a reply from a body that is not JSON ({e}): {reply:?}")
    });
    let field = |k: &str| v.get(k).filter(|x| !x.is_null());
    let text = |k: &str| field(k).and_then(Value::as_str);
    let kind = v.get("t").and_then(Value::as_str);
    let id_ok = |id: &u64| v.get("id").and_then(Value::as_u64) == Some(*id);
    let ok = match reply {
        Reply::Ready { pid } => {
            kind == Some("ready") && v.get("pid").and_then(Value::as_u64) == Some(u64::from(*pid))
        }
        Reply::Ok { id, value } => {
            kind == Some("ok") && id_ok(id) && v.get("value").unwrap_or(&Value::Null) == value
        }
        Reply::Err {
            id,
            type_name,
            module,
            message,
            traceback,
            args,
        } => {
            kind == Some("err")
                && id_ok(id)
                && v.get("type").and_then(Value::as_str) == Some(type_name.as_str())
                && v.get("message").and_then(Value::as_str) == Some(message.as_str())
                && text("module") == module.as_deref()
                && text("traceback") == traceback.as_deref()
                && text("args") == args.as_deref()
        }
        Reply::Conv { id, path, message } => {
            kind == Some("conv")
                && id_ok(id)
                && v.get("path").and_then(Value::as_str) == Some(path.as_str())
                && v.get("message").and_then(Value::as_str) == Some(message.as_str())
        }
        Reply::Pong { id } => kind == Some("pong") && id_ok(id),
        Reply::Progress {
            id,
            done,
            total,
            message,
        } => {
            kind == Some("progress")
                && id_ok(id)
                && v.get("done").and_then(Value::as_f64) == Some(*done)
                && field("total").and_then(Value::as_f64) == *total
                && text("message") == message.as_deref()
        }
    };
    assert!(ok, "decoded {reply:?} from {v}");
}

/// Nesting depth of a JSON value (a scalar is 0).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// `encode` → `read_frame` gives back exactly the body, then a clean end; the body is the
/// request as JSON.
fn check_request(req: &Request<'_>, expected: &Value) {
    let frame = protocol::encode(req).unwrap_or_else(|e| panic!("encode failed ({e}): {req:?}"));
    let mut r = &frame[..];
    let mut buf = Vec::new();
    match protocol::read_frame(&mut r, &mut buf) {
        Ok(Some(())) => {}
        other => panic!("encoded frame read back as {other:?}: {req:?}"),
    }
    assert_eq!(buf, frame[4..], "read_frame changed the body");
    assert!(
        matches!(protocol::read_frame(&mut r, &mut buf), Ok(None)),
        "bytes left after an encoded frame: {req:?}"
    );
    match serde_json::from_slice::<Value>(&buf) {
        Ok(back) => assert_eq!(&back, expected, "request body changed in the round trip"),
        // serde_json parses at most 127 levels; the request object adds one to `args`.
        Err(e) => assert!(
            depth(expected) >= 128 && e.to_string().contains("recursion limit"),
            "encoded request does not parse back ({e}): {req:?}"
        ),
    }
}

/// A string from the fuzzer's bytes ("" once they run out).
fn text<'a>(u: &mut Unstructured<'a>) -> &'a str {
    <&str>::arbitrary(u).unwrap_or_default()
}

/// `worker_frame`: bytes → a stream of length-prefixed frames (read whole and in small pieces,
/// both against [`frame_model`]) → each body decoded as a `Reply`; then `Request`s built from
/// the input (strings and ids from its bytes, `args` from every body that is JSON) round-trip
/// through `encode` and `read_frame`.
pub fn worker_frame(data: &[u8]) {
    let (model, model_err) = frame_model(data);
    let (frames, err) = read_all(&mut &data[..], data.len());
    let step = 1 + data.first().map_or(0, |b| usize::from(b % 7));
    let (pieces, pieces_err) = read_all(&mut Chunked { data, step }, data.len());
    assert_eq!(frames, model, "frames differ from the model");
    assert_eq!(
        pieces, model,
        "frames read in {step}-byte pieces differ from the model"
    );
    for e in [&err, &pieces_err] {
        assert_eq!(
            e.as_ref().map(io::Error::kind),
            model_err,
            "stream end differs from the model: {e:?}"
        );
        if let Some(e) = e {
            assert!(
                !e.to_string().is_empty(),
                "read_frame error without a message"
            );
        }
    }

    let mut args = vec![Value::Null];
    for body in &frames {
        match protocol::decode(body) {
            Ok(reply) => {
                check_reply(&reply, body);
                // The pool's fallback for undecodable replies reads the same id.
                if let Reply::Ok { id, .. }
                | Reply::Err { id, .. }
                | Reply::Conv { id, .. }
                | Reply::Pong { id }
                | Reply::Progress { id, .. } = reply
                {
                    assert_eq!(protocol::reply_id(body), Some(id), "reply_id disagrees");
                }
            }
            Err(e) => {
                assert!(!e.to_string().is_empty(), "decode error without a message");
                // Whichever call it names fails; no id means the worker is killed.
                let _ = protocol::reply_id(body);
            }
        }
        if let Ok(v) = serde_json::from_slice::<Value>(body) {
            args.push(v);
        }
    }

    let mut u = Unstructured::new(data);
    let tool = text(&mut u);
    let module = text(&mut u);
    let qualname = text(&mut u);
    let context_param = Option::<&str>::arbitrary(&mut u).unwrap_or_default();
    args.push(Value::String(text(&mut u).to_string()));
    for (i, args) in args.iter().enumerate() {
        let id = u64::arbitrary(&mut u).unwrap_or(i as u64);
        let call_id = u64::arbitrary(&mut u).unwrap_or_default();
        let is_async = bool::arbitrary(&mut u).unwrap_or(i % 2 == 1);
        let mut expected = json!({
            "op": "call", "id": id, "tool": tool, "module": module, "qualname": qualname,
            "async": is_async, "call_id": call_id, "args": args,
        });
        if let Some(p) = context_param {
            expected["context_param"] = json!(p);
        }
        let req = Request::Call {
            id,
            tool,
            module,
            qualname,
            is_async,
            context_param,
            call_id,
            args,
        };
        check_request(&req, &expected);
        check_request(&Request::Cancel { id }, &json!({"op": "cancel", "id": id}));
        check_request(&Request::Ping { id }, &json!({"op": "ping", "id": id}));
    }
}
