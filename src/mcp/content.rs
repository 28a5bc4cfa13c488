//! Tool results as MCP content: rich content blocks from a tool's result, and error results
//! that every client accepts.

use rmcp::model::{CallToolResult, ContentBlock, MetaObject};
use serde_json::{Map, Value};

use crate::core::{Error, RichContent};

/// `_meta` key of an error result's machine-readable detail.
pub const ERROR_META_KEY: &str = "agent-runtime/error";

/// The content blocks a result stands for, when it is rich content: one image / audio /
/// embedded-resource block (the JSON form of `agent_runtime.Image`, `Audio`,
/// `EmbeddedResource`), or a list of such blocks mixed with strings (text blocks). Any other
/// value is None (the caller renders it as JSON text).
pub fn rich_blocks(v: &Value) -> Option<Vec<ContentBlock>> {
    match v {
        Value::Object(_) => block(v).map(|b| vec![b]),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut rich = false;
            for item in items {
                match item {
                    Value::String(s) => out.push(ContentBlock::text(s.clone())),
                    other => {
                        out.push(block(other)?);
                        rich = true;
                    }
                }
            }
            rich.then_some(out)
        }
        _ => None,
    }
}

/// The blocks of a mounted upstream's rich result, as it sent them (any block type,
/// annotations and `_meta` kept); None if one of them is not a content block rmcp knows.
pub fn upstream_blocks(r: &RichContent) -> Option<Vec<ContentBlock>> {
    r.blocks()
        .iter()
        .map(|b| serde_json::from_value(b.clone()).ok())
        .collect()
}

/// One non-text content block, if `v` is exactly the JSON form of one.
fn block(v: &Value) -> Option<ContentBlock> {
    let m = v.as_object()?;
    let str_field = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).is_some();
    let ok = match m.get("type").and_then(Value::as_str)? {
        "image" | "audio" => m.len() == 3 && str_field(m, "data") && str_field(m, "mimeType"),
        "resource" => {
            m.len() == 2
                && m.get("resource")
                    .and_then(Value::as_object)
                    .is_some_and(|r| {
                        str_field(r, "uri") && (str_field(r, "text") ^ str_field(r, "blob"))
                    })
        }
        _ => false,
    };
    if !ok {
        return None;
    }
    serde_json::from_value(v.clone()).ok()
}

/// Bytes the blocks take on the wire, roughly (for the result size cap).
pub fn wire_size(blocks: &[ContentBlock]) -> usize {
    blocks
        .iter()
        .map(|b| serde_json::to_string(b).map(|s| s.len()).unwrap_or(0))
        .sum()
}

/// What MCP shows of an error: its type (the Python exception's, else the error kind), message
/// and, for a Python error, traceback.
pub fn error_parts(e: &Error) -> (String, String, Option<String>) {
    match e {
        Error::Python {
            type_name,
            message,
            traceback,
            ..
        } => (type_name.clone(), message.clone(), traceback.clone()),
        other => (other.kind().to_string(), other.to_string(), None),
    }
}

/// An error result: text `Type: message` (plus the traceback of a Python error), and the same
/// as data in `_meta["agent-runtime/error"]` (`{"type", "message", "kind", "path"?,
/// "traceback"?}`). Never `structuredContent`: a client validates that against the tool's
/// output schema (the TypeScript SDK rejects the whole response when it does not match).
pub fn error_result(e: &Error) -> CallToolResult {
    let (type_name, message, traceback) = error_parts(e);
    let text = match &traceback {
        Some(tb) => format!("{type_name}: {message}\n\n{tb}"),
        None => format!("{type_name}: {message}"),
    };
    let mut err = Map::new();
    err.insert("type".into(), Value::String(type_name));
    err.insert("message".into(), Value::String(message));
    err.insert("kind".into(), Value::String(e.kind().into()));
    if let Error::InvalidArguments { path, .. } = e {
        err.insert("path".into(), Value::String(path.clone()));
    }
    if let Some(tb) = traceback {
        err.insert("traceback".into(), Value::String(tb));
    }
    let mut r = CallToolResult::error(vec![ContentBlock::text(text)]);
    let mut meta = MetaObject::new();
    meta.0.insert(ERROR_META_KEY.into(), Value::Object(err));
    r.meta = Some(meta);
    r
}

/// An error result with only text (a result over the size cap).
pub fn error_text(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rich_blocks_only_for_exact_content_forms() {
        let img = json!({"type": "image", "data": "AAEC", "mimeType": "image/png"});
        let res = json!({"type": "resource", "resource": {"uri": "file:///a", "text": "hi"}});
        assert_eq!(rich_blocks(&img).map(|b| b.len()), Some(1));
        assert_eq!(rich_blocks(&res).map(|b| b.len()), Some(1));
        let mixed = rich_blocks(&json!(["caption", img.clone(), res.clone()])).unwrap();
        assert_eq!(mixed.len(), 3);
        let wire = serde_json::to_value(&mixed).unwrap();
        assert_eq!(wire[0], json!({"type": "text", "text": "caption"}));
        assert_eq!(wire[1], img);
        assert_eq!(wire[2], res);
        // Plain data stays plain.
        for v in [
            json!(["a", "b"]),
            json!([]),
            json!({"type": "image", "data": "x"}),
            json!({"type": "image", "data": "x", "mimeType": "a", "extra": 1}),
            json!({"type": "resource", "resource": {"uri": "u", "text": "t", "blob": "b"}}),
            json!({"type": "text", "text": "t"}),
            json!([1, img.clone()]),
            json!(42),
        ] {
            assert!(rich_blocks(&v).is_none(), "{v}");
        }
    }

    #[test]
    fn upstream_blocks_are_kept_as_they_came() {
        let link = json!({"type": "resource_link", "uri": "file:///x", "name": "x"});
        let img = json!({"type": "image", "data": "AAEC", "mimeType": "image/png",
                         "annotations": {"priority": 0.5}});
        let r = RichContent::new(vec![
            json!({"type": "text", "text": "t"}),
            img.clone(),
            link.clone(),
        ]);
        let blocks = upstream_blocks(&r).unwrap();
        let wire = serde_json::to_value(&blocks).unwrap();
        assert_eq!(wire, json!([{"type": "text", "text": "t"}, img, link]));
        assert!(upstream_blocks(&RichContent::new(vec![json!({"type": "nope"})])).is_none());
    }

    #[test]
    fn error_results_carry_no_structured_content() {
        let e = Error::InvalidArguments {
            tool: "t".into(),
            path: "a".into(),
            message: "bad".into(),
        };
        let r = error_result(&e);
        assert_eq!(r.is_error, Some(true));
        assert!(r.structured_content.is_none());
        let meta = &r.meta.as_ref().unwrap().0[ERROR_META_KEY];
        assert_eq!(meta["type"], "InvalidArguments");
        assert_eq!(meta["path"], "a");
    }
}
