//! SWE-ReX's request models (`swerex/runtime/abstract.py`, pydantic) as serde types, and body
//! parsing that answers as FastAPI does: 422 with a `detail` list naming the field (`loc`).
//! Unknown fields are ignored, as pydantic does by default.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use super::errors::HttpError;

fn default_session() -> String {
    "default".into()
}

fn bash() -> String {
    "bash".into()
}

fn default_check() -> Check {
    Check::Raise
}

#[derive(Debug, Deserialize)]
pub struct CreateSession {
    #[serde(default)]
    pub startup_source: Vec<String>,
    #[serde(default = "default_session")]
    pub session: String,
    #[serde(default = "bash")]
    pub session_type: String,
    #[serde(default = "one_second")]
    pub startup_timeout: f64,
}

fn one_second() -> f64 {
    1.0
}

fn interrupt_timeout() -> f64 {
    0.2
}

fn three() -> i64 {
    3
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    Silent,
    Raise,
    Ignore,
}

#[derive(Debug, Deserialize)]
pub struct BashAction {
    pub command: String,
    #[serde(default = "default_session")]
    pub session: String,
    #[serde(default)]
    pub timeout: Option<f64>,
    #[serde(default)]
    pub is_interactive_command: bool,
    #[serde(default)]
    pub is_interactive_quit: bool,
    #[serde(default = "default_check")]
    pub check: Check,
    #[serde(default)]
    pub error_msg: String,
    #[serde(default)]
    pub expect: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct BashInterruptAction {
    #[serde(default = "default_session")]
    pub session: String,
    #[serde(default = "interrupt_timeout")]
    pub timeout: f64,
    #[serde(default = "three")]
    pub n_retry: i64,
    // `expect` is accepted and ignored: an interrupt waits for the shell's prompt.
}

/// `Action`: a union told apart by `action_type` (`bash` when absent).
#[derive(Debug)]
pub enum Action {
    Bash(BashAction),
    Interrupt(BashInterruptAction),
}

#[derive(Debug, Deserialize)]
pub struct CloseSession {
    #[serde(default = "default_session")]
    pub session: String,
    #[serde(default = "bash")]
    pub session_type: String,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum CommandLine {
    Text(String),
    Argv(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub struct Command {
    pub command: CommandLine,
    #[serde(default)]
    pub timeout: Option<f64>,
    #[serde(default)]
    pub shell: bool,
    #[serde(default)]
    pub check: bool,
    #[serde(default)]
    pub error_msg: String,
    #[serde(default)]
    pub env: Option<HashMap<String, String>>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub merge_output_streams: bool,
}

#[derive(Debug, Deserialize)]
pub struct ReadFile {
    pub path: String,
    #[serde(default)]
    pub encoding: Option<String>,
    #[serde(default)]
    pub errors: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct WriteFile {
    pub content: String,
    pub path: String,
}

/// Parse a JSON body into `T`, or the 422 FastAPI would answer.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, HttpError> {
    let value = parse_value(body)?;
    from_value(value, &[])
}

/// The body as JSON: a missing body and text that does not parse are 422s.
pub fn parse_value(body: &[u8]) -> Result<Value, HttpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(HttpError::invalid(
            "missing",
            vec![json!("body")],
            "Field required",
            Value::Null,
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        HttpError::invalid(
            "json_invalid",
            vec![json!("body"), json!(e.column())],
            format!("JSON decode error: {e}"),
            json!({}),
        )
    })
}

/// `value` as `T`; `prefix` goes into `loc` after `body` (a union's tag, as pydantic does).
pub fn from_value<T: DeserializeOwned>(value: Value, prefix: &[&str]) -> Result<T, HttpError> {
    if !value.is_object() {
        return Err(HttpError::invalid(
            "model_attributes_type",
            vec![json!("body")],
            "Input should be a valid dictionary or object to extract fields from",
            value,
        ));
    }
    let input = value.clone();
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let mut loc = vec![json!("body")];
        loc.extend(prefix.iter().map(|p| json!(p)));
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names a missing field only in its message: "missing field `command`".
        if let Some(field) = inner
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            if path != "." {
                loc.extend(path.split('.').map(|p| json!(p)));
            }
            loc.push(json!(field));
            return HttpError::invalid("missing", loc, "Field required", input);
        }
        if path != "." {
            loc.extend(path.split('.').map(|p| {
                p.strip_prefix('[')
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|n| n.parse::<u64>().ok())
                    .map_or_else(|| json!(p), |n| json!(n))
            }));
        }
        HttpError::invalid("value_error", loc, inner, input)
    })
}

/// The `Action` union.
pub fn parse_action(body: &[u8]) -> Result<Action, HttpError> {
    let v = parse_value(body)?;
    let tag = v
        .get("action_type")
        .map_or(Some("bash"), Value::as_str)
        .map(str::to_string);
    match tag.as_deref() {
        Some("bash") => from_value(v, &["bash"]).map(Action::Bash),
        Some("bash_interrupt") => from_value(v, &["bash_interrupt"]).map(Action::Interrupt),
        _ => {
            let got = v.get("action_type").cloned().unwrap_or(Value::Null);
            Err(HttpError::invalid(
                "union_tag_invalid",
                vec![json!("body")],
                format!(
                    "Input tag {got} found using 'action_type' does not match any of the expected \
                     tags: 'bash', 'bash_interrupt'"
                ),
                v,
            ))
        }
    }
}

/// The `session_type` of a session request: only `bash` exists.
pub fn check_session_type(session_type: &str, input: Value) -> Result<(), HttpError> {
    if session_type == "bash" {
        return Ok(());
    }
    Err(HttpError::invalid(
        "union_tag_invalid",
        vec![json!("body")],
        format!(
            "Input tag '{session_type}' found using 'session_type' does not match any of the \
             expected tags: 'bash'"
        ),
        input,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_wrong_fields_name_their_place() {
        let e = parse::<WriteFile>(br#"{"path": "/x"}"#).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert_eq!(e.detail[0]["loc"], json!(["body", "content"]));
        assert_eq!(e.detail[0]["type"], "missing");
        let e = parse::<WriteFile>(br#"{"path": 3, "content": ""}"#).unwrap_err();
        assert_eq!(e.detail[0]["loc"], json!(["body", "path"]));
        let e = parse::<Command>(br#"{"command": ["a", 1]}"#).unwrap_err();
        assert_eq!(e.detail[0]["loc"][0], "body");
        let e = parse::<WriteFile>(b"{nope").unwrap_err();
        assert_eq!(e.detail[0]["type"], "json_invalid");
        let e = parse::<WriteFile>(b"").unwrap_err();
        assert_eq!(e.detail[0]["type"], "missing");
        let e = parse::<WriteFile>(b"[1]").unwrap_err();
        assert_eq!(e.detail[0]["type"], "model_attributes_type");
    }

    #[test]
    fn actions_by_tag() {
        let a = parse_action(br#"{"command": "ls", "extra": 1}"#).unwrap();
        assert!(matches!(a, Action::Bash(b) if b.command == "ls" && b.check == Check::Raise));
        let a = parse_action(br#"{"action_type": "bash_interrupt"}"#).unwrap();
        assert!(matches!(a, Action::Interrupt(i) if i.n_retry == 3 && i.session == "default"));
        let e = parse_action(br#"{"action_type": "nope"}"#).unwrap_err();
        assert_eq!(e.detail[0]["type"], "union_tag_invalid");
        let e = parse_action(br#"{"action_type": "bash"}"#).unwrap_err();
        assert_eq!(e.detail[0]["loc"], json!(["body", "bash", "command"]));
        let e = parse_action(br#"{"command": "ls", "check": "maybe"}"#).unwrap_err();
        assert_eq!(e.detail[0]["loc"], json!(["body", "bash", "check"]));
    }
}
