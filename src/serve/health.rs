//! Liveness and readiness for orchestrators and load balancers, shared by every transport.
//!
//! [`Readiness`] is one process-wide answer to "may this replica get new calls?": named checks
//! (registry loaded, plugins imported, isolation pool up) plus a drain flag that a shutdown
//! raises first, before anything stops accepting. HTTP transports merge [`router`]
//! (`GET /healthz`, `GET /readyz`, open to probes: no token, any `Host`); gRPC turns its
//! `grpc.health.v1` status to NOT_SERVING when [`Readiness::draining`] resolves.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

/// A readiness check: `Err(why)` while the replica must not get calls.
pub type Check = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Shared readiness state (cheap to clone; clones share it).
#[derive(Clone)]
pub struct Readiness(Arc<Inner>);

struct Inner {
    checks: Mutex<Vec<(String, Check)>>,
    draining: watch::Sender<bool>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness(Arc::new(Inner {
            checks: Mutex::new(Vec::new()),
            draining: watch::channel(false).0,
        }))
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("draining", &self.is_draining())
            .field("checks", &self.0.checks.lock().len())
            .finish()
    }
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a check named `name` (shown in `/readyz`'s answer when it fails).
    pub fn add_check(
        &self,
        name: impl Into<String>,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) {
        self.0.checks.lock().push((name.into(), Box::new(check)));
    }

    /// Start draining: from now on the replica reports not ready. Idempotent, irreversible.
    pub fn start_drain(&self) {
        self.0.draining.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.0.draining.borrow()
    }

    /// Resolves once [`Readiness::start_drain`] was called (at once if it already was).
    pub async fn draining(&self) {
        let mut rx = self.0.draining.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we hold it.
        let _ = rx.wait_for(|d| *d).await;
    }

    /// `Ok` when ready; otherwise every reason it is not, one per failing check.
    pub fn status(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.is_draining() {
            problems.push("draining: the server is shutting down".to_string());
        }
        for (name, check) in self.0.checks.lock().iter() {
            if let Err(why) = check() {
                problems.push(format!("{name}: {why}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Paths the health router answers; an MCP endpoint path may not shadow them.
#[cfg(feature = "mcp")]
pub const PATHS: [&str; 2] = ["/healthz", "/readyz"];

/// `GET /healthz`: 200 while the process serves HTTP at all. `GET /readyz`: 200 `ready`, or 503
/// with one line per reason (draining, a failing check). Merge it outside any auth layer:
/// probes carry no token and name the pod by IP in `Host`.
#[cfg(any(feature = "mcp", feature = "swerex"))]
pub fn router(readiness: Readiness) -> axum::Router {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;

    const TEXT: [(header::HeaderName, &str); 2] = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    axum::Router::new()
        .route("/healthz", get(|| async { (TEXT, "ok\n") }))
        .route(
            "/readyz",
            get(move || {
                let r = readiness.clone();
                async move {
                    match r.status() {
                        Ok(()) => (StatusCode::OK, TEXT, "ready\n".to_string()).into_response(),
                        Err(p) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            TEXT,
                            format!("not ready\n{}\n", p.join("\n")),
                        )
                            .into_response(),
                    }
                }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn checks_and_drain() {
        let r = Readiness::new();
        assert_eq!(r.status(), Ok(()));
        let up = Arc::new(AtomicBool::new(false));
        let u = up.clone();
        r.add_check("pool", move || {
            if u.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err("0 of 2 workers up".into())
            }
        });
        assert_eq!(r.status(), Err(vec!["pool: 0 of 2 workers up".to_string()]));
        up.store(true, Ordering::Relaxed);
        assert_eq!(r.status(), Ok(()));
        r.clone().start_drain();
        assert!(r.is_draining());
        assert_eq!(r.status().unwrap_err().len(), 1);
        futures::executor::block_on(r.draining());
    }

    #[cfg(feature = "mcp")]
    #[tokio::test]
    async fn http_endpoints() {
        let r = Readiness::new();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let app = router(r.clone());
        tokio::spawn(async move { axum::serve(l, app).await });
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req =
                format!("GET {path} HTTP/1.1\r\nHost: 10.0.0.7:8000\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        r.start_drain();
        let body = get("/readyz").await;
        assert!(body.starts_with("HTTP/1.1 503"), "{body}");
        assert!(body.contains("draining"), "{body}");
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
    }
}
