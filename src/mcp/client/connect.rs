//! Reaching an upstream MCP server: a child process over stdio, or streamable HTTP.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::service::{RoleClient, RunningService, ServiceExt};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};

use super::handler::{InOrder, UpstreamHandler};
use super::http_origin::OriginClient;

/// Where an upstream MCP server lives.
#[derive(Clone, Debug, PartialEq)]
pub enum Transport {
    /// A child process speaking MCP on its stdin/stdout (restarted on reconnect). Its stderr
    /// is inherited.
    Stdio {
        command: String,
        args: Vec<String>,
        /// Added to (or overriding) the inherited environment.
        env: Vec<(String, String)>,
        cwd: Option<PathBuf>,
    },
    /// A streamable-HTTP endpoint.
    Http {
        url: String,
        /// Sent with every request (`Authorization: Bearer …` included).
        headers: Vec<(String, String)>,
    },
}

impl Transport {
    pub fn stdio(command: impl Into<String>, args: Vec<String>) -> Self {
        Transport::Stdio {
            command: command.into(),
            args,
            env: Vec::new(),
            cwd: None,
        }
    }

    pub fn http(url: impl Into<String>) -> Self {
        Transport::Http {
            url: url.into(),
            headers: Vec::new(),
        }
    }

    /// Short human description (`command args…` or the URL), for error messages.
    pub fn describe(&self) -> String {
        match self {
            Transport::Stdio { command, args, .. } => std::iter::once(command.as_str())
                .chain(args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            Transport::Http { url, .. } => url.clone(),
        }
    }
}

pub(super) type Client = RunningService<RoleClient, UpstreamHandler>;

/// Connect and complete the MCP handshake within `timeout`.
pub(super) async fn connect(
    t: &Transport,
    handler: UpstreamHandler,
    timeout: Duration,
) -> Result<Client, String> {
    let fut = async {
        match t {
            Transport::Stdio {
                command,
                args,
                env,
                cwd,
            } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
                if let Some(d) = cwd {
                    cmd.current_dir(d);
                }
                let mut w = CommandWrap::from(cmd);
                // Its own process group, killed as a whole: launchers (npx, uv run) leave no
                // grandchildren behind.
                w.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
                let (proc, _) = TokioChildProcess::builder(w)
                    .stderr(Stdio::inherit())
                    .spawn()
                    .map_err(|e| format!("cannot start '{command}': {e}"))?;
                let calls = handler.calls.clone();
                handler
                    .serve(InOrder { inner: proc, calls })
                    .await
                    .map_err(|e| format!("handshake failed: {e}"))
            }
            Transport::Http { url, headers } => {
                let mut cfg = StreamableHttpClientTransportConfig::with_uri(url.as_str());
                let mut custom = HashMap::new();
                for (k, v) in headers {
                    if k.eq_ignore_ascii_case("authorization") {
                        if let Some(tok) = v.strip_prefix("Bearer ") {
                            cfg = cfg.auth_header(tok.to_string());
                            continue;
                        }
                    }
                    let name = http::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|e| format!("header name '{k}': {e}"))?;
                    let value = http::HeaderValue::from_str(v)
                        .map_err(|e| format!("header '{k}' value: {e}"))?;
                    custom.insert(name, value);
                }
                cfg.custom_headers = custom;
                let calls = handler.calls.clone();
                let client = OriginClient::new(calls.clone())?;
                let transport = StreamableHttpClientTransport::with_client(client, cfg);
                handler
                    .serve(InOrder {
                        inner: transport,
                        calls,
                    })
                    .await
                    .map_err(|e| format!("handshake failed: {e}"))
            }
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("no handshake within {:.1}s", timeout.as_secs_f64())),
    }
}
