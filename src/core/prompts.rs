//! Prompts next to the tools of a registry: a name, a description, the arguments (the
//! function's parameters: required unless defaulted) and an async function that renders the
//! messages. Changes of the set wake `watch_changes` receivers (MCP `prompts/list_changed`).

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::catalog::{self, CatalogError};
use super::error::{Error, Result};
use super::registry::{Registered, MAX_NAME_LEN};
use super::text::bounded;
use super::tool::{CallContext, Tool};

/// One argument of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptArgument {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub required: bool,
}

/// What clients see of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub arguments: Vec<PromptArgument>,
}

struct Prompt {
    spec: PromptSpec,
    render: Arc<Registered>,
}

/// The prompts of one registry.
pub struct PromptStore {
    entries: RwLock<BTreeMap<String, Arc<Prompt>>>,
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for PromptStore {
    fn default() -> Self {
        PromptStore {
            entries: RwLock::default(),
            changes: catalog::changes(),
        }
    }
}

impl PromptStore {
    /// Add a prompt rendered by `render`; its arguments are `render`'s parameters (from the
    /// input schema). An existing prompt of the same name is an error unless `replace`.
    pub fn register(
        &self,
        name: &str,
        description: &str,
        render: Arc<dyn Tool>,
        replace: bool,
    ) -> Result<()> {
        if name.is_empty() {
            return Err(Error::Registration("prompt name must not be empty".into()));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(Error::Registration(format!(
                "prompt name '{}' is longer than {MAX_NAME_LEN} bytes",
                bounded(name, 64)
            )));
        }
        let (props, required) = catalog::params(&render.spec().input_schema);
        let arguments = props
            .into_iter()
            .map(|(n, description)| PromptArgument {
                required: required.contains(&n),
                name: n,
                description,
            })
            .collect();
        let spec = PromptSpec {
            name: name.to_string(),
            description: description.to_string(),
            arguments,
        };
        let render = catalog::compile(render)?;
        {
            let mut m = self.entries.write();
            if !replace && m.contains_key(name) {
                return Err(Error::Registration(format!(
                    "a prompt named '{name}' is already registered"
                )));
            }
            m.insert(name.to_string(), Arc::new(Prompt { spec, render }));
        }
        catalog::bump(&self.changes);
        Ok(())
    }

    /// Remove a prompt; `true` if it was there.
    pub fn unregister(&self, name: &str) -> bool {
        let removed = self.entries.write().remove(name).is_some();
        if removed {
            catalog::bump(&self.changes);
        }
        removed
    }

    /// Specs of all prompts, sorted by name.
    pub fn list(&self) -> Vec<PromptSpec> {
        self.entries
            .read()
            .values()
            .map(|p| p.spec.clone())
            .collect()
    }

    pub fn get_spec(&self, name: &str) -> Option<PromptSpec> {
        self.entries.read().get(name).map(|p| p.spec.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.read().is_empty()
    }

    /// Render prompt `name` with `args`: its messages, each `{"role", "content": <content
    /// block>}` (a function returning a string gives one user text message).
    pub async fn get(
        &self,
        name: &str,
        mut args: Map<String, Value>,
        ctx: CallContext,
    ) -> std::result::Result<(PromptSpec, Vec<Value>), CatalogError> {
        let p = self.entries.read().get(name).cloned();
        let Some(p) = p else {
            return Err(CatalogError::NotFound(format!(
                "Unknown prompt: '{}'",
                bounded(name, MAX_NAME_LEN)
            )));
        };
        let missing: Vec<&str> = p
            .spec
            .arguments
            .iter()
            .filter(|a| a.required && !args.contains_key(&a.name))
            .map(|a| a.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(CatalogError::InvalidParams(format!(
                "prompt '{name}': missing required argument{} {}",
                if missing.len() > 1 { "s" } else { "" },
                missing
                    .iter()
                    .map(|m| format!("'{m}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if let Some(extra) = args
            .keys()
            .find(|k| !p.spec.arguments.iter().any(|a| &a.name == *k))
        {
            return Err(CatalogError::InvalidParams(format!(
                "prompt '{name}' has no argument '{}'",
                bounded(extra, 64)
            )));
        }
        catalog::coerce_strings(&p.render.spec().input_schema, &mut args);
        let out = catalog::run(&p.render, args, ctx)
            .await
            .map_err(|e| match e {
                CatalogError::InvalidParams(m) => {
                    CatalogError::InvalidParams(format!("prompt '{name}': {m}"))
                }
                other => other,
            })?;
        let messages = match out {
            Value::String(s) => vec![user_text(s)],
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, m)| message(name, i, m))
                .collect::<std::result::Result<_, _>>()?,
            _ => return Err(bad_result(name, "it returned neither a str nor a list")),
        };
        Ok((p.spec.clone(), messages))
    }

    /// Wakes on every change of the set of prompts.
    pub fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

fn user_text(s: String) -> Value {
    serde_json::json!({"role": "user", "content": {"type": "text", "text": s}})
}

/// One rendered message: a string is a user text message; an object needs a `user` or
/// `assistant` role and a content block object.
fn message(name: &str, i: usize, m: Value) -> std::result::Result<Value, CatalogError> {
    match m {
        Value::String(s) => Ok(user_text(s)),
        Value::Object(o) => {
            let role_ok = matches!(
                o.get("role").and_then(Value::as_str),
                Some("user" | "assistant")
            );
            let content_ok = o
                .get("content")
                .and_then(Value::as_object)
                .is_some_and(|c| c.get("type").is_some_and(Value::is_string));
            if role_ok && content_ok {
                Ok(Value::Object(o))
            } else {
                Err(bad_result(
                    name,
                    &format!(
                        "message [{i}] needs a role 'user' or 'assistant' and a content block"
                    ),
                ))
            }
        }
        _ => Err(bad_result(
            name,
            &format!("message [{i}] is neither a str nor a message"),
        )),
    }
}

fn bad_result(name: &str, why: &str) -> CatalogError {
    CatalogError::Failed(Error::tool(
        format!("prompt {name}"),
        format!("a prompt function must return a str or a list of Message: {why}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{FnTool, ToolSpec};
    use serde_json::json;

    fn render(f: fn(Value) -> Result<Value>) -> Arc<dyn Tool> {
        let schema = json!({"type": "object", "properties": {
            "topic": {"type": "string", "description": "what about"},
            "n": {"type": "integer"}
        }, "required": ["topic"], "additionalProperties": false});
        Arc::new(FnTool::sync(ToolSpec::new("p").input_schema(schema), f))
    }

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[tokio::test]
    async fn renders_strings_and_messages() {
        let s = PromptStore::default();
        s.register(
            "plain",
            "d",
            render(|v| Ok(json!(format!("about {} x{}", v["topic"], v["n"])))),
            false,
        )
        .unwrap();
        let spec = &s.list()[0];
        assert_eq!(spec.arguments.len(), 2);
        let topic = spec.arguments.iter().find(|a| a.name == "topic").unwrap();
        assert!(topic.required && topic.description.as_deref() == Some("what about"));
        assert!(
            !spec
                .arguments
                .iter()
                .find(|a| a.name == "n")
                .unwrap()
                .required
        );
        let (_, m) = s
            .get(
                "plain",
                args(json!({"topic": "cats", "n": "3"})),
                CallContext::new(),
            )
            .await
            .unwrap();
        assert_eq!(
            m,
            vec![json!({"role": "user", "content": {"type": "text", "text": "about \"cats\" x3"}})]
        );
        s.register(
            "multi",
            "",
            render(|_| {
                Ok(json!(["hi", {"role": "assistant", "content": {"type": "text", "text": "yo"}}]))
            }),
            false,
        )
        .unwrap();
        let (_, m) = s
            .get("multi", args(json!({"topic": "x"})), CallContext::new())
            .await
            .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1]["role"], "assistant");
    }

    #[tokio::test]
    async fn bad_input_and_bad_results() {
        let s = PromptStore::default();
        s.register(
            "p",
            "",
            render(|_| Ok(json!([{"role": "system", "content": {"type": "text"}}]))),
            false,
        )
        .unwrap();
        let err = |r: std::result::Result<(PromptSpec, Vec<Value>), CatalogError>| {
            r.map(|_| ()).unwrap_err()
        };
        match err(s.get("p", Map::new(), CallContext::new()).await) {
            CatalogError::InvalidParams(m) => {
                assert!(m.contains("missing required argument 'topic'"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        match err(s
            .get(
                "p",
                args(json!({"topic": "a", "zz": "1"})),
                CallContext::new(),
            )
            .await)
        {
            CatalogError::InvalidParams(m) => assert!(m.contains("no argument 'zz'"), "{m}"),
            other => panic!("{other:?}"),
        }
        match err(s
            .get(
                "p",
                args(json!({"topic": "a", "n": "x"})),
                CallContext::new(),
            )
            .await)
        {
            CatalogError::InvalidParams(m) => {
                assert!(m.starts_with("prompt 'p': ") && m.contains("n"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        match err(s
            .get("p", args(json!({"topic": "a"})), CallContext::new())
            .await)
        {
            CatalogError::Failed(e) => {
                assert!(e.to_string().contains("message [0] needs a role"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        match err(s.get("nope", Map::new(), CallContext::new()).await) {
            CatalogError::NotFound(m) => assert!(m.contains("nope")),
            other => panic!("{other:?}"),
        }
        assert!(s
            .register("p", "", render(|_| Ok(json!(""))), false)
            .is_err());
        let mut ch = s.watch_changes();
        ch.mark_unchanged();
        assert!(s.unregister("p"));
        assert!(ch.has_changed().unwrap());
    }
}
