//! End-to-end tests: PingPong nodes over real TCP on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Node, Req, free_addr};
use dsp_core::NodeId;
use dsp_core::example::Event;
use dsp_net::{FileStorage, NetConfig, NodeHandle, spawn};
use tokio::sync::mpsc;

const INTERVAL: Duration = Duration::from_millis(20);

fn configs(n: u64) -> Vec<NetConfig> {
    let addrs: BTreeMap<NodeId, _> = (1..=n).map(|i| (NodeId(i), free_addr())).collect();
    addrs
        .iter()
        .map(|(&id, &listen)| {
            let mut c = NetConfig::new(id, listen);
            c.connect_backoff = (Duration::from_millis(5), Duration::from_millis(50));
            c.peers = addrs
                .iter()
                .filter(|(p, _)| **p != id)
                .map(|(&p, &a)| (p, a))
                .collect();
            c
        })
        .collect()
}

async fn start(
    config: NetConfig,
    path: &std::path::Path,
) -> (NodeHandle<Node>, mpsc::Receiver<Event>) {
    let id = config.id;
    let peers: Vec<NodeId> = config.peers.keys().copied().collect();
    let storage = FileStorage::open(path).unwrap();
    spawn(config, storage, move |durable: &[u64]| {
        Node::new(id, peers, INTERVAL, durable)
    })
    .await
    .unwrap()
}

/// Waits until `events` reports that `peer`'s counter reached at least `counter`.
async fn until_heard(events: &mut mpsc::Receiver<Event>, peer: NodeId, counter: u64) {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Some(Event::PeerCounter {
                    peer: p,
                    counter: c,
                }) if p == peer && c >= counter => {
                    return;
                }
                Some(_) => {}
                None => panic!("event stream ended"),
            }
        }
    })
    .await
    .expect("peer counter never heard");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_exchange_pings_serve_requests_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfgs = configs(3);
    let mut nodes = Vec::new();
    for c in &cfgs {
        let path = dir.path().join(format!("{}.log", c.id));
        nodes.push(start(c.clone(), &path).await);
    }
    // Node 1 increments three times; each reply comes after the counter is durable.
    for expect in 1..=3 {
        assert_eq!(nodes[0].0.request(Req::Increment).await.unwrap(), expect);
    }
    assert_eq!(nodes[0].0.request(Req::Get).await.unwrap(), 3);
    // Nodes 2 and 3 hear node 1's counter through pings over TCP.
    for (handle, events) in nodes.iter_mut().skip(1) {
        let _ = handle;
        until_heard(events, NodeId(1), 3).await;
    }
    // Restart node 1 on the same address: its counter survived in the file.
    let (h1, _) = nodes.remove(0);
    h1.shutdown().await.unwrap();
    let path = dir.path().join(format!("{}.log", cfgs[0].id));
    let (h1, _e1) = start(cfgs[0].clone(), &path).await;
    assert_eq!(h1.request(Req::Get).await.unwrap(), 3);
    assert_eq!(h1.request(Req::Increment).await.unwrap(), 4);
    // The others reconnect to the restarted node and hear the new value.
    for (_, events) in nodes.iter_mut() {
        until_heard(events, NodeId(1), 4).await;
    }
    // Crash node 2 (no clean shutdown) right after an acknowledged increment: the acknowledged
    // value is durable, so the restarted node has it.
    let (h2, _) = nodes.remove(0);
    assert_eq!(h2.request(Req::Increment).await.unwrap(), 1);
    h2.abort();
    let path = dir.path().join(format!("{}.log", cfgs[1].id));
    // The aborted node's listener closes as its tasks wind down; retry the bind briefly.
    let (h2, _e2) = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let id = cfgs[1].id;
            let peers: Vec<NodeId> = cfgs[1].peers.keys().copied().collect();
            let storage = FileStorage::open(&path).unwrap();
            let factory = move |d: &[u64]| Node::new(id, peers, INTERVAL, d);
            match spawn(cfgs[1].clone(), storage, factory).await {
                Ok(started) => return started,
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await
    .expect("restart after abort never bound");
    assert_eq!(h2.request(Req::Get).await.unwrap(), 1);
    h2.shutdown().await.unwrap();
    h1.shutdown().await.unwrap();
    for (h, _) in nodes {
        assert_eq!(h.stats().bad_frames, 0);
        h.shutdown().await.unwrap();
    }
}
