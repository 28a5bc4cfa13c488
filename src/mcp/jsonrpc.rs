//! Every incoming JSON-RPC message is checked here before rmcp sees it, on both transports.
//!
//! rmcp reads a request whose params do not fit the method's type as a custom request and
//! answers "method not found"; it answers unparsable input with HTTP 415 or not at all (stdio).
//! Here each problem gets the JSON-RPC error the spec names — −32700 parse error, −32600
//! invalid request, −32601 method not found, −32602 invalid params — with a message saying
//! what was wrong and where, never echoing more than a short prefix of the input.

#[allow(deprecated)] // the legacy methods rmcp still serves
use rmcp::model::{
    CallToolRequest, CancelTaskRequest, ClientJsonRpcMessage, ClientRequest, CompleteRequest,
    DiscoverRequest, GetPromptRequest, GetSkillRequest, GetTaskRequest, InitializeRequest,
    PaginatedRequestParams, PingRequest, ReadResourceDirectoryRequest, ReadResourceRequest,
    RequestId, SetLevelRequest, SubscribeRequest, SubscriptionsListenRequest, UnsubscribeRequest,
    UpdateTaskRequest,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub const PARSE_ERROR: i32 = -32700;
pub const INVALID_REQUEST: i32 = -32600;
pub const METHOD_NOT_FOUND: i32 = -32601;
pub const INVALID_PARAMS: i32 = -32602;

/// Longest tool name a `tools/call` may name (the registry's names are far shorter).
pub const MAX_TOOL_NAME_BYTES: usize = 256;

/// Longest piece of client input quoted back in an error message.
const MAX_QUOTE_CHARS: usize = 64;

/// Why a message is refused, and the JSON-RPC error answering it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The request's id when it could be read (else `null`, as JSON-RPC has it).
    pub id: Option<RequestId>,
    pub code: i32,
    pub message: String,
}

impl Rejection {
    fn new(id: Option<RequestId>, code: i32, message: impl Into<String>) -> Self {
        Rejection {
            id,
            code,
            message: message.into(),
        }
    }

    /// The JSON-RPC error response, serialized (one line, no newline).
    pub fn to_json(&self) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            code: i32,
            message: &'a str,
        }
        #[derive(serde::Serialize)]
        struct Reply<'a> {
            jsonrpc: &'static str,
            id: Option<&'a RequestId>,
            error: Body<'a>,
        }
        let reply = Reply {
            jsonrpc: "2.0",
            id: self.id.as_ref(),
            error: Body {
                code: self.code,
                message: &self.message,
            },
        };
        serde_json::to_vec(&reply).unwrap_or_else(|_| {
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"Internal error"}}"#
                .to_vec()
        })
    }

    /// Whether the reply needs an HTTP error status (no request it could answer).
    pub fn is_malformed(&self) -> bool {
        matches!(self.code, PARSE_ERROR | INVALID_REQUEST)
    }
}

/// `s` shortened for an error message, with a marker when cut.
pub fn quote(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTE_CHARS) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &s[..cut], s.len()),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parse one message's bytes (a body or a line). Invalid JSON or UTF-8: −32700.
pub fn parse(bytes: &[u8]) -> Result<Value, Rejection> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    serde_json::from_slice(bytes).map_err(|e| {
        let why = if e.to_string().starts_with("recursion limit exceeded") {
            format!("JSON nested too deeply ({e})")
        } else {
            e.to_string()
        };
        Rejection::new(None, PARSE_ERROR, format!("Parse error: {why}"))
    })
}

/// A tool name a `tools/call` may carry: not absurdly long (it would be looked up, compared
/// with every registered name for suggestions and quoted in the error).
pub fn check_tool_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_TOOL_NAME_BYTES {
        return Err(format!(
            "tool name is {} bytes long; names are at most {MAX_TOOL_NAME_BYTES} bytes (starts with {})",
            name.len(),
            quote(name)
        ));
    }
    Ok(())
}

/// Check a parsed message and turn it into rmcp's type, or say what is wrong with it.
pub fn check(msg: Value) -> Result<ClientJsonRpcMessage, Rejection> {
    let obj = match msg {
        Value::Object(m) => m,
        Value::Array(_) => {
            return Err(Rejection::new(
                None,
                INVALID_REQUEST,
                "Invalid Request: JSON-RPC batches (arrays) are not supported by this MCP \
                 protocol version; send one message at a time",
            ))
        }
        other => {
            return Err(Rejection::new(
                None,
                INVALID_REQUEST,
                format!(
                    "Invalid Request: a JSON-RPC message must be an object, got {}",
                    kind(&other)
                ),
            ))
        }
    };
    let id = match obj.get("id") {
        None => None,
        Some(v @ Value::String(_)) => Some(v),
        Some(v @ Value::Number(n)) if n.is_i64() => Some(v),
        Some(other) => {
            return Err(Rejection::new(
                None,
                INVALID_REQUEST,
                format!(
                    "Invalid Request: \"id\" must be a string or an integer, got {}",
                    match other {
                        Value::Number(_) => "a fraction or an integer beyond 64 bits",
                        v => kind(v),
                    }
                ),
            ))
        }
    };
    let id: Option<RequestId> = id.and_then(|v| serde_json::from_value(v.clone()).ok());
    let invalid = |code: i32, message: String| Rejection::new(id.clone(), code, message);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(
            INVALID_REQUEST,
            "Invalid Request: \"jsonrpc\" must be \"2.0\"".into(),
        ));
    }
    match obj.get("method") {
        Some(Value::String(method)) => {
            // Without an id it is a notification: unknown ones are ignored, as JSON-RPC has it.
            if id.is_some() {
                check_request(method, &obj).map_err(|(code, m)| invalid(code, m))?;
            }
        }
        Some(other) => {
            return Err(invalid(
                INVALID_REQUEST,
                format!(
                    "Invalid Request: \"method\" must be a string, got {}",
                    kind(other)
                ),
            ))
        }
        None => {
            if !(obj.contains_key("result") || obj.contains_key("error")) {
                return Err(invalid(
                    INVALID_REQUEST,
                    "Invalid Request: a message needs \"method\" (a request or notification) \
                     or \"result\"/\"error\" (a response)"
                        .into(),
                ));
            }
            if id.is_none() && !obj.contains_key("error") {
                return Err(invalid(
                    INVALID_REQUEST,
                    "Invalid Request: a response needs the \"id\" of the request it answers".into(),
                ));
            }
        }
    }
    let method = obj.get("method").and_then(Value::as_str).map(quote);
    let message: ClientJsonRpcMessage = match serde_json::from_value(Value::Object(obj)) {
        Ok(m) => m,
        Err(e) => {
            return Err(invalid(
                INVALID_REQUEST,
                format!("Invalid Request: {}", first_line(&e.to_string())),
            ))
        }
    };
    if let ClientJsonRpcMessage::Request(r) = &message {
        if let ClientRequest::CustomRequest(_) = r.request {
            // Known method, params that passed the typed check, still not recognised.
            return Err(invalid(
                INVALID_PARAMS,
                format!(
                    "Invalid params for {}: not a valid request of that method",
                    method.unwrap_or_default()
                ),
            ));
        }
    }
    Ok(message)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// A request (it has an id): a method this server knows, with params of the right shape.
fn check_request(method: &str, obj: &Map<String, Value>) -> Result<(), (i32, String)> {
    if method.starts_with("notifications/") {
        return Err((
            INVALID_REQUEST,
            format!(
                "Invalid Request: {} is a notification: send it without an \"id\"",
                quote(method)
            ),
        ));
    }
    let Some(typed) = request_check(method) else {
        return Err((
            METHOD_NOT_FOUND,
            format!("Method not found: {}", quote(method)),
        ));
    };
    let params = obj.get("params");
    let bad = |why: String| {
        Err((
            INVALID_PARAMS,
            format!("Invalid params for {method}: {why}"),
        ))
    };
    match params {
        None | Some(Value::Object(_)) => {}
        Some(Value::Null) => {}
        Some(other) => return bad(format!("params must be an object, got {}", kind(other))),
    }
    if method == "tools/call" {
        let p = match params {
            Some(Value::Object(p)) => p,
            _ => return bad("params are required: {\"name\": ..., \"arguments\": {...}}".into()),
        };
        match p.get("name") {
            None => return bad("params.name (the tool's name) is required".into()),
            Some(Value::String(name)) => check_tool_name(name).or_else(bad)?,
            Some(other) => {
                return bad(format!("params.name must be a string, got {}", kind(other)))
            }
        }
        match p.get("arguments") {
            None | Some(Value::Null) | Some(Value::Object(_)) => {}
            Some(other) => {
                return bad(format!(
                    "params.arguments must be an object (the tool's arguments by name), got {}",
                    kind(other)
                ))
            }
        }
        // The rest of the params is rmcp's to read: a typed check here would copy the
        // arguments (possibly megabytes) once more.
        return Ok(());
    }
    let mut shell = Map::new();
    shell.insert("method".into(), Value::String(method.into()));
    if let Some(p) = params {
        shell.insert("params".into(), p.clone());
    }
    typed(Value::Object(shell)).or_else(|why| bad(first_line(&why).to_string()))
}

type TypedCheck = fn(Value) -> Result<(), String>;

fn typed<T: DeserializeOwned>(v: Value) -> Result<(), String> {
    serde_json::from_value::<T>(v)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Methods whose params are optional: rmcp drops params it cannot read, so check them here.
fn paginated(v: Value) -> Result<(), String> {
    match v.get("params") {
        None | Some(Value::Null) => Ok(()),
        Some(p) => typed::<PaginatedRequestParams>(p.clone()),
    }
}

#[allow(deprecated)]
/// The typed check of each request method rmcp serves (`None`: not a method of this server).
fn request_check(method: &str) -> Option<TypedCheck> {
    Some(match method {
        "ping" => typed::<PingRequest>,
        "initialize" => typed::<InitializeRequest>,
        "server/discover" => typed::<DiscoverRequest>,
        "tools/list" => paginated,
        "tools/call" => typed::<CallToolRequest>,
        "subscriptions/listen" => typed::<SubscriptionsListenRequest>,
        "completion/complete" => typed::<CompleteRequest>,
        "logging/setLevel" => typed::<SetLevelRequest>,
        "prompts/get" => typed::<GetPromptRequest>,
        "prompts/list" => paginated,
        "resources/list" => paginated,
        "resources/templates/list" => paginated,
        "resources/read" => typed::<ReadResourceRequest>,
        "resources/subscribe" => typed::<SubscribeRequest>,
        "resources/unsubscribe" => typed::<UnsubscribeRequest>,
        "resources/directory/read" => typed::<ReadResourceDirectoryRequest>,
        "tasks/get" => typed::<GetTaskRequest>,
        "tasks/update" => typed::<UpdateTaskRequest>,
        "tasks/cancel" => typed::<CancelTaskRequest>,
        "skills/list" => paginated,
        "skills/get" => typed::<GetSkillRequest>,
        _ => return None,
    })
}

/// What a transport does with one incoming message's bytes.
pub fn decode(bytes: &[u8]) -> Result<ClientJsonRpcMessage, Rejection> {
    check(parse(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rejected(text: &str) -> Rejection {
        decode(text.as_bytes()).unwrap_err()
    }

    fn code_and_message(text: &str) -> (i32, String) {
        let r = rejected(text);
        (r.code, r.message)
    }

    #[test]
    fn valid_messages_pass() {
        for m in [
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":{"a":1}}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"x"}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
        ] {
            decode(m.as_bytes()).unwrap_or_else(|e| panic!("{m}: {e:?}"));
        }
    }

    #[test]
    fn unparsable_input_is_a_parse_error() {
        for m in ["{not json", "", "\u{1}", "[1,", "{\"a\":\"\\ud800\"x}"] {
            let r = rejected(m);
            assert_eq!((r.code, r.id.clone()), (PARSE_ERROR, None), "{m}");
            assert!(r.message.starts_with("Parse error: "), "{}", r.message);
        }
        let r = decode(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}").unwrap_err();
        assert_eq!(r.code, PARSE_ERROR);
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let r = rejected(&deep);
        assert_eq!(r.code, PARSE_ERROR);
        assert!(r.message.contains("nested too deeply"), "{}", r.message);
    }

    #[test]
    fn tools_call_params_are_invalid_params() {
        let (c, m) = code_and_message(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#,
        );
        assert_eq!(c, INVALID_PARAMS);
        assert!(
            m.contains("params.arguments must be an object") && m.contains("an array"),
            "{m}"
        );
        let (c, m) = code_and_message(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#);
        assert_eq!(c, INVALID_PARAMS);
        assert!(m.contains("params are required"), "{m}");
        let (c, m) = code_and_message(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":5}}"#,
        );
        assert_eq!(c, INVALID_PARAMS);
        assert!(
            m.contains("params.name must be a string, got a number"),
            "{m}"
        );
        let (c, m) = code_and_message(
            r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"arguments":{}}}"#,
        );
        assert_eq!(c, INVALID_PARAMS);
        assert!(m.contains("params.name"), "{m}");
        let (c, m) =
            code_and_message(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":[1]}"#);
        assert_eq!(c, INVALID_PARAMS);
        assert!(m.contains("params must be an object, got an array"), "{m}");
        // The id comes back so the client can match the error to its request.
        let r = rejected(r#"{"jsonrpc":"2.0","id":"abc","method":"tools/call"}"#);
        assert_eq!(r.id, Some(RequestId::String("abc".into())));
    }

    #[test]
    fn other_methods_params_are_checked_too() {
        let (c, m) = code_and_message(
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":5}}"#,
        );
        assert_eq!(c, INVALID_PARAMS);
        assert!(m.starts_with("Invalid params for initialize: "), "{m}");
        let (c, _) = code_and_message(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":5}}"#,
        );
        assert_eq!(c, INVALID_PARAMS);
        let (c, _) = code_and_message(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}"#);
        assert_eq!(c, INVALID_PARAMS);
    }

    #[test]
    fn huge_names_are_capped_and_not_echoed() {
        let name = "n".repeat(4 << 20);
        let msg = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name": name}});
        let r = check(msg).unwrap_err();
        assert_eq!(r.code, INVALID_PARAMS);
        assert!(r.message.contains("at most 256 bytes"), "{}", r.message);
        assert!(r.message.len() < 400, "{} bytes", r.message.len());
        let method = "m".repeat(1 << 20);
        let r = check(json!({"jsonrpc":"2.0","id":1,"method": method})).unwrap_err();
        assert_eq!(r.code, METHOD_NOT_FOUND);
        assert!(r.message.len() < 200, "{} bytes", r.message.len());
    }

    #[test]
    fn envelope_problems_are_invalid_requests() {
        let cases = [
            (r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, "batches"),
            ("5", "must be an object, got a number"),
            (
                r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
                "\"jsonrpc\" must be \"2.0\"",
            ),
            (r#"{"id":1,"method":"ping"}"#, "\"jsonrpc\" must be"),
            (
                r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
                "\"id\" must be a string or an integer",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
                "\"id\" must be",
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                "\"id\" must be",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":7}"#,
                "\"method\" must be a string",
            ),
            (r#"{"jsonrpc":"2.0","id":1}"#, "needs \"method\""),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"notifications/initialized"}"#,
                "send it without an \"id\"",
            ),
        ];
        for (m, want) in cases {
            let (c, msg) = code_and_message(m);
            assert_eq!(c, INVALID_REQUEST, "{m}: {msg}");
            assert!(msg.contains(want), "{m}: {msg}");
        }
        let (c, m) = code_and_message(r#"{"jsonrpc":"2.0","id":1,"method":"no/such"}"#);
        assert_eq!(c, METHOD_NOT_FOUND);
        assert_eq!(m, "Method not found: \"no/such\"");
    }

    #[test]
    fn replies_are_json_rpc_errors() {
        let r = rejected(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call"}"#);
        let v: Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(v["id"], 9);
        assert_eq!(v["error"]["code"], INVALID_PARAMS);
        let r = rejected("{");
        let v: Value = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(v["id"], Value::Null);
        assert_eq!(v["error"]["code"], PARSE_ERROR);
        assert!(r.is_malformed());
    }

    #[test]
    fn quotes_are_bounded() {
        assert_eq!(quote("abc"), "\"abc\"");
        let q = quote(&"é".repeat(1000));
        assert!(
            q.ends_with("… (2000 bytes)") && q.chars().count() < 90,
            "{q}"
        );
    }
}
