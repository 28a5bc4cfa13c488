//! `agent_runtime._native.mount_mcp` / `McpMount`: another MCP server's tools in a registry.

use std::path::PathBuf;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use super::errors::IntoPyResult;
use super::registry::PyRegistry;
use crate::core::{runtime, Error, Registry, Result};
use crate::mcp::client::{mount, Mount, Transport};

/// A mounted MCP server (see `agent_runtime.mount_mcp`).
#[pyclass(name = "McpMount", module = "agent_runtime._native", frozen)]
pub struct PyMcpMount {
    inner: Mount,
}

/// Run `f` on the crate runtime and wait for it without holding the GIL.
fn run<T: Send + 'static>(
    py: Python<'_>,
    f: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> PyResult<T> {
    let held = super::exit_gate::hold(py);
    let h = runtime::handle().spawn(f);
    super::exit_gate::detach(&held, py, || runtime::block_on(h))
        .map_err(|e| PyRuntimeError::new_err(format!("MCP mount task failed: {e}")))?
        .py(py)
}

#[pyfunction]
#[pyo3(signature = (prefix, *, command = None, args = Vec::new(), env = None, cwd = None, url = None, headers = None, registry = None))]
#[allow(clippy::too_many_arguments)]
pub fn mount_mcp(
    py: Python<'_>,
    prefix: String,
    command: Option<String>,
    args: Vec<String>,
    env: Option<Vec<(String, String)>>,
    cwd: Option<PathBuf>,
    url: Option<String>,
    headers: Option<Vec<(String, String)>>,
    registry: Option<PyRef<'_, PyRegistry>>,
) -> PyResult<PyMcpMount> {
    let transport = match (command, url) {
        (Some(command), None) => {
            if headers.is_some() {
                return Err(PyValueError::new_err(
                    "mount_mcp: headers= only applies to url=",
                ));
            }
            Transport::Stdio {
                command,
                args,
                env: env.unwrap_or_default(),
                cwd,
            }
        }
        (None, Some(url)) => {
            if !args.is_empty() || env.is_some() || cwd.is_some() {
                return Err(PyValueError::new_err(
                    "mount_mcp: args=, env= and cwd= only apply to command=",
                ));
            }
            Transport::Http {
                url,
                headers: headers.unwrap_or_default(),
            }
        }
        _ => return Err(PyValueError::new_err(
            "mount_mcp: give exactly one of command= (a stdio server) or url= (streamable HTTP)",
        )),
    };
    let registry = registry
        .map(|r| r.inner.clone())
        .unwrap_or_else(|| Registry::global().clone());
    let inner = run(
        py,
        async move { mount(&registry, &prefix, transport).await },
    )?;
    Ok(PyMcpMount { inner })
}

#[pymethods]
impl PyMcpMount {
    /// Registered names of the server's tools, sorted.
    fn tools(&self) -> Vec<String> {
        self.inner.tools()
    }

    #[getter]
    fn server(&self) -> String {
        self.inner.server().to_string()
    }

    #[getter]
    fn prefix(&self) -> String {
        self.inner.prefix().to_string()
    }

    #[getter]
    fn connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Reconnect now (a stdio server is restarted) and wait until connected.
    fn reconnect(&self, py: Python<'_>) -> PyResult<()> {
        let m = self.inner.clone();
        run(py, async move { m.reconnect().await })
    }

    /// Unregister the tools and close the connection (stopping a stdio server).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let m = self.inner.clone();
        run(py, async move {
            m.close().await;
            Ok::<_, Error>(())
        })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _t: Option<Bound<'_, PyAny>>,
        _v: Option<Bound<'_, PyAny>>,
        _tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "<McpMount {:?} tools={} connected={}>",
            self.inner.server(),
            self.inner.tools().len(),
            self.inner.is_connected()
        )
    }
}
