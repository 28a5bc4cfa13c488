//! gRPC transport: the design note's `python.PythonService`, served by tonic over the registry,
//! with health, reflection (v1 and v1alpha), bearer-token auth, size limits and graceful
//! shutdown; plus a Rust client.
//!
//! Tool failures go in the response's `error` field (as the note's servicer does); protocol
//! problems are status codes: unknown tool → NOT_FOUND, bad `args_json` or arguments the schema
//! rejects → INVALID_ARGUMENT, deadline → DEADLINE_EXCEEDED (the tool is cancelled), client
//! cancel → the tool is cancelled, module outside the allowlist or a function the
//! `RunFunction` rule refuses → PERMISSION_DENIED, missing or wrong token → UNAUTHENTICATED
//! (the same message for both). An async `RunFunction`/`RunScript` target is cancelled on
//! deadline or client cancel too; a sync one runs to its end and its result is dropped.
//! Status messages are bounded ([`MAX_STATUS_MESSAGE`]), whatever user text they quote.

mod client;
mod size_limit;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};

pub use client::{not_started, Client, ClientError};
use status::classify;
pub use status::MAX_STATUS_MESSAGE;

use crate::core::registry::run_tool;
use crate::core::{BoxFuture, CallContext, CancelToken, Error, Registry};

/// Generated protobuf and service code (package `python`).
pub mod pb {
    tonic::include_proto!("python");
    /// Encoded descriptor set of `proto/python_service.proto`, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/python_service_descriptor.bin"));
}

use pb::python_service_server::{PythonService, PythonServiceServer};
use pb::{
    RunFunctionRequest, RunFunctionResponse, RunScriptRequest, RunScriptResponse, RunToolRequest,
    RunToolResponse,
};

/// `RunFunction` / `RunScript` need Python; the Python boundary provides them ([`HostOps`]).
/// Without them those RPCs answer UNIMPLEMENTED.
pub use crate::core::HostOps;

/// The service implementation over a registry.
#[derive(Clone)]
pub struct Service {
    registry: Registry,
    ops: Option<Arc<dyn HostOps>>,
}

impl Service {
    pub fn new(registry: Registry, ops: Option<Arc<dyn HostOps>>) -> Self {
        Service { registry, ops }
    }
}

/// Cancels a call's token when the handler's future is dropped (the client went away).
struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// The call's deadline from `grpc-timeout`, slightly shortened: tonic's server enforces the
/// same header itself and answers CANCELLED when it fires; ending the call a moment earlier
/// ourselves gives the client the right DEADLINE_EXCEEDED (and cancels the tool).
fn grpc_timeout(md: &tonic::metadata::MetadataMap) -> Option<Duration> {
    // 99999999H is over 11 000 years: bound it like every other user-given duration.
    let d = parse_grpc_timeout(md)?.min(crate::core::duration::FOREVER);
    Some(d.saturating_sub((d / 20).max(Duration::from_millis(10))))
}

/// `grpc-timeout` header: an integer (≤ 8 digits) and a unit H M S m u n.
fn parse_grpc_timeout(md: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let v = md.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (num, unit) = v.split_at(v.len() - 1);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn call_ctx<T>(req: &Request<T>) -> (CallContext, CancelOnDrop) {
    let ctx = CallContext::new().with_timeout(grpc_timeout(req.metadata()));
    let guard = CancelOnDrop(ctx.cancel.clone());
    (ctx, guard)
}

impl Service {
    /// Run a host operation: `(result, "")` on success, `("", error)` for a failure that goes
    /// in the response, or a status for a protocol problem.
    async fn host_op(
        &self,
        rpc: &str,
        timeout: Option<Duration>,
        start: impl FnOnce(&dyn HostOps) -> BoxFuture<crate::core::Result<String>>,
    ) -> Result<(String, String), Status> {
        let Some(ops) = self.ops.as_deref() else {
            return Err(Status::unimplemented(format!(
                "{rpc} needs the Python host"
            )));
        };
        match with_deadline(timeout, start(ops)).await {
            Ok(v) => Ok((v, String::new())),
            Err(e) => Ok((String::new(), classify(e)?)),
        }
    }
}

#[tonic::async_trait]
impl PythonService for Service {
    async fn run_script(
        &self,
        req: Request<RunScriptRequest>,
    ) -> Result<Response<RunScriptResponse>, Status> {
        let timeout = grpc_timeout(req.metadata());
        let r = req.into_inner();
        let (result, error) = self
            .host_op("RunScript", timeout, |ops| ops.run_script(r.script, r.args))
            .await?;
        Ok(Response::new(RunScriptResponse { result, error }))
    }

    async fn run_function(
        &self,
        req: Request<RunFunctionRequest>,
    ) -> Result<Response<RunFunctionResponse>, Status> {
        let timeout = grpc_timeout(req.metadata());
        let r = req.into_inner();
        let (result_json, error) = self
            .host_op("RunFunction", timeout, |ops| {
                ops.run_function(r.module, r.function, r.args_json)
            })
            .await?;
        Ok(Response::new(RunFunctionResponse { result_json, error }))
    }

    async fn run_tool(
        &self,
        req: Request<RunToolRequest>,
    ) -> Result<Response<RunToolResponse>, Status> {
        let (ctx, _guard) = call_ctx(&req);
        let r = req.into_inner();
        let out = run_tool(&self.registry, &r.tool_name, &r.args_json, ctx).await;
        Ok(Response::new(match out {
            Ok(result_json) => RunToolResponse {
                result_json,
                error: String::new(),
            },
            Err(e) => RunToolResponse {
                result_json: String::new(),
                error: classify(e)?,
            },
        }))
    }
}

async fn with_deadline<T>(
    timeout: Option<Duration>,
    fut: BoxFuture<crate::core::Result<T>>,
) -> crate::core::Result<T> {
    match timeout {
        Some(d) => tokio::time::timeout(d, fut).await.unwrap_or_else(|_| {
            Err(Error::Timeout {
                tool: "<request>".into(),
                timeout: d,
            })
        }),
        None => fut.await,
    }
}

/// How to serve.
#[derive(Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// Required for non-loopback addresses, and then a token is required too.
    pub allow_remote: bool,
    /// Bearer token every PythonService/reflection call must present.
    pub token: Option<String>,
    /// Largest request/response message, bytes.
    pub max_message_size: usize,
    /// `grpc.health.v1` turns NOT_SERVING as soon as this starts draining (before the server
    /// stops accepting; share one with the other servers of the process).
    pub readiness: crate::serve::health::Readiness,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            allow_remote: false,
            token: None,
            max_message_size: 4 * 1024 * 1024,
            readiness: Default::default(),
        }
    }
}

/// Check the exposure rules before binding.
pub fn check_exposure(o: &ServeOptions) -> crate::core::Result<()> {
    crate::serve::check_exposure(o.addr, o.allow_remote, o.token.as_deref())
}

fn auth_interceptor(
    token: Option<Arc<str>>,
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |req: Request<()>| {
        let Some(expected) = &token else {
            return Ok(req);
        };
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match crate::serve::check_bearer(given, expected) {
            Ok(()) => Ok(req),
            Err(why) => Err(Status::unauthenticated(why)),
        }
    }
}

/// Serve until `shutdown` resolves, then stop accepting, drain in-flight calls and return.
/// `on_bound` is told the actual address (useful with port 0).
pub async fn serve(
    registry: Registry,
    ops: Option<Arc<dyn HostOps>>,
    o: ServeOptions,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> crate::core::Result<()> {
    check_exposure(&o)?;
    let listener = tokio::net::TcpListener::bind(o.addr)
        .await
        .map_err(|e| Error::Runtime(format!("cannot listen on {}: {e}", o.addr)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Runtime(e.to_string()))?;
    let token: Option<Arc<str>> = o.token.as_deref().filter(|t| !t.is_empty()).map(Arc::from);

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_serving::<PythonServiceServer<Service>>().await;

    let svc = PythonServiceServer::new(Service::new(registry, ops))
        .max_decoding_message_size(o.max_message_size)
        .max_encoding_message_size(o.max_message_size);
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Runtime(format!("reflection: {e}")))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| Error::Runtime(format!("reflection: {e}")))?;
    let auth = auth_interceptor(token);

    on_bound(bound);
    log::info!("gRPC PythonService listening on {bound}");
    let incoming = tokio_stream_listener(listener);
    let readiness = o.readiness.clone();
    let flip = {
        let (reporter, readiness) = (reporter.clone(), readiness.clone());
        tokio::spawn(async move {
            readiness.draining().await;
            reporter
                .set_not_serving::<PythonServiceServer<Service>>()
                .await;
        })
    };
    let served = tonic::transport::Server::builder()
        .layer(size_limit::layer())
        .add_service(health)
        .add_service(tonic::service::interceptor::InterceptedService::new(
            svc,
            auth.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            reflection_v1,
            auth.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            reflection_v1alpha,
            auth,
        ))
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown.await;
            readiness.start_drain();
            log::info!("gRPC server shutting down: draining in-flight calls");
        })
        .await;
    flip.abort();
    served.map_err(|e| Error::Runtime(format!("gRPC server: {e}")))
}

fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let r = l.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            s
        });
        Some((r, l))
    })
}

pub use crate::serve::shutdown_signal;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse() {
        let mut md = tonic::metadata::MetadataMap::new();
        md.insert("grpc-timeout", "250m".parse().unwrap());
        assert_eq!(parse_grpc_timeout(&md), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout(&md), Some(Duration::from_micros(237_500)));
        md.insert("grpc-timeout", "3S".parse().unwrap());
        assert_eq!(parse_grpc_timeout(&md), Some(Duration::from_secs(3)));
        md.insert("grpc-timeout", "99999999H".parse().unwrap());
        let forever = crate::core::duration::FOREVER;
        assert_eq!(grpc_timeout(&md), Some(forever - forever / 20));
        md.insert("grpc-timeout", "x".parse().unwrap());
        assert_eq!(grpc_timeout(&md), None);
    }

    #[test]
    fn exposure_rules() {
        let mut o = ServeOptions {
            addr: "0.0.0.0:0".parse().unwrap(),
            ..Default::default()
        };
        assert!(check_exposure(&o).is_err());
        o.allow_remote = true;
        assert!(check_exposure(&o).is_err());
        o.token = Some("t".into());
        assert!(check_exposure(&o).is_ok());
        assert!(check_exposure(&ServeOptions::default()).is_ok());
    }
}
