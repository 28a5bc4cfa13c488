//! SWE-ReX's remote protocol (`swerex-remote`, `swerex/server.py` of SWE-ReX 1.4) served from
//! Rust on axum, so SWE-ReX's unchanged `RemoteRuntime` — and every SWE-ReX deployment and
//! SWE-agent through it — drives the crate's Rust shell sessions.
//!
//! - [`routes`]: the endpoints; [`wire`]: the request models and FastAPI-style 422s;
//! - [`runtime`]: the operations on the shell sessions, mapped to SWE-ReX's exceptions
//!   ([`errors`]: HTTP 511 `swerexception`);
//! - [`files`], [`upload`], [`unzip`]: file transfer (zip entries cannot escape the target);
//! - [`auth`]: `X-API-Key` / bearer token; [`idempotency`]: `X-Request-ID` replay.

mod auth;
mod errors;
mod files;
mod idempotency;
mod pyfmt;
mod routes;
mod runtime;
mod unzip;
mod upload;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::core::{Error, Result};
/// Resolves on SIGINT or SIGTERM: a `shutdown` future for [`serve`].
pub use crate::serve::shutdown_signal;

/// The default address of `serve --swerex`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8880";
/// Default cap of a JSON request body (a `write_file` carries the whole file).
pub const DEFAULT_MAX_BODY: usize = 64 << 20;
/// Default cap of an uploaded file.
pub const DEFAULT_MAX_UPLOAD: u64 = 1 << 30;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// Allow a non-loopback address (then a token is required).
    pub allow_remote: bool,
    /// Clients must send it as `X-API-Key` (or `authorization: Bearer`); none: no check.
    pub token: Option<String>,
    /// Largest JSON request body, bytes.
    pub max_body_bytes: usize,
    /// Largest uploaded file, bytes.
    pub max_upload_bytes: u64,
    /// Largest total a zipped upload may expand to, bytes.
    pub max_unzipped_bytes: u64,
    /// Responses kept for `X-Request-ID` retries: count and bytes.
    pub replay_entries: usize,
    pub replay_bytes: usize,
    /// What `GET /readyz` reports (shared with the process's other servers; drain turns it off).
    pub readiness: crate::serve::health::Readiness,
}

impl ServeOptions {
    pub fn new(addr: SocketAddr) -> Self {
        ServeOptions {
            addr,
            allow_remote: false,
            token: None,
            max_body_bytes: DEFAULT_MAX_BODY,
            max_upload_bytes: DEFAULT_MAX_UPLOAD,
            max_unzipped_bytes: 8 * DEFAULT_MAX_UPLOAD,
            replay_entries: 1024,
            replay_bytes: 256 << 20,
            readiness: crate::serve::health::Readiness::new(),
        }
    }
}

fn app(opts: &ServeOptions) -> Arc<routes::App> {
    Arc::new(routes::App {
        runtime: runtime::Runtime::new(),
        max_body: opts.max_body_bytes,
        upload: upload::UploadLimits {
            max_bytes: opts.max_upload_bytes,
            max_unzipped_bytes: opts.max_unzipped_bytes,
        },
    })
}

/// Idempotency inside, authentication outside it (a refused request stores nothing).
fn with_layers(r: axum::Router, opts: &ServeOptions) -> axum::Router {
    let store = idempotency::Store::new(opts.replay_entries, opts.replay_bytes);
    let mut r = r.layer(axum::middleware::from_fn_with_state(
        store,
        idempotency::layer,
    ));
    if let Some(token) = opts.token.as_deref().filter(|t| !t.is_empty()) {
        r = r.layer(axum::middleware::from_fn_with_state(
            Arc::<str>::from(token),
            auth::layer,
        ));
    }
    r
}

/// How long in-flight requests may run after the shutdown signal before the sessions are
/// closed (killing their commands, so a command that never ends cannot hold the server).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serve until `shutdown` resolves; then every session is closed (its processes killed).
/// `on_bound` gets the actual address (useful with port 0).
pub async fn serve(
    opts: ServeOptions,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    crate::serve::check_exposure(opts.addr, opts.allow_remote, opts.token.as_deref())?;
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|e| Error::Runtime(format!("cannot listen on {}: {e}", opts.addr)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Runtime(format!("local_addr: {e}")))?;
    let app = app(&opts);
    // Probes carry no token: the health routes sit outside the auth layer.
    let router = with_layers(routes::router(app.clone()), &opts)
        .merge(crate::serve::health::router(opts.readiness.clone()));
    on_bound(bound);
    log::info!("SWE-ReX server listening on http://{bound}");
    let closer = app.clone();
    let r = axum::serve(crate::serve::http_listener(listener), router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            log::info!("SWE-ReX server shutting down");
            tokio::spawn(async move {
                tokio::time::sleep(SHUTDOWN_GRACE).await;
                let _ = closer.runtime.close().await;
            });
        })
        .await
        .map_err(|e| Error::Runtime(format!("SWE-ReX server: {e}")));
    let _ = app.runtime.close().await;
    r
}
