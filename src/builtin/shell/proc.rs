//! The processes a shell started, found through /proc, and killing them.

use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// A process in a shell's session: (pid, parent pid, zombie).
pub(super) type Member = (i32, i32, bool);

/// Processes whose session id is `sid` (the shell and everything it started that did not
/// leave the session).
#[cfg(test)]
pub(super) fn session_members(sid: i32) -> Vec<Member> {
    members(3, sid)
}

/// Processes whose field `field` of /proc/PID/stat after the name (2: process group,
/// 3: session) is `id`.
fn members(field: usize, id: i32) -> Vec<Member> {
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
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<i32>().ok());
        if num(field) == Some(id) {
            out.push((pid, num(1).unwrap_or_default(), f.first() == Some(&"Z")));
        }
    }
    out
}

/// Kill everything in session (`field` 3) or process group (2) `sid`, leaves of the process tree
/// first so that each dies while its parent (the shell, a subshell) is alive to reap it — an
/// orphan would become a zombie of an init that may never reap — and the leader `sid` last.
pub(super) fn kill_tree(field: usize, sid: i32, grace: Duration) {
    let kill = |pid: i32| {
        if let Some(p) = Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(p, Signal::KILL);
        }
    };
    let end = Instant::now() + grace;
    loop {
        let live: Vec<Member> = members(field, sid)
            .into_iter()
            .filter(|m| m.0 != sid && !m.2)
            .collect();
        if live.is_empty() || Instant::now() >= end {
            break;
        }
        let parents: std::collections::HashSet<i32> = live.iter().map(|m| m.1).collect();
        live.iter()
            .filter(|m| !parents.contains(&m.0))
            .for_each(|m| kill(m.0));
        std::thread::sleep(Duration::from_millis(2));
    }
    // Past the grace period (a parent that does not reap): kill whatever is left.
    for m in members(field, sid) {
        if m.0 != sid && !m.2 {
            kill(m.0);
        }
    }
    kill(sid);
}
