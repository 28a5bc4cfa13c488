//! One-shot command execution (`shell.run`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::io_err;
use super::proc::Target;
use super::text::decode;
use crate::core::{Error, Result};

/// A one-shot command (see [`execute`]).
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Program and arguments, or a shell string when `shell` is true (run by `/bin/sh -c`).
    pub argv: Vec<String>,
    pub shell: bool,
    pub timeout: Option<Duration>,
    /// `None`: inherit the host environment; `Some`: exactly this environment.
    pub env: Option<HashMap<String, String>>,
    pub cwd: Option<PathBuf>,
    pub merge_output_streams: bool,
}

/// The outcome of [`execute`].
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
}

/// Run a process with stdin closed, capture its output; on timeout kill its process group.
pub async fn execute(opts: &ExecOptions) -> Result<ExecOutput> {
    let (prog, args): (String, Vec<String>) = if opts.shell {
        let s = opts.argv.join(" ");
        ("/bin/sh".into(), vec!["-c".into(), s])
    } else {
        let Some((p, a)) = opts.argv.split_first() else {
            return Err(Error::InvalidArguments {
                tool: "shell.run".into(),
                path: "command".into(),
                message: "empty command".into(),
            });
        };
        (p.clone(), a.to_vec())
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
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| io_err("pipe", e))?;
        let w2 = w.try_clone().map_err(|e| io_err("pipe", e))?;
        cmd.stdout(Stdio::from(w)).stderr(Stdio::from(w2));
        Some(r)
    } else {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        None
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::tool("shell.run", format!("cannot run {prog:?}: {e}")))?;
    // The parent's copies of the write ends live in `cmd`; drop them so EOF arrives.
    drop(cmd);
    let pgid = child.id().map(|p| p as i32);
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let read_all = async move {
        let mut out = Vec::new();
        let mut err = Vec::new();
        if let Some(r) = merged {
            if let Ok(mut p) = tokio::net::unix::pipe::Receiver::from_owned_fd(r) {
                let _ = p.read_to_end(&mut out).await;
            }
        } else {
            let a = async {
                if let Some(p) = out_pipe.as_mut() {
                    let _ = p.read_to_end(&mut out).await;
                }
            };
            let b = async {
                if let Some(p) = err_pipe.as_mut() {
                    let _ = p.read_to_end(&mut err).await;
                }
            };
            tokio::join!(a, b);
        }
        (out, err)
    };
    let work = async {
        let (out, err) = read_all.await;
        let status = child.wait().await;
        (out, err, status)
    };
    let res = match opts.timeout {
        Some(t) => tokio::time::timeout(t, work).await.ok(),
        None => Some(work.await),
    };
    match res {
        Some((out, err, status)) => {
            use std::os::unix::process::ExitStatusExt;
            let status = status.map_err(|e| io_err("wait", e))?;
            Ok(ExecOutput {
                stdout: decode(&out),
                stderr: decode(&err),
                exit_code: status.code().or_else(|| status.signal().map(|s| -s)),
                timed_out: false,
            })
        }
        None => {
            if let Some(p) = pgid {
                Target {
                    leader: p,
                    pgid: Some(p),
                    ..Default::default()
                }
                .kill(Duration::from_millis(200))
                .await;
            }
            let _ = child.kill().await;
            Ok(ExecOutput {
                stdout: String::new(),
                stderr: String::new(),
                exit_code: None,
                timed_out: true,
            })
        }
    }
}
