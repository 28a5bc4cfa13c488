//! Hooks for the benchmarks (`benches/bridge.py`): baselines (bare PyO3 calls,
//! pyo3-async-runtimes' `future_into_py`) and Rust-side call loops. Built only with the `bench`
//! cargo feature (`maturin develop --release --features bench`), so they and the
//! pyo3-async-runtimes dependency stay out of the shipped extension.

use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;

use super::{convert, errors, PyRegistry};
use crate::core::{runtime, Payload, Registry};

/// Add the hooks to the `_native` module.
pub fn add(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_bare_noop, m)?)?;
    m.add_function(wrap_pyfunction!(_bare_detach, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_rust_to_python, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_rust_await, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_future_into_py, m)?)?;
    Ok(())
}

/// Baseline for benchmarks: the cheapest possible PyO3 call.
#[pyfunction]
fn _bare_noop() {}

/// Baseline for benchmarks: a PyO3 call that releases and re-takes the GIL, the minimum any
/// call running Rust work without the GIL pays.
#[pyfunction]
#[allow(clippy::disallowed_methods)] // the bare cost, by definition
fn _bare_detach(py: Python<'_>) {
    py.detach(|| ());
}

/// Per-call nanoseconds of `n` Rust → Python calls of tool `name` made from a tokio worker
/// with `Registry.call_blocking` (batches of 100; one figure per batch).
#[pyfunction]
fn _bench_rust_to_python(
    py: Python<'_>,
    registry: &PyRegistry,
    name: String,
    n: usize,
    args: &Bound<'_, PyDict>,
) -> PyResult<Vec<f64>> {
    bench_on_tokio(py, registry, args, n, move |reg, json| {
        std::future::ready(reg.call_blocking(&name, json).map(|_| ()))
    })
}

/// Per-call nanoseconds of `n` sequential `Registry::call(...).await` from a tokio task (for
/// an async Python tool: Rust awaiting a coroutine on the runtime loop).
#[pyfunction]
fn _bench_rust_await(
    py: Python<'_>,
    registry: &PyRegistry,
    name: String,
    n: usize,
    args: &Bound<'_, PyDict>,
) -> PyResult<Vec<f64>> {
    bench_on_tokio(py, registry, args, n, move |reg, json| {
        let name = name.clone();
        async move { reg.call(&name, Payload::Json(json)).await.map(|_| ()) }
    })
}

/// Run `one` `n` times inside a tokio task, timing batches of 100 calls.
fn bench_on_tokio<F, Fut>(
    py: Python<'_>,
    registry: &PyRegistry,
    args: &Bound<'_, PyDict>,
    n: usize,
    one: F,
) -> PyResult<Vec<f64>>
where
    F: Fn(Registry, Value) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = crate::core::Result<()>> + Send,
{
    let reg = registry.inner.clone();
    let json = convert::py_to_json(args.as_any(), "args").map_err(|e| errors::to_pyerr(py, e))?;
    let h = runtime::handle().spawn(async move {
        let mut out = Vec::new();
        let mut left = n;
        while left > 0 {
            let k = left.min(100);
            let t = Instant::now();
            for _ in 0..k {
                one(reg.clone(), json.clone()).await?;
            }
            out.push(t.elapsed().as_nanos() as f64 / k as f64);
            left -= k;
        }
        Ok::<_, crate::core::Error>(out)
    });
    let held = super::exit_gate::hold(py);
    super::exit_gate::detach(&held, py, || runtime::block_on(h))
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?
        .map_err(|e| errors::to_pyerr(py, e))
}

/// pyo3-async-runtimes' standard path (`future_into_py`) on a ready future, for comparison
/// with `call_async` in benchmarks.
#[pyfunction]
fn _bench_future_into_py(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    pyo3_async_runtimes::tokio::future_into_py(py, async { Ok(()) })
}
