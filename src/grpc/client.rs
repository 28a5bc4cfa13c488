//! Rust client of `python.PythonService`, mirroring the design note's Go client: `run_tool`,
//! `run_function`, `run_script`, with a per-call timeout and retries of UNAVAILABLE.
//!
//! [`Client::connect_many`] spreads calls over several replicas (round robin) with passive
//! health: an endpoint that could not take a call is skipped for a backoff that doubles while
//! it stays down. A call is retried (on the next endpoint) only when it certainly did not start
//! ([`not_started`]): the connection could not be made, the server refused the stream, or the
//! server itself answered UNAVAILABLE. A connection lost while the call was out may have run
//! it, so that failure is returned, never re-sent (the rule `WorkerCrashed` follows).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use super::pb::python_service_client::PythonServiceClient;
use super::pb::{RunFunctionRequest, RunScriptRequest, RunToolRequest};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("gRPC status {}: {}", .0.code(), .0.message())]
    Status(Status),
    /// The call ran and failed; the server's `error` field.
    #[error("remote error: {0}")]
    Remote(String),
    #[error("bad JSON: {0}")]
    Json(String),
}

/// `http://` is implied when `addr` has no scheme.
fn endpoint(addr: &str) -> Result<Endpoint, ClientError> {
    let uri = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    Ok(Endpoint::from_shared(uri)
        .map_err(|e| ClientError::Connect(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true))
}

/// One server of a [`Client`], with its passive health.
struct Replica {
    addr: String,
    stub: PythonServiceClient<Channel>,
    /// Skipped until then after it failed to take a call; the backoff doubles while it stays down.
    down: Mutex<Option<(Instant, Duration)>>,
}

const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

impl Replica {
    fn mark_down(&self) {
        let mut d = self.down.lock();
        let backoff = d.map_or(BACKOFF_MIN, |(_, b)| (b * 2).min(BACKOFF_MAX));
        *d = Some((Instant::now() + backoff, backoff));
        log::debug!("gRPC endpoint {} down for {backoff:?}", self.addr);
    }

    fn mark_up(&self) {
        let mut d = self.down.lock();
        if d.is_some() {
            *d = None;
        }
    }

    /// `None` when up (or its backoff passed: worth a try), else when it will be.
    fn down_until(&self, now: Instant) -> Option<Instant> {
        self.down.lock().map(|(t, _)| t).filter(|t| *t > now)
    }
}

/// Whether a failed call certainly never reached a tool: UNAVAILABLE that the server (or a
/// proxy) answered itself, a refused stream or a stream the server's GOAWAY left unprocessed,
/// a connection that could not be made, or a request the HTTP/2 client cancelled before sending
/// it. A connection lost mid-call may have run the call: not retried.
pub fn not_started(s: &Status) -> bool {
    if s.code() == Code::Cancelled {
        // hyper cancels a request it never handed to the connection (the connection closed
        // first, e.g. a replica shutting down, or was not ready); tonic reports Cancelled with
        // that error as the source. A Cancelled status the peer sent has no source.
        let mut err: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
        while let Some(e) = err {
            if e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_canceled)
            {
                return true;
            }
            err = e.source();
        }
        return false;
    }
    if s.code() != Code::Unavailable {
        return false;
    }
    let Some(mut err) = std::error::Error::source(s) else {
        return true; // a status the peer sent
    };
    loop {
        if let Some(h2) = err.downcast_ref::<h2::Error>() {
            return h2.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (h2.is_go_away() && h2.is_remote());
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable
            );
        }
        match err.source() {
            Some(next) => err = next,
            None => return false,
        }
    }
}

/// A connection to one agent-runtime (or any PythonService) server, or to several replicas.
#[derive(Clone)]
pub struct Client {
    replicas: Arc<[Replica]>,
    next: Arc<AtomicUsize>,
    token: Option<String>,
    timeout: Option<Duration>,
    retries: u32,
}

impl Client {
    /// Connect to `addr` (`http://127.0.0.1:50051` or `127.0.0.1:50051`).
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        let ch = endpoint(addr)?
            .connect()
            .await
            .map_err(|e| ClientError::Connect(e.to_string()))?;
        Ok(Client::over(ch))
    }

    /// Like [`Client::connect`] but without connecting until the first call; calls made while
    /// the server is not up yet fail with UNAVAILABLE and are retried.
    pub fn connect_lazy(addr: &str) -> Result<Client, ClientError> {
        Ok(Client::over(endpoint(addr)?.connect_lazy()))
    }

    /// A client of several replicas of one service (`host:port` or URLs): calls go round robin
    /// over the endpoints that are up; one that cannot take a call is skipped for a while and
    /// the call goes to the next (only when it certainly did not start, see [`not_started`]).
    /// Connects lazily: an endpoint down now is tried again later. Retries default to one per
    /// endpoint plus 2.
    pub fn connect_many<I, S>(addrs: I) -> Result<Client, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut replicas = Vec::new();
        for a in addrs {
            let a = a.as_ref();
            replicas.push(Replica {
                addr: a.to_string(),
                stub: PythonServiceClient::new(endpoint(a)?.connect_lazy()),
                down: Mutex::new(None),
            });
        }
        if replicas.is_empty() {
            return Err(ClientError::Connect(
                "connect_many needs at least one address".into(),
            ));
        }
        let retries = u32::try_from(replicas.len())
            .unwrap_or(u32::MAX)
            .saturating_add(2);
        Ok(Client {
            replicas: replicas.into(),
            next: Arc::new(AtomicUsize::new(0)),
            token: None,
            timeout: None,
            retries,
        })
    }

    fn over(ch: Channel) -> Client {
        Client {
            replicas: Arc::new([Replica {
                addr: String::new(),
                stub: PythonServiceClient::new(ch),
                down: Mutex::new(None),
            }]),
            next: Arc::new(AtomicUsize::new(0)),
            token: None,
            timeout: None,
            retries: 3,
        }
    }

    /// The endpoints' addresses and whether each is currently up (not in a backoff).
    pub fn endpoints(&self) -> Vec<(String, bool)> {
        let now = Instant::now();
        self.replicas
            .iter()
            .map(|r| (r.addr.clone(), r.down_until(now).is_none()))
            .collect()
    }

    /// The next replica round robin, skipping those in a backoff (all down: the one up soonest).
    fn pick(&self) -> &Replica {
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut soonest: Option<(Instant, usize)> = None;
        for k in 0..n {
            let i = start.wrapping_add(k) % n;
            match self.replicas[i].down_until(now) {
                None => return &self.replicas[i],
                Some(t) => {
                    if soonest.is_none_or(|(s, _)| t < s) {
                        soonest = Some((t, i));
                    }
                }
            }
        }
        &self.replicas[soonest.map_or(start % n, |(_, i)| i)]
    }

    /// Send `authorization: Bearer <token>` with every call.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Deadline for each call (sent as `grpc-timeout`; the server cancels the tool).
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// How many times to retry a call that failed with UNAVAILABLE before it started (default
    /// 3; with [`Client::connect_many`], the number of endpoints plus 2).
    pub fn with_retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    fn request<T>(&self, msg: T) -> Result<Request<T>, ClientError> {
        let mut req = Request::new(msg);
        if let Some(t) = self.timeout {
            req.set_timeout(t);
        }
        if let Some(tok) = &self.token {
            let v: MetadataValue<_> = format!("Bearer {tok}")
                .parse()
                .map_err(|_| ClientError::Connect("token is not a valid header value".into()))?;
            req.metadata_mut().insert("authorization", v);
        }
        Ok(req)
    }

    async fn retry<T, F, Fut>(&self, mut f: F) -> Result<T, ClientError>
    where
        F: FnMut(PythonServiceClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        let mut attempt = 0;
        loop {
            let replica = self.pick();
            match f(replica.stub.clone()).await {
                Err(ClientError::Status(s)) if not_started(&s) => {
                    replica.mark_down();
                    if attempt >= self.retries {
                        return Err(ClientError::Status(s));
                    }
                    attempt += 1;
                    // Another replica that is up: at once. Otherwise exponential backoff from
                    // 100 ms, capped at 5 s (any retry count is safe).
                    if self.replicas.len() == 1
                        || self
                            .replicas
                            .iter()
                            .all(|r| r.down_until(Instant::now()).is_some())
                    {
                        let ms = 50u64
                            .saturating_mul(2u64.saturating_pow(attempt))
                            .min(5_000);
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                }
                r => {
                    // Any answer (even an error status) means the endpoint is up.
                    if !matches!(&r, Err(ClientError::Status(s)) if s.code() == Code::Unavailable) {
                        replica.mark_up();
                    }
                    return r;
                }
            }
        }
    }

    /// One unary call with retries; `split` gives (result, error) of the response, and a
    /// non-empty error field becomes [`ClientError::Remote`].
    async fn unary<Req, Resp, Fut>(
        &self,
        msg: Req,
        call: impl Fn(PythonServiceClient<Channel>, Request<Req>) -> Fut,
        split: fn(Resp) -> (String, String),
    ) -> Result<String, ClientError>
    where
        Req: Clone,
        Fut: std::future::Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        self.retry(|c| {
            let fut = self.request(msg.clone()).map(|req| call(c, req));
            async move {
                let (result, error) = split(fut?.await.map_err(ClientError::Status)?.into_inner());
                if error.is_empty() {
                    Ok(result)
                } else {
                    Err(ClientError::Remote(error))
                }
            }
        })
        .await
    }

    /// `RunTool`: JSON text of arguments in, JSON text of the result out.
    pub async fn run_tool_json(
        &self,
        tool_name: &str,
        args_json: &str,
    ) -> Result<String, ClientError> {
        let msg = RunToolRequest {
            tool_name: tool_name.to_string(),
            args_json: args_json.to_string(),
        };
        self.unary(
            msg,
            |mut c, r| async move { c.run_tool(r).await },
            |r| (r.result_json, r.error),
        )
        .await
    }

    /// `RunTool` with JSON values.
    pub async fn run_tool(
        &self,
        tool_name: &str,
        args: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        let out = self.run_tool_json(tool_name, &args.to_string()).await?;
        serde_json::from_str(&out).map_err(|e| ClientError::Json(e.to_string()))
    }

    /// `RunFunction`: `module.function(*args)`.
    pub async fn run_function(
        &self,
        module: &str,
        function: &str,
        args: &[serde_json::Value],
    ) -> Result<serde_json::Value, ClientError> {
        let msg = RunFunctionRequest {
            module: module.to_string(),
            function: function.to_string(),
            args_json: serde_json::to_string(args).map_err(|e| ClientError::Json(e.to_string()))?,
        };
        let out = self
            .unary(
                msg,
                |mut c, r| async move { c.run_function(r).await },
                |r| (r.result_json, r.error),
            )
            .await?;
        serde_json::from_str(&out).map_err(|e| ClientError::Json(e.to_string()))
    }

    /// `RunScript`: `str(script.main(*args))`.
    pub async fn run_script(&self, script: &str, args: &[String]) -> Result<String, ClientError> {
        let msg = RunScriptRequest {
            script: script.to_string(),
            args: args.to_vec(),
        };
        self.unary(
            msg,
            |mut c, r| async move { c.run_script(r).await },
            |r| (r.result, r.error),
        )
        .await
    }
}
