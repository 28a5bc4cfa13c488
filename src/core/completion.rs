//! The completion function of a registry: suggestions for a prompt's or a resource
//! template's argument (MCP `completion/complete`). None registered: no suggestions.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use serde_json::{json, Map, Value};

use super::catalog::{self, CatalogError};
use super::error::{Error, Result};
use super::registry::Registered;
use super::tool::{CallContext, Tool};

/// The input schema a completion function is called with.
pub fn input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "ref_type": {"type": "string", "enum": ["prompt", "resource"]},
            "ref_name": {"type": "string"},
            "argument": {"type": "string"},
            "value": {"type": "string"},
            "context": {"type": "object", "additionalProperties": {"type": "string"}}
        },
        "required": ["ref_type", "ref_name", "argument", "value", "context"]
    })
}

/// What is being completed.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    /// `"prompt"` or `"resource"` (a resource template).
    pub ref_type: String,
    /// The prompt's name or the template's URI.
    pub ref_name: String,
    pub argument: String,
    /// What the user typed so far.
    pub value: String,
    /// Arguments already given.
    pub context: Map<String, Value>,
}

#[derive(Default)]
pub struct Completions {
    handler: ArcSwapOption<Registered>,
}

impl Completions {
    /// Set (or replace) the completion function, called with [`input_schema`]'s arguments and
    /// returning a list of strings.
    pub fn set(&self, f: Arc<dyn Tool>) -> Result<()> {
        self.handler.store(Some(catalog::compile(f)?));
        Ok(())
    }

    pub fn clear(&self) {
        self.handler.store(None);
    }

    pub fn is_set(&self) -> bool {
        self.handler.load().is_some()
    }

    /// The suggestions, in the function's order (empty without a function).
    pub async fn complete(
        &self,
        req: CompletionRequest,
        ctx: CallContext,
    ) -> std::result::Result<Vec<String>, CatalogError> {
        let Some(f) = self.handler.load_full() else {
            return Ok(Vec::new());
        };
        let mut args = Map::new();
        args.insert("ref_type".into(), Value::String(req.ref_type));
        args.insert("ref_name".into(), Value::String(req.ref_name));
        args.insert("argument".into(), Value::String(req.argument));
        args.insert("value".into(), Value::String(req.value));
        args.insert("context".into(), Value::Object(req.context));
        match catalog::run(&f, args, ctx).await? {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(bad(&format!("an item is {other}"))),
                })
                .collect(),
            Value::Null => Ok(Vec::new()),
            other => Err(bad(&format!("it returned {other}"))),
        }
    }
}

fn bad(why: &str) -> CatalogError {
    let why: String = why.chars().take(200).collect();
    CatalogError::Failed(Error::tool(
        "completion",
        format!("a completion function must return a list of str: {why}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{FnTool, ToolSpec};

    fn req(value: &str) -> CompletionRequest {
        CompletionRequest {
            ref_type: "prompt".into(),
            ref_name: "p".into(),
            argument: "a".into(),
            value: value.into(),
            context: Map::new(),
        }
    }

    #[tokio::test]
    async fn empty_without_a_function_then_the_functions_answer() {
        let c = Completions::default();
        assert_eq!(
            c.complete(req("x"), CallContext::new()).await.unwrap(),
            Vec::<String>::new()
        );
        c.set(Arc::new(FnTool::sync(
            ToolSpec::new("c").input_schema(input_schema()),
            |v| {
                let p = v["value"].as_str().unwrap_or_default().to_string();
                if p == "bad" {
                    return Ok(json!([1]));
                }
                Ok(json!(["paris", "park", "rome"]
                    .iter()
                    .filter(|s| s.starts_with(&p))
                    .collect::<Vec<_>>()))
            },
        )))
        .unwrap();
        assert!(c.is_set());
        assert_eq!(
            c.complete(req("par"), CallContext::new()).await.unwrap(),
            ["paris", "park"]
        );
        match c.complete(req("bad"), CallContext::new()).await {
            Err(CatalogError::Failed(e)) => assert!(e.to_string().contains("list of str"), "{e}"),
            other => panic!("{other:?}"),
        }
        c.clear();
        assert!(c
            .complete(req("par"), CallContext::new())
            .await
            .unwrap()
            .is_empty());
    }
}
