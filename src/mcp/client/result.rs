//! An upstream `tools/call` result as our result or error.
//!
//! - `isError: true` → [`Error::Tool`] carrying the upstream's text.
//! - `structuredContent` present → that value.
//! - Otherwise the content: nothing → `null`; one text block → its string; else a list where
//!   text blocks are strings and other blocks keep their MCP JSON form (`{"type": "image",
//!   "data", "mimeType"}`, …) — the JSON form of `agent_runtime.Image`/`Audio`/
//!   `EmbeddedResource`, which our own MCP server re-serves as the same content blocks.

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

use crate::core::{Error, Payload, Result};

pub(super) fn into_payload(tool: &str, r: CallToolResult) -> Result<Payload> {
    if r.is_error == Some(true) {
        let text = error_text(&r);
        return Err(Error::tool(tool, text));
    }
    if let Some(s) = r.structured_content {
        return Ok(Payload::Json(s));
    }
    Ok(Payload::Json(content_value(r.content)))
}

fn error_text(r: &CallToolResult) -> String {
    let texts: Vec<&str> = r
        .content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect();
    if texts.is_empty() {
        match &r.structured_content {
            Some(v) => v.to_string(),
            None => "the upstream tool reported an error without a message".into(),
        }
    } else {
        texts.join("\n")
    }
}

fn content_value(blocks: Vec<ContentBlock>) -> Value {
    fn one(b: ContentBlock) -> Value {
        match b {
            ContentBlock::Text(t) => Value::String(t.text),
            _ => serde_json::to_value(&b).unwrap_or(Value::Null),
        }
    }
    match blocks.len() {
        0 => Value::Null,
        1 if matches!(blocks[0], ContentBlock::Text(_)) => {
            blocks.into_iter().next().map(one).unwrap_or(Value::Null)
        }
        _ => Value::Array(blocks.into_iter().map(one).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> CallToolResult {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn maps_error_structured_text_and_rich_content() {
        let e = into_payload(
            "m.t",
            parse(json!({"content": [{"type": "text", "text": "boom"}], "isError": true})),
        );
        match e {
            Err(Error::Tool { tool, message }) => {
                assert_eq!((tool.as_str(), message.as_str()), ("m.t", "boom"))
            }
            other => panic!("{other:?}"),
        }
        let s = into_payload("t", parse(json!({"content": [{"type": "text", "text": "{}"}], "structuredContent": {"result": 3}}))).unwrap();
        assert_eq!(s.into_json().unwrap(), json!({"result": 3}));
        let t = into_payload(
            "t",
            parse(json!({"content": [{"type": "text", "text": "hi"}]})),
        )
        .unwrap();
        assert_eq!(t.into_json().unwrap(), json!("hi"));
        let empty = into_payload("t", parse(json!({"content": []}))).unwrap();
        assert_eq!(empty.into_json().unwrap(), Value::Null);
        let img = json!({"type": "image", "data": "AAAA", "mimeType": "image/png"});
        let r = into_payload(
            "t",
            parse(json!({"content": [{"type": "text", "text": "a"}, img.clone()]})),
        )
        .unwrap();
        assert_eq!(r.into_json().unwrap(), json!(["a", img]));
    }
}
