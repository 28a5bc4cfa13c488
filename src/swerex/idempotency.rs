//! `X-Request-ID` idempotency: a retried request (same id, same path) gets the stored response
//! instead of running again. Unlike SWE-ReX's server (which keeps only the last response),
//! several clients may retry concurrently: the store keeps the most recent responses within a
//! count and a byte budget, and a retry arriving while the first attempt still runs waits for
//! its response. If the first attempt is abandoned (its client disconnected), a retry runs.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use tokio::sync::watch;

pub const HEADER: &str = "x-request-id";

/// A response as stored for replay.
#[derive(Debug, Clone)]
pub struct Stored {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Stored {
    fn size(&self) -> usize {
        self.body.len() + 256
    }

    fn to_response(&self) -> Response {
        let mut r = (self.status, self.body.clone()).into_response();
        *r.headers_mut() = self.headers.clone();
        r
    }
}

enum Slot {
    /// Running: the receiver sees `Some` when it finishes.
    Pending(watch::Receiver<Option<Arc<Stored>>>),
    Done(Arc<Stored>),
}

/// What [`Store::begin`] says to do.
pub enum Begin {
    /// Replay this response.
    Replay(Arc<Stored>),
    /// Another attempt is running: wait on it.
    Wait(watch::Receiver<Option<Arc<Stored>>>),
    /// Run the request; report the response with [`Store::finish`] (dropping the ticket
    /// without finishing forgets the id).
    Run(Ticket),
}

pub struct Ticket {
    store: Arc<Store>,
    key: String,
    tx: Option<watch::Sender<Option<Arc<Stored>>>>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.tx.is_some() {
            // Abandoned: forget the pending slot so a retry runs.
            self.store.inner.lock().slots.remove(&self.key);
        }
    }
}

#[derive(Default)]
struct Inner {
    slots: HashMap<String, Slot>,
    /// Finished keys, oldest first (eviction order).
    order: VecDeque<String>,
    bytes: usize,
}

/// Bounded store of responses by request id.
pub struct Store {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_bytes: usize,
}

impl Store {
    pub fn new(max_entries: usize, max_bytes: usize) -> Arc<Self> {
        Arc::new(Store {
            inner: Mutex::new(Inner::default()),
            max_entries: max_entries.max(1),
            max_bytes,
        })
    }

    pub fn begin(self: &Arc<Self>, key: String) -> Begin {
        let mut g = self.inner.lock();
        match g.slots.get(&key) {
            Some(Slot::Done(s)) => return Begin::Replay(s.clone()),
            Some(Slot::Pending(rx)) => return Begin::Wait(rx.clone()),
            None => {}
        }
        let (tx, rx) = watch::channel(None);
        g.slots.insert(key.clone(), Slot::Pending(rx));
        Begin::Run(Ticket {
            store: self.clone(),
            key,
            tx: Some(tx),
        })
    }

    /// Store the response of a ticket's run and wake the waiters.
    pub fn finish(&self, mut t: Ticket, stored: Stored) {
        let stored = Arc::new(stored);
        let size = stored.size();
        {
            let mut g = self.inner.lock();
            if size > self.max_bytes {
                // Too large to keep: waiters get it, later retries run again.
                g.slots.remove(&t.key);
                log::warn!(
                    "SWE-ReX: response of request {} ({size} bytes) too large to keep for retries",
                    t.key
                );
            } else {
                g.slots.insert(t.key.clone(), Slot::Done(stored.clone()));
                g.order.push_back(t.key.clone());
                g.bytes += size;
                while g.order.len() > self.max_entries || g.bytes > self.max_bytes {
                    let Some(old) = g.order.pop_front() else {
                        break;
                    };
                    if let Some(Slot::Done(s)) = g.slots.remove(&old) {
                        g.bytes -= s.size();
                    }
                }
            }
        }
        if let Some(tx) = t.tx.take() {
            let _ = tx.send(Some(stored));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().slots.len()
    }
}

/// Axum middleware: replay, wait or run-and-store by `X-Request-ID`.
pub async fn layer(State(store): State<Arc<Store>>, req: Request, next: Next) -> Response {
    let Some(id) = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    else {
        return next.run(req).await;
    };
    let key = format!("{} {} {id}", req.method(), req.uri().path());
    let mut req = Some(req);
    loop {
        match store.begin(key.clone()) {
            Begin::Replay(s) => return s.to_response(),
            Begin::Wait(mut rx) => {
                // Err: the running attempt was abandoned; try again (this one may run).
                if let Ok(v) = rx.wait_for(Option::is_some).await {
                    if let Some(s) = v.as_ref() {
                        return s.to_response();
                    }
                }
            }
            Begin::Run(ticket) => {
                let Some(req) = req.take() else {
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                };
                let resp = next.run(req).await;
                let (parts, body) = resp.into_parts();
                let body = match axum::body::to_bytes(body, usize::MAX).await {
                    Ok(b) => b,
                    Err(e) => {
                        log::warn!("SWE-ReX: cannot buffer a response: {e}");
                        return Response::from_parts(parts, Body::empty());
                    }
                };
                let stored = Stored {
                    status: parts.status,
                    headers: parts.headers.clone(),
                    body: body.clone(),
                };
                store.finish(ticket, stored);
                return Response::from_parts(parts, Body::from(body));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(body: &'static str) -> Stored {
        Stored {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from_static(body.as_bytes()),
        }
    }

    #[test]
    fn replays_and_evicts_oldest() {
        let s = Store::new(2, 1 << 20);
        for k in ["a", "b", "c"] {
            let Begin::Run(t) = s.begin(k.into()) else {
                panic!("{k} ran before")
            };
            s.finish(t, stored(k));
        }
        assert!(matches!(s.begin("c".into()), Begin::Replay(r) if r.body == "c"));
        assert!(matches!(s.begin("b".into()), Begin::Replay(_)));
        // "a" was evicted (count bound): it runs again.
        assert!(matches!(s.begin("a".into()), Begin::Run(_)));
    }

    #[test]
    fn byte_budget_bounds_the_store() {
        let s = Store::new(100, 1000);
        for i in 0..50 {
            let Begin::Run(t) = s.begin(format!("k{i}")) else {
                panic!()
            };
            s.finish(t, stored("0123456789012345678901234567890123456789"));
        }
        assert!(s.len() <= 1000 / 296 + 1, "{}", s.len());
    }

    #[tokio::test]
    async fn a_retry_waits_for_the_running_attempt() {
        let s = Store::new(10, 1 << 20);
        let Begin::Run(t) = s.begin("x".into()) else {
            panic!()
        };
        let Begin::Wait(mut rx) = s.begin("x".into()) else {
            panic!("expected wait")
        };
        let s2 = s.clone();
        tokio::spawn(async move { s2.finish(t, stored("done")) });
        let v = rx.wait_for(Option::is_some).await.unwrap().clone().unwrap();
        assert_eq!(v.body, "done");
    }

    #[test]
    fn an_abandoned_attempt_lets_a_retry_run() {
        let s = Store::new(10, 1 << 20);
        let Begin::Run(t) = s.begin("x".into()) else {
            panic!()
        };
        drop(t);
        assert!(matches!(s.begin("x".into()), Begin::Run(_)));
    }
}
