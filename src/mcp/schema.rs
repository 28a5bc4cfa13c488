//! Tool schemas as MCP clients want them: self-contained (local `$ref`s inlined, no `$defs`),
//! input schemas of `"type": "object"`, and output schemas wrapped in an object when the
//! tool returns something else (MCP's `structuredContent` is always an object).

use serde_json::{Map, Value};

/// Deepest `$ref` chain inlined; deeper (or recursive) references become `{}`, which accepts
/// anything, with a description saying why.
const MAX_REF_DEPTH: usize = 32;

/// The key a non-object result is wrapped under in `structuredContent`.
pub const RESULT_KEY: &str = "result";

/// Inline every local reference (`#/...`) of `schema` and drop the definitions it used.
pub fn self_contained(schema: &Value) -> Value {
    let mut stack = Vec::new();
    let mut out = inline(schema, schema, &mut stack);
    if let Value::Object(m) = &mut out {
        if !contains_ref(&Value::Object(m.clone()), &["$defs", "definitions"]) {
            m.remove("$defs");
            m.remove("definitions");
        }
    }
    out
}

fn contains_ref(v: &Value, skip: &[&str]) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| {
            (k == "$ref" && v.is_string()) || (!skip.contains(&k.as_str()) && contains_ref(v, &[]))
        }),
        Value::Array(a) => a.iter().any(|v| contains_ref(v, &[])),
        _ => false,
    }
}

fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    // A URI fragment: percent-decode it once (RFC 3986), then it is a JSON pointer whose
    // `~1`/`~0` escapes `Value::pointer` undoes (RFC 6901 §6).
    let decoded = percent_encoding::percent_decode_str(pointer)
        .decode_utf8()
        .ok()?;
    root.pointer(&decoded)
}

fn inline(v: &Value, root: &Value, stack: &mut Vec<String>) -> Value {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                if let Some(target) = resolve(root, r) {
                    if stack.len() >= MAX_REF_DEPTH || stack.iter().any(|s| s == r) {
                        let mut o = Map::new();
                        o.insert(
                            "description".into(),
                            Value::String(format!("(recursive reference to {r}, not expanded)")),
                        );
                        return Value::Object(o);
                    }
                    stack.push(r.clone());
                    let mut expanded = inline(target, root, stack);
                    stack.pop();
                    // Keywords next to `$ref` (allowed since draft 2019-09) refine the target.
                    if let Value::Object(em) = &mut expanded {
                        for (k, v) in m {
                            if k != "$ref" {
                                em.insert(k.clone(), inline(v, root, stack));
                            }
                        }
                    }
                    return expanded;
                }
            }
            Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), inline(v, root, stack)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| inline(v, root, stack)).collect()),
        other => other.clone(),
    }
}

fn is_object_schema(s: &Value) -> bool {
    match s.get("type") {
        Some(Value::String(t)) => t == "object",
        _ => false,
    }
}

/// An input schema MCP accepts: self-contained, with `"type": "object"`. A schema the tool's
/// author wrote (`as_given`) keeps its `$schema`, `$defs` and `$ref`s (JSON Schema 2020-12 as
/// the author meant it); only a missing `"type": "object"` is added.
pub fn input_schema(schema: &Value, as_given: bool) -> Map<String, Value> {
    let s = if as_given {
        schema.clone()
    } else {
        self_contained(schema)
    };
    let mut m = match s {
        Value::Object(m) => m,
        // `true` or a non-object schema: any object.
        _ => Map::new(),
    };
    if !m.contains_key("type") {
        m.insert("type".into(), Value::String("object".into()));
    }
    m
}

/// Whether results of a tool with this output schema are wrapped as `{"result": value}` (what
/// [`output_schema`] decides, without copying the schema on every call).
pub fn wraps_result(schema: Option<&Value>) -> bool {
    match schema {
        None => false,
        Some(s) if s.get("$ref").is_some() => output_schema(Some(s)).1,
        Some(s) => !is_object_schema(s),
    }
}

/// The advertised output schema, and whether results are wrapped as `{"result": value}`.
pub fn output_schema(schema: Option<&Value>) -> (Option<Map<String, Value>>, bool) {
    let Some(schema) = schema else {
        return (None, false);
    };
    let s = self_contained(schema);
    if is_object_schema(&s) {
        if let Value::Object(m) = s {
            return (Some(m), false);
        }
    }
    let mut props = Map::new();
    props.insert(RESULT_KEY.into(), s);
    let mut m = Map::new();
    m.insert("type".into(), Value::String("object".into()));
    m.insert("properties".into(), Value::Object(props));
    m.insert(
        "required".into(),
        Value::Array(vec![Value::String(RESULT_KEY.into())]),
    );
    (Some(m), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inlines_defs_and_drops_them() {
        let s = json!({
            "type": "object",
            "properties": {"p": {"$ref": "#/$defs/Point"}, "q": {"$ref": "#/$defs/Point", "description": "second"}},
            "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "integer"}}}}
        });
        let out = self_contained(&s);
        assert_eq!(out["properties"]["p"]["properties"]["x"]["type"], "integer");
        assert_eq!(out["properties"]["q"]["description"], "second");
        assert!(out.get("$defs").is_none());
        assert!(!contains_ref(&out, &[]));
    }

    #[test]
    fn recursion_is_cut() {
        let s = json!({
            "type": "object",
            "properties": {"tree": {"$ref": "#/$defs/Node"}},
            "$defs": {"Node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}}
        });
        let out = self_contained(&s);
        let items = &out["properties"]["tree"]["properties"]["kids"]["items"];
        assert!(items["description"].as_str().unwrap().contains("recursive"));
        assert!(out.get("$defs").is_none());
    }

    #[test]
    fn unresolvable_refs_keep_their_definitions() {
        let s = json!({"type": "object", "properties": {"a": {"$ref": "https://example.com/x"}}, "$defs": {}});
        let out = self_contained(&s);
        assert_eq!(out["properties"]["a"]["$ref"], "https://example.com/x");
        assert!(out.get("$defs").is_some());
    }

    #[test]
    fn ref_fragments_are_percent_decoded_once_then_unescaped() {
        let s = json!({
            "$defs": {
                "a b": {"type": "integer"},
                "%22": {"type": "string"},
                "\"": {"type": "boolean"},
                "x/y": {"type": "array"},
                "t~n": {"type": "null"},
                "é": {"type": "number"},
            },
        });
        let r = |reference: &str| resolve(&s, reference).map(|v| v["type"].clone());
        assert_eq!(r("#/$defs/a%20b"), Some(json!("integer")));
        // `%2522` is `%22` once decoded, not a quote.
        assert_eq!(r("#/$defs/%2522"), Some(json!("string")));
        assert_eq!(r("#/$defs/%22"), Some(json!("boolean")));
        assert_eq!(r("#/$defs/x~1y"), Some(json!("array")));
        assert_eq!(r("#/$defs/x%7E1y"), Some(json!("array")));
        assert_eq!(r("#/$defs/t~0n"), Some(json!("null")));
        assert_eq!(r("#/$defs/%C3%A9"), Some(json!("number")));
        assert_eq!(r("#/$defs/%FF"), None); // not UTF-8
        assert_eq!(r("#/$defs/missing"), None);
        assert_eq!(r("#"), Some(s.clone()).map(|v| v["type"].clone()));
        let inlined = self_contained(&json!({
            "type": "object",
            "properties": {"p": {"$ref": "#/$defs/a%20b"}},
            "$defs": {"a b": {"type": "integer"}},
        }));
        assert_eq!(inlined["properties"]["p"]["type"], "integer");
        assert!(inlined.get("$defs").is_none());
    }

    #[test]
    fn schemas_as_given_are_kept() {
        let s = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {"A": {"type": "object", "properties": {"x": {"type": "string"}}, "additionalProperties": false}},
            "properties": {"a": {"$ref": "#/$defs/A"}},
            "additionalProperties": false,
        });
        assert_eq!(Value::Object(input_schema(&s, true)), s);
        assert_ne!(Value::Object(input_schema(&s, false)), s);
        assert_eq!(
            input_schema(&json!({"properties": {}}), true)["type"],
            "object"
        );
    }

    #[test]
    fn input_and_output_shapes() {
        assert_eq!(input_schema(&json!({}), false)["type"], "object");
        assert_eq!(input_schema(&json!(true), false)["type"], "object");
        let (o, wrapped) = output_schema(Some(&json!({"type": "integer"})));
        assert!(wrapped);
        assert_eq!(o.unwrap()["properties"]["result"]["type"], "integer");
        let (o, wrapped) = output_schema(Some(&json!({"type": "object"})));
        assert!(!wrapped);
        assert!(o.is_some());
        assert_eq!(output_schema(None), (None, false));
        for s in [
            json!({"type": "integer"}),
            json!({"type": "object"}),
            json!({"$ref": "#/$defs/M", "$defs": {"M": {"type": "object"}}}),
            json!({"$ref": "#/$defs/N", "$defs": {"N": {"type": "string"}}}),
        ] {
            assert_eq!(wraps_result(Some(&s)), output_schema(Some(&s)).1, "{s}");
        }
        assert!(!wraps_result(None));
    }
}
