//! The endpoints of SWE-ReX's `swerex/server.py`, each a thin adapter from the wire models
//! ([`super::wire`]) to the runtime ([`super::runtime`], [`super::files`], [`super::upload`]).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Multipart, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::errors::{Failure, HttpError};
use super::runtime::Runtime;
use super::upload::{self, UploadLimits};
use super::{files, wire};

pub struct App {
    pub runtime: Runtime,
    pub max_body: usize,
    pub upload: UploadLimits,
}

type Reply = Result<Json<Value>, Failure>;

/// The body within the cap, or a 413 naming it (JSON, so the client can read it).
async fn body(req: Request, max: usize) -> Result<Bytes, HttpError> {
    axum::body::to_bytes(req.into_body(), max)
        .await
        .map_err(|e| {
            HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body too large (the limit is {max} bytes): {e}"),
            )
        })
}

pub fn router(app: Arc<App>) -> Router {
    // Multipart fields other than the file are small; the file is capped while streaming.
    let upload_cap = usize::try_from(app.upload.max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1 << 20);
    Router::new()
        .route(
            "/",
            get(|| async { Json(json!({"message": "hello world"})) }),
        )
        .route(
            "/is_alive",
            get(|| async { Json(json!({"is_alive": true, "message": ""})) }),
        )
        .route("/create_session", post(create_session))
        .route("/run_in_session", post(run_in_session))
        .route("/close_session", post(close_session))
        .route("/execute", post(execute))
        .route("/read_file", post(read_file))
        .route("/write_file", post(write_file))
        .route(
            "/upload",
            post(upload_file).layer(DefaultBodyLimit::max(upload_cap)),
        )
        .route("/close", post(close))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

async fn not_found() -> Response {
    HttpError::new(StatusCode::NOT_FOUND, "Not Found").into_response()
}

async fn method_not_allowed() -> Response {
    HttpError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed").into_response()
}

async fn create_session(State(app): State<Arc<App>>, req: Request) -> Reply {
    let b = body(req, app.max_body).await?;
    let r: wire::CreateSession = wire::parse(&b)?;
    wire::check_session_type(&r.session_type, wire::parse_value(&b)?)?;
    let v = app
        .runtime
        .create_session(&r.session, r.startup_source, r.startup_timeout)
        .await?;
    Ok(Json(v))
}

async fn run_in_session(State(app): State<Arc<App>>, req: Request) -> Reply {
    let b = body(req, app.max_body).await?;
    let action = wire::parse_action(&b)?;
    Ok(Json(app.runtime.run_in_session(action).await?))
}

async fn close_session(State(app): State<Arc<App>>, req: Request) -> Reply {
    let b = body(req, app.max_body).await?;
    let r: wire::CloseSession = wire::parse(&b)?;
    wire::check_session_type(&r.session_type, wire::parse_value(&b)?)?;
    Ok(Json(app.runtime.close_session(&r.session).await?))
}

async fn execute(State(app): State<Arc<App>>, req: Request) -> Reply {
    let b = body(req, app.max_body).await?;
    Ok(Json(app.runtime.execute(wire::parse(&b)?).await?))
}

async fn read_file(State(app): State<Arc<App>>, req: Request) -> Reply {
    let b = body(req, app.max_body).await?;
    Ok(Json(files::read_file(wire::parse(&b)?).await?))
}

async fn write_file(State(app): State<Arc<App>>, req: Request) -> Reply {
    let b = body(req, app.max_body).await?;
    Ok(Json(files::write_file(wire::parse(&b)?).await?))
}

async fn upload_file(
    State(app): State<Arc<App>>,
    form: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Reply {
    let form = form.map_err(|e| HttpError::new(e.status(), e.body_text()))?;
    Ok(Json(upload::upload(form, app.upload).await?))
}

async fn close(State(app): State<Arc<App>>) -> Reply {
    Ok(Json(app.runtime.close().await?))
}
