//! Argument validation against a tool's JSON Schema, with errors that name the offending path.

use serde_json::Value;

use super::error::{Error, Result};

/// A compiled input schema.
pub struct ArgsValidator {
    validator: Option<jsonschema::Validator>,
}

impl ArgsValidator {
    pub fn compile(tool: &str, schema: &Value) -> Result<Self> {
        if is_trivial(schema) {
            return Ok(ArgsValidator { validator: None });
        }
        let validator = jsonschema::validator_for(schema).map_err(|e| {
            Error::Registration(format!("invalid input schema for tool '{tool}': {e}"))
        })?;
        Ok(ArgsValidator {
            validator: Some(validator),
        })
    }

    pub fn validate(&self, tool: &str, args: &Value) -> Result<()> {
        self.validate_ignoring(tool, args, &[])
    }

    /// Validate, ignoring errors located at or below the JSON pointers in `opaque` (places
    /// holding stand-ins for values JSON cannot express).
    pub fn validate_ignoring(&self, tool: &str, args: &Value, opaque: &[String]) -> Result<()> {
        let Some(v) = &self.validator else {
            return if args.is_object() {
                Ok(())
            } else {
                Err(Error::InvalidArguments {
                    tool: tool.to_string(),
                    path: "<root>".into(),
                    message: format!("arguments must be an object, got {}", json_type(args)),
                })
            };
        };
        let first = if opaque.is_empty() {
            v.validate(args).err()
        } else {
            v.iter_errors(args).find(|e| {
                let at = e.instance_path().as_str();
                !opaque
                    .iter()
                    .any(|o| at == o || at.starts_with(&format!("{o}/")))
            })
        };
        match first {
            None => Ok(()),
            Some(e) => {
                let mut path = pointer_to_path(args, e.instance_path().as_str());
                // Errors about object keys point at the object; name the key itself.
                match e.kind() {
                    jsonschema::error::ValidationErrorKind::Required { property } => {
                        path = join(&path, property.as_str().unwrap_or("?"));
                    }
                    jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected }
                        if unexpected.len() == 1 =>
                    {
                        path = join(&path, &unexpected[0]);
                    }
                    _ => {}
                }
                Err(Error::InvalidArguments {
                    tool: tool.to_string(),
                    path: if path.is_empty() {
                        "<root>".into()
                    } else {
                        path
                    },
                    message: e.to_string(),
                })
            }
        }
    }
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

/// `{"type": "object"}` (or `{}`) accepts any object: skip the validator entirely.
fn is_trivial(schema: &Value) -> bool {
    match schema.as_object() {
        Some(m) => {
            m.is_empty() || (m.len() == 1 && m.get("type") == Some(&Value::String("object".into())))
        }
        None => schema == &Value::Bool(true),
    }
}

pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `/items/3/when` → `items[3].when`, using the instance to tell array indexes from keys.
pub fn pointer_to_path(instance: &Value, pointer: &str) -> String {
    let mut out = String::new();
    let mut cur = Some(instance);
    for raw in pointer.split('/').skip(1) {
        let seg = raw.replace("~1", "/").replace("~0", "~");
        match cur {
            Some(Value::Array(a)) => {
                out.push_str(&format!("[{seg}]"));
                cur = seg.parse::<usize>().ok().and_then(|i| a.get(i));
            }
            other => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&seg);
                cur = other.and_then(|o| o.get(&seg));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointer_paths() {
        let v = json!({"items": [{"when": 1}, {"when": 2}, {}, {"when": "x"}]});
        assert_eq!(pointer_to_path(&v, "/items/3/when"), "items[3].when");
        assert_eq!(pointer_to_path(&v, ""), "");
        let v = json!({"a/b": {"0": 1}});
        assert_eq!(pointer_to_path(&v, "/a~1b/0"), "a/b.0");
    }

    #[test]
    fn validation_names_the_path() {
        let schema = json!({
            "type": "object",
            "properties": {"items": {"type": "array", "items": {
                "type": "object", "properties": {"when": {"type": "integer"}}}}},
            "required": ["items"],
            "additionalProperties": false
        });
        let v = ArgsValidator::compile("t", &schema).unwrap();
        let err = v
            .validate("t", &json!({"items": [{"when": 1}, {"when": "x"}]}))
            .unwrap_err();
        match err {
            Error::InvalidArguments { path, message, .. } => {
                assert_eq!(path, "items[1].when");
                assert!(message.contains("integer"), "{message}");
            }
            e => panic!("{e:?}"),
        }
        let err = v.validate("t", &json!({})).unwrap_err();
        assert!(
            matches!(err, Error::InvalidArguments { ref path, .. } if path == "items"),
            "{err:?}"
        );
        let err = v
            .validate("t", &json!({"items": [], "zzz": 1}))
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArguments { ref path, .. } if path == "zzz"),
            "{err:?}"
        );
        assert!(v.validate("t", &json!({"items": []})).is_ok());
    }

    #[test]
    fn trivial_schema_still_requires_an_object() {
        let v = ArgsValidator::compile("t", &json!({"type": "object"})).unwrap();
        assert!(v.validate("t", &json!({"a": 1})).is_ok());
        assert!(v.validate("t", &json!([1])).is_err());
    }

    #[test]
    fn bad_schema_is_a_registration_error() {
        let e = ArgsValidator::compile("t", &json!({"type": "no-such-type"}))
            .err()
            .unwrap();
        assert!(matches!(e, Error::Registration(_)), "{e:?}");
    }
}
