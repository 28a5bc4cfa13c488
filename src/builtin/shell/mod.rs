//! `shell.*`: persistent bash sessions in a pty (driven by tokio, no pexpect) and one-shot
//! command execution.
//!
//! A session is an interactive `bash --noediting` whose stdin/stdout/stderr are the slave side
//! of a pty; it leads its own session (setsid) so job control, Ctrl-C and cleanup work on whole
//! process groups. Echo is off in the terminal from the start, so output never contains the
//! command. A command is written to a file in the session's private directory and run as
//! `source FILE; printf MARKER$?` — one short line on the terminal whatever the command's size
//! or characters (no canonical-mode line limit, no readline, no history expansion), and the
//! marker (unique per session and command) carries the exit code. Output accumulates in one
//! buffer and only the newly read tail is searched for the marker.

mod capped;
mod exec;
mod interrupt;
mod manager;
mod options;
mod proc;
mod pty;
mod reaper;
mod run;
mod session;
#[cfg(test)]
mod tests;
mod text;
mod tools;

pub use capped::{DEFAULT_MAX_OUTPUT, MIN_MAX_OUTPUT};
pub use exec::{execute, ExecOptions, ExecOutput};
pub use manager::SessionManager;
pub use options::{InputKind, Interrupt, RunOptions, RunOutput, SessionOptions, Status};
pub use run::check_syntax;
pub use session::ShellSession;
pub use text::{clean, decode};
pub use tools::{register, register_with};

use crate::core::Error;

fn io_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::tool("shell", format!("{what}: {e}"))
}
