//! One-shot command execution (`shell.run`).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::capped::{Capped, DEFAULT_MAX_OUTPUT};
use super::io_err;
use super::proc::Target;
use super::text::decode;
use crate::core::{Error, Result};

/// A one-shot command (see [`execute`]).
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Program and arguments. With `shell`, as Python's `subprocess` (and SWE-ReX's
    /// `LocalRuntime`): the first element is the script run by `/bin/sh -c`, the others
    /// become its `$0`, `$1`, ... — never joined into the script.
    pub argv: Vec<String>,
    pub shell: bool,
    pub timeout: Option<Duration>,
    /// `None`: inherit the host environment; `Some`: exactly this environment.
    pub env: Option<HashMap<String, String>>,
    pub cwd: Option<PathBuf>,
    pub merge_output_streams: bool,
    /// Bytes kept per stream; past it the middle is dropped with a notice (see `capped`).
    pub max_output: usize,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            argv: Vec::new(),
            shell: false,
            timeout: None,
            env: None,
            cwd: None,
            merge_output_streams: false,
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }
}

/// The outcome of [`execute`].
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    /// The time limit passed: everything the command started was killed; `stdout`/`stderr`
    /// hold what it printed until then.
    pub timed_out: bool,
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> Error {
    Error::InvalidArguments {
        tool: "shell.run".into(),
        path: path.into(),
        message: message.into(),
    }
}

/// Refuse what the OS would refuse later with a message blaming the program.
async fn validate(opts: &ExecOptions) -> Result<()> {
    if opts.argv.is_empty() {
        return Err(invalid("command", "empty command"));
    }
    for (i, a) in opts.argv.iter().enumerate() {
        if a.contains('\0') {
            return Err(invalid(format!("command[{i}]"), "contains a NUL byte"));
        }
    }
    for (k, v) in opts.env.iter().flatten() {
        if k.is_empty() || k.contains(['=', '\0']) {
            return Err(invalid(
                "env",
                format!("invalid variable name {k:?} (empty, or contains '=' or NUL)"),
            ));
        }
        if v.contains('\0') {
            return Err(invalid(format!("env.{k}"), "contains a NUL byte"));
        }
    }
    if let Some(cwd) = &opts.cwd {
        if cwd.as_os_str().as_encoded_bytes().contains(&0) {
            return Err(invalid("cwd", "contains a NUL byte"));
        }
        match tokio::fs::metadata(cwd).await {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::tool(
                    "shell.run",
                    format!("cwd {} is not a directory", cwd.display()),
                ))
            }
            Err(e) => {
                return Err(Error::tool(
                    "shell.run",
                    format!("cwd {}: {e}", cwd.display()),
                ))
            }
        }
    }
    Ok(())
}

/// Read `r` to EOF into `buf` (errors end the stream like EOF).
async fn pump(r: &mut (impl AsyncRead + Unpin), buf: &mut Capped) {
    let mut chunk = vec![0u8; 1 << 16];
    while let Ok(n) = r.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        buf.push(&chunk[..n]);
    }
}

/// `pipe:[inode]`, how /proc/PID/fd shows a descriptor of this pipe.
fn pipe_id(fd: impl AsFd) -> Option<String> {
    rustix::fs::fstat(fd)
        .ok()
        .map(|st| format!("pipe:[{}]", st.st_ino))
}

/// Run a process with stdin closed and capture its output (bounded). On timeout kill it and
/// everything it started — its process group, its descendants, and whatever still holds its
/// output pipes (children that called `setsid`) — and return what it printed until then.
pub async fn execute(opts: &ExecOptions) -> Result<ExecOutput> {
    validate(opts).await?;
    let (prog, args): (String, Vec<String>) = if opts.shell {
        let mut a = vec!["-c".to_string()];
        a.extend(opts.argv.iter().cloned());
        ("/bin/sh".into(), a)
    } else {
        (opts.argv[0].clone(), opts.argv[1..].to_vec())
    };
    let mut cmd = tokio::process::Command::new(&prog);
    cmd.args(&args)
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(env) = &opts.env {
        cmd.env_clear().envs(env);
    }
    if let Some(cwd) = &opts.cwd {
        cmd.current_dir(cwd);
    }
    let merged = if opts.merge_output_streams {
        // std's pipe is close-on-exec on every Unix (pipe2 is Linux/BSD only, not macOS).
        let (r, w) = std::io::pipe().map_err(|e| io_err("pipe", e))?;
        let w2 = w.try_clone().map_err(|e| io_err("pipe", e))?;
        cmd.stdout(Stdio::from(w)).stderr(Stdio::from(w2));
        Some(OwnedFd::from(r))
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        None
    };
    let spawned = cmd.spawn();
    // The parent's copies of the write ends live in `cmd`; drop them so EOF arrives.
    drop(cmd);
    let mut child =
        spawned.map_err(|e| Error::tool("shell.run", format!("cannot run {prog:?}: {e}")))?;
    let pgid = child.id().map(|p| p as i32);
    let mut files = Vec::new();
    let mut merged = match merged {
        Some(r) => {
            files.extend(pipe_id(&r));
            Some(
                tokio::net::unix::pipe::Receiver::from_owned_fd(r)
                    .map_err(|e| io_err("pipe", e))?,
            )
        }
        None => None,
    };
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    files.extend(out_pipe.as_ref().and_then(pipe_id));
    files.extend(err_pipe.as_ref().and_then(pipe_id));
    let mut out = Capped::new(opts.max_output);
    let mut err = Capped::new(opts.max_output);
    let mut read_all = async |out: &mut Capped, err: &mut Capped| {
        if let Some(p) = merged.as_mut() {
            pump(p, out).await;
        } else {
            let a = async {
                if let Some(p) = out_pipe.as_mut() {
                    pump(p, out).await;
                }
            };
            let b = async {
                if let Some(p) = err_pipe.as_mut() {
                    pump(p, err).await;
                }
            };
            tokio::join!(a, b);
        }
    };
    let finished = {
        let work = async {
            read_all(&mut out, &mut err).await;
            child.wait().await
        };
        match opts.timeout {
            Some(t) => tokio::time::timeout(t, work).await.ok(),
            None => Some(work.await),
        }
    };
    let (exit_code, timed_out) = match finished {
        Some(status) => {
            use std::os::unix::process::ExitStatusExt;
            let status = status.map_err(|e| io_err("wait", e))?;
            (status.code().or_else(|| status.signal().map(|s| -s)), false)
        }
        None => {
            if let Some(p) = pgid {
                // Freeze the whole group at once first, so nothing in it reacts while the
                // members are killed one by one (a shell printing "Killed" for its child, a
                // background `(sleep 1; touch f) &` running its next command): as killpg does.
                if let Some(g) = rustix::process::Pid::from_raw(p) {
                    let _ = rustix::process::kill_process_group(g, rustix::process::Signal::STOP);
                }
                Target {
                    leader: p,
                    pgid: Some(p),
                    files,
                    ..Default::default()
                }
                .kill(Duration::from_millis(200))
                .await;
            }
            let _ = child.kill().await;
            // Everything holding the pipes is dead: read what they wrote last.
            let _ = tokio::time::timeout(Duration::from_millis(500), read_all(&mut out, &mut err))
                .await;
            (None, true)
        }
    };
    Ok(ExecOutput {
        stdout: out.text(decode),
        stderr: err.text(decode),
        exit_code,
        timed_out,
    })
}
