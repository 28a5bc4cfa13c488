//! The crate's own tokio runtime: lazy, rebuilt after fork, shut down on demand.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use parking_lot::RwLock;
use tokio::runtime::{Handle, Runtime};

struct State {
    generation: u64,
    rt: Arc<Runtime>,
    /// Threads inside [`block_on`] waiting on this runtime (see [`shutdown`]).
    waiting: Arc<AtomicUsize>,
}

/// Bumped in the child after every `fork()`; cheaper than asking the kernel for the pid on
/// every call (a syscall each time).
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

extern "C" fn after_fork_in_child() {
    FORK_GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// Identifies the current process incarnation (changes in a forked child).
pub fn fork_generation() -> u64 {
    ATFORK.call_once(|| {
        // SAFETY: registers a handler that only touches an atomic, which is async-signal-safe
        // and therefore fine in the post-fork child.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
    FORK_GENERATION.load(Ordering::Acquire)
}

static STATE: RwLock<Option<State>> = RwLock::new(None);

fn build() -> Runtime {
    // Two cores here; tokio's default (one worker per core) is right. Blocking work (sync Python
    // callbacks) goes to the blocking pool, whose threads keep their Python thread state.
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("agent-runtime")
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start the tokio runtime: {e}"))
}

/// Handle of the process runtime, starting it on first use and after `fork()`.
pub fn handle() -> Handle {
    let generation = fork_generation();
    if let Some(s) = STATE.read().as_ref() {
        if s.generation == generation {
            return s.rt.handle().clone();
        }
    }
    let mut w = STATE.write();
    match w.as_ref() {
        Some(s) if s.generation == generation => return s.rt.handle().clone(),
        Some(_) => {
            // A forked child: the parent's worker threads do not exist here, so dropping the
            // runtime would wait for them forever. Leak it; the parent's copy is untouched.
            if let Some(old) = w.take() {
                std::mem::forget(old.rt);
            }
        }
        None => {}
    }
    let rt = Arc::new(build());
    let h = rt.handle().clone();
    *w = Some(State {
        generation,
        rt,
        waiting: Arc::default(),
    });
    EPOCH.fetch_add(1, Ordering::AcqRel);
    h
}

/// Run a future to completion on the current thread, inside the runtime's context (so it may
/// use tokio timers and spawn). Cheap when the future is ready at once.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let h = cached_handle();
    let _g = h.enter();
    // Unconstrained: on a tokio thread an exhausted coop budget would defer the wake-up until
    // the task yields to the scheduler, which a blocked thread never does.
    let mut f = std::pin::pin!(tokio::task::unconstrained(f));
    // Most tool futures are ready at once: skip the parking executor's set-up for them. Futures
    // re-register their waker on every poll, so polling first with a no-op waker is sound.
    if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut std::task::Context::from_waker(
        futures::task::noop_waker_ref(),
    )) {
        return v;
    }
    let _waiting = Waiting::enter();
    // A parking loop rather than `futures::executor::block_on`, which refuses to nest: a call
    // may be made from code running inside another one's poll on this thread (an event
    // listener, a progress callback).
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        // Wake-ups for an outer `block_on` on this thread just cause an extra poll.
        std::thread::park();
    }
}

struct Unpark(std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Counts a thread waiting in [`block_on`] on the current runtime. While there are any,
/// [`shutdown`] leaves that runtime running for them (their futures use its timers and I/O;
/// shutting it down under them makes tokio panic) and stops it once they are done.
struct Waiting(Option<Arc<AtomicUsize>>);

impl Waiting {
    fn enter() -> Self {
        let counter = STATE.read().as_ref().map(|s| s.waiting.clone());
        if let Some(c) = &counter {
            c.fetch_add(1, Ordering::AcqRel);
        }
        Waiting(counter)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Changes whenever a runtime is started or shut down, invalidating per-thread caches.
static EPOCH: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static CACHED: std::cell::RefCell<Option<(u64, u64, Handle)>> = const { std::cell::RefCell::new(None) };
}

/// [`handle`] without the global lock on the hot path: each thread caches the handle of the
/// current runtime.
pub fn cached_handle() -> Handle {
    let generation = fork_generation();
    let epoch = EPOCH.load(Ordering::Acquire);
    let hit = CACHED.with(|c| match c.borrow().as_ref() {
        Some((g, e, h)) if *g == generation && *e == epoch => Some(h.clone()),
        _ => None,
    });
    if let Some(h) = hit {
        return h;
    }
    let h = handle();
    let epoch = EPOCH.load(Ordering::Acquire);
    CACHED.with(|c| *c.borrow_mut() = Some((generation, epoch, h.clone())));
    h
}

/// Work to do before the runtime stops, ordered by [`ShutdownPhase`]. Layers that live on the
/// runtime (tasks, the worker pool above the core) register here, so the runtime imports none
/// of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ShutdownPhase {
    /// Cancel in-flight work first, so callers see `Cancelled` rather than a dead transport.
    CancelTasks,
    /// Then stop what runs on the runtime's I/O (worker processes: killed and reaped).
    StopServices,
}

type Hook = (ShutdownPhase, fn(Duration));
static HOOKS: parking_lot::Mutex<Vec<Hook>> = parking_lot::Mutex::new(Vec::new());

/// Run `hook(timeout)` at every [`shutdown`], in `phase` order (registering twice is a no-op).
pub fn on_shutdown(phase: ShutdownPhase, hook: fn(Duration)) {
    let mut h = HOOKS.lock();
    if !h
        .iter()
        .any(|(p, f)| *p == phase && std::ptr::fn_addr_eq(*f, hook))
    {
        h.push((phase, hook));
        h.sort_by_key(|(p, _)| *p);
    }
}

/// Stop the runtime: run the shutdown hooks (cancel tasks, kill and reap isolation workers),
/// then wait up to `timeout` for worker threads. The next use starts a fresh one.
pub fn shutdown(timeout: Duration) {
    // Copied out: a hook may register others (or call back in) without deadlocking.
    let hooks: Vec<Hook> = HOOKS.lock().clone();
    for (_, hook) in hooks {
        hook(timeout);
    }
    let old = STATE.write().take();
    EPOCH.fetch_add(1, Ordering::AcqRel);
    if let Some(s) = old {
        if s.generation != fork_generation() {
            std::mem::forget(s.rt);
            return;
        }
        let Ok(rt) = Arc::try_unwrap(s.rt) else {
            return; // not reachable: only `STATE` holds the runtime
        };
        // Stopping a runtime from inside a runtime context (a tool, a task) panics in tokio.
        let in_runtime = Handle::try_current().is_ok();
        if s.waiting.load(Ordering::Acquire) == 0 && !in_runtime {
            rt.shutdown_timeout(timeout);
            return;
        }
        // Calls are still waiting in `block_on` (their tasks were cancelled above; they end
        // soon, or never for a thread abandoned at process exit): stop the runtime once they
        // are gone, from a thread of its own. New calls start a fresh runtime meanwhile.
        let waiting = s.waiting;
        let reaper = std::thread::Builder::new()
            .name("agent-runtime-reaper".into())
            .spawn(move || {
                while waiting.load(Ordering::Acquire) > 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
                rt.shutdown_timeout(timeout);
            });
        if let Err(e) = reaper {
            log::error!("cannot start the runtime reaper thread: {e}");
        }
    }
}

/// A [`shutdown`] kills every shell session of the process: tests that call it run while no
/// test uses sessions (those take it for reading).
#[cfg(test)]
pub(crate) static TEST_SHUTDOWN_LOCK: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_can_use_timers_and_restart_after_shutdown() {
        let v = block_on(async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            7
        });
        assert_eq!(v, 7);
        let _sessions = TEST_SHUTDOWN_LOCK.blocking_write();
        shutdown(Duration::from_secs(1));
        let v = block_on(async { tokio::spawn(async { 8 }).await.unwrap() });
        assert_eq!(v, 8);
    }

    #[test]
    fn block_on_inside_a_task_survives_an_exhausted_coop_budget() {
        let h = handle().spawn(async {
            let mut n = 0;
            for _ in 0..1000 {
                // Each wait consumes coop budget of the surrounding task.
                n += block_on(async {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    std::thread::spawn(move || tx.send(1));
                    rx.await.unwrap_or(0)
                });
            }
            n
        });
        assert_eq!(block_on(h).ok(), Some(1000));
    }

    #[test]
    fn block_on_nests() {
        let v = block_on(async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            block_on(async {
                tokio::time::sleep(Duration::from_millis(2)).await;
                11
            })
        });
        assert_eq!(v, 11);
    }

    #[test]
    fn shutdown_never_pulls_the_runtime_from_under_a_waiting_caller_or_a_task() {
        let _sessions = TEST_SHUTDOWN_LOCK.blocking_write();
        // A caller waiting on a timer while another thread shuts down: its future keeps a
        // working runtime (tokio would panic "context is being shutdown" otherwise).
        let waiter = std::thread::spawn(|| {
            block_on(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                9
            })
        });
        std::thread::sleep(Duration::from_millis(50));
        shutdown(Duration::from_secs(1));
        assert_eq!(waiter.join().ok(), Some(9));
        // Shutting down from inside the runtime (a task) is deferred, not a panic.
        let h = handle().spawn(async { shutdown(Duration::from_secs(1)) });
        assert!(block_on(h).is_ok());
        assert_eq!(
            block_on(async { tokio::spawn(async { 10 }).await.unwrap() }),
            10
        );
    }
}
