//! Python access to the isolation worker pool: configuration and stats.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::errors::to_pyerr;
use crate::core::duration::positive_secs;
use crate::worker::{global, PoolConfig};

/// User seconds (NaN, negative and zero refused; huge clamped to "forever").
fn secs(name: &str, v: f64) -> PyResult<Duration> {
    positive_secs(name, v).map_err(PyValueError::new_err)
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
        idle_timeout: idle_timeout.map(|t| secs("idle_timeout", t)).transpose()?,
        max_async_per_worker,
        start_timeout: secs("start_timeout", start_timeout)?,
        cancel_grace: secs("cancel_grace", cancel_grace)?,
        preload: pool.config().preload.clone(),
    };
    // Bad settings are the caller's mistake: ValueError naming the setting.
    cfg.validate().map_err(PyValueError::new_err)?;
    pool.configure(cfg).map_err(|e| to_pyerr(py, e))
}

/// The isolation pool now: `workers` (pid, calls, in_flight, exclusive, retiring, rss_kb),
/// `starting`, and counters `started`, `crashed`, `recycled`, `calls`.
#[pyfunction]
pub fn isolation_stats(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let held = super::exit_gate::hold(py);
    let s = super::exit_gate::detach(&held, py, || global().stats());
    Ok(pythonize::pythonize(py, &s)?.unbind())
}

/// Whether the isolation pool has been configured (its interpreter set).
#[pyfunction]
pub fn _isolation_configured() -> bool {
    global().config().program.is_some()
}
