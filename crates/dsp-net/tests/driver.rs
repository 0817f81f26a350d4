//! Driver-contract tests: persist ordering, fail-stop, timers under paused time, backpressure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Node, Req, localhost};
use dsp_core::{Input, Instant, NodeId, Outputs, PersistId, Protocol};
use dsp_net::{Client, ClientConfig, Error, MemStorage, NetConfig, Storage, spawn};
use serde::{Deserialize, Serialize};

/// A storage that takes a while to sync and records when each append returned.
struct SlowStorage {
    inner: MemStorage<u64>,
    delay: Duration,
    durable: Arc<AtomicUsize>,
}

impl Storage<u64> for SlowStorage {
    fn load(&mut self) -> dsp_net::Result<Vec<u64>> {
        self.inner.load()
    }
    fn append(&mut self, ops: &[u64]) -> dsp_net::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.append(ops)?;
        self.durable.fetch_add(ops.len(), Ordering::SeqCst);
        Ok(())
    }
}

fn pingpong(id: u64) -> impl FnOnce(&[u64]) -> Node {
    move |durable| Node::new(NodeId(id), vec![], Duration::from_millis(50), durable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_waits_until_append_returned() {
    let durable = Arc::new(AtomicUsize::new(0));
    let storage = SlowStorage {
        inner: MemStorage::new(),
        delay: Duration::from_millis(30),
        durable: Arc::clone(&durable),
    };
    let config = NetConfig::new(NodeId(1), localhost());
    let (node, _events) = spawn(config, storage, pingpong(1)).await.unwrap();
    // Local requests: the reply for value v comes only after v persists are durable.
    for v in 1..=3u64 {
        assert_eq!(node.request(Req::Increment).await.unwrap(), v);
        assert!(
            durable.load(Ordering::SeqCst) >= v as usize,
            "reply {v} before its persist"
        );
    }
    // Remote requests too, several in flight at once.
    let client = Client::<Req, u64>::connect(ClientConfig::new(node.local_addr()))
        .await
        .unwrap();
    let replies = tokio::join!(
        client.request(Req::Increment),
        client.request(Req::Increment),
        client.request(Req::Increment)
    );
    for r in [replies.0, replies.1, replies.2] {
        let v = r.unwrap();
        assert!(
            durable.load(Ordering::SeqCst) >= v as usize,
            "remote reply {v} before its persist"
        );
    }
    assert_eq!(node.request(Req::Get).await.unwrap(), 6);
    node.shutdown().await.unwrap();
}

/// A storage whose appends fail.
struct BrokenStorage;

impl Storage<u64> for BrokenStorage {
    fn load(&mut self) -> dsp_net::Result<Vec<u64>> {
        Ok(vec![41])
    }
    fn append(&mut self, _: &[u64]) -> dsp_net::Result<()> {
        Err(Error::Io(std::io::Error::other("disk on fire")))
    }
}

#[tokio::test]
async fn storage_failure_stops_the_node_without_replying() {
    let config = NetConfig::new(NodeId(1), localhost());
    let (node, _events) = spawn(config, BrokenStorage, pingpong(1)).await.unwrap();
    assert_eq!(
        node.request(Req::Get).await.unwrap(),
        41,
        "recovered from load"
    );
    // The reply depends on a persist that can never become durable: it must never be sent.
    assert!(matches!(
        node.request(Req::Increment).await,
        Err(Error::NodeStopped)
    ));
    assert!(matches!(
        node.request(Req::Get).await,
        Err(Error::NodeStopped)
    ));
    let err = node.shutdown().await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::NodeFailed {
                node: NodeId(1),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("disk on fire"));
}

#[tokio::test]
async fn storage_load_error_prevents_start() {
    struct Corrupt;
    impl Storage<u64> for Corrupt {
        fn load(&mut self) -> dsp_net::Result<Vec<u64>> {
            Err(Error::StorageCorrupt {
                offset: 8,
                reason: "test".into(),
            })
        }
        fn append(&mut self, _: &[u64]) -> dsp_net::Result<()> {
            Ok(())
        }
    }
    let r = spawn(NetConfig::new(NodeId(1), localhost()), Corrupt, pingpong(1)).await;
    assert!(matches!(r, Err(Error::StorageCorrupt { offset: 8, .. })));
}

#[tokio::test]
async fn invalid_config_is_rejected_before_binding() {
    let config = NetConfig {
        command_queue: 0,
        ..NetConfig::new(NodeId(1), localhost())
    };
    let r = spawn(config, MemStorage::new(), pingpong(1)).await;
    assert!(matches!(
        r,
        Err(Error::InvalidConfig {
            field: "command_queue",
            ..
        })
    ));
}

/// A protocol that scripts timers and reports when each fires.
#[derive(Default)]
struct Timers {
    started: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum T {
    A,
    B,
    C,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Cmd {
    SelfSend(u32),
}

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Started(u32),
    Fired(T, Instant),
    Got { from: NodeId, n: u32 },
    Persisted(PersistId),
}

impl Protocol for Timers {
    type Message = u32;
    type Timer = T;
    type Persist = u32;
    type Request = Cmd;
    type Response = ();
    type Event = Ev;

    fn handle(&mut self, now: Instant, input: Input<Self>, out: &mut Outputs<Self>) {
        match input {
            Input::Start => {
                self.started += 1;
                out.event(Ev::Started(self.started));
                out.set_timer(T::A, now + Duration::from_millis(100));
                out.set_timer(T::B, now + Duration::from_millis(70));
                out.set_timer(T::C, now + Duration::from_millis(30));
                // Replace A's deadline (an equal timer value) and cancel B.
                out.set_timer(T::A, now + Duration::from_millis(50));
                out.cancel_timer(T::B);
            }
            Input::Timer(t) => {
                if t == T::C {
                    out.persist(PersistId(1), 7);
                }
                out.event(Ev::Fired(t, now));
            }
            Input::Request {
                id,
                request: Cmd::SelfSend(n),
            } => {
                out.send(NodeId(9), n);
                out.send(NodeId(9), n + 1);
                out.reply(id, ());
            }
            Input::Message { from, msg } => out.event(Ev::Got { from, n: msg }),
            Input::Persisted(id) => out.event(Ev::Persisted(id)),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn timers_replace_cancel_and_never_fire_early() {
    let storage = MemStorage::new();
    let config = NetConfig::new(NodeId(9), localhost());
    let (node, mut events) = spawn(config, storage.clone(), |_: &[u32]| Timers::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(events.recv().await.unwrap());
    }
    // Never before the deadline; paused time reaches it exactly, give or take the timer wheel's
    // millisecond rounding.
    let on_time =
        |at: Instant, ms: u64| at >= Instant::from_millis(ms) && at <= Instant::from_millis(ms + 1);
    assert_eq!(seen[0], Ev::Started(1));
    // C fires at 30 ms and asks for a persist; every event after it waits for that persist.
    assert!(
        matches!(seen[1], Ev::Fired(T::C, at) if on_time(at, 30)),
        "{seen:?}"
    );
    // A fires once, at its replaced deadline (B was cancelled); the persist completes on a real
    // thread, so paused time may reach 50 ms before or after it.
    let fired_a = |e: &Ev| matches!(e, Ev::Fired(T::A, at) if on_time(*at, 50));
    let persisted = |e: &Ev| *e == Ev::Persisted(PersistId(1));
    assert!(
        (fired_a(&seen[2]) && persisted(&seen[3])) || (persisted(&seen[2]) && fired_a(&seen[3])),
        "{seen:?}"
    );
    assert_eq!(storage.snapshot(), [7]);
    // Messages to itself are delivered locally, in order.
    node.request(Cmd::SelfSend(1)).await.unwrap();
    assert_eq!(
        events.recv().await.unwrap(),
        Ev::Got {
            from: NodeId(9),
            n: 1
        }
    );
    assert_eq!(
        events.recv().await.unwrap(),
        Ev::Got {
            from: NodeId(9),
            n: 2
        }
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(events.try_recv().is_err(), "B must not fire, A only once");
    node.shutdown().await.unwrap();
}

/// A storage that blocks until released.
struct GatedStorage {
    go: std::sync::mpsc::Receiver<()>,
    entered: Arc<AtomicBool>,
}

impl Storage<u64> for GatedStorage {
    fn load(&mut self) -> dsp_net::Result<Vec<u64>> {
        Ok(Vec::new())
    }
    fn append(&mut self, _: &[u64]) -> dsp_net::Result<()> {
        self.entered.store(true, Ordering::SeqCst);
        self.go
            .recv()
            .map_err(|_| Error::Storage("gate dropped".into()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_command_queue_pushes_back() {
    let (go, rx) = std::sync::mpsc::channel();
    let entered = Arc::new(AtomicBool::new(false));
    let storage = GatedStorage {
        go: rx,
        entered: Arc::clone(&entered),
    };
    let config = NetConfig {
        command_queue: 2,
        max_unsynced_persists: 1,
        ..NetConfig::new(NodeId(1), localhost())
    };
    let (node, _events) = spawn(config, storage, pingpong(1)).await.unwrap();
    let requester = node.requester();
    // The first increment takes the only unsynced slot and blocks in storage; the node then stops
    // taking commands, so two more fill the queue and a third is refused.
    let first = tokio::spawn({
        let r = requester.clone();
        async move { r.request(Req::Increment).await }
    });
    while !entered.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let queued: Vec<_> = (0..2)
        .map(|_| {
            let r = requester.clone();
            tokio::spawn(async move { r.request(Req::Get).await })
        })
        .collect();
    let mut busy = false;
    for _ in 0..200 {
        // An accepted request stays queued (its reply comes later); a refused one fails at once.
        match tokio::time::timeout(Duration::from_millis(5), requester.try_request(Req::Get)).await
        {
            Ok(Err(Error::Busy)) => {
                busy = true;
                break;
            }
            Ok(other) => panic!("the node cannot answer while storage is blocked: {other:?}"),
            Err(_elapsed) => {}
        }
    }
    assert!(busy, "a full queue must refuse try_request");
    go.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap(), 1);
    for q in queued {
        go.send(()).ok();
        assert_eq!(q.await.unwrap().unwrap(), 1);
    }
    drop(go);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_works_while_the_command_queue_is_full() {
    let (go, rx) = std::sync::mpsc::channel::<()>();
    let entered = Arc::new(AtomicBool::new(false));
    let storage = GatedStorage {
        go: rx,
        entered: Arc::clone(&entered),
    };
    let config = NetConfig {
        command_queue: 1,
        max_unsynced_persists: 1,
        ..NetConfig::new(NodeId(1), localhost())
    };
    let (node, _events) = spawn(config, storage, pingpong(1)).await.unwrap();
    let r = node.requester();
    let first = tokio::spawn({
        let r = r.clone();
        async move { r.request(Req::Increment).await }
    });
    while !entered.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let queued = tokio::spawn({
        let r = r.clone();
        async move { r.request(Req::Get).await }
    });
    // Shutdown does not go through the (full, unread) command queue; it waits only for the
    // append in progress, which fails here because its gate is dropped.
    let stopping = tokio::spawn(node.shutdown());
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(go);
    let result = tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("shutdown hung")
        .unwrap();
    assert!(
        matches!(result, Err(Error::NodeFailed { .. })),
        "{result:?}"
    );
    assert!(matches!(first.await.unwrap(), Err(Error::NodeStopped)));
    assert!(matches!(queued.await.unwrap(), Err(Error::NodeStopped)));
}
