//! The pool's monitor thread: memory limit, idle shrink, and killing retired workers that
//! linger. /proc is read with no lock held (tokio tasks take the pool's state lock).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::pool::{retire, Inner, Pool};
use super::process::{rss_kb, Worker};

/// A retired worker that has not exited after this long is killed.
const RETIRE_GRACE: Duration = Duration::from_secs(5);

impl Pool {
    pub(super) fn ensure_monitor(&self) {
        let mut m = self.0.monitor.lock();
        if m.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let weak = Arc::downgrade(&self.0);
        *m = std::thread::Builder::new()
            .name("ar-worker-monitor".into())
            .spawn(move || monitor(weak))
            .ok();
    }

    /// Stop the monitor thread (and wait for it, unless called from it).
    pub(super) fn stop_monitor(&self) {
        *self.0.monitor_lock.lock() = true;
        self.0.monitor_wake.notify_all();
        if let Some(m) = self.0.monitor.lock().take() {
            if std::thread::current().id() != m.thread().id() {
                let _ = m.join();
            }
        }
        *self.0.monitor_lock.lock() = false;
    }
}

fn monitor(pool: Weak<Inner>) {
    loop {
        let Some(inner) = pool.upgrade() else { return };
        let p = Pool(inner);
        let cfg = p.config();
        // Busy workers whose memory to check, collected under the lock, read after it.
        let mut busy: Vec<Arc<Worker>> = Vec::new();
        let mut lingering: Vec<Arc<Worker>> = Vec::new();
        {
            let mut st = p.state();
            let now = Instant::now();
            let live = st.slots.iter().filter(|s| s.retiring.is_none()).count();
            let mut excess = live.saturating_sub(cfg.min_workers);
            for s in st.slots.iter_mut() {
                if let Some(since) = s.retiring {
                    if now.duration_since(since) > RETIRE_GRACE && s.in_flight == 0 {
                        lingering.push(s.w.clone());
                    }
                    continue;
                }
                if s.in_flight > 0 {
                    busy.push(s.w.clone());
                } else if let Some(idle) = cfg.idle_timeout {
                    if excess > 0 && now.duration_since(s.last_used) > idle {
                        s.retiring = Some(now);
                        excess -= 1;
                        retire(&s.w);
                    }
                }
            }
        }
        // Signals too are sent after the lock is released.
        for w in lingering {
            w.kill("did not exit within 5s of being retired");
        }
        if let Some(max) = cfg.max_rss_mb {
            for w in &busy {
                if w.dying.load(Ordering::Acquire) {
                    continue;
                }
                if let Some(kb) = rss_kb(w.pid) {
                    if kb > max.saturating_mul(1024) {
                        w.kill(format!(
                            "exceeded the memory limit: RSS {} MB > max_rss_mb={max}",
                            kb / 1024
                        ));
                    }
                }
            }
        }
        let tick = if !busy.is_empty() && cfg.max_rss_mb.is_some() {
            Duration::from_millis(10)
        } else {
            Duration::from_millis(200)
        };
        drop(busy);
        let mut stop = p.0.monitor_lock.lock();
        if *stop {
            return;
        }
        p.0.monitor_wake.wait_for(&mut stop, tick);
        if *stop {
            return;
        }
    }
}
