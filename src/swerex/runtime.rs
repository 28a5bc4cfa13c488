//! SWE-ReX's runtime operations on the crate's Rust shell sessions (`builtin::shell`): the
//! same sessions and the same mapping of outcomes to SWE-ReX exceptions as
//! `agent_runtime.swerex.RustRuntime`, whose behaviour follows SWE-ReX's `LocalRuntime`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::errors::{class, Exception};
use super::pyfmt::{float, repr_list, repr_str};
use super::wire::{Action, BashAction, BashInterruptAction, Check, Command, CommandLine};
use crate::builtin::shell::{
    execute, ExecOptions, InputKind, Interrupt, RunOptions, SessionManager, SessionOptions, Status,
    DEFAULT_MAX_OUTPUT,
};
use crate::core::duration;

/// Floor of the wait after each Ctrl-C / signal of an interrupt (RustRuntime's default).
const INTERRUPT_WAIT: Duration = Duration::from_millis(500);

type Outcome = Result<Value, Exception>;

/// The runtime behind one server: its sessions.
#[derive(Default)]
pub struct Runtime {
    sessions: Arc<SessionManager>,
}

fn secs(what: &str, s: f64) -> Result<Duration, Exception> {
    duration::from_secs(what, s).map_err(|m| Exception::new(class::VALUE_ERROR, m))
}

fn missing(name: &str) -> Exception {
    Exception::new(
        class::SESSION_MISSING,
        format!("session {} does not exist", repr_str(name)),
    )
}

/// `NonZeroExitCodeError` as LocalRuntime words it (with `error_msg` in front when given).
fn non_zero(command: &str, error_msg: &str, exit_code: Option<i32>, details: &str) -> Exception {
    let code = exit_code.map_or_else(|| "None".to_string(), |c| c.to_string());
    let mut msg = format!("Command {command} failed with exit code {code}. {details}");
    if !error_msg.is_empty() {
        msg = format!("{error_msg}: {msg}");
    }
    Exception::new(class::NON_ZERO_EXIT, msg)
}

impl Runtime {
    pub fn new() -> Self {
        Self::default()
    }

    pub async fn create_session(&self, name: &str, sources: Vec<String>, timeout: f64) -> Outcome {
        let exists = || {
            Exception::new(
                class::SESSION_EXISTS,
                format!("session {name} already exists"),
            )
        };
        if self.sessions.names().iter().any(|n| n == name) {
            return Err(exists());
        }
        let opts = SessionOptions {
            startup_source: sources,
            startup_timeout: secs("startup_timeout", timeout)?,
            ..SessionOptions::default()
        };
        match self.sessions.create(name, &opts).await {
            Ok(output) => Ok(json!({"output": output, "session_type": "bash"})),
            // Created by a concurrent request meanwhile.
            Err(_) if self.sessions.names().iter().any(|n| n == name) => Err(exists()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn run_in_session(&self, action: Action) -> Outcome {
        match action {
            Action::Bash(a) => self.run(a).await,
            Action::Interrupt(a) => self.interrupt(a).await,
        }
    }

    /// After a failure: a session whose shell died is gone.
    async fn forget_if_dead(&self, name: &str) {
        if !self.sessions.names().iter().any(|n| n == name) {
            let _ = self.sessions.close(name).await;
        }
    }

    async fn interrupt(&self, a: BashInterruptAction) -> Outcome {
        let s = self
            .sessions
            .get(&a.session)
            .map_err(|_| missing(&a.session))?;
        let how = Interrupt {
            timeout: secs("timeout", a.timeout)?.max(INTERRUPT_WAIT),
            retries: usize::try_from(a.n_retry.max(1)).unwrap_or(1),
            ..Interrupt::default()
        };
        match s.interrupt(&how).await {
            Ok(r) => Ok(observation(r.output.trim(), Some(0), "", "")),
            Err(e) => {
                self.forget_if_dead(&a.session).await;
                Err(e.into())
            }
        }
    }

    async fn run(&self, a: BashAction) -> Outcome {
        let s = self
            .sessions
            .get(&a.session)
            .map_err(|_| missing(&a.session))?;
        let interactive = a.is_interactive_command || a.is_interactive_quit;
        let opts = RunOptions {
            kind: if interactive {
                InputKind::Interactive
            } else {
                InputKind::Command
            },
            timeout: a.timeout.map(|t| secs("timeout", t)).transpose()?,
            expect: a.expect.clone(),
            check_syntax: !interactive,
            interrupt_on_timeout: false,
            max_output: DEFAULT_MAX_OUTPUT,
            ..RunOptions::default()
        };
        let r = match s.run(&a.command, &opts).await {
            Ok(r) => r,
            Err(e) => {
                self.forget_if_dead(&a.session).await;
                return Err(e.into());
            }
        };
        let command = repr_str(&a.command);
        match &r.status {
            Status::SyntaxError { stdout, stderr } => {
                let msg = format!(
                    "Error (exit code 2) while checking bash command \n{command}\n\
                     ---- Stderr ----\n{stderr}\n---- Stdout ----\n{stdout}"
                );
                return Err(Exception::new(class::BASH_SYNTAX, msg)
                    .with_info("bash_stdout", stdout.as_str())
                    .with_info("bash_stderr", stderr.as_str()));
            }
            Status::Timeout { .. } => {
                let t = a.timeout.map_or_else(|| "None".into(), float);
                let msg = format!("timeout after {t} seconds while running command {command}");
                return Err(
                    Exception::new(class::COMMAND_TIMEOUT, msg).with_info("output", r.output)
                );
            }
            Status::Exited => {
                // The shell itself exited (`exit`): the session is gone.
                let _ = self.sessions.close(&a.session).await;
            }
            _ => {}
        }
        if interactive {
            let out = if a.is_interactive_command {
                r.output.trim()
            } else {
                r.output.as_str()
            };
            return Ok(observation(out, Some(0), &r.expect_string, ""));
        }
        let exit_code = if a.check == Check::Ignore {
            None
        } else {
            r.exit_code
        };
        let ended = matches!(r.status, Status::Completed | Status::Exited);
        if a.check == Check::Raise && ended && exit_code != Some(0) {
            let details = format!("Here is the output:\n{}", repr_str(&r.output));
            return Err(non_zero(&command, &a.error_msg, exit_code, &details));
        }
        let failure = match r.status {
            Status::Completed | Status::Expected => "",
            Status::Exited => "exited",
            Status::Interrupted => "interrupted",
            Status::Timeout { .. } => "timeout",
            Status::SyntaxError { .. } => "syntax_error",
        };
        Ok(observation(&r.output, exit_code, &r.expect_string, failure))
    }

    pub async fn close_session(&self, name: &str) -> Outcome {
        self.sessions.close(name).await.map_err(|_| missing(name))?;
        Ok(json!({"session_type": "bash"}))
    }

    /// A `Command` as a subprocess with stdin closed, like `subprocess.run`.
    pub async fn execute(&self, c: Command) -> Outcome {
        let (argv, shown) = match &c.command {
            CommandLine::Text(s) => (vec![s.clone()], repr_str(s)),
            CommandLine::Argv(v) => (v.clone(), repr_list(v)),
        };
        if argv.is_empty() {
            return Err(Exception::new(class::VALUE_ERROR, "the command is empty"));
        }
        let opts = ExecOptions {
            argv,
            shell: c.shell,
            timeout: c.timeout.map(|t| secs("timeout", t)).transpose()?,
            env: c.env.clone(),
            cwd: c.cwd.as_ref().map(Into::into),
            merge_output_streams: c.merge_output_streams,
            max_output: DEFAULT_MAX_OUTPUT,
        };
        let prog = if c.shell {
            "/bin/sh"
        } else {
            opts.argv[0].as_str()
        };
        let r = execute(&opts).await.map_err(|e| spawn_error(e, prog))?;
        if r.timed_out {
            let t = c.timeout.map_or_else(|| "None".into(), float);
            return Err(Exception::new(
                class::COMMAND_TIMEOUT,
                format!("Timeout ({t}s) exceeded while running command"),
            )
            .with_info("stdout", r.stdout)
            .with_info("stderr", r.stderr));
        }
        if c.check && r.exit_code != Some(0) {
            let details = format!(
                "Stdout:\n{}\nStderr:\n{}",
                repr_str(&r.stdout),
                repr_str(&r.stderr)
            );
            return Err(non_zero(&shown, &c.error_msg, r.exit_code, &details));
        }
        Ok(json!({"stdout": r.stdout, "stderr": r.stderr, "exit_code": r.exit_code}))
    }

    /// Close every session.
    pub async fn close(&self) -> Outcome {
        self.sessions.close_all().await;
        Ok(json!({}))
    }
}

/// A program that cannot be started is the `OSError` subclass `subprocess` raises
/// (`FileNotFoundError`, `PermissionError`); the core reports the errno in its message.
fn spawn_error(e: crate::core::Error, prog: &str) -> Exception {
    let text = e.to_string();
    let errno = text
        .rsplit_once("(os error ")
        .and_then(|(_, rest)| rest.split(')').next())
        .and_then(|n| n.parse::<i32>().ok());
    match errno {
        Some(code) if text.contains("cannot run") => {
            super::files::os_error(&std::io::Error::from_raw_os_error(code), prog.as_ref())
        }
        _ => e.into(),
    }
}

fn observation(output: &str, exit_code: Option<i32>, expect: &str, failure: &str) -> Value {
    json!({
        "output": output,
        "exit_code": exit_code,
        "failure_reason": failure,
        "expect_string": expect,
        "session_type": "bash",
    })
}
