//! Interrupting what runs in a session and resynchronising with the shell.

use std::time::Duration;

use rustix::process::Signal;

use super::io_err;
use super::options::{Interrupt, RunOutput, Status};
use super::proc::{await_group_took_sigint, await_sigint_taken, signal_group_tree, switches};
use super::pty::{assert_modes, flush_input};
use super::session::{ShellSession, State};
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

    pub(super) fn foreground_is_shell(&self) -> bool {
        match rustix::termios::tcgetpgrp(self.master.get_ref()) {
            Ok(pg) => pg.as_raw_nonzero().get() == self.pid,
            Err(_) => true,
        }
    }

    /// The terminal's foreground process group.
    fn foreground(&self) -> Option<i32> {
        rustix::termios::tcgetpgrp(self.master.get_ref())
            .ok()
            .map(|pg| pg.as_raw_nonzero().get())
    }

    fn sigint_group(pg: i32) {
        if let Some(pg) = rustix::process::Pid::from_raw(pg) {
            let _ = rustix::process::kill_process_group(pg, Signal::INT);
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
                alive = self.fill(st) => {
                    if !alive {
                        return false;
                    }
                    st.bound();
                }
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
        // Ctrl-C, retried; a job still holding the terminal afterwards gets SIGTERM, then
        // SIGKILL. The Ctrl-C is done as the line discipline does it (flush the unread input,
        // SIGINT to the foreground group) but with `kill`, whatever `stty` did: a Ctrl-C byte
        // is turned into a signal later, by a kernel worker, so nothing could tell whether it
        // had been yet — and a busy machine can delay it past any fixed wait.
        let steps: Vec<Option<Signal>> = std::iter::repeat_n(None, how.retries.max(1))
            .chain([Some(Signal::TERM), Some(Signal::KILL)])
            .collect();
        for step in steps {
            let before = switches(self.pid).await;
            match step {
                None => {
                    let _ = flush_input(self.master.get_ref());
                    match self.foreground() {
                        Some(pg) if pg == self.pid => {
                            Self::sigint_group(pg);
                            await_sigint_taken(self.pid, before, how.timeout, how.resync_timeout)
                                .await;
                        }
                        Some(pg) => {
                            Self::sigint_group(pg);
                            await_group_took_sigint(pg, how.resync_timeout.max(how.timeout)).await;
                        }
                        None => {}
                    }
                }
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
                return self.exited_output(st).await;
            }
            if self.foreground_is_shell() {
                break;
            }
        }
        // Resync: a fresh marker proves the shell reads commands again and gives `$?`. Sent
        // again (with a new number) while none answers: a line written while the shell still
        // sat in `read` was taken as that read's input before the Ctrl-C landed.
        let end_at = tokio::time::Instant::now() + how.resync_timeout;
        let mut wait = Duration::from_millis(100);
        let mut sent: Vec<Vec<u8>> = Vec::new();
        let hit = loop {
            st.seq += 1;
            sent.push(self.marker(st.seq));
            let _ = assert_modes(self.master.get_ref());
            self.write_all(self.end_line(st.seq).as_bytes())
                .await
                .map_err(|e| io_err("cannot write to the shell", e))?;
            st.scan = 0;
            let limit = wait.min(end_at.saturating_duration_since(tokio::time::Instant::now()));
            let alive = self
                .pump_until(st, limit, |st| {
                    sent.iter().any(|m| {
                        st.scan = 0;
                        Self::find_marker(st, m).is_some()
                    })
                })
                .await;
            if !alive {
                return self.exited_output(st).await;
            }
            let hit = sent.iter().find_map(|m| {
                st.scan = 0;
                Self::find_marker(st, m)
            });
            if hit.is_some() || tokio::time::Instant::now() >= end_at {
                break hit;
            }
            wait = (wait * 2).min(Duration::from_secs(1));
        };
        st.scan = 0;
        let Some((mut start, mut end, mut code, _)) = hit else {
            // Whatever reads the terminal now is not a shell that runs our lines (e.g. after
            // `exec python3`): no later command could complete. Give the session up loudly,
            // kill everything in it, and let the name be used again.
            let why = format!(
                "it did not answer within {:.1}s after an interrupt (its terminal is read by \
                 something else, e.g. a program started with `exec`)",
                how.resync_timeout.as_secs_f64()
            );
            self.give_up(st, why.clone()).await;
            return Err(Error::tool(
                "shell.session.interrupt",
                format!("the shell of this session was closed: {why}; create a new session"),
            ));
        };
        st.pending = None;
        // The shell answering may be a new one (`exec bash`): what it is now is the reference.
        self.refresh_identity().await;
        // The interrupted command's own marker (if its line went on after Ctrl-C) is not output.
        if let Some(old) = old {
            let m = self.marker(old);
            st.scan = 0;
            if let Some((i, k, c, _)) = Self::find_marker(st, &m).filter(|h| h.1 <= start) {
                code = c;
                let n = k - i;
                st.buf.drain(i..k);
                (start, end) = (start - n, end - n);
                if let Some(c) = st.cut.as_mut().filter(|c| c.at > i) {
                    c.at = c.at.saturating_sub(n).max(i);
                }
            }
            st.scan = 0;
        }
        Ok(RunOutput {
            output: Self::take(st, start, end),
            exit_code: Some(code),
            status: Status::Completed,
            expect_string: String::new(),
            interrupted: true,
        })
    }
}
