//! Rust `log` records → Python `logging` (pyo3-log), without taking the GIL where the runtime
//! must not. pyo3-log attaches on whatever thread logs; records from tokio threads (an MCP
//! upstream's log notification, a transport warning) are instead formatted there and handed
//! to the Python job thread, in order. A thread that may attach goes through the same exit
//! gate as any other attach, and nothing is logged to Python once the interpreter is exiting.

use std::sync::Arc;

use log::{Level, LevelFilter, Log, Metadata, Record};
use pyo3::prelude::*;

use super::{gil, pythread};

struct Bridge(Arc<pyo3_log::Logger>);

/// A record that outlives the thread that logged it.
struct Owned {
    level: Level,
    target: String,
    message: String,
    module_path: Option<String>,
    file: Option<String>,
    line: Option<u32>,
}

impl Owned {
    fn of(r: &Record<'_>) -> Self {
        Owned {
            level: r.level(),
            target: r.target().to_owned(),
            message: r.args().to_string(),
            module_path: r.module_path().map(str::to_owned),
            file: r.file().map(str::to_owned),
            line: r.line(),
        }
    }

    fn log_to(&self, logger: &dyn Log) {
        logger.log(
            &Record::builder()
                .level(self.level)
                .target(&self.target)
                .args(format_args!("{}", self.message))
                .module_path(self.module_path.as_deref())
                .file(self.file.as_deref())
                .line(self.line)
                .build(),
        );
    }
}

impl Log for Bridge {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        self.0.enabled(m) // the logger's level cache: no GIL
    }

    fn log(&self, r: &Record<'_>) {
        if !self.0.enabled(r.metadata()) || gil::exiting_elsewhere() {
            return;
        }
        // Right here when this thread may attach (through the exit gate), else on the job thread.
        let (owned, logger) = (Owned::of(r), self.0.clone());
        pythread::run_or_submit(move |_py: Python<'_>| owned.log_to(&*logger));
    }

    fn flush(&self) {}
}

/// Install the bridge as the process's `log` logger (once; a second call, e.g. when embedding,
/// leaves the first in place).
pub fn install(py: Python<'_>) {
    let Ok(logger) = pyo3_log::Logger::new(py, pyo3_log::Caching::LoggersAndLevels) else {
        return; // no `logging` module: nothing to forward to
    };
    if log::set_boxed_logger(Box::new(Bridge(Arc::new(logger)))).is_ok() {
        log::set_max_level(LevelFilter::Debug);
    }
}
