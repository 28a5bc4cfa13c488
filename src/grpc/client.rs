//! Rust client of `python.PythonService`, mirroring the design note's Go client: `run_tool`,
//! `run_function`, `run_script`, with a per-call timeout and retries of UNAVAILABLE.

use std::time::Duration;

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

/// A connection to an agent-runtime (or any PythonService) server.
#[derive(Clone)]
pub struct Client {
    inner: PythonServiceClient<Channel>,
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

    fn over(ch: Channel) -> Client {
        Client {
            inner: PythonServiceClient::new(ch),
            token: None,
            timeout: None,
            retries: 3,
        }
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

    /// How many times to retry a call that failed with UNAVAILABLE (default 3).
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
            match f(self.inner.clone()).await {
                Err(ClientError::Status(s))
                    if s.code() == Code::Unavailable && attempt < self.retries =>
                {
                    attempt += 1;
                    // Exponential backoff from 100 ms, capped at 5 s (any retry count is safe).
                    let ms = 50u64
                        .saturating_mul(2u64.saturating_pow(attempt))
                        .min(5_000);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                r => return r,
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
