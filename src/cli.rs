//! `agent-runtime`: the command line (arguments parsed here, run inside the Python process the
//! console script started, so Python tool modules can be imported).
//!
//! Exit codes: 0 success; 1 the tool or function failed (error, exception, timeout); 2 usage
//! error (bad flags, JSON that does not parse, arguments the schema rejects); 3 unknown tool;
//! 4 refused by the allowlist.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand};
use pyo3::prelude::*;
use serde_json::Value;

use crate::core::{runtime, CallContext, Error, Progress, Registry};
use crate::python::gil::with_gil;
use crate::python::host;

#[derive(Parser, Debug)]
#[command(
    name = "agent-runtime",
    version,
    about = "Call agent tools (Rust and Python) from the command line"
)]
struct Cli {
    /// Import a Python module whose import registers tools (repeatable)
    #[arg(long = "import", value_name = "MODULE", global = true)]
    imports: Vec<String>,
    /// Import a module with its tools isolated in worker processes (repeatable)
    #[arg(long = "isolate", value_name = "MODULE", global = true)]
    isolate: Vec<String>,
    /// Prepend a directory to Python's module search path (repeatable)
    #[arg(long = "path", value_name = "DIR", global = true)]
    paths: Vec<PathBuf>,
    /// Import the tool plugins installed packages declare (entry points `agent_runtime.tools`)
    #[arg(long, global = true)]
    discover: bool,
    /// Allow run-function/run-script on modules matching PATTERN (`pkg.mod`, `pkg.*`, `*`)
    #[arg(long = "allow-module", value_name = "PATTERN", global = true)]
    allow: Vec<String>,
    /// More logging (-v info, -vv debug), on stderr
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the registered tools
    List {
        /// Print the full specs as JSON
        #[arg(long)]
        json: bool,
    },
    /// Call a tool with JSON arguments and print its JSON result
    Call {
        /// Tool name
        name: String,
        /// Arguments as a JSON object
        #[arg(default_value = "{}")]
        args: String,
        /// Timeout in seconds (overrides the tool's default)
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// Import MODULE and print the JSON result of FUNCTION(*ARGS_JSON) (allowlisted modules only)
    RunFunction {
        module: String,
        function: String,
        /// A JSON array of positional arguments (or an object of keyword arguments)
        #[arg(default_value = "[]")]
        args_json: String,
    },
    /// Import SCRIPT and print str(SCRIPT.main(*ARGS)) (allowlisted modules only)
    RunScript {
        script: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Serve the registry until SIGINT/SIGTERM (then drain in-flight calls)
    #[cfg(feature = "grpc")]
    Serve {
        /// gRPC PythonService address
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:50051")]
        grpc: Option<String>,
        /// Allow listening on a non-loopback address (then a token is required)
        #[arg(long)]
        allow_remote: bool,
        /// Bearer token clients must send (`authorization: Bearer <token>`)
        #[arg(long, env = "AGENT_RUNTIME_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Largest gRPC message, bytes
        #[arg(long, default_value_t = 4 * 1024 * 1024)]
        max_message_size: usize,
    },
}

fn exit_code(e: &Error) -> i32 {
    match e {
        Error::NotFound { .. } => 3,
        Error::NotAllowed(_) => 4,
        Error::InvalidArguments { .. } | Error::Conversion { .. } => 2,
        _ => 1,
    }
}

fn report(e: &Error, verbose: bool) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {e}");
    if let Error::Python {
        traceback: Some(tb),
        ..
    } = e
    {
        if verbose {
            let _ = write!(err, "{tb}");
        } else {
            let _ = writeln!(err, "(run with -v for the traceback)");
        }
    }
}

fn setup_logging(verbose: u8) {
    if verbose == 0 {
        return;
    }
    let level = if verbose == 1 { "INFO" } else { "DEBUG" };
    with_gil(|py| {
        let _ = py.import("logging").and_then(|l| {
            let kw = pyo3::types::PyDict::new(py);
            kw.set_item("level", level)?;
            kw.set_item("format", "%(levelname)s %(name)s: %(message)s")?;
            l.call_method("basicConfig", (), Some(&kw))
        });
    });
}

/// Progress lines on stderr when it is a terminal.
fn progress_sink() -> Option<crate::core::ProgressSink> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    Some(Arc::new(|p: &Progress| {
        let total = p.total.map(|t| format!("/{t}")).unwrap_or_default();
        let msg = p.message.as_deref().unwrap_or("");
        let _ = write!(
            std::io::stderr().lock(),
            "\r\x1b[K[{}{}] {}",
            p.done,
            total,
            msg
        );
    }))
}

fn print_json(v: &Value) {
    let text = if std::io::stdout().is_terminal() {
        serde_json::to_string_pretty(v)
    } else {
        serde_json::to_string(v)
    };
    println!(
        "{}",
        text.unwrap_or_else(|e| format!("\"<unprintable: {e}>\""))
    );
}

#[cfg(feature = "grpc")]
fn serve(
    grpc: Option<String>,
    allow_remote: bool,
    token: Option<String>,
    max_message_size: usize,
) -> Result<(), Error> {
    let Some(addr) = grpc else {
        return Err(Error::InvalidArguments {
            tool: "serve".into(),
            path: "--grpc".into(),
            message: "nothing to serve: pass --grpc [ADDR]".into(),
        });
    };
    let addr: std::net::SocketAddr = addr.parse().map_err(|e| Error::InvalidArguments {
        tool: "serve".into(),
        path: "--grpc".into(),
        message: format!("{addr:?} is not an address like 127.0.0.1:50051: {e}"),
    })?;
    let opts = crate::grpc::ServeOptions {
        addr,
        allow_remote,
        token,
        max_message_size,
    };
    let ops: Arc<dyn crate::grpc::HostOps> = Arc::new(host::PyHostOps);
    runtime::block_on(crate::grpc::serve(
        Registry::global().clone(),
        Some(ops),
        opts,
        |bound| {
            eprintln!("agent-runtime: gRPC PythonService listening on {bound}");
        },
        crate::grpc::shutdown_signal(),
    ))
}

/// Run the CLI with `argv` (argv[0] is the program name); returns the exit code.
pub fn run(argv: Vec<String>) -> i32 {
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    setup_logging(cli.verbose);
    let verbose = cli.verbose > 0;
    let mut b = host::HostBuilder::default();
    for p in &cli.paths {
        b = b.python_path(p);
    }
    for m in &cli.imports {
        b = b.import(m);
    }
    for m in &cli.isolate {
        b = b.isolate(m);
    }
    for a in &cli.allow {
        b = b.allow_module(a);
    }
    if cli.discover {
        b = b.discover();
    }
    let h = match b.build() {
        Ok(h) => h,
        Err(e) => {
            report(&e, verbose);
            return 1;
        }
    };
    for p in h.plugins() {
        if let Some(err) = &p.error {
            eprintln!(
                "warning: plugin {} ({}) failed to load: {}",
                p.name,
                p.value,
                err.trim_end()
            );
        }
    }
    let result = match cli.command {
        Command::List { json } => {
            let specs = Registry::global().specs();
            if json {
                print_json(&serde_json::to_value(&specs).unwrap_or(Value::Null));
            } else {
                let width = specs.iter().map(|s| s.name.len()).max().unwrap_or(4).max(4);
                println!("{:<width$}  DESCRIPTION", "NAME");
                for s in &specs {
                    let first = s.description.lines().next().unwrap_or("");
                    println!("{:<width$}  {}", s.name, first);
                }
            }
            Ok(())
        }
        Command::Call {
            name,
            args,
            timeout,
        } => {
            let timeout = match timeout {
                Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
                Some(t) => {
                    eprintln!("error: --timeout must be a positive number of seconds, got {t}");
                    return 2;
                }
                None => None,
            };
            let sink = progress_sink();
            let shows_progress = sink.is_some();
            let ctx = CallContext::new().with_timeout(timeout).with_progress(sink);
            let r = runtime::block_on(host::run_tool(Registry::global(), &name, &args, ctx));
            if shows_progress {
                eprint!("\r\x1b[K");
            }
            r.map(|out| println!("{out}"))
        }
        Command::RunFunction {
            module,
            function,
            args_json,
        } => runtime::block_on(host::run_function(&module, &function, &args_json))
            .map(|out| println!("{out}")),
        Command::RunScript { script, args } => {
            runtime::block_on(host::run_script(&script, &args)).map(|out| println!("{out}"))
        }
        #[cfg(feature = "grpc")]
        Command::Serve {
            grpc,
            allow_remote,
            token,
            max_message_size,
        } => serve(grpc, allow_remote, token, max_message_size),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            report(&e, verbose);
            exit_code(&e)
        }
    }
}
