//! The processes a shell or a command started, found through /proc, and killing them.
//!
//! A process group or session id alone misses children that called `setsid` (or `setpgid`),
//! so a [`Target`] also follows parent links from every member, and (once, at the start of a
//! kill) looks for processes that carry the session's environment tag or (for one-shot
//! commands) hold its output pipes open — daemons that double-forked away from the tree.
//! Scans run on the blocking pool (async callers) or on the caller's own thread (the reaper
//! thread, the shutdown hook), never on a tokio worker.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// One process: ids from /proc/PID/stat.
#[derive(Debug, Clone, Copy)]
pub(super) struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub pgrp: i32,
    pub sid: i32,
    pub zombie: bool,
}

/// Every process visible in /proc.
pub(super) fn snapshot() -> Vec<Proc> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state ppid pgrp session ...
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<i32>().ok()).unwrap_or(-1);
        out.push(Proc {
            pid,
            ppid: num(1),
            pgrp: num(2),
            sid: num(3),
            zombie: f.first() == Some(&"Z"),
        });
    }
    out
}

/// Processes (incl. zombies) whose session id is `sid`.
#[cfg(test)]
pub(super) fn session_members(sid: i32) -> Vec<Proc> {
    snapshot().into_iter().filter(|p| p.sid == sid).collect()
}

/// What belongs to a shell session or a command.
#[derive(Debug, Clone, Default)]
pub(super) struct Target {
    /// The shell / the command's first process: killed last, so it can reap the others.
    pub leader: i32,
    /// Members of this session...
    pub sid: Option<i32>,
    /// ...or of this process group.
    pub pgid: Option<i32>,
    /// `NAME=value` in the environment of everything the session started.
    pub tag: Option<String>,
    /// Link targets of /proc/PID/fd entries (`/dev/pts/N`, `pipe:[inode]`) that mark a member.
    pub files: Vec<String>,
}

fn environ_has(pid: i32, tag: &str) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    env.split(|b| *b == 0).any(|kv| kv == tag.as_bytes())
}

fn holds_any(pid: i32, files: &[String]) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    dir.flatten().any(|e| {
        std::fs::read_link(e.path())
            .map(|l| files.iter().any(|f| l.as_os_str() == f.as_str()))
            .unwrap_or(false)
    })
}

fn signal(pid: i32, sig: Signal) {
    if let Some(p) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

impl Target {
    /// The live members of the target in `procs` (the leader included). `known` carries pids
    /// found in earlier rounds (a daemon whose parent exited stays found); `deep` also checks
    /// every other process's environment and open files (costly: the first round only).
    fn members(&self, procs: &[Proc], known: &mut HashSet<i32>, deep: bool) -> HashSet<i32> {
        let mut set: HashSet<i32> = procs
            .iter()
            .filter(|p| {
                p.pid == self.leader
                    || Some(p.sid) == self.sid
                    || Some(p.pgrp) == self.pgid
                    || known.contains(&p.pid)
            })
            .map(|p| p.pid)
            .collect();
        let me = std::process::id() as i32;
        if deep && (self.tag.is_some() || !self.files.is_empty()) {
            for p in procs {
                if set.contains(&p.pid) || p.zombie || p.pid == me || p.pid <= 1 {
                    continue;
                }
                let tagged = self.tag.as_deref().is_some_and(|t| environ_has(p.pid, t));
                if tagged || holds_any(p.pid, &self.files) {
                    set.insert(p.pid);
                }
            }
        }
        // Descendants, through however many generations.
        loop {
            let before = set.len();
            for p in procs {
                if !set.contains(&p.pid) && set.contains(&p.ppid) {
                    set.insert(p.pid);
                }
            }
            if set.len() == before {
                break;
            }
        }
        // Never ourselves or init, whatever a hostile command did to look like a member.
        set.remove(&me);
        set.retain(|p| *p > 1);
        known.clone_from(&set);
        set
    }

    /// One round: SIGKILL the leaves of the member tree (each dies while its parent is alive
    /// to reap it — an orphan would become a zombie of an init that may never reap). Returns
    /// whether members other than the leader are still alive.
    fn kill_leaves(&self, known: &mut HashSet<i32>, deep: bool) -> bool {
        let procs = snapshot();
        let set = self.members(&procs, known, deep);
        let live: Vec<&Proc> = procs
            .iter()
            .filter(|p| set.contains(&p.pid) && !p.zombie && p.pid != self.leader)
            .collect();
        let parents: HashSet<i32> = live.iter().map(|p| p.ppid).collect();
        for p in &live {
            if !parents.contains(&p.pid) {
                signal(p.pid, Signal::KILL);
            }
        }
        !live.is_empty()
    }

    /// Past the grace period (a parent that does not reap): kill every member, leader last.
    fn kill_rest(&self, known: &mut HashSet<i32>) {
        let procs = snapshot();
        for pid in self.members(&procs, known, false) {
            if pid != self.leader {
                signal(pid, Signal::KILL);
            }
        }
        if self.leader > 1 {
            signal(self.leader, Signal::KILL);
        }
    }

    /// Kill every member, leaves first, for at most `grace`, then the rest and the leader.
    /// Blocking: for threads of our own (the reaper, the shutdown hook).
    pub fn kill_blocking(&self, grace: Duration) {
        let end = Instant::now() + grace;
        let mut known = HashSet::new();
        let mut deep = true;
        while self.kill_leaves(&mut known, deep) && Instant::now() < end {
            deep = false;
            std::thread::sleep(Duration::from_millis(2));
        }
        self.kill_rest(&mut known);
    }

    /// [`Self::kill_blocking`] for async code: the scans run on the blocking pool and the
    /// waits are timers, so no tokio worker is held.
    pub async fn kill(&self, grace: Duration) {
        let end = tokio::time::Instant::now() + grace;
        let mut known = HashSet::new();
        let mut deep = true;
        let mut pause = Duration::from_millis(2);
        loop {
            let t = self.clone();
            let round = blocking(move || {
                let left = t.kill_leaves(&mut known, deep);
                (left, known)
            })
            .await;
            let left;
            (left, known) = round;
            deep = false;
            if !left || tokio::time::Instant::now() >= end {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        let t = self.clone();
        blocking(move || t.kill_rest(&mut known)).await;
    }
}

/// Send `sig` to process group `pgid` and to everything descended from its members (children
/// that left the group with `setsid`/`setpgid` included).
pub(super) async fn signal_group_tree(pgid: i32, sig: Signal) {
    blocking(move || {
        let t = Target {
            leader: -1,
            pgid: Some(pgid),
            ..Default::default()
        };
        let procs = snapshot();
        for pid in t.members(&procs, &mut HashSet::new(), false) {
            signal(pid, sig);
        }
    })
    .await
}

/// Run `f` on the blocking pool; inline when the runtime is shutting down and refuses it.
/// At most two scans run at once: 64 sessions closing together would otherwise put 64
/// CPU-bound threads next to the runtime's workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    static SCANS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
    let _permit = SCANS.acquire().await;
    let f = std::sync::Arc::new(parking_lot::Mutex::new(Some(f)));
    let g = f.clone();
    match tokio::task::spawn_blocking(move || g.lock().take().map(|f| f())).await {
        Ok(Some(v)) => v,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled before it ran: do it here. (Taken by the task means it ran and returned.)
        _ => match f.lock().take() {
            Some(f) => f(),
            None => panic!("a blocking process scan vanished"),
        },
    }
}

/// SIGINT pending (not yet acted on) in /proc/PID/status text.
fn sigint_pending(status: &str) -> bool {
    let pending = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .is_some_and(|m| m & 0x2 != 0)
    };
    pending("SigPnd:") || pending("ShdPnd:")
}

/// After SIGINT was sent to `pid`: (it has not acted on it yet, it took it and sleeps again —
/// it has slept since `switches` was read (voluntary context switches) and is asleep).
fn sigint_state(pid: i32, switches: u64) -> (bool, bool) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (false, false);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let pending = sigint_pending(&status);
    let slept = field("voluntary_ctxt_switches:")
        .parse::<u64>()
        .unwrap_or(0)
        > switches;
    (
        pending,
        slept && field("State:").starts_with('S') && !pending,
    )
}

/// Voluntary context switches of `pid` so far (0 if unknown).
pub(super) async fn switches(pid: i32) -> u64 {
    blocking(move || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    })
    .await
}

/// After SIGINT was sent (synchronously, so it is pending until taken) to a shell that holds
/// the terminal itself (a builtin like `read` runs): wait until it has taken it and sleeps
/// again, reading its next line. A line written earlier would be swallowed by `read` — and
/// kept in its buffer for the next `read` of a later command — or a late SIGINT would cut
/// the answer to it short. `before`: [`switches`] read before the signal. Waits at most
/// `limit` once the signal was taken, and at most `cap` while it is still pending (a loaded
/// machine may not run the shell for a while).
pub(super) async fn await_sigint_taken(pid: i32, before: u64, limit: Duration, cap: Duration) {
    let start = tokio::time::Instant::now();
    loop {
        let (pending, idle) = blocking(move || sigint_state(pid, before)).await;
        let waited = start.elapsed();
        if idle || waited >= cap.max(limit) || (!pending && waited >= limit) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// After SIGINT was sent to process group `pgid`: wait (at most `cap`) until none of its live
/// members still has it pending, i.e. each had the chance to act on it. Escalating while it is
/// pending (a busy machine has not run them yet) would kill with SIGTERM a job that was dying
/// from the SIGINT anyway, and report 143 instead of 130.
pub(super) async fn await_group_took_sigint(pgid: i32, cap: Duration) {
    let end = tokio::time::Instant::now() + cap;
    while tokio::time::Instant::now() < end {
        let pending = blocking(move || {
            snapshot()
                .into_iter()
                .filter(|p| p.pgrp == pgid && !p.zombie)
                .any(|p| {
                    std::fs::read_to_string(format!("/proc/{}/status", p.pid))
                        .is_ok_and(|s| sigint_pending(&s))
                })
        })
        .await;
        if !pending {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
