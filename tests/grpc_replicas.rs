//! `Client::connect_many` over several in-process servers: round robin, failover to the next
//! replica for calls that never started, and no re-send of a call lost mid-flight.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use agent_runtime::grpc::{not_started, serve, Client, ClientError, ServeOptions};
use agent_runtime::{FnTool, Registry, ToolSpec};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

struct Replica {
    addr: SocketAddr,
    ran: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<agent_runtime::Result<()>>,
}

/// A server whose `who` tool answers `index` and counts its executions.
async fn replica(index: usize) -> Replica {
    let reg = Registry::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    reg.register(FnTool::sync(ToolSpec::new("who"), move |_| {
        r.fetch_add(1, Ordering::SeqCst);
        Ok(json!(index))
    }))
    .unwrap();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let (addr_tx, addr_rx) = oneshot::channel();
    let task = tokio::spawn(serve(
        reg,
        None,
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Default::default()
        },
        move |a| {
            let _ = addr_tx.send(a);
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    Replica {
        addr: addr_rx.await.unwrap(),
        ran,
        stop: Some(stop),
        task,
    }
}

/// An address nothing listens on (bound, then closed).
fn dead_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_skips_a_dead_endpoint_and_fails_over_when_one_stops() {
    let mut a = replica(0).await;
    let b = replica(1).await;
    let c = Client::connect_many([a.addr.to_string(), dead_addr(), b.addr.to_string()]).unwrap();
    let mut per = [0usize; 2];
    for _ in 0..60 {
        let v = c.run_tool("who", &json!({})).await.unwrap();
        per[v.as_u64().unwrap() as usize] += 1;
    }
    // Spread over both live replicas; the dead one cost retries, never a failure.
    assert!(per[0] >= 20 && per[1] >= 20, "{per:?}");
    assert_eq!(per[0] + per[1], 60);
    let health: Vec<bool> = c.endpoints().into_iter().map(|(_, up)| up).collect();
    assert_eq!(health, [true, false, true]);

    // One replica goes away: every call still succeeds, on the other one, and runs once.
    a.stop.take().unwrap().send(()).unwrap();
    a.task.await.unwrap().unwrap();
    let before = (a.ran.load(Ordering::SeqCst), b.ran.load(Ordering::SeqCst));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let c = c.clone();
        set.spawn(async move { c.run_tool("who", &json!({})).await });
    }
    while let Some(r) = set.join_next().await {
        assert_eq!(r.unwrap().unwrap(), json!(1));
    }
    assert_eq!(a.ran.load(Ordering::SeqCst), before.0);
    assert_eq!(b.ran.load(Ordering::SeqCst), before.1 + 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_endpoints_down_fails_with_unavailable_after_bounded_retries() {
    let c = Client::connect_many([dead_addr(), dead_addr()]).unwrap();
    match c.run_tool("who", &json!({})).await {
        Err(ClientError::Status(s)) => {
            assert_eq!(s.code(), tonic::Code::Unavailable);
            assert!(not_started(&s), "{s:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Client::connect_many(Vec::<String>::new()),
        Err(ClientError::Connect(_))
    ));
}

/// A "server" that takes the connection and the request, then dies without answering: the
/// call may have run there, so it must fail, not be re-sent to the healthy replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_lost_mid_flight_is_not_resent() {
    let good = replica(1).await;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lost = l.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let acc = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            acc.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                // Read until the request's bytes arrived (preface, settings, headers, data),
                // then drop the connection.
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(3).any(|w| w == b"who") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    // Round robin starts at the first endpoint: the doomed one.
    let c = Client::connect_many([lost.to_string(), good.addr.to_string()]).unwrap();
    let r: Result<Value, _> = c.run_tool("who", &json!({})).await;
    match r {
        Err(ClientError::Status(s)) => assert!(!not_started(&s), "{s:?}"),
        other => panic!("the lost call must fail, got {other:?}"),
    }
    assert_eq!(
        good.ran.load(Ordering::SeqCst),
        0,
        "re-sent to the other replica"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    // The next call goes to the healthy replica and succeeds.
    assert_eq!(c.run_tool("who", &json!({})).await.unwrap(), json!(1));
}
