//! `diag.*`: small Rust tools for checking a deployment end to end and for benchmarks
//! (echo, noop, sleep, failures, CPU work, and calling another tool through the registry).

use std::time::Duration;

use serde_json::{json, Value};

use super::obj;
use crate::core::{Error, FnTool, Payload, Registry, Result, ToolSpec};

/// Iterations of `diag.spin` between two checks for cancellation.
const SPIN_SLICE: u64 = 1 << 20;

/// Register the `diag.*` tools into `registry` (replacing any of the same names).
pub fn register(registry: &Registry) -> Result<()> {
    let tools: Vec<FnTool> = vec![
        FnTool::sync(
            ToolSpec::new("diag.noop")
                .description("Do nothing; return null.")
                .input_schema(obj(json!({}), &[])),
            |_| Ok(Value::Null),
        ),
        FnTool::sync(
            ToolSpec::new("diag.echo")
                .description("Return the arguments object unchanged.")
                .input_schema(json!({"type": "object"})),
            Ok,
        ),
        FnTool::sync(
            ToolSpec::new("diag.add")
                .description("Add two integers.")
                .input_schema(obj(
                    json!({"a": {"type": "integer"}, "b": {"type": "integer"}}),
                    &["a", "b"],
                ))
                .output_schema(json!({"type": "integer"})),
            |v| {
                let a = v["a"].as_i64().unwrap_or_default();
                let b = v["b"].as_i64().unwrap_or_default();
                a.checked_add(b)
                    .map(Value::from)
                    .ok_or_else(|| Error::tool("diag.add", "integer overflow"))
            },
        ),
        FnTool::new(
            ToolSpec::new("diag.sleep")
                .description("Sleep asynchronously for `seconds`, then return them.")
                .input_schema(obj(
                    json!({"seconds": {"type": "number", "minimum": 0}}),
                    &["seconds"],
                )),
            |v, _| async move {
                let s = v["seconds"].as_f64().unwrap_or_default();
                let d = crate::core::duration::from_secs("seconds", s).map_err(|message| {
                    Error::InvalidArguments {
                        tool: "diag.sleep".into(),
                        path: "seconds".into(),
                        message,
                    }
                })?;
                tokio::time::sleep(d.min(Duration::from_secs(86_400))).await;
                Ok(json!(s))
            },
        ),
        FnTool::sync(
            ToolSpec::new("diag.fail")
                .description("Fail with `message`.")
                .input_schema(obj(json!({"message": {"type": "string"}}), &[])),
            |v| {
                Err(Error::tool(
                    "diag.fail",
                    v["message"].as_str().unwrap_or("failed on purpose"),
                ))
            },
        ),
        FnTool::sync(
            ToolSpec::new("diag.panic")
                .description("Panic inside the tool (the caller gets a ToolError).")
                .input_schema(obj(json!({}), &[])),
            |_| panic!("diag.panic was called"),
        ),
        FnTool::new(
            ToolSpec::new("diag.spin")
                .description("Busy-loop for `iterations` steps of CPU work; returns a checksum.")
                .input_schema(obj(
                    json!({"iterations": {"type": "integer", "minimum": 0}}),
                    &["iterations"],
                )),
            |v, ctx| async move {
                let n = v["iterations"].as_u64().unwrap_or_default();
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
                let mut i = 0;
                // In slices, yielding between them: a huge count stays cancellable (timeouts
                // fire) instead of holding its thread for good.
                while i < n {
                    let end = n.min(i.saturating_add(SPIN_SLICE));
                    for k in i..end {
                        x = x.rotate_left(5) ^ k.wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    }
                    i = end;
                    if i < n {
                        if ctx.is_cancelled() {
                            return Err(Error::Cancelled {
                                tool: "diag.spin".into(),
                            });
                        }
                        tokio::task::yield_now().await;
                    }
                }
                Ok(json!(x % 1_000_000_007))
            },
        ),
    ];
    for t in tools {
        registry.replace(std::sync::Arc::new(t))?;
    }
    let reg = registry.clone();
    registry.replace(std::sync::Arc::new(FnTool::new(
        ToolSpec::new("diag.call")
            .description("Call tool `name` with `args` through the registry (a Rust caller) and return its result.")
            .input_schema(obj(json!({"name": {"type": "string"}, "args": {"type": "object"}}), &["name"])),
        move |v, ctx| {
            let reg = reg.clone();
            async move {
                let name = v["name"].as_str().unwrap_or_default().to_string();
                let args = v.get("args").cloned().unwrap_or(json!({}));
                reg.call_with(&name, Payload::Json(args), ctx.child()).await?.into_json()
            }
        },
    )))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg() -> Registry {
        let r = Registry::new();
        register(&r).unwrap();
        r
    }

    #[tokio::test]
    async fn echo_add_and_nested_call() {
        let r = reg();
        assert_eq!(
            r.call_json("diag.echo", json!({"x": [1, "a"]}))
                .await
                .unwrap(),
            json!({"x": [1, "a"]})
        );
        assert_eq!(
            r.call_json("diag.add", json!({"a": 2, "b": 3}))
                .await
                .unwrap(),
            json!(5)
        );
        let v = r
            .call_json(
                "diag.call",
                json!({"name": "diag.add", "args": {"a": 1, "b": 1}}),
            )
            .await
            .unwrap();
        assert_eq!(v, json!(2));
    }

    /// `diag.call` of `diag.call` of … `depth` times, ending in `diag.add`.
    fn nested(depth: usize) -> Value {
        let mut v = json!({"name": "diag.add", "args": {"a": 1, "b": 2}});
        for _ in 1..depth {
            v = json!({"name": "diag.call", "args": v});
        }
        v
    }

    #[tokio::test]
    async fn nesting_is_limited() {
        let r = reg();
        let max = crate::core::tool::MAX_CALL_DEPTH as usize;
        // The outermost call is depth 0: MAX_CALL_DEPTH + 1 calls in all are allowed.
        assert_eq!(
            r.call_json("diag.call", nested(max)).await.unwrap(),
            json!(3)
        );
        match r.call_json("diag.call", nested(max + 1)).await {
            Err(e @ Error::Tool { .. }) => assert!(
                e.to_string()
                    .contains(&format!("call depth limit {max} exceeded")),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
        // Blocking callers and spawned tasks see the same limit.
        let reg2 = r.clone();
        let blocking = tokio::task::spawn_blocking(move || {
            reg2.call_blocking("diag.call", Payload::Json(nested(max + 1)))
        });
        assert!(blocking.await.unwrap().is_err());
        let t = r
            .spawn(
                "diag.call",
                nested(max + 5),
                crate::core::CallContext::new(),
            )
            .unwrap();
        assert!(t
            .wait()
            .await
            .unwrap_err()
            .to_string()
            .contains("call depth limit"));
    }

    #[tokio::test]
    async fn spin_of_a_huge_count_obeys_its_timeout() {
        let r = reg();
        let small = r
            .call_json("diag.spin", json!({"iterations": 3_000_000}))
            .await
            .unwrap();
        assert!(small.is_u64());
        let ctx = crate::core::CallContext::new().with_timeout(Some(Duration::from_millis(50)));
        let big = r
            .call_with(
                "diag.spin",
                Payload::Json(json!({"iterations": u64::MAX})),
                ctx,
            )
            .await;
        assert!(matches!(big, Err(Error::Timeout { .. })), "{big:?}");
    }

    #[tokio::test]
    async fn errors() {
        let r = reg();
        match r.call_json("diag.add", json!({"a": "x", "b": 1})).await {
            Err(Error::InvalidArguments { path, .. }) => assert_eq!(path, "a"),
            other => panic!("{other:?}"),
        }
        match r.call_json("diag.ad", json!({})).await {
            Err(e @ Error::NotFound { .. }) => {
                assert!(e.to_string().contains("did you mean 'diag.add'"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        match r.call_json("diag.panic", json!({})).await {
            Err(Error::Tool { message, .. }) => assert!(
                message.contains("panicked: diag.panic was called"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
        match r.call_json("diag.fail", json!({"message": "boom"})).await {
            Err(Error::Tool { message, .. }) => assert_eq!(message, "boom"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.call_json("diag.add", json!({"a": i64::MAX, "b": 1}))
                .await,
            Err(Error::Tool { .. })
        ));
    }

    #[test]
    fn blocking_call_and_registry_ops() {
        let r = reg();
        assert_eq!(
            r.call_blocking("diag.sleep", json!({"seconds": 0.01}))
                .unwrap()
                .into_json()
                .unwrap(),
            json!(0.01)
        );
        assert!(r.call_blocking("diag.panic", json!({})).is_err());
        assert!(r.contains("diag.noop"));
        assert!(r.unregister("diag.noop"));
        assert!(!r.unregister("diag.noop"));
        assert!(r
            .register(FnTool::sync(ToolSpec::new("diag.echo"), Ok))
            .is_err());
        let names: Vec<_> = r.specs().into_iter().map(|s| s.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        // Independent instances do not share tools.
        assert!(Registry::new().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls() {
        let r = reg();
        let mut hs = Vec::new();
        for i in 0..500i64 {
            let r = r.clone();
            hs.push(tokio::spawn(async move {
                r.call_json("diag.add", json!({"a": i, "b": i})).await
            }));
        }
        for (i, h) in hs.into_iter().enumerate() {
            assert_eq!(h.await.unwrap().unwrap(), json!(2 * i as i64));
        }
    }
}
