//! Pool settings, what runs in a worker, and what `stats()` reports.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// Pool settings. Changes apply to workers started afterwards; running workers are retired
/// once idle.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    /// The worker's program (the Python interpreter). Required.
    pub program: Option<PathBuf>,
    /// Arguments that make `program` run the worker main (`-m agent_runtime._worker`).
    pub args: Vec<String>,
    /// Extra environment variables (on top of the host's environment).
    pub env: Vec<(String, String)>,
    /// Working directory of workers (default: the host's).
    pub cwd: Option<PathBuf>,
    /// Maximum number of workers.
    pub size: usize,
    /// Workers kept alive (and started ahead of demand when a tool is registered).
    pub min_workers: usize,
    /// Retire a worker after this many calls.
    pub max_calls: Option<u64>,
    /// Hard memory limit: a worker whose RSS exceeds this during a call is killed and the call
    /// fails with `WorkerCrashed`.
    pub max_rss_mb: Option<u64>,
    /// Soft limit: a worker over this RSS after a call is retired (recycled).
    pub recycle_rss_mb: Option<u64>,
    /// Retire workers idle this long (down to `min_workers`).
    pub idle_timeout: Option<Duration>,
    /// Async calls in flight on one worker.
    pub max_async_per_worker: usize,
    /// How long a new worker may take to import its modules and report ready.
    pub start_timeout: Duration,
    /// How long a cancelled async call may take to stop before its worker is killed.
    pub cancel_grace: Duration,
    /// Modules every new worker imports before reporting ready (warm start).
    pub preload: Vec<String>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            program: None,
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            size: std::thread::available_parallelism().map_or(2, |n| n.get()),
            min_workers: 1,
            max_calls: None,
            max_rss_mb: None,
            recycle_rss_mb: None,
            idle_timeout: Some(Duration::from_secs(300)),
            max_async_per_worker: 64,
            start_timeout: Duration::from_secs(60),
            cancel_grace: Duration::from_secs(1),
            preload: Vec::new(),
        }
    }
}

impl PoolConfig {
    /// Refuse settings no worker could start with, naming the setting (a NUL byte cannot
    /// reach `execve`; `=` in a variable name would set another variable).
    pub fn validate(&self) -> std::result::Result<(), String> {
        let bad = Err;
        if self.size == 0 {
            return bad("isolation pool size must be at least 1".into());
        }
        if self.max_async_per_worker == 0 {
            return bad("max_async_per_worker must be at least 1".into());
        }
        if self.max_calls == Some(0) {
            return bad("max_calls must be at least 1".into());
        }
        if self.max_rss_mb == Some(0) || self.recycle_rss_mb == Some(0) {
            return bad("memory limits must be at least 1 MB".into());
        }
        let nul = |s: &[u8]| s.contains(&0);
        if let Some(p) = &self.program {
            if nul(p.as_os_str().as_encoded_bytes()) {
                return bad(format!("the worker program {p:?} contains a NUL byte"));
            }
        }
        for a in &self.args {
            if nul(a.as_bytes()) {
                return bad(format!("worker argument {a:?} contains a NUL byte"));
            }
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || nul(k.as_bytes()) {
                return bad(format!(
                    "environment variable name {k:?} is invalid (empty, or contains '=' or NUL)"
                ));
            }
            if nul(v.as_bytes()) {
                return bad(format!(
                    "environment variable {k}'s value contains a NUL byte"
                ));
            }
        }
        if let Some(d) = &self.cwd {
            if nul(d.as_os_str().as_encoded_bytes()) {
                return bad(format!("worker cwd {d:?} contains a NUL byte"));
            }
        }
        Ok(())
    }
}

/// What runs in the worker: `module.qualname`.
#[derive(Debug, Clone)]
pub struct Target {
    pub module: String,
    pub qualname: String,
    pub is_async: bool,
    pub context_param: Option<String>,
}

/// One worker as `stats()` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerStats {
    pub pid: u32,
    pub calls: u64,
    pub in_flight: usize,
    pub exclusive: bool,
    pub retiring: bool,
    pub rss_kb: Option<u64>,
}

/// Pool counters and workers.
#[derive(Debug, Clone, Serialize)]
pub struct PoolStats {
    pub workers: Vec<WorkerStats>,
    pub starting: usize,
    pub started: u64,
    pub crashed: u64,
    pub recycled: u64,
    pub calls: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_no_worker_could_start_with_are_refused_by_name() {
        let ok = PoolConfig::default();
        assert!(ok.validate().is_ok());
        let cases: Vec<(PoolConfig, &str)> = vec![
            (
                PoolConfig {
                    size: 0,
                    ..ok.clone()
                },
                "size",
            ),
            (
                PoolConfig {
                    max_async_per_worker: 0,
                    ..ok.clone()
                },
                "max_async_per_worker",
            ),
            (
                PoolConfig {
                    max_calls: Some(0),
                    ..ok.clone()
                },
                "max_calls",
            ),
            (
                PoolConfig {
                    recycle_rss_mb: Some(0),
                    ..ok.clone()
                },
                "memory limits",
            ),
            (
                PoolConfig {
                    env: vec![("A=B".into(), "x".into())],
                    ..ok.clone()
                },
                "'='",
            ),
            (
                PoolConfig {
                    env: vec![("A".into(), "x\0y".into())],
                    ..ok.clone()
                },
                "NUL",
            ),
            (
                PoolConfig {
                    args: vec!["-\0m".into()],
                    ..ok.clone()
                },
                "NUL",
            ),
            (
                PoolConfig {
                    cwd: Some("/a\0b".into()),
                    ..ok.clone()
                },
                "NUL",
            ),
        ];
        for (cfg, what) in cases {
            let e = cfg.validate().unwrap_err();
            assert!(e.contains(what), "{e}");
        }
    }
}
