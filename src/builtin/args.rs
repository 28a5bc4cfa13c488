//! Arguments of the built-in file tools: one typed `Deserialize` struct per tool, parsed by
//! [`blocking_tool`] before the body runs, and a [`Call`] handle whose errors name the tool
//! and the field.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::core::{CallContext, CancelToken, Error, FnTool, Result, ToolSpec};

pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The tool being called, for errors that name it.
#[derive(Clone)]
pub(crate) struct Call {
    tool: Arc<str>,
}

impl Call {
    pub(crate) fn new(tool: &str) -> Self {
        Call {
            tool: Arc::from(tool),
        }
    }

    /// `InvalidArguments` at `field`.
    pub(crate) fn invalid(&self, field: &str, message: impl Into<String>) -> Error {
        Error::InvalidArguments {
            tool: self.tool.to_string(),
            path: field.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn fail(&self, message: impl Into<String>) -> Error {
        Error::tool(self.tool.as_ref(), message)
    }

    pub(crate) fn cancelled(&self) -> Error {
        Error::Cancelled {
            tool: self.tool.to_string(),
        }
    }

    /// `Err(Cancelled)` once the call is cancelled (timeout, caller gone, shutdown).
    pub(crate) fn check(&self, cancel: &CancelToken) -> Result<()> {
        if cancel.is_cancelled() {
            Err(self.cancelled())
        } else {
            Ok(())
        }
    }

    /// Deserialize the arguments into `A`; a mismatch names the field and what was received.
    pub(crate) fn parse<A: DeserializeOwned>(&self, v: Value) -> Result<A> {
        let shown = v.clone();
        serde_path_to_error::deserialize(v).map_err(|e| {
            let mut path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // serde reports a missing or unknown key at the object; name the key itself.
            for prefix in ["missing field `", "unknown field `"] {
                if let Some(rest) = inner.strip_prefix(prefix) {
                    if let Some(end) = rest.find('`') {
                        path = rest[..end].to_string();
                    }
                }
            }
            if path == "." {
                path = "<root>".into();
            }
            let got = pointer(&shown, &path)
                .map(|g| format!(" (got {})", short(g)))
                .unwrap_or_default();
            self.invalid(&path, format!("{inner}{got}"))
        })
    }
}

/// The value at a serde path like `a.b[0]` (only the simple forms the tools use).
fn pointer<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let (key, index) = match path.split_once('[') {
        Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
        None => (path, None),
    };
    let at = v.get(key)?;
    match index {
        Some(i) => at.get(i),
        None => Some(at),
    }
}

/// A JSON value shortened for an error message.
pub(crate) fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

/// The path of an fs tool: `path` (text) or `path_base64` (the raw bytes of a name that is
/// not UTF-8, as `fs.list` returns it in `absolute_path_base64`); exactly one must be given.
pub(crate) fn resolve_path(
    call: &Call,
    path: Option<&str>,
    path_base64: Option<&str>,
) -> Result<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    match (path, path_base64) {
        (Some(p), None) => text_path(call, "path", p).map(|()| PathBuf::from(p)),
        (None, Some(b)) => {
            let bytes = B64
                .decode(b)
                .map_err(|e| call.invalid("path_base64", format!("not valid base64: {e}")))?;
            if bytes.is_empty() || bytes.contains(&0) {
                return Err(call.invalid(
                    "path_base64",
                    "the decoded path must be non-empty and contain no NUL byte",
                ));
            }
            Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
        }
        (Some(_), Some(_)) => Err(call.invalid(
            "path_base64",
            "give either `path` or `path_base64`, not both",
        )),
        (None, None) => Err(call.invalid("path", "`path` (or `path_base64`) is required")),
    }
}

/// A path given as text must be non-empty and free of NUL bytes (the OS cannot take them).
pub(crate) fn text_path(call: &Call, field: &str, p: &str) -> Result<()> {
    if p.is_empty() {
        return Err(call.invalid(field, format!("`{field}` must not be empty")));
    }
    if p.contains('\0') {
        return Err(call.invalid(
            field,
            format!("`{field}` must not contain a NUL byte, got {p:?}"),
        ));
    }
    Ok(())
}

/// A tool whose body does blocking work (file I/O, tree walks): its arguments are parsed into
/// `A`, then the body runs on tokio's blocking pool so it never stalls a runtime worker. The
/// call's cancel token is cancelled when the call is abandoned (timeout, dropped future), and
/// bodies check it between chunks of work, so an abandoned call stops soon.
pub(crate) fn blocking_tool<A, F>(spec: ToolSpec, f: F) -> FnTool
where
    A: DeserializeOwned + Send + 'static,
    F: Fn(&Call, A, &CallContext) -> Result<Value> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let call = Call::new(&spec.name);
    FnTool::new(spec, move |v, ctx| {
        let f = f.clone();
        let call = call.clone();
        async move {
            let args: A = call.parse(v)?;
            // Dropping this future (a gRPC deadline, a dropped task) must stop the body too.
            let guard = CancelOnDrop(Some(ctx.cancel.clone()));
            let body_call = call.clone();
            let r = tokio::task::spawn_blocking(move || f(&body_call, args, &ctx)).await;
            guard.disarm();
            match r {
                Ok(r) => r,
                // Re-raise so the registry turns it into `Error::Tool` like any tool panic.
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => Err(call.cancelled()),
            }
        }
    })
}

struct CancelOnDrop(Option<CancelToken>);

impl CancelOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct A {
        #[allow(dead_code)]
        n: u64,
        #[allow(dead_code)]
        s: Option<String>,
    }

    fn err(v: Value) -> (String, String) {
        match Call::new("t").parse::<A>(v).unwrap_err() {
            Error::InvalidArguments { path, message, .. } => (path, message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parse_errors_name_the_field_and_the_value() {
        let (p, m) = err(json!({"n": "x"}));
        assert_eq!(p, "n");
        assert!(
            m.contains("expected u64") && m.contains("(got \"x\")"),
            "{m}"
        );
        let (p, m) = err(json!({"n": -1}));
        assert_eq!(p, "n");
        assert!(m.contains("(got -1)"), "{m}");
        assert_eq!(err(json!({})).0, "n");
        assert_eq!(err(json!({"n": 1, "zz": 1})).0, "zz");
        assert_eq!(err(json!([1])).0, "<root>");
        assert!(Call::new("t")
            .parse::<A>(json!({"n": 1, "s": null}))
            .is_ok());
    }

    #[test]
    fn paths_refuse_empty_nul_and_bad_base64() {
        let c = Call::new("t");
        let field = |p: Option<&str>, b: Option<&str>| match resolve_path(&c, p, b).unwrap_err() {
            Error::InvalidArguments { path, .. } => path,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(Some(""), None), "path");
        assert_eq!(field(Some("a\0b"), None), "path");
        assert_eq!(field(None, Some("@@")), "path_base64");
        assert_eq!(field(None, Some("YQBi")), "path_base64"); // "a\0b"
        assert_eq!(field(Some("a"), Some("YQ==")), "path_base64");
        assert_eq!(field(None, None), "path");
        let raw = resolve_path(&c, None, Some("Y2Fm6Q==")).unwrap();
        assert_eq!(raw.as_os_str().len(), 4, "raw bytes survive");
    }
}

#[cfg(test)]
mod drop_tests {
    use super::*;
    use crate::core::Tool;
    use serde_json::json;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn an_abandoned_call_cancels_its_body() {
        let stopped = Arc::new(AtomicBool::new(false));
        let seen = stopped.clone();
        let tool = blocking_tool(
            ToolSpec::new("t"),
            move |_: &Call, _: Value, ctx: &CallContext| {
                while !ctx.is_cancelled() {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                seen.store(true, Ordering::SeqCst);
                Ok(Value::Null)
            },
        );
        let fut = tool.call(json!({}).into(), CallContext::new());
        // Dropped unfinished, as a gRPC deadline or a dropped task does.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(20), fut).await;
        for _ in 0..500 {
            if stopped.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the body did not see the cancellation");
    }
}
