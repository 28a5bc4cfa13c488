//! An upstream `tools/call` result as our result or error.
//!
//! - `isError: true` → [`Error::Tool`] carrying the upstream's text.
//! - `structuredContent` present → that value.
//! - Otherwise the content: nothing → `null`; text blocks only → one string or a list of
//!   them; any other block → a [`RichContent`] of the blocks as given, whose JSON is a list
//!   where text blocks are strings and other blocks keep their MCP JSON form (`{"type":
//!   "image", "data", "mimeType"}`, …). A Python caller gets `agent_runtime.Image`/`Audio`/
//!   `EmbeddedResource` objects; our own MCP server re-serves the blocks as they came.

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

use crate::core::{Error, Payload, Result, RichContent};

pub(super) fn into_payload(tool: &str, r: CallToolResult) -> Result<Payload> {
    if r.is_error == Some(true) {
        let text = error_text(&r);
        return Err(Error::tool(tool, text));
    }
    if let Some(s) = r.structured_content {
        return Ok(Payload::Json(s));
    }
    if r.content.iter().all(|b| matches!(b, ContentBlock::Text(_))) {
        return Ok(Payload::Json(texts_value(r.content)));
    }
    let blocks = r
        .content
        .iter()
        .map(|b| {
            serde_json::to_value(b).map_err(|e| {
                Error::tool(
                    tool,
                    format!("an upstream content block cannot be rendered: {e}"),
                )
            })
        })
        .collect::<Result<Vec<Value>>>()?;
    Ok(RichContent::new(blocks).into_payload())
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

/// Text blocks only: nothing → `null`, one → its string, several → a list of strings.
fn texts_value(blocks: Vec<ContentBlock>) -> Value {
    let mut texts: Vec<Value> = blocks
        .into_iter()
        .filter_map(|b| match b {
            ContentBlock::Text(t) => Some(Value::String(t.text)),
            _ => None,
        })
        .collect();
    match texts.len() {
        0 => Value::Null,
        1 => texts.pop().unwrap_or(Value::Null),
        _ => Value::Array(texts),
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
        assert!(r.foreign::<RichContent>().is_some());
        assert_eq!(r.into_json().unwrap(), json!(["a", img]));
        // One image alone keeps the list form; annotations stay on the block.
        let ann = json!({"type": "image", "data": "AAAA", "mimeType": "image/png", "annotations": {"priority": 0.5}});
        let r = into_payload("t", parse(json!({"content": [ann.clone()]}))).unwrap();
        assert_eq!(
            r.foreign::<RichContent>().unwrap().blocks(),
            std::slice::from_ref(&ann)
        );
        assert_eq!(r.into_json().unwrap(), json!([ann]));
        let texts = into_payload(
            "t",
            parse(
                json!({"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
            ),
        )
        .unwrap();
        assert!(texts.foreign::<RichContent>().is_none());
        assert_eq!(texts.into_json().unwrap(), json!(["a", "b"]));
    }
}
