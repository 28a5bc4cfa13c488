use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::proc::session_members;
use super::*;
use crate::core::{Error, Registry};

async fn start() -> Arc<ShellSession> {
    ShellSession::start(&SessionOptions::default())
        .await
        .unwrap()
        .0
}

fn cmd(timeout: f64) -> RunOptions {
    RunOptions {
        timeout: Some(crate::core::duration::from_secs("timeout", timeout).unwrap()),
        check_syntax: true,
        ..Default::default()
    }
}

/// The process has exited (reaped, or a zombie).
fn gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')')
            .next()
            .is_some_and(|t| t.trim_start().starts_with('Z'))
    })
}

/// Wait (polling) until `cond` holds; panic with `what` after `secs`.
async fn eventually(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < end, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn output_exit_codes_and_state() {
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let s = start().await;
    let r = s.run("echo hi", &cmd(10.0)).await.unwrap();
    assert_eq!((r.output.as_str(), r.exit_code), ("hi\n", Some(0)));
    let r = s
        .run("printf 'a  \\n\\n  '; false", &cmd(10.0))
        .await
        .unwrap();
    assert_eq!((r.output.as_str(), r.exit_code), ("a  \n\n  ", Some(1)));
    s.run("cd /tmp && X=42", &cmd(10.0)).await.unwrap();
    let r = s.run("echo $PWD $X; (exit 7)", &cmd(10.0)).await.unwrap();
    assert_eq!((r.output.as_str(), r.exit_code), ("/tmp 42\n", Some(7)));
    // Multi-line commands, heredocs, odd characters and invalid UTF-8.
    let r = s
        .run(
            "cat <<'EOF'\nx\t'\"!$\nEOF\nprintf '\\xff\\n' >&2",
            &cmd(10.0),
        )
        .await
        .unwrap();
    assert_eq!(r.output, "x\t'\"!$\n\\xff\n");
    s.close().await;
}

#[tokio::test]
async fn syntax_error_runs_nothing() {
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let s = start().await;
    let r = s
        .run("touch /tmp/never; if then fi", &cmd(10.0))
        .await
        .unwrap();
    match r.status {
        Status::SyntaxError { stderr, .. } => {
            assert!(stderr.contains("syntax error"), "{stderr}")
        }
        other => panic!("{other:?}"),
    }
    let r = s.run("echo ok", &cmd(10.0)).await.unwrap();
    assert_eq!(r.output, "ok\n");
    // Rejected by the in-shell parse but accepted by `bash -n`: they run.
    let r = s.run("# only a comment", &cmd(10.0)).await.unwrap();
    assert_eq!((r.status, r.exit_code), (Status::Completed, Some(0)));
    let r = s.run("cat <<EOF\nunterminated", &cmd(10.0)).await.unwrap();
    assert_eq!(r.status, Status::Completed);
    assert!(r.output.ends_with("unterminated\n"), "{:?}", r.output);
    s.close().await;
}

#[tokio::test]
async fn timeout_interrupt_then_next_command() {
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let s = start().await;
    let r = s.run("echo start; sleep 30", &cmd(2.0)).await.unwrap();
    assert_eq!(r.status, Status::Timeout { no_output: false });
    assert_eq!(r.output, "start\n");
    // Still running: a new command is refused until the interrupt.
    assert!(s.run("echo no", &cmd(1.0)).await.is_err());
    let i = s.interrupt(&Interrupt::default()).await.unwrap();
    assert!(ended_by_interrupt(i.exit_code), "{i:?}");
    let r = s.run("echo next", &cmd(10.0)).await.unwrap();
    assert_eq!((r.output.as_str(), r.exit_code), ("next\n", Some(0)));
    // A job ignoring SIGINT is escalated to SIGTERM.
    let opts = RunOptions {
        interrupt_on_timeout: true,
        ..cmd(0.3)
    };
    let r = s.run("trap '' INT; sleep 30", &opts).await.unwrap();
    assert!(r.interrupted);
    let r = s.run("echo after", &cmd(10.0)).await.unwrap();
    assert_eq!(r.output, "after\n");
    // No-output timeout.
    let opts = RunOptions {
        no_output_timeout: Some(Duration::from_millis(300)),
        interrupt_on_timeout: true,
        ..cmd(30.0)
    };
    let r = s.run("echo x; sleep 30", &opts).await.unwrap();
    assert_eq!(r.status, Status::Timeout { no_output: true });
    s.close().await;
}

#[tokio::test]
async fn huge_output_and_expect() {
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let s = start().await;
    let r = s.run("seq 1 200000", &cmd(60.0)).await.unwrap();
    assert_eq!(r.output.lines().count(), 200000);
    assert!(r.output.ends_with("199999\n200000\n"));
    let opts = RunOptions {
        expect: vec![r"name\? ".into()],
        ..cmd(10.0)
    };
    let r = s
        .run("read -p 'name? ' x; echo hello $x", &opts)
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.expect_string.as_str()),
        (Status::Expected, r"name\? ")
    );
    let opts = RunOptions {
        kind: InputKind::Interactive,
        ..cmd(10.0)
    };
    let r = s.run("bob", &opts).await.unwrap();
    assert_eq!((r.output.as_str(), r.exit_code), ("hello bob\n", Some(0)));
    s.close().await;
}

#[tokio::test]
async fn exit_and_close_leave_nothing() {
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let s = start().await;
    let pid = s.pid();
    s.run("sleep 300 & sleep 301 | cat &", &cmd(10.0))
        .await
        .unwrap();
    // bash, sleep 300, sleep 301, cat (bash may run `cat` in the subshell's process)
    eventually("fewer than 4 session members", 30, || {
        session_members(pid).len() >= 4
    })
    .await;
    let dir = s.dir.clone();
    s.close().await;
    assert!(
        session_members(pid).is_empty(),
        "{:?}",
        session_members(pid)
    );
    assert!(!dir.exists());
    assert!(s.run("echo", &cmd(1.0)).await.is_err());
    let s = start().await;
    let r = s.run("echo bye; exit 3", &cmd(10.0)).await.unwrap();
    assert_eq!((r.status, r.exit_code), (Status::Exited, Some(3)));
    assert!(r.output.contains("bye"));
    s.close().await;
}

#[tokio::test]
async fn sessions_in_parallel_are_isolated() {
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let reg = Registry::new();
    register(&reg).unwrap();
    let mut hs = Vec::new();
    for i in 0..4 {
        let reg = reg.clone();
        hs.push(tokio::spawn(async move {
            let name = format!("s{i}");
            reg.call_json("shell.session.create", json!({"session": name}))
                .await?;
            reg.call_json(
                "shell.session.run",
                json!({"session": name, "command": format!("V={i}")}),
            )
            .await?;
            let r = reg
                .call_json(
                    "shell.session.run",
                    json!({"session": name, "command": "sleep 0.2; echo $V"}),
                )
                .await?;
            reg.call_json("shell.session.close", json!({"session": name}))
                .await?;
            Ok::<_, Error>(r)
        }));
    }
    for (i, h) in hs.into_iter().enumerate() {
        let r = h.await.unwrap().unwrap();
        assert_eq!(r["output"], json!(format!("{i}\n")));
    }
    assert_eq!(
        reg.call_json("shell.session.list", json!({}))
            .await
            .unwrap(),
        json!([])
    );
    let e = reg
        .call_json(
            "shell.session.run",
            json!({"session": "nope", "command": "true"}),
        )
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("session 'nope' does not exist"),
        "{e}"
    );
    reg.call_json("shell.session.create", json!({}))
        .await
        .unwrap();
    let e = reg
        .call_json("shell.session.create", json!({}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    reg.call_json("shell.session.close", json!({}))
        .await
        .unwrap();
}

#[tokio::test]
async fn execute_one_shot() {
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let r = execute(&ExecOptions {
        argv: vec![
            "sh".into(),
            "-c".into(),
            "echo out; echo err >&2; exit 4".into(),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str(), r.exit_code),
        ("out\n", "err\n", Some(4))
    );
    let r = execute(&ExecOptions {
        argv: vec!["echo a; echo b >&2; cat; echo $FOO; pwd".into()],
        shell: true,
        merge_output_streams: true,
        env: Some(HashMap::from([("FOO".into(), "bar".into())])),
        cwd: Some("/".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        (r.stdout.as_str(), r.stderr.as_str()),
        ("a\nb\nbar\n/\n", "")
    );
    let r = execute(&ExecOptions {
        argv: vec!["sleep 30 & sleep 30".into()],
        shell: true,
        timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(r.timed_out);
    assert!(execute(&ExecOptions {
        argv: vec!["/no/such/program".into()],
        ..Default::default()
    })
    .await
    .is_err());
}

/// 64 sessions closing at once (each with children to kill) must not block the runtime: a
/// no-op tool called in a loop meanwhile answers about as fast as before. A close that blocked
/// a worker (/proc scans, kill grace polling, reaping sleeps) would hold the no-op behind it
/// for most of the closing period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_many_sessions_does_not_block_the_runtime() {
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    use crate::core::{FnTool, ToolSpec};
    let reg = Registry::new();
    reg.replace(Arc::new(FnTool::new(ToolSpec::new("noop"), |_, _| async {
        Ok(serde_json::Value::Null)
    })))
    .unwrap();
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let batch = futures::future::join_all((0..16).map(|_| start())).await;
        sessions.extend(batch);
    }
    let pids: Vec<i32> = sessions.iter().map(|s| s.pid()).collect();
    for s in &sessions {
        let r = s.run("sleep 300 & sleep 301 &", &cmd(30.0)).await.unwrap();
        assert_eq!(r.exit_code, Some(0));
    }
    // Spawned, so the latency includes waiting for a free worker.
    let noop = |reg: Registry| async move {
        let t = Instant::now();
        tokio::spawn(async move { reg.call_json("noop", json!({})).await })
            .await
            .unwrap()
            .unwrap();
        t.elapsed()
    };
    let mut base = Vec::new();
    for _ in 0..200 {
        base.push(noop(reg.clone()).await);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let t0 = Instant::now();
    let closing = tokio::spawn(async move {
        futures::future::join_all(sessions.iter().map(|s| s.close())).await;
    });
    let mut during = Vec::new();
    while !closing.is_finished() {
        during.push(noop(reg.clone()).await);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    closing.await.unwrap();
    let close_wall = t0.elapsed();
    base.sort();
    during.sort();
    let (base_med, base_max) = (base[base.len() / 2], base[base.len() - 1]);
    let (med, max) = (during[during.len() / 2], during[during.len() - 1]);
    let shown = format!(
        "closes took {close_wall:?}; no-op median/max before {base_med:?}/{base_max:?}, \
         during {med:?}/{max:?} ({} calls)",
        during.len()
    );
    eprintln!("{shown}");
    assert!(during.len() >= 3, "{shown}");
    // Generous: CPU contention from the kills is fine, being queued behind blocked workers is not.
    assert!(max < close_wall / 3 || max < base_max * 5, "{shown}");
    assert!(med < close_wall / 10 || med < base_med * 20, "{shown}");
    for pid in pids {
        assert!(session_members(pid).is_empty(), "{pid}");
    }
}

#[tokio::test]
async fn the_wrapper_never_shows_and_survives_what_commands_do() {
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let s = start().await;
    let out = |r: RunOutput| (r.output.replace('\r', ""), r.exit_code);
    for c in ["stty sane", "stty echo -icanon", "trap 'echo DBG' DEBUG"] {
        s.run(c, &cmd(10.0)).await.unwrap();
    }
    let r = s.run("echo a; (exit 3)", &cmd(10.0)).await.unwrap();
    assert_eq!(out(r), ("DBG\na\n".into(), Some(3))); // a subshell does not inherit it
    s.run("trap - DEBUG; set -x", &cmd(10.0)).await.unwrap();
    let r = s.run("echo t", &cmd(10.0)).await.unwrap();
    assert!(
        !r.output.contains("builtin") && r.output.ends_with("echo t\nt\n"),
        "{r:?}"
    );
    s.run("set +x; exec >/dev/null", &cmd(10.0)).await.unwrap();
    let r = s.run("echo gone; false", &cmd(10.0)).await.unwrap();
    assert_eq!(out(r), (String::new(), Some(1)));
    s.run("exec >/dev/tty", &cmd(10.0)).await.unwrap();
    // A shell replaced by `exec bash` answers the interrupt's resync.
    let opts = RunOptions {
        interrupt_on_timeout: true,
        ..cmd(1.0)
    };
    let r = s.run("exec bash --norc", &opts).await.unwrap();
    assert!(r.interrupted, "{r:?}");
    let r = s.run("echo back", &cmd(10.0)).await.unwrap();
    assert_eq!(out(r), ("back\n".into(), Some(0)));
    // `read` waiting on the terminal: interrupted cleanly, nothing left in its buffer.
    let r = s.run("read x", &opts).await.unwrap();
    assert_eq!(r.exit_code, Some(130));
    let r = s
        .run("read -t 1 y; echo \"[$y]\"", &cmd(10.0))
        .await
        .unwrap();
    assert_eq!(out(r), ("[]\n".into(), Some(0)));
    s.close().await;
}

#[tokio::test]
async fn session_output_is_capped_with_a_notice() {
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let s = start().await;
    let opts = RunOptions {
        max_output: 4096,
        ..cmd(60.0)
    };
    let r = s.run("seq 1 100000", &opts).await.unwrap();
    assert_eq!(r.exit_code, Some(0));
    assert!(r.output.starts_with("1\n2\n3\n") && r.output.ends_with("99999\n100000\n"));
    assert!(r.output.contains("bytes of output omitted"), "{}", r.output);
    assert!(r.output.len() < 4096 + 200, "{}", r.output.len());
    let r = s.run("echo small", &cmd(10.0)).await.unwrap();
    assert_eq!(r.output, "small\n");
    s.close().await;
}

#[tokio::test]
async fn execute_is_subprocess_like_and_kills_everything_on_timeout() {
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let run = |argv: &[&str], shell: bool, timeout: Option<Duration>| {
        let opts = ExecOptions {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            shell,
            timeout,
            ..Default::default()
        };
        async move { execute(&opts).await.unwrap() }
    };
    let r = run(&["echo", "a;echo INJECTED"], true, None).await;
    assert_eq!(r.stdout, "\n");
    let r = run(&["echo $0-$1", "x", "y"], true, None).await;
    assert_eq!(r.stdout, "x-y\n");
    let dir = std::env::temp_dir().join(format!("art-exec-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("pid");
    let script = format!(
        "setsid sh -c 'echo $$ > {}; exec sleep 300' & echo started; sleep 60",
        f.display()
    );
    let r = run(&[&script], true, Some(Duration::from_secs(1))).await;
    assert!(r.timed_out);
    assert_eq!(r.stdout, "started\n");
    let pid: i32 = std::fs::read_to_string(&f).unwrap().trim().parse().unwrap();
    let what = format!("setsid child {pid} survived the timeout");
    eventually(&what, 5, || gone(pid)).await;
    let _ = std::fs::remove_dir_all(&dir);
    // Arguments the OS would refuse are blamed on the argument.
    let e = execute(&ExecOptions {
        argv: vec!["pwd".into()],
        cwd: Some("/no/such/dir".into()),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(e.to_string().contains("cwd /no/such/dir"), "{e}");
    let e = execute(&ExecOptions {
        argv: vec!["true".into()],
        env: Some(HashMap::from([("A".into(), "a\0b".into())])),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(e, Error::InvalidArguments { ref path, .. } if path == "env.A"),
        "{e}"
    );
}

#[tokio::test]
async fn tool_seconds_are_checked_not_panicked() {
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let reg = Registry::new();
    register(&reg).unwrap();
    let r = reg
        .call_json("shell.run", json!({"command": "echo ok", "timeout": 1e300}))
        .await
        .unwrap();
    assert_eq!(r["stdout"], "ok\n");
    let e = reg
        .call_json("shell.run", json!({"command": "true", "timeout": -1}))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArguments { .. }), "{e}");
    let e = reg
        .call_json("shell.run", json!({"command": "true", "max_output": 1}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("max_output"), "{e}");
}

/// Killed by the interrupt: SIGINT (130), or on a machine too loaded for the job to act on it
/// within the interrupt's wait, the escalation's SIGTERM (143). Seen under the full parallel
/// test run on 2 cores; the escalation is the documented behaviour, not a wrong answer.
fn ended_by_interrupt(code: Option<i32>) -> bool {
    matches!(code, Some(130) | Some(143))
}

/// An interrupt at any moment of a command's start (before, while and after bash forks the
/// job and hands it the terminal) ends the job and leaves the session usable.
#[tokio::test]
async fn interrupt_at_any_moment_reports_sigint() {
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let s = start().await;
    for k in 0..24u32 {
        let t = f64::from(k % 12) * 0.005;
        let r = s
            .run("echo start; sleep 30", &cmd(t.max(0.001)))
            .await
            .unwrap();
        assert!(matches!(r.status, Status::Timeout { .. }), "{k}: {r:?}");
        let i = s.interrupt(&Interrupt::default()).await.unwrap();
        assert_eq!(i.status, Status::Completed, "{k}: {i:?}");
        assert!(ended_by_interrupt(i.exit_code), "{k}: {i:?}");
        let r = s.run("echo next", &cmd(10.0)).await.unwrap();
        assert_eq!((r.output.as_str(), r.exit_code), ("next\n", Some(0)), "{k}");
    }
    s.close().await;
}

/// A job that takes the terminal behind the shell's back — what bash's child does when a
/// SIGINT made bash give up on it between its fork and its wait — does not end the session:
/// bash's next read fails (a background read), the shell takes the terminal back, the thief
/// gets the Ctrl-C it was meant to get, and commands run again.
#[tokio::test]
async fn a_stolen_terminal_is_taken_back() {
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let s = start().await;
    // The session's PROMPT_COMMAND stays in the session: programs never see it.
    let r = s
        .run("printenv PROMPT_COMMAND; echo end", &cmd(10.0))
        .await
        .unwrap();
    assert_eq!(r.output, "end\n");
    let thief = "python3 -c 'import os, signal, time\n\
                 signal.signal(signal.SIGTTOU, signal.SIG_IGN)\n\
                 os.tcsetpgrp(0, os.getpgrp())\n\
                 time.sleep(60)' & echo $!";
    let r = s.run(thief, &cmd(10.0)).await.unwrap();
    let pid: i32 = r.output.trim().parse().expect(&r.output);
    eventually("the thief never took the terminal", 10, || {
        !s.foreground_is_shell()
    })
    .await;
    // Whether bash was already waiting in `read` when the theft happened (then this line is
    // read, and the next read fails) or not, two commands later the shell holds the terminal.
    for word in ["one", "two", "three"] {
        let r = s.run(&format!("echo {word}"), &cmd(10.0)).await.unwrap();
        assert_eq!(r.status, Status::Completed, "{r:?}");
        assert!(r.output.ends_with(&format!("{word}\n")), "{r:?}");
    }
    assert!(s.foreground_is_shell());
    eventually("the thief was not interrupted", 10, || gone(pid)).await;
    s.close().await;
}

/// A marker whose printf a late SIGINT cut short is followed by the next line's marker: it is
/// skipped (never read as an exit code such as -1 or a digit of `130`).
#[tokio::test]
async fn cut_short_markers_are_skipped() {
    let _shutdown = crate::core::runtime::TEST_SHUTDOWN_LOCK.read().await;
    let s = start().await;
    let mut st = s.state.lock().await;
    let m = |n: u64| String::from_utf8(s.marker(n)).unwrap();
    for (raw, want5, want6) in [
        (format!("{}13{}130\x1e", m(5), m(6)), None, Some(130)),
        (format!("{}{}0\x1e", m(5), m(6)), None, Some(0)),
        (format!("{}x1\x1e{}2\x1e", m(5), m(6)), None, Some(2)),
        (format!("out{}7\x1e{}0\x1e", m(5), m(6)), Some(7), Some(0)),
    ] {
        st.buf = raw.clone().into_bytes();
        for (n, want) in [(5, want5), (6, want6)] {
            st.scan = 0;
            let got = ShellSession::find_marker(&mut st, &s.marker(n)).map(|h| h.2);
            assert_eq!(got, want, "marker {n} in {raw:?}");
        }
    }
    st.buf.clear();
    st.scan = 0;
    drop(st);
    s.close().await;
}
