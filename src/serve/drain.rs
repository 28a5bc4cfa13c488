//! Graceful drain, shared by every transport: count requests in flight (a response body
//! included, until its last byte) so a server stops its sessions only once they are done, and
//! the shutdown sequence `signal → not ready → grace → stop accepting → in-flight calls finish`.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Notify;

use super::health::Readiness;

/// Requests in flight on one server.
#[derive(Clone, Default)]
pub struct InFlight(Arc<Counter>);

#[derive(Default)]
struct Counter {
    n: AtomicUsize,
    idle: Notify,
}

/// Held while one request is in flight.
pub struct Ticket(Arc<Counter>);

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl InFlight {
    pub fn enter(&self) -> Ticket {
        self.0.n.fetch_add(1, Ordering::AcqRel);
        Ticket(self.0.clone())
    }

    pub fn count(&self) -> usize {
        self.0.n.load(Ordering::Acquire)
    }

    /// Resolves when no request is in flight.
    pub async fn idle(&self) {
        loop {
            let notified = self.0.idle.notified();
            tokio::pin!(notified);
            // Registered before the check, so a drop in between is not missed.
            notified.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// A response body that holds a [`Ticket`] until it ended or was dropped (its size hint and
/// end-of-stream are the inner body's: a JSON reply keeps its `content-length`).
#[cfg(feature = "mcp")]
pub struct TrackedBody {
    inner: axum::body::Body,
    ticket: Option<Ticket>,
}

#[cfg(feature = "mcp")]
impl TrackedBody {
    pub fn wrap(response: axum::response::Response, ticket: Ticket) -> axum::response::Response {
        let (parts, inner) = response.into_parts();
        let body = TrackedBody {
            inner,
            ticket: Some(ticket),
        };
        axum::response::Response::from_parts(parts, axum::body::Body::new(body))
    }
}

#[cfg(feature = "mcp")]
impl http_body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let p = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) | Poll::Ready(Some(Err(_))) = p {
            self.ticket = None;
        }
        p
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The shutdown sequence of `serve`: after `signal` resolves, report not ready at once, keep
/// serving for `grace` (load balancers and Kubernetes endpoints notice and route elsewhere),
/// then resolve, so the servers stop accepting and finish their in-flight calls. A second
/// signal during the grace ends it early.
pub async fn after_grace<F, S>(readiness: &Readiness, grace: Duration, mut signal: S)
where
    S: FnMut() -> F,
    F: std::future::Future<Output = ()>,
{
    signal().await;
    readiness.start_drain();
    if grace.is_zero() {
        return;
    }
    log::info!("draining: not ready; still serving for {grace:?} before stopping");
    tokio::select! {
        _ = tokio::time::sleep(grace) => {}
        _ = signal() => log::info!("second signal: stopping now"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_every_ticket() {
        let f = InFlight::default();
        f.idle().await;
        let a = f.enter();
        let b = f.enter();
        assert_eq!(f.count(), 2);
        let waiter = tokio::spawn({
            let f = f.clone();
            async move { f.idle().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        waiter.await.unwrap();
        assert_eq!(f.count(), 0);
    }

    #[tokio::test]
    async fn not_ready_first_then_grace_and_a_second_signal_cuts_it() {
        // A second signal (here: immediate) ends even an endless grace.
        let r = Readiness::new();
        after_grace(&r, crate::core::duration::FOREVER, || async {}).await;
        assert!(r.is_draining());

        // One signal: not ready at once, the stop only after the grace.
        let r = Readiness::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rx = Arc::new(parking_lot::Mutex::new(Some(rx)));
        let task = tokio::spawn({
            let r = r.clone();
            async move {
                after_grace(&r, Duration::from_millis(300), || {
                    let rx = rx.lock().take();
                    async move {
                        match rx {
                            Some(rx) => drop(rx.await),
                            None => std::future::pending::<()>().await,
                        }
                    }
                })
                .await
            }
        });
        tokio::task::yield_now().await;
        assert!(!r.is_draining());
        tx.send(()).unwrap();
        r.draining().await;
        assert!(!task.is_finished());
        task.await.unwrap();
    }
}
