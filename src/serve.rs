//! What every network transport shares: the exposure policy (loopback unless allowed, then a
//! token), bearer-token checks, the shutdown signal, health/readiness ([`health`]) and the drain
//! ([`drain`]). Transports use this, not each other.

// Which parts are used depends on the features (HTTP transports, the CLI).
#[cfg_attr(
    not(all(feature = "python", feature = "mcp")),
    allow(dead_code, unused_imports)
)]
pub mod drain;
pub mod health;

use std::net::SocketAddr;

use crate::core::{Error, Result};

/// Loopback is always fine; any other address needs `allow_remote` and a non-empty token.
pub fn check_exposure(addr: SocketAddr, allow_remote: bool, token: Option<&str>) -> Result<()> {
    if !addr.ip().is_loopback() {
        if !allow_remote {
            return Err(Error::NotAllowed(format!(
                "refusing to listen on non-loopback address {addr} without --allow-remote"
            )));
        }
        if token.is_none_or(str::is_empty) {
            return Err(Error::NotAllowed(format!(
                "listening on {addr} needs a bearer token (--token or AGENT_RUNTIME_TOKEN)"
            )));
        }
    }
    Ok(())
}

/// Constant-time comparison (`subtle`): the time taken does not depend on where the first
/// differing byte is. Only the lengths may leak, which says nothing useful about a random token.
pub fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    given.ct_eq(expected).into()
}

/// What a client without the right token is told: the same text whether the header was
/// missing, used another scheme or carried a wrong token, so a probe learns nothing.
pub const UNAUTHENTICATED: &str =
    "missing bearer token or invalid bearer token (send authorization: Bearer <token>)";

/// Check an `authorization` header value against the expected token; every failure is
/// [`UNAUTHENTICATED`].
pub fn check_bearer(header: Option<&str>, expected: &str) -> std::result::Result<(), &'static str> {
    let given = header.unwrap_or("");
    let token = given
        .strip_prefix("Bearer ")
        .or_else(|| given.strip_prefix("bearer "));
    // Compare even when the scheme is wrong, so both paths cost the same.
    let ok = token_matches(token.unwrap_or(given).as_bytes(), expected.as_bytes());
    if ok && token.is_some() {
        Ok(())
    } else {
        Err(UNAUTHENTICATED)
    }
}

/// `listener` for an HTTP (axum) server, with `TCP_NODELAY` set on every accepted connection.
/// Without it a response's last small write (the end of a chunked body or SSE stream) waits
/// for the client's delayed ACK: ~40 ms per request on a kept-alive connection. Every HTTP
/// listener of the crate goes through this (tonic sets it for gRPC itself).
#[cfg(any(feature = "mcp", feature = "swerex"))]
pub fn http_listener(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            log::warn!("cannot set TCP_NODELAY on an accepted connection: {e}");
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_fully() {
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secreT", b"secret"));
        assert!(!token_matches(b"secret2", b"secret"));
        assert!(!token_matches(b"", b"secret"));
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(check_bearer(Some("Bearer s3"), "s3"), Ok(()));
        assert_eq!(check_bearer(Some("bearer s3"), "s3"), Ok(()));
        // Missing, wrong scheme, bare token and wrong token: one answer, no hint which.
        for h in [
            None,
            Some("Basic s3"),
            Some("s3"),
            Some("Bearer nope"),
            Some("Bearer "),
        ] {
            assert_eq!(check_bearer(h, "s3"), Err(UNAUTHENTICATED), "{h:?}");
        }
    }

    #[cfg(any(feature = "mcp", feature = "swerex"))]
    #[tokio::test]
    async fn http_listener_sets_nodelay() {
        use axum::serve::Listener;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let mut l = http_listener(l);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (io, _) = l.accept().await;
        assert!(io.nodelay().unwrap());
    }

    #[test]
    fn exposure_rules() {
        let lo: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:1".parse().unwrap();
        assert!(check_exposure(lo, false, None).is_ok());
        assert!(check_exposure(any, false, Some("t")).is_err());
        assert!(check_exposure(any, true, None).is_err());
        assert!(check_exposure(any, true, Some("")).is_err());
        assert!(check_exposure(any, true, Some("t")).is_ok());
    }
}
