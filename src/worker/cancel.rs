//! Leases on a worker and what happens to a call whose caller went away (timeout,
//! cancellation): a sync call's worker is killed (it cannot be interrupted); an async call is
//! cancelled in the worker (`task.cancel()`), and only if it does not stop within
//! `cancel_grace` is its worker killed — after the other calls on it finished, as long as its
//! event loop still answers pings.

use std::sync::Arc;
use std::time::Duration;

use super::pool::Pool;
use super::process::Worker;
use super::protocol::{self, Request};
use crate::core::runtime;

/// A reserved place on a worker; released when dropped.
pub(super) struct Lease {
    pub pool: Pool,
    pub w: Arc<Worker>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.release(&self.w);
    }
}

/// Cleans up after a call whose caller went away.
pub(super) struct Abandon {
    pub lease: Option<Lease>,
    pub w: Arc<Worker>,
    pub id: u64,
    pub exclusive: bool,
    pub tool: Arc<str>,
}

impl Abandon {
    /// The call was answered: nothing to clean up.
    pub fn done(&mut self) {
        self.lease.take();
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if self.lease.is_none() {
            return;
        }
        if !self.w.pending.lock().map.contains_key(&self.id) {
            return;
        }
        if self.exclusive {
            // A sync call cannot be interrupted: replace the worker (killed before the lease
            // goes back, so it is never handed out again).
            self.w.kill(format!(
                "killed to stop an abandoned (timed out or cancelled) call to '{}'",
                self.tool
            ));
            self.lease.take();
            return;
        }
        let Some(lease) = self.lease.take() else {
            return;
        };
        let (id, tool) = (self.id, self.tool.clone());
        runtime::handle().spawn(cancel_async(lease, id, tool));
    }
}

/// Resolves once call `id` is no longer pending on `w`.
async fn settled(w: &Worker, id: u64) {
    loop {
        let n = w.settled.notified();
        let mut n = std::pin::pin!(n);
        n.as_mut().enable();
        if !w.pending.lock().map.contains_key(&id) {
            return;
        }
        n.await;
    }
}

async fn cancel_async(lease: Lease, id: u64, tool: Arc<str>) {
    let w = lease.w.clone();
    let grace = lease.pool.config().cancel_grace;
    if let Ok(frame) = protocol::encode(&Request::Cancel { id }) {
        let _ = w.write(&frame).await;
    }
    if tokio::time::timeout(grace, settled(&w, id)).await.is_ok() {
        return;
    }
    // It ignores cancellation. No new calls go to this worker; the calls already on it finish
    // first while its loop still turns, then the worker goes (with the stuck task).
    lease.pool.drain(&w);
    let why = format!(
        "killed because a cancelled call to '{tool}' did not stop within {:.1}s",
        grace.as_secs_f64()
    );
    let ping_every = grace.max(Duration::from_millis(100));
    w.stuck.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    loop {
        if w.dying.load(std::sync::atomic::Ordering::Acquire) {
            break;
        }
        let stuck = w.stuck.load(std::sync::atomic::Ordering::Acquire);
        let others = lease.pool.in_flight(&w).saturating_sub(stuck);
        if others == 0 {
            w.kill(why);
            break;
        }
        if !w.ping(ping_every).await {
            w.kill(format!(
                "{why}, and its event loop stopped answering ({others} other call(s) on this worker were still running)"
            ));
            break;
        }
        if tokio::time::timeout(ping_every, settled(&w, id))
            .await
            .is_ok()
        {
            // It did stop after all.
            w.stuck.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            return;
        }
    }
    drop(lease);
}
