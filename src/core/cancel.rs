//! A cancellation token that is cheap to clone and drop (an `Arc` increment, no lock): every
//! call carries one, so the hot path must not pay for a tree of mutexes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    notify: Notify,
    children: Mutex<Vec<Weak<Inner>>>,
}

/// Cancelled when the caller cancels, the call times out or the runtime shuts down. Tools that
/// work for long check [`CancelToken::is_cancelled`] or await [`CancelToken::cancelled`].
#[derive(Clone, Default)]
pub struct CancelToken(Arc<Inner>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Acquire)
    }

    /// Cancel this token and every child token; idempotent.
    pub fn cancel(&self) {
        cancel_inner(&self.0);
    }

    /// A token cancelled with this one (but not the other way round).
    pub fn child_token(&self) -> CancelToken {
        let child = CancelToken::new();
        {
            let mut kids = self.0.children.lock();
            kids.retain(|w| w.strong_count() > 0);
            kids.push(Arc::downgrade(&child.0));
        }
        if self.is_cancelled() {
            child.cancel();
        }
        child
    }

    /// Resolves once the token is cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

fn cancel_inner(inner: &Arc<Inner>) {
    if inner.cancelled.swap(true, Ordering::AcqRel) {
        return;
    }
    inner.notify.notify_waiters();
    let kids = std::mem::take(&mut *inner.children.lock());
    for k in kids {
        if let Some(k) = k.upgrade() {
            cancel_inner(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn cancel_wakes_waiters_and_children() {
        let t = CancelToken::new();
        let child = t.child_token();
        let grandchild = child.child_token();
        let w = {
            let g = grandchild.clone();
            tokio::spawn(async move { g.cancelled().await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!grandchild.is_cancelled());
        child.cancel();
        assert!(!t.is_cancelled());
        w.await.unwrap();
        assert!(grandchild.is_cancelled());
        t.cancel();
        assert!(t.child_token().is_cancelled());
        t.cancelled().await;
    }
}
