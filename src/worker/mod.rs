//! Process isolation for crash-prone, hanging or untrusted tools: a pool of long-lived worker
//! processes (`python -m agent_runtime._worker`) that import a tool's module once and run its
//! calls, so a segfault, `os._exit`, runaway memory or an endless loop costs one worker — which
//! the pool kills (whole process group) and replaces — never the host. Pure Rust: it spawns
//! processes and speaks the framing in [`protocol`]; the Python side only supplies the
//! interpreter and the tool's module/qualname.

mod cancel;
pub mod config;
mod monitor;
pub mod pool;
mod process;
pub mod protocol;

use std::any::Any;
use std::sync::Arc;

pub use config::{PoolConfig, PoolStats, Target, WorkerStats};
pub use pool::{global, Pool};
pub use protocol::RemoteException;

use crate::core::{BoxFuture, CallContext, Payload, Result, Tool, ToolSpec};

/// A tool that runs `module.qualname` in a worker process of `pool`. Schema validation,
/// timeouts and cancellation happen in the host exactly as for an in-process tool; a timed
/// out or cancelled call's worker is interrupted (async) or killed and replaced (sync).
pub struct IsolatedTool {
    spec: ToolSpec,
    name: Arc<str>,
    target: Arc<Target>,
    pool: Pool,
}

impl IsolatedTool {
    pub fn new(spec: ToolSpec, target: Target, pool: Pool) -> Self {
        IsolatedTool {
            name: Arc::from(spec.name.as_str()),
            spec,
            target: Arc::new(target),
            pool,
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }
}

impl Tool for IsolatedTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, args: Payload, ctx: CallContext) -> BoxFuture<Result<Payload>> {
        let (pool, target, name) = (self.pool.clone(), self.target.clone(), self.name.clone());
        Box::pin(async move {
            let args = args.into_json()?;
            pool.call(name, &target, &args, &ctx)
                .await
                .map(Payload::Json)
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests;
