//! Which resource URIs clients are subscribed to, counted over every session and listen stream
//! that holds them — for a source that must itself subscribe somewhere to hear about changes
//! (a mounted MCP server: its upstream only notifies subscribers).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::catalog;

/// The subscribed URIs of one registry's resources.
pub struct Interest {
    counts: Mutex<HashMap<String, usize>>,
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for Interest {
    fn default() -> Self {
        Interest {
            counts: Mutex::new(HashMap::new()),
            changes: catalog::changes(),
        }
    }
}

/// One subscription to a URI, held until dropped.
pub struct Held {
    interest: Arc<Interest>,
    uri: String,
}

impl Interest {
    /// Subscribe to `uri` until the returned value is dropped.
    pub fn hold(self: &Arc<Self>, uri: &str) -> Held {
        let first = {
            let mut c = self.counts.lock();
            let n = c.entry(uri.to_string()).or_insert(0);
            *n += 1;
            *n == 1
        };
        if first {
            catalog::bump(&self.changes);
        }
        Held {
            interest: self.clone(),
            uri: uri.to_string(),
        }
    }

    /// The URIs someone is subscribed to, sorted.
    pub fn uris(&self) -> Vec<String> {
        let mut v: Vec<String> = self.counts.lock().keys().cloned().collect();
        v.sort();
        v
    }

    /// Wakes when a URI gains its first subscriber or loses its last.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let last = {
            let mut c = self.interest.counts.lock();
            match c.get_mut(&self.uri) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                Some(_) => {
                    c.remove(&self.uri);
                    true
                }
                None => false,
            }
        };
        if last {
            catalog::bump(&self.interest.changes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_holders_and_wakes_on_first_and_last() {
        let i = Arc::new(Interest::default());
        let mut rx = i.watch();
        rx.mark_unchanged();
        let a = i.hold("r://a");
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        let a2 = i.hold("r://a");
        assert!(!rx.has_changed().unwrap());
        assert_eq!(i.uris(), vec!["r://a".to_string()]);
        drop(a);
        assert!(!rx.has_changed().unwrap());
        assert_eq!(i.uris().len(), 1);
        drop(a2);
        assert!(rx.has_changed().unwrap());
        assert!(i.uris().is_empty());
    }
}
