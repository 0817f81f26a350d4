//! Bully and ring over real TCP with `dsp-net`: three nodes in one process on 127.0.0.1 agree on
//! a leader, and re-elect when it stops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use dsp_core::{DetRng, NodeId};
use dsp_election::{
    Bully, ElectionConfig, Event, Generation, LeaderView, Persist, Request, Response, Ring,
};
use dsp_net::{ClientConfig, FileStorage, NetConfig, NetProtocol, NodeClient, NodeHandle, spawn};
use tokio::sync::mpsc;

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn election_config(n: u64) -> ElectionConfig {
    ElectionConfig {
        heartbeat_interval: Duration::from_millis(50),
        leader_timeout: Duration::from_millis(300),
        timeout_jitter: Duration::from_millis(100),
        answer_timeout: Duration::from_millis(100),
        coordinator_timeout: Duration::from_millis(300),
        hop_timeout: Duration::from_millis(100),
        round_timeout: Duration::from_millis(1_500),
        ..ElectionConfig::with_members((1..=n).map(NodeId))
    }
}

type Node<P> = (NodeHandle<P>, mpsc::Receiver<Event>);

async fn start<P>(
    addrs: &BTreeMap<NodeId, SocketAddr>,
    id: NodeId,
    dir: &Path,
    build: fn(NodeId, ElectionConfig, DetRng, &[Persist]) -> P,
) -> Node<P>
where
    P: NetProtocol<Persist = Persist, Event = Event>,
{
    let mut config = NetConfig::new(id, addrs[&id]);
    config.connect_backoff = (Duration::from_millis(5), Duration::from_millis(50));
    config.peers = addrs
        .iter()
        .filter(|(p, _)| **p != id)
        .map(|(&p, &a)| (p, a))
        .collect();
    let storage = FileStorage::open(dir.join(format!("{id}.log"))).unwrap();
    let n = addrs.len() as u64;
    spawn(config, storage, move |durable: &[Persist]| {
        build(id, election_config(n), DetRng::from_seed(id.0), durable)
    })
    .await
    .unwrap()
}

async fn view<P>(node: &NodeHandle<P>) -> Option<LeaderView>
where
    P: NetProtocol<Request = Request, Response = Response>,
{
    match node.request(Request::WhoIsLeader).await {
        Ok(Response::Leader(v)) => v,
        _ => None,
    }
}

/// Polls until every node reports the same leader, which must be `expected`.
async fn agreed<P>(nodes: &[&NodeHandle<P>], expected: NodeId) -> LeaderView
where
    P: NetProtocol<Request = Request, Response = Response>,
{
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let mut views = Vec::new();
            for n in nodes {
                views.push(view(n).await);
            }
            if let Some(Some(first)) = views.first().copied()
                && first.leader == expected
                && views.iter().all(|v| *v == Some(first))
            {
                return first;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the nodes never agreed on a leader")
}

async fn three_nodes_agree_and_reelect<P>(
    build: fn(NodeId, ElectionConfig, DetRng, &[Persist]) -> P,
) where
    P: NetProtocol<Persist = Persist, Event = Event, Request = Request, Response = Response>,
{
    let dir = tempfile::tempdir().unwrap();
    let addrs: BTreeMap<NodeId, SocketAddr> = (1..=3).map(|i| (NodeId(i), free_addr())).collect();
    let mut nodes = Vec::new();
    for &id in addrs.keys() {
        nodes.push(start(&addrs, id, dir.path(), build).await);
    }
    let first = agreed(&[&nodes[0].0, &nodes[1].0, &nodes[2].0], NodeId(3)).await;
    assert!(first.generation > Generation::ZERO);

    // A remote client over TCP sees the same thing.
    let client: NodeClient<P> = NodeClient::<P>::connect(ClientConfig::new(addrs[&NodeId(1)]))
        .await
        .unwrap();
    let remote = tokio::time::timeout(Duration::from_secs(5), client.request(Request::WhoIsLeader))
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(remote, Response::Leader(Some(v)) if v.leader == NodeId(3)));
    drop(client);

    // The leader reported itself through its events.
    let mut saw_became_leader = false;
    while let Ok(e) = nodes[2].1.try_recv() {
        saw_became_leader |= matches!(e, Event::BecameLeader { .. });
    }
    assert!(saw_became_leader);

    // Stop the leader: the other two elect n2 in a newer generation.
    let (leader, _events) = nodes.pop().unwrap();
    leader.shutdown().await.unwrap();
    let second = agreed(&[&nodes[0].0, &nodes[1].0], NodeId(2)).await;
    assert!(second.generation > first.generation);

    for (node, _) in nodes {
        node.shutdown().await.unwrap();
    }
}

fn bully(id: NodeId, c: ElectionConfig, rng: DetRng, d: &[Persist]) -> Bully {
    Bully::recover(id, c, rng, d).unwrap()
}

fn ring(id: NodeId, c: ElectionConfig, rng: DetRng, d: &[Persist]) -> Ring {
    Ring::recover(id, c, rng, d).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bully_three_nodes_over_tcp_agree_and_reelect() {
    three_nodes_agree_and_reelect(bully).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_three_nodes_over_tcp_agree_and_reelect() {
    three_nodes_agree_and_reelect(ring).await;
}
