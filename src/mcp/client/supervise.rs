//! A mount: connects, mirrors the upstream's tools, resources and prompts into the registry
//! (on connect and on the upstream's `list_changed` notifications), follows our clients'
//! resource subscriptions upstream, and keeps the connection alive — when the upstream exits
//! or drops, its calls fail with an error naming it (in-flight ones at once) and it is
//! reconnected with exponential backoff (a stdio child is restarted; the old one is killed with
//! its process group and reaped).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rmcp::service::{Peer, RoleClient};
use serde_json::Value;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::calls::Calls;
use super::catalog::{self, Proxied};
use super::connect::{connect, Client, Transport};
use super::handler::UpstreamHandler;
use super::subscribe;
use super::tool::{Link, MountedTool};
use crate::core::{Error, Registry, Result, Tool, ToolSpec};

/// How a mount connects and reconnects.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Limit on starting the server and completing the handshake.
    pub connect_timeout: Duration,
    /// First reconnection delay; doubled after each failed attempt up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            connect_timeout: Duration::from_secs(30),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }
}

struct Shared {
    registry: Registry,
    prefix: String,
    transport: Transport,
    opts: MountOptions,
    link: Arc<Link>,
    /// Full names of the tools this mount registered.
    names: Mutex<BTreeSet<String>>,
    /// Upstream resources and prompts proxied into the registry's stores.
    proxied: tokio::sync::Mutex<Proxied>,
    stop: CancellationToken,
    kick: Notify,
    /// Counts successful connections.
    connected: watch::Sender<u64>,
}

/// A mounted MCP server. Its tools stay registered until [`Mount::close`]; dropping the handle
/// does not unmount.
#[derive(Clone)]
pub struct Mount {
    shared: Arc<Shared>,
}

/// Mount the server at `transport` into `registry`: its tools appear as `PREFIX.tool` (names
/// unchanged for an empty prefix). Fails if the server cannot be reached or one of its tool
/// names is taken.
pub async fn mount(registry: &Registry, prefix: &str, transport: Transport) -> Result<Mount> {
    mount_with(registry, prefix, transport, MountOptions::default()).await
}

pub async fn mount_with(
    registry: &Registry,
    prefix: &str,
    transport: Transport,
    opts: MountOptions,
) -> Result<Mount> {
    if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Registration(format!(
            "MCP mount prefix {prefix:?} contains whitespace or control characters"
        )));
    }
    let server = if prefix.is_empty() {
        transport.describe()
    } else {
        prefix.to_string()
    };
    let link = Arc::new(Link {
        calls: Arc::new(Calls::new(server.clone(), registry.clone())),
        peer: RwLock::new(None),
        down: RwLock::new("not connected yet".into()),
    });
    let shared = Arc::new(Shared {
        registry: registry.clone(),
        prefix: prefix.to_string(),
        transport,
        opts,
        link,
        names: Mutex::new(BTreeSet::new()),
        proxied: tokio::sync::Mutex::new(Proxied::default()),
        stop: CancellationToken::new(),
        kick: Notify::new(),
        connected: watch::channel(0).0,
    });
    let client = shared.connect().await.map_err(|e| {
        Error::Runtime(format!(
            "cannot mount MCP server '{server}' ({}): {e}",
            shared.transport.describe()
        ))
    })?;
    if let Err(e) = shared.sync(client.peer(), true).await {
        let _ = shared.shutdown(client).await;
        return Err(e);
    }
    shared.up(client.peer().clone());
    shared.sync_catalog(client.peer()).await;
    tokio::spawn(supervise(shared.clone(), client));
    Ok(Mount { shared })
}

impl Mount {
    /// The server's name in errors: the prefix, or the command/URL for an empty prefix.
    pub fn server(&self) -> &str {
        self.shared.link.server()
    }

    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// Registered names of the upstream's tools, sorted.
    pub fn tools(&self) -> Vec<String> {
        self.shared.names.lock().iter().cloned().collect()
    }

    pub fn is_connected(&self) -> bool {
        self.shared.link.peer.read().is_some()
    }

    /// Drop the connection and connect again (a stdio server is restarted); waits until the
    /// new connection is up, at most the connect timeout plus the largest backoff.
    pub async fn reconnect(&self) -> Result<()> {
        let s = &self.shared;
        if s.stop.is_cancelled() {
            return Err(Error::Runtime(format!(
                "MCP server '{}' was unmounted",
                self.server()
            )));
        }
        let mut rx = s.connected.subscribe();
        let seen = *rx.borrow_and_update();
        s.kick.notify_one();
        let limit = s.opts.connect_timeout + s.opts.max_backoff;
        let up = tokio::time::timeout(limit, async { rx.wait_for(|n| *n > seen).await.is_ok() })
            .await
            .unwrap_or(false);
        match up {
            true => Ok(()),
            _ => Err(Error::Runtime(format!(
                "MCP server '{}' did not reconnect within {:.1}s: {}",
                self.server(),
                limit.as_secs_f64(),
                s.link.down.read()
            ))),
        }
    }

    /// Unmount: unregister the tools, close the connection (stopping a stdio child). Calls in
    /// flight fail.
    pub async fn close(&self) {
        let s = &self.shared;
        s.stop.cancel();
        let names: Vec<String> = std::mem::take(&mut *s.names.lock()).into_iter().collect();
        for n in names {
            let ours = s
                .registry
                .get(&n)
                .ok()
                .and_then(|r| {
                    r.tool()
                        .as_any()
                        .downcast_ref::<MountedTool>()
                        .map(|t| Arc::ptr_eq(&t.link, &s.link))
                })
                .unwrap_or(false);
            if ours {
                s.registry.unregister(&n);
            }
        }
        s.proxied.lock().await.remove(&s.registry);
        // Wait (bounded) for the supervisor to close the connection.
        let mut rx = s.connected.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while s.link.peer.read().is_some() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
        })
        .await;
    }
}

impl Shared {
    async fn connect(&self) -> std::result::Result<Client, String> {
        let handler = UpstreamHandler {
            calls: self.link.calls.clone(),
        };
        connect(&self.transport, handler, self.opts.connect_timeout).await
    }

    fn up(&self, peer: Peer<RoleClient>) {
        *self.link.peer.write() = Some(peer);
        self.connected.send_modify(|n| *n += 1);
    }

    fn down(&self, why: String) {
        *self.link.down.write() = why;
        *self.link.peer.write() = None;
        // Wake `close` waiting for the connection to go.
        self.connected.send_modify(|_| {});
    }

    async fn shutdown(&self, client: Client) -> std::result::Result<(), String> {
        let mut client = client;
        client
            .close_with_timeout(Duration::from_secs(5))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Mirror the upstream's resources and prompts, within the connect timeout (an upstream
    /// that does not answer its list requests must not stall the supervisor).
    async fn sync_catalog(&self, peer: &Peer<RoleClient>) {
        let mut p = self.proxied.lock().await;
        if self.stop.is_cancelled() {
            return;
        }
        let sync = catalog::sync(&self.registry, &self.prefix, &self.link, peer, &mut p);
        if tokio::time::timeout(self.opts.connect_timeout, sync)
            .await
            .is_err()
        {
            log::warn!(
                target: "agent_runtime.mcp",
                "MCP server '{}': listing its resources and prompts took longer than {:.1}s",
                self.link.server(),
                self.opts.connect_timeout.as_secs_f64()
            );
        }
    }

    fn full_name(&self, upstream: &str) -> String {
        if self.prefix.is_empty() {
            upstream.to_string()
        } else {
            format!("{}.{upstream}", self.prefix)
        }
    }

    /// Who owns a registered name, for collision errors.
    fn owner_of(&self, name: &str) -> String {
        match self.registry.get(name) {
            Ok(r) => match r.tool().as_any().downcast_ref::<MountedTool>() {
                Some(t) => format!("the tool '{name}' of MCP server '{}'", t.server()),
                None => format!("the tool '{name}' already in the registry"),
            },
            Err(_) => format!("the tool '{name}'"),
        }
    }

    /// Mirror the upstream's tool list into the registry. `strict` (the first mount): any
    /// name taken by another tool fails the whole mount; later, such tools are skipped.
    async fn sync(&self, peer: &Peer<RoleClient>, strict: bool) -> Result<()> {
        let server = self.link.server();
        let listed = peer.list_all_tools().await.map_err(|e| {
            Error::Runtime(format!("MCP server '{server}': tools/list failed: {e}"))
        })?;
        let mut tools = Vec::with_capacity(listed.len());
        for t in listed {
            let mut spec = ToolSpec::new(self.full_name(&t.name))
                .description(t.description.as_deref().unwrap_or_default())
                .input_schema(Value::Object((*t.input_schema).clone()));
            spec.output_schema = t.output_schema.map(|s| Value::Object((*s).clone()));
            spec.schema_as_given = true;
            tools.push(Arc::new(MountedTool {
                spec,
                upstream: t.name.to_string(),
                link: self.link.clone(),
            }));
        }
        let mut names = self.names.lock();
        if self.stop.is_cancelled() {
            // Unmounted meanwhile: register nothing (close already took the names away).
            return Ok(());
        }
        let taken: Vec<String> = tools
            .iter()
            .map(|t| t.spec.name.as_str())
            .filter(|n| !names.contains(*n) && self.registry.contains(n))
            .map(|n| self.owner_of(n))
            .collect();
        if strict && !taken.is_empty() {
            return Err(Error::Registration(format!(
                "cannot mount MCP server '{server}': its tools collide with {}",
                taken.join(", ")
            )));
        }
        let mut now = BTreeSet::new();
        let mut errors = Vec::new();
        for t in tools {
            let name = t.spec.name.clone();
            let res = if names.contains(&name) {
                self.registry.replace(t as Arc<dyn Tool>).map(|_| ())
            } else {
                self.registry.register_arc(t as Arc<dyn Tool>)
            };
            match res {
                Ok(()) => {
                    now.insert(name);
                }
                Err(e) => errors.push(format!("'{name}': {e}")),
            }
        }
        for gone in names.difference(&now) {
            self.registry.unregister(gone);
        }
        *names = now;
        if !errors.is_empty() {
            let msg = format!(
                "MCP server '{server}': tools not mounted: {}",
                errors.join("; ")
            );
            if strict {
                for n in std::mem::take(&mut *names) {
                    self.registry.unregister(&n);
                }
                return Err(Error::Registration(msg));
            }
            log::warn!(target: "agent_runtime.mcp", "{msg}");
        }
        Ok(())
    }
}

/// Watch one connection after another until the mount is closed.
async fn supervise(s: Arc<Shared>, mut client: Client) {
    loop {
        let peer = client.peer().clone();
        let ct = client.cancellation_token();
        // This connection's upstream subscriptions, ended with it.
        let conn = s.stop.child_token();
        if subscribe::offered(&peer) {
            tokio::spawn(subscribe::follow(
                s.link.calls.clone(),
                peer.clone(),
                conn.clone(),
            ));
        }
        let mut wait = std::pin::pin!(client.waiting());
        let why = loop {
            tokio::select! {
                r = &mut wait => break match r {
                    Ok(reason) => format!("the connection ended ({reason:?})"),
                    Err(e) => format!("the connection task failed: {e}"),
                },
                _ = s.link.calls.tools_changed.notified() => {
                    if let Err(e) = s.sync(&peer, false).await {
                        log::warn!(target: "agent_runtime.mcp", "{e}");
                    }
                }
                _ = s.link.calls.catalog_changed.notified() => s.sync_catalog(&peer).await,
                _ = s.kick.notified() => {
                    ct.cancel();
                    let _ = (&mut wait).await;
                    break "reconnecting on request".to_string();
                }
                _ = s.stop.cancelled() => {
                    ct.cancel();
                    let _ = (&mut wait).await;
                    s.down("unmounted".into());
                    return;
                }
            }
        };
        conn.cancel();
        s.down(why);
        let mut delay = s.opts.min_backoff;
        client = loop {
            if s.stop.is_cancelled() {
                s.down("unmounted".into());
                return;
            }
            match s.connect().await {
                Ok(c) => break c,
                Err(e) => {
                    *s.link.down.write() = format!("reconnecting failed: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = s.kick.notified() => {}
                        _ = s.stop.cancelled() => {}
                    }
                    delay = (delay * 2).min(s.opts.max_backoff);
                }
            }
        };
        if s.stop.is_cancelled() {
            // Unmounted while connecting: drop this connection (killing a stdio child).
            let _ = s.shutdown(client).await;
            s.down("unmounted".into());
            return;
        }
        if let Err(e) = s.sync(client.peer(), false).await {
            log::warn!(target: "agent_runtime.mcp", "{e}");
        }
        s.up(client.peer().clone());
        s.sync_catalog(client.peer()).await;
    }
}
