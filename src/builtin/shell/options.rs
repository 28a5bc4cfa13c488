//! How sessions start and commands run, and what a run returns.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use super::capped::DEFAULT_MAX_OUTPUT;

/// How to start a session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Files sourced (in order) before the first command; their output is returned by `create`.
    pub startup_source: Vec<String>,
    /// Time allowed for the shell to start and the startup files to be sourced.
    pub startup_timeout: Duration,
    /// Extra environment variables (on top of the host process's environment).
    pub env: HashMap<String, String>,
    pub cwd: Option<PathBuf>,
    /// Terminal size (rows, columns); programs format their output to it.
    pub size: (u16, u16),
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            startup_source: Vec::new(),
            startup_timeout: Duration::from_secs(10),
            env: HashMap::new(),
            cwd: None,
            size: (24, 80),
        }
    }
}

/// What kind of input a `run` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputKind {
    /// A bash command; completes when bash reports its exit code.
    #[default]
    Command,
    /// A line of input for the program running in the foreground (e.g. gdb, a REPL); completes
    /// when an `expect` pattern appears or the program exits back to the shell.
    Interactive,
}

/// How to run one input.
#[derive(Clone)]
pub struct RunOptions {
    /// Receives output as it arrives: `done` = bytes so far, `message` = the new text.
    pub stream: Option<crate::core::ProgressSink>,
    pub kind: InputKind,
    /// Overall time limit; `None` waits forever.
    pub timeout: Option<Duration>,
    /// Give up when the command prints nothing for this long.
    pub no_output_timeout: Option<Duration>,
    /// Regular expressions; the first match ends the wait (the command keeps running).
    pub expect: Vec<String>,
    /// Check the command with `bash -n` before running it (like SWE-ReX's LocalRuntime).
    pub check_syntax: bool,
    /// On timeout interrupt the command (Ctrl-C, then SIGTERM/SIGKILL) instead of leaving it
    /// running for a later `interrupt`.
    pub interrupt_on_timeout: bool,
    /// Bytes of output kept; past it the middle is dropped with a notice (see `capped`). The
    /// pty is still drained, so the command never blocks on a full terminal.
    pub max_output: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            stream: None,
            kind: InputKind::default(),
            timeout: None,
            no_output_timeout: None,
            expect: Vec::new(),
            check_syntax: false,
            interrupt_on_timeout: false,
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }
}

/// How a `run` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The command finished; `exit_code` is set.
    Completed,
    /// An `expect` pattern matched (`expect_string` names it); the command may still run.
    Expected,
    /// The time limit passed (`no_output`: the no-output limit). Unless interrupted, the command
    /// is still running.
    Timeout { no_output: bool },
    /// `bash -n` rejected the command; nothing ran.
    SyntaxError { stdout: String, stderr: String },
    /// The shell itself exited (e.g. `exit`); the session is gone.
    Exited,
    /// Stopped by a concurrent `interrupt`.
    Interrupted,
}

impl Status {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Status::Completed => "completed",
            Status::Expected => "expect",
            Status::Timeout { .. } => "timeout",
            Status::SyntaxError { .. } => "syntax_error",
            Status::Exited => "exited",
            Status::Interrupted => "interrupted",
        }
    }
}

/// The result of a `run` or `interrupt`.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// Decoded output (invalid UTF-8 as `\xNN`, ANSI escapes removed, `\r\n` as `\n`),
    /// trailing whitespace kept.
    pub output: String,
    pub exit_code: Option<i32>,
    pub status: Status,
    pub expect_string: String,
    /// The command was interrupted (timeout with `interrupt_on_timeout`, or `interrupt`).
    pub interrupted: bool,
}

impl RunOutput {
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "output": self.output,
            "exit_code": self.exit_code,
            "status": self.status.name(),
            "expect_string": self.expect_string,
            "interrupted": self.interrupted,
        });
        match &self.status {
            Status::Timeout { no_output } => v["no_output_timeout"] = json!(no_output),
            Status::SyntaxError { stdout, stderr } => {
                v["bash_stdout"] = json!(stdout);
                v["bash_stderr"] = json!(stderr);
            }
            _ => {}
        }
        v
    }
}

/// How to interrupt (see [`ShellSession::interrupt`]).
#[derive(Debug, Clone)]
pub struct Interrupt {
    /// Wait after each Ctrl-C / signal for the shell to get the terminal back.
    pub timeout: Duration,
    /// Ctrl-C attempts before SIGTERM and SIGKILL to the foreground process group.
    pub retries: usize,
    /// Time allowed for the shell to answer afterwards.
    pub resync_timeout: Duration,
}

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt {
            timeout: Duration::from_millis(500),
            retries: 2,
            resync_timeout: Duration::from_secs(5),
        }
    }
}
