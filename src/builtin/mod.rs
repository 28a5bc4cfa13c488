//! Tools implemented in Rust and shipped with the runtime. None is registered by default:
//! [`register_groups`] opts in by group.

mod args;
pub mod diag;
pub mod edit;
pub mod fs;
mod io;
pub mod search;
pub mod shell;

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::core::{Error, Registry, Result};
pub(crate) use args::{blocking_tool, Call};

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
pub(crate) fn clean_path(p: impl AsRef<Path>) -> PathBuf {
    let cleaned: PathBuf = p.as_ref().components().collect();
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
