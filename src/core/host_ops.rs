//! Host operations beyond tool calls: run a module's function or a script. They need Python,
//! so the Python boundary implements this trait and transports (gRPC's `RunFunction` /
//! `RunScript`, the CLI) receive it; the core only defines it.

use super::error::Result;
use super::tool::BoxFuture;

pub trait HostOps: Send + Sync + 'static {
    /// Call `module.function(*args)` where `args_json` is a JSON array (or object of keyword
    /// arguments); coroutines are awaited; the result comes back as JSON text.
    fn run_function(
        &self,
        module: String,
        function: String,
        args_json: String,
    ) -> BoxFuture<Result<String>>;
    /// Import the (allowlisted) module `script` and return `str(script.main(*args))`.
    fn run_script(&self, script: String, args: Vec<String>) -> BoxFuture<Result<String>>;
}
