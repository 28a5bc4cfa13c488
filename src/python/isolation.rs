//! Python access to the isolation worker pool: configuration and stats.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::errors::to_pyerr;
use crate::worker::{global, PoolConfig};

fn secs(name: &str, v: Option<f64>) -> PyResult<Option<Duration>> {
    match v {
        None => Ok(None),
        Some(t) if t.is_finite() && t > 0.0 => Ok(Some(Duration::from_secs_f64(t))),
        Some(t) => Err(PyValueError::new_err(format!(
            "{name} must be a positive number of seconds, got {t}"
        ))),
    }
}

/// Configure the pool of worker processes that run isolated tools (the package's
/// `configure_isolation` fills in defaults). Idle workers with the old settings are retired.
#[pyfunction]
#[pyo3(signature = (*, python, args, env = Vec::new(), cwd = None, size = None, min_workers = 1,
                    max_calls = None, max_rss_mb = None, recycle_rss_mb = None, idle_timeout = Some(300.0),
                    max_async_per_worker = 64, start_timeout = 60.0, cancel_grace = 1.0))]
#[allow(clippy::too_many_arguments)]
pub fn _configure_isolation(
    py: Python<'_>,
    python: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    size: Option<usize>,
    min_workers: usize,
    max_calls: Option<u64>,
    max_rss_mb: Option<u64>,
    recycle_rss_mb: Option<u64>,
    idle_timeout: Option<f64>,
    max_async_per_worker: usize,
    start_timeout: f64,
    cancel_grace: f64,
) -> PyResult<()> {
    if max_calls == Some(0) {
        return Err(PyValueError::new_err("max_calls must be at least 1"));
    }
    if max_rss_mb == Some(0) || recycle_rss_mb == Some(0) {
        return Err(PyValueError::new_err("memory limits must be at least 1 MB"));
    }
    let pool = global();
    let defaults = PoolConfig::default();
    let cfg = PoolConfig {
        program: Some(python),
        args,
        env,
        cwd,
        size: size.unwrap_or(defaults.size),
        min_workers,
        max_calls,
        max_rss_mb,
        recycle_rss_mb,
        idle_timeout: secs("idle_timeout", idle_timeout)?,
        max_async_per_worker,
        start_timeout: secs("start_timeout", Some(start_timeout))?
            .unwrap_or(defaults.start_timeout),
        cancel_grace: secs("cancel_grace", Some(cancel_grace))?.unwrap_or(defaults.cancel_grace),
        preload: pool.config().preload.clone(),
    };
    pool.configure(cfg).map_err(|e| to_pyerr(py, e))
}

/// The isolation pool now: `workers` (pid, calls, in_flight, exclusive, retiring, rss_kb),
/// `starting`, and counters `started`, `crashed`, `recycled`, `calls`.
#[pyfunction]
pub fn isolation_stats(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let s = py.detach(|| global().stats());
    Ok(pythonize::pythonize(py, &s)?.unbind())
}

/// Whether the isolation pool has been configured (its interpreter set).
#[pyfunction]
pub fn _isolation_configured() -> bool {
    global().config().program.is_some()
}
