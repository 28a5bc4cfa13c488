//! Rich content (images, audio, embedded resources, resource links) a tool returned as MCP
//! content blocks, kept as those blocks.
//!
//! Its JSON form — what Rust callers, gRPC, the CLI and the worker see — is a list where text
//! blocks are strings and every other block is its MCP JSON (`{"type": "image", "data",
//! "mimeType"}`, …). The Python boundary turns it into `agent_runtime.Image` / `Audio` /
//! `EmbeddedResource` objects, and our MCP server re-serves the blocks exactly as they came
//! (annotations and `_meta` included).

use std::any::Any;

use serde_json::Value;

use super::payload::{ForeignValue, Payload};
use super::Result;

/// MCP content blocks, at least one of them not text.
#[derive(Debug, Clone, PartialEq)]
pub struct RichContent {
    blocks: Vec<Value>,
}

impl RichContent {
    /// `blocks` as given (each an MCP content block object).
    pub fn new(blocks: Vec<Value>) -> Self {
        RichContent { blocks }
    }

    pub fn blocks(&self) -> &[Value] {
        &self.blocks
    }

    pub fn into_payload(self) -> Payload {
        Payload::Foreign(std::sync::Arc::new(self))
    }

    fn is_text(b: &Value) -> Option<&str> {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => b.get("text").and_then(Value::as_str),
            _ => None,
        }
    }
}

impl ForeignValue for RichContent {
    fn to_json(&self) -> Result<Value> {
        Ok(Value::Array(
            self.blocks
                .iter()
                .map(|b| match Self::is_text(b) {
                    Some(t) => Value::String(t.to_string()),
                    None => b.clone(),
                })
                .collect(),
        ))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_form_is_strings_and_blocks() {
        let img = json!({"type": "image", "data": "AAAA", "mimeType": "image/png",
                         "annotations": {"priority": 1.0}});
        let r = RichContent::new(vec![json!({"type": "text", "text": "a"}), img.clone()]);
        let p = r.clone().into_payload();
        assert_eq!(p.to_json().unwrap(), json!(["a", img]));
        assert_eq!(p.foreign::<RichContent>(), Some(&r));
        assert_eq!(r.blocks().len(), 2);
    }
}
