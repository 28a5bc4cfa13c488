//! Authentication as SWE-ReX's server does it: the `X-API-Key` header must carry the token
//! (a bearer token in `authorization` is accepted too). Compared in constant time
//! ([`crate::serve::token_matches`]); every failure is the same 401.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::errors::HttpError;

pub const API_KEY_HEADER: &str = "x-api-key";

/// Whether `headers` carry `token`.
pub fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let key = headers.get(API_KEY_HEADER).map(|v| v.as_bytes());
    let key_ok = crate::serve::token_matches(key.unwrap_or(b""), token.as_bytes());
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let bearer_ok = crate::serve::check_bearer(bearer, token).is_ok();
    (key.is_some() && key_ok) || bearer_ok
}

pub async fn layer(State(token): State<Arc<str>>, req: Request, next: Next) -> Response {
    if authorized(req.headers(), &token) {
        return next.run(req).await;
    }
    HttpError::new(StatusCode::UNAUTHORIZED, "Invalid API Key").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.insert(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn api_key_or_bearer() {
        assert!(authorized(&h(&[("x-api-key", "s3")]), "s3"));
        assert!(authorized(&h(&[("authorization", "Bearer s3")]), "s3"));
        assert!(!authorized(&h(&[]), "s3"));
        assert!(!authorized(&h(&[("x-api-key", "s4")]), "s3"));
        assert!(!authorized(&h(&[("x-api-key", "")]), "s3"));
        assert!(!authorized(&h(&[("authorization", "s3")]), "s3"));
    }
}
