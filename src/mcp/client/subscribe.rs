//! Upstream resource subscriptions that follow ours: when a client of our MCP server subscribes
//! to a URI this mount proxies (static, or an instance of a proxied template), the mount
//! subscribes upstream (`resources/subscribe`), and unsubscribes when the last of our clients
//! lets go — an upstream that only notifies subscribers then still reaches them. Upstreams that
//! do not offer `resources.subscribe` are left alone (their unsolicited updates are forwarded
//! anyway, see `Calls::resource_updated`).

// `resources/subscribe` is what servers of the initialize-handshake protocols understand.
#![allow(deprecated)]

use std::collections::BTreeSet;
use std::sync::Arc;

use rmcp::model::{SubscribeRequestParams, UnsubscribeRequestParams};
use rmcp::service::{Peer, RoleClient};
use tokio_util::sync::CancellationToken;

use super::calls::Calls;

/// Whether the upstream offers `resources/subscribe`.
pub(super) fn offered(peer: &Peer<RoleClient>) -> bool {
    peer.peer_info()
        .and_then(|i| i.capabilities.resources.as_ref().and_then(|r| r.subscribe))
        .unwrap_or(false)
}

/// Keep the upstream's subscriptions (over `peer`) equal to the proxied URIs our clients are
/// subscribed to, until `stop` (the connection ended, or the mount closed).
pub(super) async fn follow(calls: Arc<Calls>, peer: Peer<RoleClient>, stop: CancellationToken) {
    let store = calls.registry().resources();
    let mut interest = store.interest().watch();
    let mut listed = store.watch_changes();
    let mut upstream: BTreeSet<String> = BTreeSet::new();
    // URIs the upstream refused, not asked again until our interest in them changes.
    let mut refused: BTreeSet<String> = BTreeSet::new();
    loop {
        let wanted: BTreeSet<String> = store
            .interest()
            .uris()
            .into_iter()
            .filter(|u| calls.owns(u))
            .collect();
        refused.retain(|u| wanted.contains(u));
        let step = async {
            for u in wanted.difference(&upstream).cloned().collect::<Vec<_>>() {
                if refused.contains(&u) {
                    continue;
                }
                match peer.subscribe(SubscribeRequestParams::new(u.clone())).await {
                    Ok(_) => {
                        upstream.insert(u);
                    }
                    Err(e) => {
                        log::warn!(
                            target: "agent_runtime.mcp",
                            "MCP server '{}': resources/subscribe {u} failed: {e}",
                            calls.server
                        );
                        refused.insert(u);
                    }
                }
            }
            for u in upstream.difference(&wanted).cloned().collect::<Vec<_>>() {
                // Gone from our side either way; a failure only costs unwanted updates.
                let _ = peer
                    .unsubscribe(UnsubscribeRequestParams::new(u.clone()))
                    .await;
                upstream.remove(&u);
            }
        };
        if stop.run_until_cancelled(step).await.is_none() {
            return;
        }
        tokio::select! {
            r = interest.changed() => if r.is_err() { return },
            r = listed.changed() => if r.is_err() { return },
            _ = stop.cancelled() => return,
        }
    }
}
