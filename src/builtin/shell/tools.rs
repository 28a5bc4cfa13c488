//! The `shell.*` tools: schemas, argument parsing, registration.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::capped::{DEFAULT_MAX_OUTPUT, MIN_MAX_OUTPUT};
use super::exec::{execute, ExecOptions};
use super::manager::SessionManager;
use super::options::{InputKind, Interrupt, RunOptions, SessionOptions};
use crate::core::duration;
use crate::core::{Error, FnTool, Registry, Result, ToolSpec};

fn obj(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

fn invalid(tool: &str, path: &str, message: impl Into<String>) -> Error {
    Error::InvalidArguments {
        tool: tool.into(),
        path: path.into(),
        message: message.into(),
    }
}

/// Seconds at `key` (absent or null: `None`). NaN and negative numbers are refused; huge
/// ones (1e300) mean forever (clamped to `core::duration::FOREVER`).
fn secs(tool: &str, v: &Value, key: &str) -> Result<Option<Duration>> {
    match v.get(key).filter(|x| !x.is_null()) {
        None => Ok(None),
        Some(x) => {
            let s = x
                .as_f64()
                .ok_or_else(|| invalid(tool, key, format!("expected a number, got {x}")))?;
            duration::from_secs(key, s)
                .map(Some)
                .map_err(|m| invalid(tool, key, m))
        }
    }
}

fn max_output(tool: &str, v: &Value) -> Result<usize> {
    match v.get("max_output").filter(|x| !x.is_null()) {
        None => Ok(DEFAULT_MAX_OUTPUT),
        Some(x) => x
            .as_u64()
            .filter(|n| *n >= MIN_MAX_OUTPUT as u64)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .ok_or_else(|| {
                invalid(
                    tool,
                    "max_output",
                    format!("expected an integer of at least {MIN_MAX_OUTPUT} bytes, got {x}"),
                )
            }),
    }
}

fn str_map(v: &Value, key: &str) -> Option<HashMap<String, String>> {
    v.get(key).and_then(Value::as_object).map(|m| {
        m.iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect()
    })
}

/// Environment for a session: names and values the OS accepts, or `InvalidArguments`.
fn env_map(tool: &str, v: &Value) -> Result<HashMap<String, String>> {
    let env = str_map(v, "env").unwrap_or_default();
    for (k, val) in &env {
        if k.is_empty() || k.contains(['=', '\0']) {
            return Err(invalid(
                tool,
                "env",
                format!("invalid variable name {k:?} (empty, or contains '=' or NUL)"),
            ));
        }
        if val.contains('\0') {
            return Err(invalid(tool, &format!("env.{k}"), "contains a NUL byte"));
        }
    }
    Ok(env)
}

fn session_name(v: &Value) -> String {
    v.get("session")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string()
}

fn run_output_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "output": {"type": "string"},
            "exit_code": {"type": ["integer", "null"]},
            "status": {"enum": ["completed", "expect", "timeout", "syntax_error", "exited", "interrupted"]},
            "expect_string": {"type": "string"},
            "interrupted": {"type": "boolean"},
            "no_output_timeout": {"type": "boolean"},
            "bash_stdout": {"type": "string"},
            "bash_stderr": {"type": "string"}
        },
        "required": ["output", "exit_code", "status", "expect_string", "interrupted"]
    })
}

/// Register the `shell.*` tools into `registry` with a session manager of their own.
pub fn register(registry: &Registry) -> Result<()> {
    register_with(registry, Arc::new(SessionManager::new()))
}

/// Register the `shell.*` tools using `manager` for the sessions.
pub fn register_with(registry: &Registry, manager: Arc<SessionManager>) -> Result<()> {
    let timeout_prop = json!({"type": ["number", "null"], "minimum": 0,
                              "description": "seconds; huge values mean no limit"});
    let max_output_prop = json!({"type": ["integer", "null"], "minimum": MIN_MAX_OUTPUT,
        "default": DEFAULT_MAX_OUTPUT,
        "description": "bytes of output kept (per stream for shell.run); past it the middle is \
                        dropped and a line says how much"});
    let session_prop =
        json!({"type": "string", "minLength": 1, "maxLength": 256, "default": "default"});
    let env_prop = json!({"type": "object", "additionalProperties": {"type": "string"}});
    registry.replace(Arc::new(FnTool::new(
        ToolSpec::new("shell.run")
            .description(
                "Run one command (argv list, or a string run by /bin/sh -c) with stdin closed and \
                 return its stdout, stderr and exit code. With shell=true and a list, the first \
                 element is the script and the others its $0, $1, ... (as Python's subprocess). On \
                 timeout everything it started is killed (setsid children included) and the output \
                 printed until then is returned with timed_out=true.",
            )
            .input_schema(obj(
                json!({
                    "command": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
                                "description": "argv list, or a shell string (then `shell` defaults to true)"},
                    "shell": {"type": "boolean"},
                    "timeout": timeout_prop,
                    "env": {"type": ["object", "null"], "additionalProperties": {"type": "string"},
                            "description": "the complete environment (default: inherit)"},
                    "cwd": {"type": ["string", "null"]},
                    "merge_output_streams": {"type": "boolean", "default": false},
                    "max_output": max_output_prop
                }),
                &["command"],
            ))
            .output_schema(json!({
                "type": "object",
                "properties": {
                    "stdout": {"type": "string"}, "stderr": {"type": "string"},
                    "exit_code": {"type": ["integer", "null"]}, "timed_out": {"type": "boolean"}
                },
                "required": ["stdout", "stderr", "exit_code", "timed_out"]
            })),
        |v, _| async move {
            let (argv, default_shell) = match &v["command"] {
                Value::String(s) => (vec![s.clone()], true),
                Value::Array(a) => (
                    a.iter().map(|x| x.as_str().unwrap_or_default().to_string()).collect(),
                    false,
                ),
                _ => (Vec::new(), false),
            };
            let opts = ExecOptions {
                argv,
                shell: v.get("shell").and_then(Value::as_bool).unwrap_or(default_shell),
                timeout: secs("shell.run", &v, "timeout")?,
                env: str_map(&v, "env"),
                cwd: v.get("cwd").and_then(Value::as_str).map(PathBuf::from),
                merge_output_streams: v.get("merge_output_streams").and_then(Value::as_bool).unwrap_or(false),
                max_output: max_output("shell.run", &v)?,
            };
            let r = execute(&opts).await?;
            Ok(json!({"stdout": r.stdout, "stderr": r.stderr, "exit_code": r.exit_code, "timed_out": r.timed_out}))
        },
    )))?;

    let m = manager.clone();
    registry.replace(Arc::new(FnTool::new(
        ToolSpec::new("shell.session.create")
            .description(
                "Start a persistent bash session (in a pseudo-terminal) called `session`; returns the \
                 output of sourcing `startup_source`.",
            )
            .input_schema(obj(
                json!({
                    "session": session_prop,
                    "startup_source": {"type": "array", "items": {"type": "string"}},
                    "startup_timeout": {"type": "number", "minimum": 0, "default": 10},
                    "env": env_prop,
                    "cwd": {"type": ["string", "null"]},
                    "rows": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 24},
                    "columns": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 80}
                }),
                &[],
            ))
            .output_schema(json!({
                "type": "object",
                "properties": {"session": {"type": "string"}, "output": {"type": "string"}, "pid": {"type": "integer"}},
                "required": ["session", "output"]
            })),
        move |v, _| {
            let m = m.clone();
            async move {
                let name = session_name(&v);
                let defaults = SessionOptions::default();
                let opts = SessionOptions {
                    startup_source: v
                        .get("startup_source")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                        .unwrap_or_default(),
                    startup_timeout: secs("shell.session.create", &v, "startup_timeout")?
                        .unwrap_or(defaults.startup_timeout),
                    env: env_map("shell.session.create", &v)?,
                    cwd: v.get("cwd").and_then(Value::as_str).map(PathBuf::from),
                    size: (
                        v.get("rows").and_then(Value::as_u64).map(|r| r.min(65535) as u16).unwrap_or(24),
                        v.get("columns").and_then(Value::as_u64).map(|r| r.min(65535) as u16).unwrap_or(80),
                    ),
                };
                let output = m.create(&name, &opts).await?;
                let pid = m.get(&name).map(|s| s.pid()).unwrap_or_default();
                Ok(json!({"session": name, "output": output, "pid": pid}))
            }
        },
    )))?;

    let m = manager.clone();
    registry.replace(Arc::new(FnTool::new(
        ToolSpec::new("shell.session.run")
            .description(
                "Run a bash command in a session and return its output (without the command echo) and \
                 exit code. `status` tells how it ended: completed, expect (a pattern matched), timeout \
                 (the command is interrupted unless interrupt_on_timeout is false), syntax_error (nothing \
                 ran), exited (the shell exited), interrupted. With interactive=true the text is sent as \
                 a line of input to the program in the foreground (e.g. a debugger). Output also streams as \
                 progress reports (message: the new text).",
            )
            .input_schema(obj(
                json!({
                    "session": session_prop,
                    "command": {"type": "string"},
                    "timeout": timeout_prop,
                    "no_output_timeout": timeout_prop,
                    "expect": {"type": "array", "items": {"type": "string"}, "description": "regular expressions"},
                    "interactive": {"type": "boolean", "default": false},
                    "check_syntax": {"type": "boolean", "default": true},
                    "interrupt_on_timeout": {"type": "boolean", "default": true},
                    "max_output": max_output_prop
                }),
                &["command"],
            ))
            .output_schema(run_output_schema()),
        move |v, ctx| {
            let m = m.clone();
            async move {
                let s = m.get(&session_name(&v))?;
                let flag = |k: &str, d: bool| v.get(k).and_then(Value::as_bool).unwrap_or(d);
                let opts = RunOptions {
                    kind: if flag("interactive", false) { InputKind::Interactive } else { InputKind::Command },
                    timeout: secs("shell.session.run", &v, "timeout")?,
                    no_output_timeout: secs("shell.session.run", &v, "no_output_timeout")?,
                    max_output: max_output("shell.session.run", &v)?,
                    expect: v
                        .get("expect")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                        .unwrap_or_default(),
                    check_syntax: flag("check_syntax", true),
                    interrupt_on_timeout: flag("interrupt_on_timeout", true),
                    stream: ctx.progress.clone(),
                };
                let command = v["command"].as_str().unwrap_or_default();
                Ok(s.run(command, &opts).await?.to_json())
            }
        },
    )))?;

    let m = manager.clone();
    registry.replace(Arc::new(FnTool::new(
        ToolSpec::new("shell.session.interrupt")
            .description(
                "Interrupt what runs in a session: Ctrl-C (retried), then SIGTERM and SIGKILL to the \
                 foreground process group; then wait until the shell answers again. Returns the output \
                 produced meanwhile and the exit status.",
            )
            .input_schema(obj(
                json!({
                    "session": session_prop,
                    "timeout": {"type": "number", "minimum": 0, "default": 0.5,
                                "description": "wait after each attempt"},
                    "retries": {"type": "integer", "minimum": 1, "maximum": 100, "default": 2},
                    "resync_timeout": {"type": "number", "minimum": 0, "default": 5}
                }),
                &[],
            ))
            .output_schema(run_output_schema()),
        move |v, _| {
            let m = m.clone();
            async move {
                let s = m.get(&session_name(&v))?;
                let d = Interrupt::default();
                let how = Interrupt {
                    timeout: secs("shell.session.interrupt", &v, "timeout")?.unwrap_or(d.timeout),
                    retries: v.get("retries").and_then(Value::as_u64).map(|r| r as usize).unwrap_or(d.retries),
                    resync_timeout: secs("shell.session.interrupt", &v, "resync_timeout")?
                        .unwrap_or(d.resync_timeout),
                };
                Ok(s.interrupt(&how).await?.to_json())
            }
        },
    )))?;

    let m = manager.clone();
    registry.replace(Arc::new(FnTool::new(
        ToolSpec::new("shell.session.close")
            .description(
                "Close a session: kill its shell and every process it started, and reap them.",
            )
            .input_schema(obj(json!({"session": session_prop}), &[]))
            .output_schema(json!({"type": "null"})),
        move |v, _| {
            let m = m.clone();
            async move {
                m.close(&session_name(&v)).await?;
                Ok(Value::Null)
            }
        },
    )))?;

    let m = manager;
    registry.replace(Arc::new(FnTool::sync(
        ToolSpec::new("shell.session.list")
            .description("Names of the open sessions.")
            .input_schema(obj(json!({}), &[]))
            .output_schema(json!({"type": "array", "items": {"type": "string"}})),
        move |_| Ok(json!(m.names())),
    )))?;
    Ok(())
}
