//! Interrupting what runs in a session and resynchronising with the shell.

use std::time::Duration;

use rustix::process::Signal;

use super::io_err;
use super::options::{Interrupt, RunOutput, Status};
use super::proc::signal_group_tree;
use super::session::{ShellSession, State, MARK};
use super::text::{clean, find};
use crate::core::{Error, Result};

impl ShellSession {
    /// Interrupt whatever runs in the session and bring the shell back to a known state.
    pub async fn interrupt(&self, how: &Interrupt) -> Result<RunOutput> {
        // Stop a concurrent `run` waiting on this session so we can take the state.
        self.interrupt_tx.send_modify(|g| *g += 1);
        let mut st = self.state.lock().await;
        self.usable(&st)?;
        self.interrupt_locked(&mut st, how).await
    }

    fn foreground_is_shell(&self) -> bool {
        match rustix::termios::tcgetpgrp(self.master.get_ref()) {
            Ok(pg) => pg.as_raw_nonzero().get() == self.pid,
            Err(_) => true,
        }
    }

    /// Signal the foreground job (its process group and what its members started, even if
    /// it left the group) unless the shell itself holds the terminal.
    async fn signal_foreground(&self, sig: Signal) {
        if let Ok(pg) = rustix::termios::tcgetpgrp(self.master.get_ref()) {
            let pg = pg.as_raw_nonzero().get();
            if pg != self.pid {
                signal_group_tree(pg, sig).await;
            }
        }
    }

    /// Read output until `done()` or `limit` passes. Returns false at EOF.
    async fn pump_until(
        &self,
        st: &mut State,
        limit: Duration,
        done: impl Fn(&mut State) -> bool,
    ) -> bool {
        let end = tokio::time::Instant::now() + limit;
        loop {
            if !self.drain_now(st) {
                return false;
            }
            if done(st) || tokio::time::Instant::now() >= end {
                return true;
            }
            tokio::select! {
                alive = self.fill(st) => if !alive { return false; },
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                _ = tokio::time::sleep_until(end) => {}
            }
        }
    }

    pub(super) async fn interrupt_locked(
        &self,
        st: &mut State,
        how: &Interrupt,
    ) -> Result<RunOutput> {
        let old = st.pending;
        // Ctrl-C, retried; a job still holding the terminal afterwards gets SIGTERM, then SIGKILL.
        let steps: Vec<Option<Signal>> = std::iter::repeat_n(None, how.retries.max(1))
            .chain([Some(Signal::TERM), Some(Signal::KILL)])
            .collect();
        for step in steps {
            match step {
                None => self
                    .write_all(b"\x03")
                    .await
                    .map_err(|e| io_err("cannot write to the shell", e))?,
                Some(sig) => self.signal_foreground(sig).await,
            }
            let old_marker = old.map(|s| self.marker(s));
            let alive = self
                .pump_until(st, how.timeout, |st| {
                    if self.foreground_is_shell() {
                        return true;
                    }
                    if let Some(m) = &old_marker {
                        let saved = st.scan;
                        let found = Self::find_marker(st, m).is_some();
                        st.scan = saved;
                        if found {
                            return true;
                        }
                    }
                    false
                })
                .await;
            if !alive {
                return Ok(self.exited_output(st).await);
            }
            if self.foreground_is_shell() {
                break;
            }
        }
        // Resync: a fresh marker proves the shell reads commands again and gives `$?`.
        st.seq += 1;
        let seq = st.seq;
        let marker = self.marker(seq);
        self.write_all(self.marker_line(seq).as_bytes())
            .await
            .map_err(|e| io_err("cannot write to the shell", e))?;
        st.scan = 0;
        let alive = self
            .pump_until(st, how.resync_timeout, |st| {
                let saved = st.scan;
                let hit = Self::find_marker(st, &marker).is_some();
                st.scan = saved;
                hit
            })
            .await;
        if !alive {
            return Ok(self.exited_output(st).await);
        }
        st.scan = 0;
        let Some((start, end, mut code, _)) = Self::find_marker(st, &marker) else {
            return Err(Error::tool(
                "shell.session.interrupt",
                format!(
                "the shell did not respond within {:.1}s after the interrupt; close the session",
                how.resync_timeout.as_secs_f64()
            ),
            ));
        };
        st.pending = None;
        let mut raw = st.buf[..start].to_vec();
        st.buf.drain(..end);
        st.scan = 0;
        // The interrupted command's own marker (if its line went on after Ctrl-C) is not output.
        if let Some(seq) = old {
            let m = self.marker(seq);
            if let Some(i) = find(&raw, &m) {
                if let Some(j) = memchr::memchr(MARK, &raw[i + m.len()..]) {
                    let k = i + m.len() + j;
                    if let Some(c) = std::str::from_utf8(&raw[i + m.len()..k])
                        .ok()
                        .and_then(|s| s.parse().ok())
                    {
                        code = c;
                    }
                    raw.drain(i..=k);
                }
            }
        }
        Ok(RunOutput {
            output: clean(&raw),
            exit_code: Some(code),
            status: Status::Completed,
            expect_string: String::new(),
            interrupted: true,
        })
    }
}
