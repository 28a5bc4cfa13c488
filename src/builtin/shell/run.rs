//! Running a command in a session: the marker protocol.

use std::process::Stdio;
use std::time::Instant;

use regex::bytes::Regex as BytesRegex;
use tokio::io::AsyncWriteExt;

use super::io_err;
use super::options::{InputKind, Interrupt, RunOptions, RunOutput, Status};
use super::pty::assert_modes;
use super::session::{ShellSession, IDLE_BUFFER_CAP, MARK};
use super::text::{clean, decode, shell_quote};
use crate::core::{Error, Result};

/// Check `command` with `bash -n` (fed on stdin, as LocalRuntime does). `Ok(None)` if fine.
pub async fn check_syntax(command: &str) -> Result<Option<(String, String)>> {
    let mut child = tokio::process::Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io_err("cannot start bash -n", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        let mut text = command.as_bytes().to_vec();
        text.push(b'\n');
        // A closed pipe only means bash stopped reading early; its verdict still counts.
        let _ = stdin.write_all(&text).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| io_err("bash -n failed", e))?;
    if out.status.success() {
        Ok(None)
    } else {
        Ok(Some((decode(&out.stdout), decode(&out.stderr))))
    }
}

impl ShellSession {
    /// Run a command (or send a line to the foreground program, see [`InputKind`]).
    pub async fn run(&self, input: &str, opts: &RunOptions) -> Result<RunOutput> {
        let expects = opts
            .expect
            .iter()
            .map(|p| {
                BytesRegex::new(p).map_err(|e| Error::InvalidArguments {
                    tool: "shell.session.run".into(),
                    path: "expect".into(),
                    message: format!("invalid regular expression {p:?}: {e}"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // The shell parses the command (as a function body) before running it: no process to
        // spawn. Only when that parse fails does `bash -n` decide, exactly as LocalRuntime.
        let check =
            opts.kind == InputKind::Command && opts.check_syntax && !input.trim().is_empty();
        let out = self.run_once(input, opts, &expects, check).await?;
        if !matches!(out.status, Status::SyntaxError { .. }) {
            return Ok(out);
        }
        match check_syntax(input).await? {
            Some((stdout, stderr)) => Ok(RunOutput {
                status: Status::SyntaxError { stdout, stderr },
                ..out
            }),
            None => self.run_once(input, opts, &expects, false).await,
        }
    }

    async fn run_once(
        &self,
        input: &str,
        opts: &RunOptions,
        expects: &[BytesRegex],
        check: bool,
    ) -> Result<RunOutput> {
        let mut intr = self.interrupt_tx.subscribe();
        let mut st = self.state.lock().await;
        self.usable(&st)?;
        st.cap = opts.max_output;
        if let Some(seq) = st.pending {
            // A command left running (timed out or matched an expect string): did it finish?
            if !self.drain_now(&mut st) {
                return self.exited_output(&mut st).await;
            }
            let marker = self.marker(seq);
            if let Some((start, end, _, _)) = Self::find_marker(&mut st, &marker) {
                // Its late output stays in front of what comes next; only the marker goes.
                st.buf.drain(start..end);
                st.scan = 0;
                st.pending = None;
            }
        }
        match (opts.kind, st.pending) {
            (InputKind::Command, Some(_)) => {
                return Err(Error::tool(
                    "shell.session.run",
                    "a previous command is still running in this session (it timed out or is \
                     waiting for input); interrupt it first or send it input as an interactive line",
                ))
            }
            (InputKind::Command, None) | (InputKind::Interactive, None) => {
                st.seq += 1;
                let seq = st.seq;
                let file = self.dir.join(format!("cmd{}", seq % 2));
                // On the command's first line, so bash's "line N" messages stay right.
                let text = format!("{}{input}\n", self.restore_prefix());
                tokio::fs::write(&file, text)
                    .await
                    .map_err(|e| io_err(&format!("cannot write {}", file.display()), e))?;
                let q = |p: &std::path::Path| shell_quote(&p.to_string_lossy());
                let line = if check {
                    let def = self.dir.join("check");
                    tokio::fs::write(&def, format!("__art_syn() {{ {input}\n}}\n"))
                        .await
                        .map_err(|e| io_err(&format!("cannot write {}", def.display()), e))?;
                    format!(
                        "if \\builtin source {} 2>/dev/null; then \\builtin unset -f __art_syn; \
                         \\builtin source {}; else __art_syn=S; fi; {}",
                        q(&def),
                        q(&file),
                        self.end_line(seq)
                    )
                } else {
                    format!("\\builtin source {}; {}", q(&file), self.end_line(seq))
                };
                // Output that arrived while idle (background jobs) stays at the front.
                if st.buf.len() > IDLE_BUFFER_CAP {
                    let cut = st.buf.len() - IDLE_BUFFER_CAP;
                    st.buf.drain(..cut);
                    st.cut = None;
                }
                st.scan = 0;
                st.pending = Some(seq);
                // No job runs: the shell holds the terminal, its modes are ours to reset.
                assert_modes(self.master.get_ref())
                    .map_err(|e| io_err("cannot set the terminal modes", e))?;
                self.write_all(line.as_bytes())
                    .await
                    .map_err(|e| io_err("cannot write to the shell", e))?;
            }
            (InputKind::Interactive, Some(_)) => {
                let mut line = input.as_bytes().to_vec();
                line.push(b'\n');
                self.write_all(&line)
                    .await
                    .map_err(|e| io_err("cannot write to the shell", e))?;
            }
        }
        let seq = st.pending.unwrap_or_default();
        let marker = self.marker(seq);
        let started = Instant::now();
        let deadline = opts.timeout.map(|t| started + t);
        let mut last_output = Instant::now();
        st.seen = st.buf.len();
        st.expect_from = 0;
        let mut streamed = 0u64;
        let mut reasked = false;
        let mut next_probe = Instant::now() + PROBE_AFTER;
        loop {
            if let Some((start, end, code, syntax)) = Self::find_marker(&mut st, &marker) {
                st.pending = None;
                return Ok(RunOutput {
                    output: Self::take(&mut st, start, end),
                    exit_code: Some(if syntax { 2 } else { code }),
                    status: if syntax {
                        Status::SyntaxError {
                            stdout: String::new(),
                            stderr: String::new(),
                        }
                    } else {
                        Status::Completed
                    },
                    expect_string: String::new(),
                    interrupted: false,
                });
            }
            if !expects.is_empty() {
                // Patterns may span reads: re-search a bounded overlap, never the whole buffer.
                let from = st.expect_from.saturating_sub(4096);
                let hit = expects
                    .iter()
                    .enumerate()
                    .filter_map(|(k, re)| re.find(&st.buf[from..]).map(|m| (m.start(), m.end(), k)))
                    .min();
                if let Some((s, e, k)) = hit {
                    return Ok(RunOutput {
                        output: Self::take(&mut st, from + s, from + e),
                        exit_code: None,
                        status: Status::Expected,
                        expect_string: opts.expect[k].clone(),
                        interrupted: false,
                    });
                }
                st.expect_from = st.buf.len();
            }
            let now = Instant::now();
            let no_output_deadline = opts.no_output_timeout.map(|t| last_output + t);
            let wake = match (deadline, no_output_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(w) = wake {
                if now >= w {
                    let no_output = deadline.is_none_or(|d| now < d);
                    let len = st.buf.len();
                    let mut out = RunOutput {
                        output: Self::take(&mut st, len, len),
                        exit_code: None,
                        status: Status::Timeout { no_output },
                        expect_string: String::new(),
                        interrupted: false,
                    };
                    if opts.interrupt_on_timeout {
                        let i = self
                            .interrupt_locked(&mut st, &Interrupt::default())
                            .await?;
                        out.output.push_str(&i.output);
                        out.exit_code = i.exit_code;
                        out.interrupted = true;
                    }
                    return Ok(out);
                }
            }
            let sleep = async {
                match wake {
                    Some(w) => tokio::time::sleep_until(w.into()).await,
                    None => std::future::pending().await,
                }
            };
            // A command that replaced the shell with a new bash (`exec bash`) never prints
            // our marker: look every second of silence, and ask the new shell for it.
            let probe = async {
                if opts.kind == InputKind::Command && !reasked {
                    tokio::time::sleep_until(next_probe.into()).await
                } else {
                    std::future::pending().await
                }
            };
            tokio::select! {
                _ = probe => {
                    if self.shell_was_replaced().await {
                        reasked = true;
                        assert_modes(self.master.get_ref())
                            .map_err(|e| io_err("cannot set the terminal modes", e))?;
                        self.write_all(self.end_line(seq).as_bytes())
                            .await
                            .map_err(|e| io_err("cannot write to the shell", e))?;
                    } else {
                        next_probe = Instant::now() + PROBE_AFTER;
                    }
                }
                alive = self.fill(&mut st) => {
                    if !alive {
                        return self.exited_output(&mut st).await;
                    }
                    last_output = Instant::now();
                    next_probe = last_output + PROBE_AFTER;
                    if let Some(sink) = &opts.stream {
                        // Never stream (part of) a marker: stop where one may begin. A
                        // program's own 0x1E bytes stream on.
                        let new = &st.buf[st.seen.min(st.buf.len())..];
                        let cut = possible_marker(new, &st.marker_prefix).unwrap_or(new.len());
                        if cut > 0 {
                            streamed += cut as u64;
                            sink(&crate::core::Progress {
                                done: streamed as f64,
                                total: None,
                                message: Some(clean(&new[..cut])),
                            });
                            st.seen += cut;
                        }
                    }
                    st.bound();
                }
                _ = sleep => {}
                _ = intr.changed() => {
                    let len = st.buf.len();
                    return Ok(RunOutput {
                        output: Self::take(&mut st, len, len),
                        exit_code: None,
                        status: Status::Interrupted,
                        expect_string: String::new(),
                        interrupted: true,
                    });
                }
            }
        }
    }
}

/// Silence after which a running command is checked for having replaced the shell.
const PROBE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The first offset in `new` where a marker starts or may start (`prefix` cut short by the end
/// of what was read so far).
fn possible_marker(new: &[u8], prefix: &[u8]) -> Option<usize> {
    memchr::memchr_iter(MARK, new).find(|&p| {
        let rest = &new[p..];
        rest.starts_with(prefix) || prefix.starts_with(rest)
    })
}
