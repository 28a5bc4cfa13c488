//! Tools implemented in Rust and shipped with the runtime. None is registered by default:
//! [`register_groups`] opts in by group.

pub mod diag;
pub mod edit;
pub mod fs;
pub mod search;
pub mod shell;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::core::{CallContext, Error, FnTool, Registry, Result, ToolSpec};

/// Every built-in group, in registration order.
pub const GROUPS: &[&str] = &["diag", "fs", "edit", "search", "shell"];

/// Register the built-in tool groups named in `groups` (see [`GROUPS`]). Unknown names are
/// rejected before anything is registered.
pub fn register_groups(registry: &Registry, groups: &[&str]) -> Result<()> {
    if let Some(bad) = groups.iter().find(|g| !GROUPS.contains(g)) {
        return Err(Error::Registration(format!(
            "unknown built-in tool group '{bad}' (valid groups: {})",
            GROUPS.join(", ")
        )));
    }
    for g in groups {
        match *g {
            "diag" => diag::register(registry)?,
            "fs" => fs::register(registry)?,
            "edit" => edit::register(registry)?,
            "search" => search::register(registry)?,
            "shell" => shell::register(registry)?,
            _ => unreachable!("group names were checked above"),
        }
    }
    Ok(())
}

/// The groups registered when the caller names none: everything but the diagnostics.
pub fn default_groups() -> Vec<&'static str> {
    GROUPS.iter().copied().filter(|g| *g != "diag").collect()
}

/// An object schema that rejects unknown keys.
pub(crate) fn obj(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

/// A tool whose body does blocking work (file I/O, tree walks): it runs on tokio's blocking
/// pool so it never stalls a runtime worker. Long bodies should poll `ctx.is_cancelled()`.
pub(crate) fn blocking_tool<F>(spec: ToolSpec, f: F) -> FnTool
where
    F: Fn(&Args, &CallContext) -> Result<Value> + Send + Sync + 'static,
{
    let f = Arc::new(f);
    let name: Arc<str> = Arc::from(spec.name.as_str());
    FnTool::new(spec, move |v, ctx| {
        let f = f.clone();
        let name = name.clone();
        async move {
            let args = Args {
                tool: name.clone(),
                v,
            };
            match tokio::task::spawn_blocking(move || f(&args, &ctx)).await {
                Ok(r) => r,
                // Re-raise so the registry turns it into `Error::Tool` like any tool panic.
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => Err(Error::Cancelled {
                    tool: name.to_string(),
                }),
            }
        }
    })
}

/// Validated arguments of a built-in tool, with typed accessors (the schema already checked
/// the types, so accessors only supply defaults) and errors that name the tool and field.
pub(crate) struct Args {
    tool: Arc<str>,
    v: Value,
}

impl Args {
    pub(crate) fn tool(&self) -> &str {
        &self.tool
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.v.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub(crate) fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub(crate) fn str_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.str(key).unwrap_or(default)
    }

    pub(crate) fn bool_or(&self, key: &str, default: bool) -> bool {
        self.get(key).and_then(Value::as_bool).unwrap_or(default)
    }

    pub(crate) fn i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }

    pub(crate) fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    pub(crate) fn array(&self, key: &str) -> Option<&Vec<Value>> {
        self.get(key).and_then(Value::as_array)
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

    /// A required string (the schema guarantees presence; this keeps a bad schema from
    /// turning into a silent default).
    pub(crate) fn req_str(&self, key: &str) -> Result<&str> {
        self.str(key)
            .ok_or_else(|| self.invalid(key, format!("`{key}` is required")))
    }
}

/// `{"type": [t, "null"]}`: optional fields accept an explicit null (MCP and Python callers
/// often send one for "not given").
pub(crate) fn nullable(schema: Value) -> Value {
    let mut m: Map<String, Value> = match schema {
        Value::Object(m) => m,
        _ => return schema,
    };
    if let Some(Value::String(t)) = m.get("type").cloned() {
        m.insert("type".into(), json!([t, "null"]));
    }
    if let Some(Value::Array(e)) = m.get_mut("enum") {
        e.push(Value::Null);
    }
    Value::Object(m)
}

/// `path` with `.` components, repeated and trailing slashes removed (what Python's `Path(p)`
/// prints, which the SWE-agent messages show).
pub(crate) fn clean_path(p: &str) -> PathBuf {
    let cleaned: PathBuf = Path::new(p).components().collect();
    if cleaned.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        cleaned
    }
}

/// Resolve a possibly relative path against the process working directory.
pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A tree walk over `root` without following symlinks, skipping hidden entries unless asked,
/// and honoring .gitignore, .ignore and .git/info/exclude (also outside git repositories) when
/// `gitignore` is set.
pub(crate) fn walk_builder(
    root: &Path,
    include_hidden: bool,
    gitignore: bool,
) -> ignore::WalkBuilder {
    let mut b = ignore::WalkBuilder::new(root);
    b.standard_filters(false)
        .hidden(!include_hidden)
        .git_ignore(gitignore)
        .git_exclude(gitignore)
        .ignore(gitignore)
        .parents(gitignore)
        .require_git(false)
        .follow_links(false);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_register_by_name_and_unknown_names_fail_first() {
        let r = Registry::new();
        let e = register_groups(&r, &["fs", "shel"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "tool registration failed: unknown built-in tool group 'shel' (valid groups: {})",
                GROUPS.join(", ")
            )
        );
        assert!(r.is_empty(), "nothing is registered when a name is wrong");
        register_groups(&r, &default_groups()).unwrap();
        // Other groups may join the defaults; these must be there, the diagnostics must not.
        for name in [
            "edit",
            "fs.list",
            "fs.read",
            "fs.write",
            "search.dir",
            "search.file",
            "search.find_file",
        ] {
            assert!(r.contains(name), "{name}");
        }
        assert!(!r.contains("diag.echo"));
        // Registering again replaces instead of failing.
        register_groups(&r, &["diag", "edit"]).unwrap();
        assert!(r.contains("diag.echo") && r.contains("edit"));
    }
}

/// Helpers shared by the built-in tools' tests.
#[cfg(test)]
pub(crate) mod testutil {
    use serde_json::Value;

    use crate::core::{Error, Registry, Result};

    pub fn registry(register: fn(&Registry) -> Result<()>) -> Registry {
        let r = Registry::new();
        register(&r).unwrap();
        r
    }

    pub async fn call(r: &Registry, name: &str, args: Value) -> Value {
        r.call_json(name, args).await.unwrap()
    }

    pub async fn output(r: &Registry, name: &str, args: Value) -> String {
        call(r, name, args).await["output"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn err(r: &Registry, name: &str, args: Value) -> Error {
        r.call_json(name, args).await.unwrap_err()
    }

    /// The message of the `Error::Tool` the call fails with.
    pub async fn tool_err(r: &Registry, name: &str, args: Value) -> String {
        match err(r, name, args).await {
            Error::Tool { message, .. } => message,
            other => panic!("expected a tool error, got {other:?}"),
        }
    }

    /// Field and message of the `Error::InvalidArguments` the call fails with.
    pub async fn invalid(r: &Registry, name: &str, args: Value) -> (String, String) {
        match err(r, name, args).await {
            Error::InvalidArguments { path, message, .. } => (path, message),
            other => panic!("expected InvalidArguments, got {other:?}"),
        }
    }

    /// Each call fails with `InvalidArguments` naming the paired field.
    pub async fn invalid_fields(r: &Registry, name: &str, cases: Vec<(Value, &str)>) {
        for (args, field) in cases {
            let shown = args.to_string();
            assert_eq!(invalid(r, name, args).await.0, field, "{shown}");
        }
    }
}
