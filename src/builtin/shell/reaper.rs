//! Cleanup that cannot await: a session dropped without `close`, or the runtime shutting
//! down. One dedicated thread kills, reaps and removes files, so `Drop` never blocks a tokio
//! worker on /proc scans, kill grace periods or waits.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::proc::Target;

/// What a session leaves behind.
pub(super) struct Leftover {
    pub target: Target,
    pub child: Option<tokio::process::Child>,
    pub dir: PathBuf,
}

impl Leftover {
    /// Blocking: kill every member (leaves first), reap the shell, remove the files.
    pub fn clean_up(mut self) {
        self.target.kill_blocking(Duration::from_millis(200));
        if let Some(child) = self.child.as_mut() {
            // `try_wait` needs no runtime; the shell was SIGKILLed, so this is quick.
            let end = Instant::now() + Duration::from_secs(2);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Queue `job` for the reaper thread (started on first use); inline if it cannot start.
pub(super) fn hand_off(job: Leftover) {
    static TX: OnceLock<Option<parking_lot::Mutex<mpsc::Sender<Leftover>>>> = OnceLock::new();
    let tx = TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Leftover>();
        std::thread::Builder::new()
            .name("agent-runtime-shell-reaper".into())
            .spawn(move || {
                for job in rx {
                    job.clean_up();
                }
            })
            .ok()
            .map(|_| parking_lot::Mutex::new(tx))
    });
    let job = match tx {
        Some(tx) => match tx.lock().send(job) {
            Ok(()) => return,
            Err(mpsc::SendError(job)) => job,
        },
        None => job,
    };
    job.clean_up();
}
