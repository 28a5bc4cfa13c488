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
    /// Register built-in host tools: GROUP[,GROUP...] of fs, edit, search, shell, diag, or
    /// `all` (every group but diag). Off by default: they read/write files and run commands.
    #[arg(
        long = "builtin",
        value_name = "GROUPS",
        value_delimiter = ',',
        global = true
    )]
    builtin: Vec<String>,
    /// Mount an MCP server's tools: PREFIX=COMMAND ARGS... (stdio, shell quoting) or PREFIX=URL
    /// (streamable HTTP); tools appear as PREFIX.tool, unchanged for an empty PREFIX (repeatable)
    #[cfg(feature = "mcp")]
    #[arg(long = "mcp-server", value_name = "PREFIX=COMMAND|URL", global = true)]
    mcp_servers: Vec<String>,
    /// Mount the MCP servers of a desktop-style config file ({"mcpServers": {...}}) (repeatable)
    #[cfg(feature = "mcp")]
    #[arg(long = "mcp-config", value_name = "FILE", global = true)]
    mcp_configs: Vec<PathBuf>,
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
        /// Timeout in seconds (overrides the tool's default); `inf` or anything above 100
        /// years means no limit
        #[arg(long, value_parser = timeout_secs, allow_hyphen_values = true)]
        timeout: Option<Duration>,
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
    /// Serve the registry until SIGINT/SIGTERM (then drain in-flight calls): gRPC, MCP over
    /// stdio, MCP over streamable HTTP and/or SWE-ReX's remote API, together in one process
    #[cfg(any(feature = "grpc", feature = "mcp", feature = "swerex"))]
    Serve(ServeArgs),
}

#[cfg(any(feature = "grpc", feature = "mcp", feature = "swerex"))]
#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// gRPC PythonService address
    #[cfg(feature = "grpc")]
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:50051")]
    grpc: Option<String>,
    /// MCP over stdin/stdout (stdout carries only the protocol; prints go to stderr)
    #[cfg(feature = "mcp")]
    #[arg(long)]
    mcp_stdio: bool,
    /// MCP streamable HTTP address (endpoint path: --mcp-path)
    #[cfg(feature = "mcp")]
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8000")]
    mcp_http: Option<String>,
    /// URL path of the MCP HTTP endpoint
    #[cfg(feature = "mcp")]
    #[arg(long, default_value = "/mcp")]
    mcp_path: String,
    /// MCP HTTP without sessions: every POST self-contained (JSON answer), so any replica
    /// behind a load balancer answers any request; listen streams and resumption are refused
    #[cfg(feature = "mcp")]
    #[arg(long, requires = "mcp_http")]
    mcp_stateless: bool,
    /// Extra `Host` header value the MCP HTTP server accepts (repeatable; loopback names always are)
    #[cfg(feature = "mcp")]
    #[arg(long = "mcp-allowed-host", value_name = "HOST[:PORT]")]
    mcp_allowed_hosts: Vec<String>,
    /// Extra `Origin` the MCP HTTP server accepts (repeatable; `scheme://host[:port]`,
    /// `scheme://host:*` or `null`; the bound port's loopback origins always are)
    #[cfg(feature = "mcp")]
    #[arg(long = "mcp-allowed-origin", value_name = "ORIGIN")]
    mcp_allowed_origins: Vec<String>,
    /// Results larger than this (JSON text, bytes) are truncated with a marker
    #[cfg(feature = "mcp")]
    #[arg(long, default_value_t = crate::mcp::DEFAULT_MAX_RESULT_BYTES, value_parser = positive_size, allow_hyphen_values = true)]
    mcp_max_result_bytes: usize,
    /// SWE-ReX remote API address (`swerex-remote`'s protocol, for SWE-ReX's RemoteRuntime);
    /// clients send the token as `X-API-Key`
    #[cfg(feature = "swerex")]
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = crate::swerex::DEFAULT_ADDR)]
    swerex: Option<String>,
    /// Largest SWE-ReX JSON request body (a write_file carries the whole file), bytes
    #[cfg(feature = "swerex")]
    #[arg(long, default_value_t = crate::swerex::DEFAULT_MAX_BODY, value_parser = positive_size, allow_hyphen_values = true)]
    swerex_max_body_bytes: usize,
    /// Largest file uploaded through SWE-ReX's /upload, bytes
    #[cfg(feature = "swerex")]
    #[arg(long, default_value_t = crate::swerex::DEFAULT_MAX_UPLOAD as usize, value_parser = positive_size, allow_hyphen_values = true)]
    swerex_max_upload_bytes: usize,
    /// Allow listening on a non-loopback address (then a token is required)
    #[arg(long)]
    allow_remote: bool,
    /// Bearer token clients must send (`authorization: Bearer <token>`)
    #[arg(long, env = "AGENT_RUNTIME_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Largest request message (gRPC message, MCP HTTP body or stdio line), bytes
    #[arg(long, default_value_t = 4 * 1024 * 1024, value_parser = positive_size, allow_hyphen_values = true)]
    max_message_size: usize,
    /// On SIGTERM/SIGINT, report not ready (`/readyz` 503, gRPC health NOT_SERVING) and keep
    /// serving this many seconds so load balancers route elsewhere; then stop accepting and
    /// let in-flight calls finish. A second signal ends the grace early.
    #[arg(long, value_name = "SECONDS", default_value = "0", value_parser = grace_secs, allow_hyphen_values = true)]
    drain_grace: Duration,
}

/// `--drain-grace`: a non-negative number of seconds.
#[cfg(any(feature = "grpc", feature = "mcp"))]
fn grace_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    crate::core::duration::from_secs("the drain grace", secs)
}

/// What `/readyz` checks: every plugin imported, the isolation pool's warm workers up.
#[cfg(any(feature = "grpc", feature = "mcp"))]
fn readiness(plugin_errors: Vec<String>) -> crate::serve::health::Readiness {
    let r = crate::serve::health::Readiness::new();
    r.add_check("plugins", move || {
        if plugin_errors.is_empty() {
            Ok(())
        } else {
            Err(format!("failed to load: {}", plugin_errors.join(", ")))
        }
    });
    let pool = crate::worker::global();
    if pool.config().program.is_some() {
        pool.warm();
    }
    r.add_check("isolation pool", || {
        let pool = crate::worker::global();
        let cfg = pool.config();
        let want = cfg.min_workers.min(cfg.size);
        if cfg.program.is_none() || want == 0 {
            return Ok(());
        }
        let up = pool.stats().workers.iter().filter(|w| !w.retiring).count();
        if up >= 1 {
            Ok(())
        } else {
            Err(format!("0 of {want} warm worker(s) up"))
        }
    });
    r
}

/// `--timeout`: a positive number of seconds (NaN, negative and zero are usage errors); `inf`
/// and values beyond [`crate::core::duration::FOREVER`] are clamped to it.
fn timeout_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    crate::core::duration::positive_secs("the timeout", secs)
}

/// Sizes in bytes: a positive integer (clap refuses negative, fractional and huge values).
#[cfg_attr(
    not(any(feature = "grpc", feature = "mcp", feature = "swerex")),
    allow(dead_code)
)]
fn positive_size(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1 byte".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{s:?} is not a size in bytes: {e}")),
    }
}

/// Print a line on stdout. A closed pipe (`agent-runtime list | head -1`) is not an error
/// worth a panic: the reader has what it wanted.
fn out(line: impl std::fmt::Display) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
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
    out(text.unwrap_or_else(|e| format!("\"<unprintable: {e}>\"")));
}

#[cfg(any(feature = "grpc", feature = "mcp", feature = "swerex"))]
fn parse_addr(flag: &str, addr: &str) -> Result<std::net::SocketAddr, Error> {
    addr.parse().map_err(|e| Error::InvalidArguments {
        tool: "serve".into(),
        path: flag.into(),
        message: format!("{addr:?} is not an address like 127.0.0.1:50051: {e}"),
    })
}

/// Run every requested server on the runtime until a signal arrives or one of them ends (an
/// MCP stdio client closing stdin ends the process); then stop them all.
#[cfg(any(feature = "grpc", feature = "mcp", feature = "swerex"))]
fn serve(a: ServeArgs, plugin_errors: Vec<String>) -> Result<(), Error> {
    use futures::future::BoxFuture;
    use futures::FutureExt;
    use tokio_util::sync::CancellationToken;

    let stop = CancellationToken::new();
    // The registry is loaded by now (imports done); the rest is checked per probe.
    let ready = readiness(plugin_errors);
    let mut servers: Vec<BoxFuture<'static, Result<(), Error>>> = Vec::new();
    #[cfg(feature = "grpc")]
    if let Some(addr) = &a.grpc {
        let opts = crate::grpc::ServeOptions {
            addr: parse_addr("--grpc", addr)?,
            allow_remote: a.allow_remote,
            token: a.token.clone(),
            max_message_size: a.max_message_size,
            readiness: ready.clone(),
        };
        crate::grpc::check_exposure(&opts)?;
        let ops: Arc<dyn crate::core::HostOps> = Arc::new(host::PyHostOps);
        servers.push(
            crate::grpc::serve(
                Registry::global().clone(),
                Some(ops),
                opts,
                |bound| eprintln!("agent-runtime: gRPC PythonService listening on {bound}"),
                stop.clone().cancelled_owned(),
            )
            .boxed(),
        );
    }
    #[cfg(feature = "mcp")]
    {
        let mcp_opts = crate::mcp::McpOptions {
            max_result_bytes: a.mcp_max_result_bytes,
            max_message_bytes: a.max_message_size,
            ..Default::default()
        };
        if let Some(addr) = &a.mcp_http {
            let http = crate::mcp::HttpOptions {
                addr: parse_addr("--mcp-http", addr)?,
                path: a.mcp_path.clone(),
                allow_remote: a.allow_remote,
                token: a.token.clone(),
                allowed_hosts: a.mcp_allowed_hosts.clone(),
                allowed_origins: a.mcp_allowed_origins.clone(),
                max_body_bytes: a.max_message_size,
                stateless: a.mcp_stateless,
                readiness: ready.clone(),
            };
            crate::serve::check_exposure(http.addr, http.allow_remote, http.token.as_deref())?;
            let path = http.path.clone();
            servers.push(
                crate::mcp::serve_http(
                    Registry::global().clone(),
                    http,
                    mcp_opts.clone(),
                    move |bound| {
                        eprintln!(
                            "agent-runtime: MCP streamable HTTP listening on http://{bound}{path}"
                        )
                    },
                    stop.clone().cancelled_owned(),
                )
                .boxed(),
            );
        }
        if a.mcp_stdio {
            eprintln!("agent-runtime: MCP on stdin/stdout");
            servers.push(
                crate::mcp::serve_stdio(
                    Registry::global().clone(),
                    mcp_opts,
                    stop.clone().cancelled_owned(),
                )
                .boxed(),
            );
        }
    }
    #[cfg(feature = "swerex")]
    if let Some(addr) = &a.swerex {
        let mut opts = crate::swerex::ServeOptions::new(parse_addr("--swerex", addr)?);
        opts.allow_remote = a.allow_remote;
        opts.token = a.token.clone();
        opts.max_body_bytes = a.swerex_max_body_bytes;
        opts.max_upload_bytes = a.swerex_max_upload_bytes as u64;
        opts.readiness = ready.clone();
        crate::serve::check_exposure(opts.addr, opts.allow_remote, opts.token.as_deref())?;
        servers.push(
            crate::swerex::serve(
                opts,
                |bound| eprintln!("agent-runtime: SWE-ReX remote API listening on http://{bound}"),
                stop.clone().cancelled_owned(),
            )
            .boxed(),
        );
    }
    if servers.is_empty() {
        return Err(Error::InvalidArguments {
            tool: "serve".into(),
            path: "serve".into(),
            message: "nothing to serve: pass --grpc [ADDR], --mcp-stdio, --mcp-http [ADDR] and/or --swerex [ADDR]"
                .into(),
        });
    }
    runtime::block_on(async move {
        let stopper = stop.clone();
        let grace = a.drain_grace;
        let signal = tokio::spawn(async move {
            crate::serve::drain::after_grace(&ready, grace, crate::serve::shutdown_signal).await;
            stopper.cancel();
        });
        // Each server runs as its own task; the first to end (or fail) stops the rest.
        let handles: Vec<_> = servers
            .into_iter()
            .map(|f| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let r = f.await;
                    stop.cancel();
                    r
                })
            })
            .collect();
        let mut first_err = None;
        for h in handles {
            let r = h
                .await
                .unwrap_or_else(|e| Err(Error::Runtime(format!("server task: {e}"))));
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        signal.abort();
        first_err.map_or(Ok(()), Err)
    })
}

/// Run the CLI with `argv` (argv[0] is the program name); returns the exit code.
/// Mount the `--mcp-config` files' servers, then the `--mcp-server` ones, into the global
/// registry; they stay mounted for the life of the process.
#[cfg(feature = "mcp")]
fn mount_mcp_servers(specs: &[String], configs: &[PathBuf]) -> Result<(), Error> {
    use crate::mcp::client;
    let mut entries = Vec::new();
    for c in configs {
        entries.extend(client::load_config(c)?);
    }
    for s in specs {
        entries.push(client::parse_server_spec(s)?);
    }
    if entries.is_empty() {
        return Ok(());
    }
    let task = runtime::handle().spawn(client::mount_all(Registry::global(), entries));
    runtime::block_on(task)
        .map_err(|e| Error::Runtime(format!("mounting MCP servers failed: {e}")))?
        .map(|_| ())
}

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
    if !cli.builtin.is_empty() {
        let groups: Vec<&str> = if cli.builtin.iter().any(|g| g == "all") {
            crate::builtin::default_groups()
        } else {
            cli.builtin.iter().map(String::as_str).collect()
        };
        if let Err(e) = crate::builtin::register_groups(Registry::global(), &groups) {
            report(&e, verbose);
            return 2;
        }
    }
    #[cfg(feature = "mcp")]
    if let Err(e) = mount_mcp_servers(&cli.mcp_servers, &cli.mcp_configs) {
        report(&e, verbose);
        return 2;
    }
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
                out(format_args!("{:<width$}  DESCRIPTION", "NAME"));
                for s in &specs {
                    let first = s.description.lines().next().unwrap_or("");
                    out(format_args!("{:<width$}  {}", s.name, first));
                }
            }
            Ok(())
        }
        Command::Call {
            name,
            args,
            timeout,
        } => {
            let sink = progress_sink();
            let shows_progress = sink.is_some();
            let ctx = CallContext::new().with_timeout(timeout).with_progress(sink);
            let r = runtime::block_on(host::run_tool(Registry::global(), &name, &args, ctx));
            if shows_progress {
                eprint!("\r\x1b[K");
            }
            r.map(out)
        }
        Command::RunFunction {
            module,
            function,
            args_json,
        } => runtime::block_on(host::run_function(&module, &function, &args_json)).map(out),
        Command::RunScript { script, args } => {
            runtime::block_on(host::run_script(&script, &args)).map(out)
        }
        #[cfg(any(feature = "grpc", feature = "mcp", feature = "swerex"))]
        Command::Serve(a) => serve(
            a,
            h.plugins()
                .iter()
                .filter(|p| p.error.is_some())
                .map(|p| p.name.clone())
                .collect(),
        ),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            report(&e, verbose);
            exit_code(&e)
        }
    }
}
