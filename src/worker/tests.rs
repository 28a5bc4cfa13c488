//! Pool tests against the real worker (`python/agent_runtime/_worker.py`) run by `python3`,
//! with tool modules written to a temporary directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{IsolatedTool, Pool, PoolConfig, Target};
use crate::core::{runtime, CallContext, Error, Payload, Registry, ToolSpec};

const TOOLS: &str = r#"
import asyncio, os, time

def echo(**kw):
    return kw

def fail(message):
    raise KeyError(message)

def die(code):
    os._exit(code)

def segv():
    import signal
    os.kill(os.getpid(), signal.SIGSEGV)

def spin():
    while True:
        pass

def pid():
    return os.getpid()

def fork_exit():
    # The child keeps the reply pipe (libc fork: no at-fork hooks) and outlives the worker.
    import ctypes
    if ctypes.PyDLL(None).fork() == 0:
        time.sleep(60)
        os._exit(0)
    os._exit(5)

def nest(depth):
    v = []
    for _ in range(depth):
        v = [v]
    return v

def hog(mb):
    keep = []
    while True:
        keep.append(b"x" * (mb << 20))
        time.sleep(0.005)

def progress(ctx):
    for i in range(3):
        ctx.progress(i + 1, 3, "step")
    return "done"

async def nap(seconds):
    await asyncio.sleep(seconds)
    return seconds
"#;

/// The pool, its registry, and the directory of the tools module (removed when dropped).
fn setup(name: &str, tweak: impl FnOnce(&mut PoolConfig)) -> (Pool, Registry, tempfile::TempDir) {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("ar-worker-test-{name}-"))
        .tempdir()
        .unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("wtools.py"), TOOLS).unwrap();
    let worker = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/agent_runtime/_worker.py");
    let program =
        std::env::var_os("PYO3_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    let mut cfg = PoolConfig {
        program: Some(program),
        args: vec![worker.display().to_string()],
        env: vec![("PYTHONPATH".into(), dir.display().to_string())],
        size: 2,
        min_workers: 0,
        ..PoolConfig::default()
    };
    tweak(&mut cfg);
    let pool = Pool::new(cfg);
    let reg = Registry::new();
    let tools: &[(&str, bool, Option<&str>)] = &[
        ("echo", false, None),
        ("fail", false, None),
        ("die", false, None),
        ("segv", false, None),
        ("spin", false, None),
        ("pid", false, None),
        ("fork_exit", false, None),
        ("nest", false, None),
        ("hog", false, None),
        ("progress", false, Some("ctx")),
        ("nap", true, None),
    ];
    for (t, is_async, ctx) in tools {
        let target = Target {
            module: "wtools".into(),
            qualname: t.to_string(),
            is_async: *is_async,
            context_param: ctx.map(str::to_string),
        };
        reg.register(IsolatedTool::new(ToolSpec::new(*t), target, pool.clone()))
            .unwrap();
    }
    (pool, reg, tmp)
}

fn call(reg: &Registry, name: &str, args: Value) -> crate::core::Result<Value> {
    runtime::block_on(reg.call_json(name, args))
}

fn call_with(
    reg: &Registry,
    name: &str,
    args: Value,
    ctx: CallContext,
) -> crate::core::Result<Value> {
    runtime::block_on(reg.call_with(name, Payload::Json(args), ctx)).and_then(|p| p.into_json())
}

/// Children of this process that are zombies (state Z).
fn zombies() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[0] == "Z" && f[1] == me {
            out.push(e.file_name().to_string_lossy().parse().unwrap_or(0));
        }
    }
    out
}

/// Children of this test process still unreaped after a grace period. Tests run in parallel and
/// other tests' children (shells, workers) can be zombies for the instant between their exit and
/// their reaping, so one look is not enough; a zombie that outlives the grace period is a leak.
fn lasting_zombies() -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let z = zombies();
        if z.is_empty() || Instant::now() >= deadline {
            return z;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

// A value nested past serde_json's 127 levels used to kill the worker as an "undecodable reply
// frame", and one past Python's recursion limit killed it in the encoder; both fail only their
// own call now, with a ConversionError.
#[test]
fn a_reply_too_deep_to_decode_fails_its_call_not_the_worker() {
    let (pool, reg, _dir) = setup("deep", |cfg| cfg.size = 1);
    let pid = call(&reg, "pid", json!({})).unwrap();
    assert_eq!(
        call(&reg, "nest", json!({"depth": 3})).unwrap(),
        json!([[[[]]]])
    );
    for depth in [200, 1000] {
        match call(&reg, "nest", json!({ "depth": depth })).unwrap_err() {
            Error::Conversion { path, message } => {
                assert_eq!(path, "result");
                assert!(message.contains("nested too deeply"), "{message}");
            }
            e => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(call(&reg, "pid", json!({})).unwrap(), pid);
    assert_eq!(pool.stats().crashed, 0);
    pool.shutdown(Duration::from_secs(5));
}

// The worker's end is its process exiting, not its pipes closing: a forked child holding the
// reply pipe used to turn this into a timeout.
#[test]
fn a_worker_that_forks_and_exits_fails_its_call_at_once() {
    let (pool, reg, _dir) = setup("forkexit", |cfg| cfg.size = 1);
    let ctx = CallContext::new().with_timeout(Some(Duration::from_secs(120)));
    // WorkerCrashed, not the timeout a child holding the reply pipe used to cause.
    match call_with(&reg, "fork_exit", json!({}), ctx).unwrap_err() {
        Error::WorkerCrashed { exit_code, .. } => assert_eq!(exit_code, Some(5)),
        e => panic!("unexpected {e:?}"),
    }
    assert!(call(&reg, "pid", json!({})).is_ok());
    pool.shutdown(Duration::from_secs(5));
}

#[test]
fn calls_errors_progress_and_crashes() {
    let (pool, reg, _dir) = setup("basic", |_| {});
    assert_eq!(
        call(&reg, "echo", json!({"a": [1, "x"]})).unwrap(),
        json!({"a": [1, "x"]})
    );
    match call(&reg, "fail", json!({"message": "boom"})).unwrap_err() {
        Error::Python {
            type_name,
            message,
            traceback,
            ..
        } => {
            assert_eq!(type_name, "KeyError");
            assert_eq!(message, "'boom'");
            assert!(traceback.unwrap().contains("raise KeyError(message)"));
        }
        e => panic!("unexpected {e:?}"),
    }
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let ctx = CallContext::new().with_progress(Some(Arc::new(move |p: &crate::core::Progress| {
        s2.lock().push((p.done, p.total));
    })));
    assert_eq!(
        call_with(&reg, "progress", json!({}), ctx).unwrap(),
        json!("done")
    );
    assert_eq!(
        *seen.lock(),
        vec![(1.0, Some(3.0)), (2.0, Some(3.0)), (3.0, Some(3.0))]
    );

    match call(&reg, "die", json!({"code": 3})).unwrap_err() {
        Error::WorkerCrashed {
            tool,
            exit_code,
            signal,
            detail,
            ..
        } => {
            assert_eq!(tool, "die");
            assert_eq!(exit_code, Some(3));
            assert_eq!(signal, None);
            assert_eq!(detail, "exited with code 3");
        }
        e => panic!("unexpected {e:?}"),
    }
    match call(&reg, "segv", json!({})).unwrap_err() {
        Error::WorkerCrashed {
            signal,
            detail,
            stderr_tail,
            ..
        } => {
            assert_eq!(signal, Some(libc::SIGSEGV));
            assert_eq!(detail, "killed by signal 11 (SIGSEGV)");
            assert!(stderr_tail.contains("Segmentation fault"), "{stderr_tail}");
        }
        e => panic!("unexpected {e:?}"),
    }
    // Still serving.
    assert_eq!(
        call(&reg, "echo", json!({"b": 1})).unwrap(),
        json!({"b": 1})
    );
    assert!(pool.stats().crashed >= 2);
    pool.shutdown(Duration::from_secs(5));
    let z = lasting_zombies();
    assert!(z.is_empty(), "unreaped children: {z:?}");
}

#[test]
fn timeout_kills_and_replaces_the_worker_memory_limit_and_recycling() {
    let (pool, reg, _dir) = setup("faults", |c| {
        c.max_calls = Some(3);
        c.max_rss_mb = Some(150);
    });
    let before = call(&reg, "pid", json!({})).unwrap();
    let ctx = CallContext::new().with_timeout(Some(Duration::from_millis(300)));
    let e = call_with(&reg, "spin", json!({}), ctx).unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    let old = before.as_u64().unwrap() as u32;
    // The spinning worker (the only idle one, so the one that ran `pid`) is killed and
    // reaped; the pool serves from a new one.
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(old) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive(old), "timed-out worker {old} still alive");
    let after = call(&reg, "pid", json!({})).unwrap();
    assert_ne!(after, before);
    match call(&reg, "hog", json!({"mb": 32})).unwrap_err() {
        Error::WorkerCrashed { detail, .. } => {
            assert!(
                detail.starts_with("exceeded the memory limit: RSS"),
                "{detail}"
            );
            assert!(detail.ends_with("max_rss_mb=150"), "{detail}");
        }
        e => panic!("unexpected {e:?}"),
    }
    // max_calls=3: the same worker serves at most three calls.
    let pids: Vec<Value> = (0..7)
        .map(|_| call(&reg, "pid", json!({})).unwrap())
        .collect();
    for w in pids.windows(4) {
        assert!(!(w[0] == w[1] && w[1] == w[2] && w[2] == w[3]), "{pids:?}");
    }
    assert!(pool.stats().recycled >= 1);
    let live: Vec<u32> = pool.stats().workers.iter().map(|w| w.pid).collect();
    pool.shutdown(Duration::from_secs(5));
    for p in live {
        assert!(!alive(p), "worker {p} survived shutdown");
    }
    let z = lasting_zombies();
    assert!(z.is_empty(), "unreaped children: {z:?}");
}

#[test]
fn async_calls_share_a_worker_and_cancel_without_killing_it() {
    let (pool, reg, _dir) = setup("async", |c| c.size = 1);
    let r = runtime::block_on(async {
        let futs =
            (0..20).map(|i| reg.call_json("nap", json!({"seconds": 0.05 + i as f64 / 1000.0})));
        futures::future::join_all(futs).await
    });
    assert!(r.iter().all(|x| x.is_ok()), "{r:?}");
    assert_eq!(pool.stats().workers.len(), 1);
    let pid = pool.stats().workers[0].pid;
    let ctx = CallContext::new().with_timeout(Some(Duration::from_millis(100)));
    let e = call_with(&reg, "nap", json!({"seconds": 30}), ctx).unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    // Cancelled with a frame: the same worker keeps serving.
    assert_eq!(
        call(&reg, "nap", json!({"seconds": 0.01})).unwrap(),
        json!(0.01)
    );
    assert_eq!(pool.stats().workers[0].pid, pid);
    pool.shutdown(Duration::from_secs(5));
    assert!(!alive(pid));
}

/// A registry with one isolated tool `t` on a pool running `program args`.
fn bare(program: PathBuf, args: Vec<String>) -> (Pool, Registry) {
    let pool = Pool::new(PoolConfig {
        program: Some(program),
        args,
        min_workers: 0,
        ..PoolConfig::default()
    });
    let reg = Registry::new();
    let t = Target {
        module: "m".into(),
        qualname: "f".into(),
        is_async: false,
        context_param: None,
    };
    reg.register(IsolatedTool::new(ToolSpec::new("t"), t, pool.clone()))
        .unwrap();
    (pool, reg)
}

#[test]
fn a_missing_interpreter_is_a_clear_error() {
    let (_pool, reg) = bare("/nonexistent/python".into(), Vec::new());
    let e = call(&reg, "t", json!({})).unwrap_err().to_string();
    assert!(
        e.contains("cannot start isolation worker '/nonexistent/python'"),
        "{e}"
    );
}

#[test]
fn a_worker_dying_at_start_is_reported_with_its_stderr() {
    let program =
        std::env::var_os("PYO3_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    let (pool, reg) = bare(
        program,
        vec![
            "-c".into(),
            "import sys; sys.stderr.write('boom at start\\n'); sys.exit(5)".into(),
        ],
    );
    match call(&reg, "t", json!({})).unwrap_err() {
        Error::WorkerCrashed {
            tool,
            detail,
            exit_code,
            stderr_tail,
            ..
        } => {
            assert_eq!(tool, "t");
            assert_eq!(detail, "the worker failed to start: exited with code 5");
            assert_eq!(exit_code, Some(5));
            assert_eq!(stderr_tail, "boom at start");
        }
        e => panic!("unexpected {e:?}"),
    }
    pool.shutdown(Duration::from_secs(5));
}
