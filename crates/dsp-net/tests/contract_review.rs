//! Contract-review regression tests: a stopped node's storage must be quiescent (rules 4 and 7).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Node, Req, localhost};
use dsp_core::{Input, Instant, NodeId, Outputs, Protocol};
use dsp_net::{MemStorage, NetConfig, Storage, spawn};

/// Memory storage whose appends take `delay` (a slow fsync) and count when they start.
struct SlowDisk {
    inner: MemStorage<u64>,
    delay: Duration,
    started: Arc<AtomicUsize>,
}

impl Storage<u64> for SlowDisk {
    fn load(&mut self) -> dsp_net::Result<Vec<u64>> {
        self.inner.load()
    }
    fn append(&mut self, ops: &[u64]) -> dsp_net::Result<()> {
        self.started.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        self.inner.append(ops)
    }
}

fn slow_disk(mem: &MemStorage<u64>) -> (SlowDisk, Arc<AtomicUsize>) {
    let started = Arc::new(AtomicUsize::new(0));
    let disk = SlowDisk {
        inner: mem.clone(),
        delay: Duration::from_millis(200),
        started: Arc::clone(&started),
    };
    (disk, started)
}

fn pingpong(durable: &[u64]) -> Node {
    Node::new(NodeId(1), vec![], Duration::from_millis(50), durable)
}

/// Waits (bounded) until the storage has started `n` appends.
async fn until_started(started: &AtomicUsize, n: usize) {
    for _ in 0..500 {
        if started.load(Ordering::SeqCst) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("storage never started append {n}");
}

/// Rules 4 and 7: `abort` is a crash, so after it returns the old incarnation must never write
/// again. Otherwise a node restarted from the same storage is rebuilt from a prefix that then
/// grows behind its back (here: the restarted node reads counter 0 and the dead incarnation's
/// counters 1 and 2 land afterwards, interleaving with the new incarnation's own persists).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_leaves_no_zombie_storage_writes() {
    let mem = MemStorage::<u64>::new();
    let (disk, started) = slow_disk(&mem);
    let (node, _events) = spawn(NetConfig::new(NodeId(1), localhost()), disk, pingpong)
        .await
        .unwrap();
    // Two increments: the first append is in progress (slow), the second is queued behind it.
    let r = node.requester();
    let a = tokio::spawn(async move { r.request(Req::Increment).await });
    until_started(&started, 1).await;
    let r = node.requester();
    let b = tokio::spawn(async move { r.request(Req::Increment).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    node.abort();
    let _ = (a.await, b.await);

    // The restarted node is rebuilt from what is durable now...
    let at_restart = mem.snapshot();
    let (disk, _) = slow_disk(&mem);
    let (node, _events) = spawn(NetConfig::new(NodeId(1), localhost()), disk, pingpong)
        .await
        .unwrap();
    let expected = at_restart.last().copied().unwrap_or(0);
    assert_eq!(node.request(Req::Get).await.unwrap(), expected);
    // ...and nothing of the dead incarnation may be appended later.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        mem.snapshot(),
        at_restart,
        "the aborted incarnation kept writing after abort returned"
    );
    node.shutdown().await.unwrap();
}

/// A `PingPong` node that panics on its third request (a bug in the protocol: the task dies).
#[derive(Debug)]
struct PanicsOnThird {
    inner: Node,
    requests: u32,
}

impl Protocol for PanicsOnThird {
    type Message = <Node as Protocol>::Message;
    type Timer = <Node as Protocol>::Timer;
    type Persist = u64;
    type Request = Req;
    type Response = u64;
    type Event = <Node as Protocol>::Event;

    fn handle(&mut self, now: Instant, input: Input<Self>, out: &mut Outputs<Self>) {
        if matches!(input, Input::Request { .. }) {
            self.requests += 1;
            assert!(self.requests < 3, "protocol bug (deliberate, in a test)");
        }
        let mut inner = Outputs::new();
        let input = match input {
            Input::Start => Input::Start,
            Input::Message { from, msg } => Input::Message { from, msg },
            Input::Timer(t) => Input::Timer(t),
            Input::Request { id, request } => Input::Request { id, request },
            Input::Persisted(id) => Input::Persisted(id),
        };
        self.inner.handle(now, input, &mut inner);
        for o in inner.drain() {
            out.push(match o {
                dsp_core::Output::Send { to, msg } => dsp_core::Output::Send { to, msg },
                dsp_core::Output::Persist { id, op } => dsp_core::Output::Persist { id, op },
                dsp_core::Output::SetTimer { timer, at } => {
                    dsp_core::Output::SetTimer { timer, at }
                }
                dsp_core::Output::CancelTimer(t) => dsp_core::Output::CancelTimer(t),
                dsp_core::Output::Reply { id, response } => {
                    dsp_core::Output::Reply { id, response }
                }
                dsp_core::Output::Event(e) => dsp_core::Output::Event(e),
            });
        }
    }
}

/// Same for a node whose task died of a panic: once `wait` reports the node gone, its storage
/// must not change any more, or a restart from it races with the dead incarnation's writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicked_node_leaves_no_zombie_storage_writes() {
    let mem = MemStorage::<u64>::new();
    let (disk, started) = slow_disk(&mem);
    let (node, _events) = spawn(
        NetConfig::new(NodeId(1), localhost()),
        disk,
        |d: &[u64]| PanicsOnThird {
            inner: pingpong(d),
            requests: 0,
        },
    )
    .await
    .unwrap();
    let r = node.requester();
    let a = tokio::spawn(async move { r.request(Req::Increment).await });
    until_started(&started, 1).await;
    let r = node.requester();
    let b = tokio::spawn(async move { r.request(Req::Increment).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The third request kills the node task.
    assert!(node.requester().request(Req::Get).await.is_err());
    assert!(node.wait().await.is_err(), "the task panicked");
    let _ = (a.await, b.await);
    let after = mem.snapshot();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        mem.snapshot(),
        after,
        "the dead node kept writing after wait returned"
    );
}
