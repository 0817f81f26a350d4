//! Transport-pattern tests over 127.0.0.1: bad frames, reconnects, batching, pipelining, the
//! waiting list and the idempotent receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{Node, Req, Resp, free_addr, localhost};
use dsp_core::NodeId;
use dsp_net::example::{Echo, EchoRequest};
use dsp_net::frame::{self, Frame, HEADER_LEN, MAGIC, RemoteError, VERSION};
use dsp_net::{Client, ClientConfig, Error, MemStorage, NetConfig, NodeHandle, Storage, spawn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type PingFrame = Frame<common::Msg, Req, Resp>;

fn pair_configs() -> (NetConfig, NetConfig) {
    let (a1, a2) = (free_addr(), free_addr());
    let backoff = (Duration::from_millis(5), Duration::from_millis(50));
    let mut c1 = NetConfig::new(NodeId(1), a1).with_peer(NodeId(2), a2);
    let mut c2 = NetConfig::new(NodeId(2), a2).with_peer(NodeId(1), a1);
    c1.connect_backoff = backoff;
    c2.connect_backoff = backoff;
    (c1, c2)
}

async fn echo(config: NetConfig) -> NodeHandle<Echo> {
    spawn(config, MemStorage::new(), |_: &[()]| Echo::new())
        .await
        .unwrap()
        .0
}

/// Relays through the peer, retrying lost attempts, within a bounded time.
async fn relay(node: &NodeHandle<Echo>, to: NodeId, payload: &[u8]) -> Vec<u8> {
    for _ in 0..100 {
        let req = EchoRequest::Relay {
            to,
            payload: payload.to_vec(),
        };
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(100), node.request(req)).await {
            return r.unwrap();
        }
    }
    panic!("relay never completed");
}

/// Waits (bounded) until the server closes `s`.
async fn closed_by_server(mut s: TcpStream) {
    let mut buf = [0u8; 256];
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("server kept the connection open");
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition never became true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_only_their_connection() {
    let (c1, c2) = pair_configs();
    let max = c1.max_frame;
    let n1 = echo(c1).await;
    let n2 = echo(c2).await;
    assert_eq!(relay(&n1, NodeId(2), b"before").await, b"before");
    // A healthy client connection, open throughout.
    let client = Client::<EchoRequest, Vec<u8>>::connect(ClientConfig::new(n1.local_addr()))
        .await
        .unwrap();
    assert_eq!(
        client
            .request(EchoRequest::Echo(b"x".to_vec()))
            .await
            .unwrap(),
        b"x"
    );

    let hello = frame::encode(&PingFrame::Hello { from: NodeId(7) }, max).unwrap();
    let mut corrupt = frame::encode(&PingFrame::Message(common::Msg::Ping(1)), max)
        .unwrap()
        .to_vec();
    *corrupt.last_mut().unwrap() ^= 0x55;
    let oversized = {
        let mut h = vec![MAGIC, VERSION];
        h.extend_from_slice(&(max as u32 + 1).to_le_bytes());
        h.extend_from_slice(&[0; 4]);
        h
    };
    let wrong_version = {
        let mut f = hello.to_vec();
        f[1] = VERSION + 1;
        f
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("oversized", oversized),
        ("wrong version", wrong_version),
        ("checksum", [hello.to_vec(), corrupt].concat()),
        (
            "message before hello",
            frame::encode(&PingFrame::Message(common::Msg::Ping(1)), max)
                .unwrap()
                .to_vec(),
        ),
        (
            "client request on a peer connection",
            [
                hello.to_vec(),
                frame::encode(
                    &PingFrame::ClientRequest {
                        client_id: 1,
                        seq: 1,
                        request: Req::Get,
                    },
                    max,
                )
                .unwrap()
                .to_vec(),
            ]
            .concat(),
        ),
    ];
    for (i, (name, bytes)) in cases.iter().enumerate() {
        let mut s = TcpStream::connect(n1.local_addr()).await.unwrap();
        s.write_all(bytes).await.unwrap();
        closed_by_server(s).await;
        wait_for(|| n1.stats().bad_frames == i as u64 + 1).await;
        // Nothing else is affected: the peer channel and the open client still work.
        assert_eq!(
            relay(&n1, NodeId(2), name.as_bytes()).await,
            name.as_bytes(),
            "after {name}"
        );
        assert_eq!(
            client
                .request(EchoRequest::Echo(b"y".to_vec()))
                .await
                .unwrap(),
            b"y"
        );
    }
    // The peer never saw a bad frame.
    assert_eq!(n2.stats().bad_frames, 0);
    n1.shutdown().await.unwrap();
    n2.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_timeout_closes_a_silent_connection() {
    let config = NetConfig {
        handshake_timeout: Duration::from_millis(50),
        ..NetConfig::new(NodeId(1), localhost())
    };
    let node = echo(config).await;
    let s = TcpStream::connect(node.local_addr()).await.unwrap();
    closed_by_server(s).await;
    wait_for(|| node.stats().bad_frames == 1).await;
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_channel_reconnects_after_peer_restarts() {
    let (c1, c2) = pair_configs();
    let n1 = echo(c1).await;
    let n2 = echo(c2.clone()).await;
    assert_eq!(relay(&n1, NodeId(2), b"one").await, b"one");
    let connects = n1.stats().connects;
    n2.shutdown().await.unwrap();
    // While n2 is down, messages queue (bounded) or are lost; the relay cannot complete.
    let lost = tokio::time::timeout(
        Duration::from_millis(50),
        n1.request(EchoRequest::Relay {
            to: NodeId(2),
            payload: b"lost".to_vec(),
        }),
    )
    .await;
    assert!(lost.is_err());
    let n2 = echo(c2).await;
    assert_eq!(relay(&n1, NodeId(2), b"two").await, b"two");
    assert!(
        n1.stats().connects > connects,
        "n1 opened a new connection to the restarted n2"
    );
    n1.shutdown().await.unwrap();
    n2.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_are_batched_into_fewer_writes() {
    let (mut c1, c2) = pair_configs();
    c1.batch_delay = Duration::from_millis(20);
    let n1 = Arc::new(echo(c1).await);
    let n2 = echo(c2).await;
    assert_eq!(relay(&n1, NodeId(2), b"warm").await, b"warm");
    let mut set = tokio::task::JoinSet::new();
    for i in 0..300u32 {
        let n1 = Arc::clone(&n1);
        set.spawn(async move { relay(&n1, NodeId(2), &i.to_le_bytes()).await == i.to_le_bytes() });
    }
    while let Some(ok) = set.join_next().await {
        assert!(ok.unwrap());
    }
    let s = n1.stats();
    assert!(s.frames_sent >= 301);
    assert!(s.batches < s.frames_sent, "no coalescing: {s:?}");
    Arc::into_inner(n1).unwrap().shutdown().await.unwrap();
    n2.shutdown().await.unwrap();
}

async fn pingpong_node(config: NetConfig, storage: MemStorage<u64>) -> NodeHandle<Node> {
    let id = config.id;
    spawn(config, storage, move |d: &[u64]| {
        Node::new(id, vec![], Duration::from_secs(1), d)
    })
    .await
    .unwrap()
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_client_keeps_many_requests_in_flight() {
    let storage = MemStorage::new();
    // The idempotency table keeps only a little more than one window of answers per client; the
    // client allocates sequence numbers inside its window, so none is refused as expired.
    let config = NetConfig {
        dedup_per_client: 40,
        ..NetConfig::new(NodeId(1), localhost())
    };
    let node = pingpong_node(config, storage.clone()).await;
    let config = ClientConfig {
        window: 32,
        ..ClientConfig::new(node.local_addr())
    };
    let client = Arc::new(Client::<Req, Resp>::connect(config).await.unwrap());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..500 {
        let c = Arc::clone(&client);
        set.spawn(async move { c.request(Req::Increment).await.unwrap() });
    }
    let mut values = Vec::new();
    while let Some(v) = set.join_next().await {
        values.push(v.unwrap());
    }
    values.sort_unstable();
    assert_eq!(
        values,
        (1..=500).collect::<Vec<u64>>(),
        "each increment ran exactly once"
    );
    assert_eq!(storage.len(), 500);
    node.shutdown().await.unwrap();
}

async fn raw_call(s: &mut TcpStream, client_id: u64, seq: u64, request: Req) -> PingFrame {
    let f = PingFrame::ClientRequest {
        client_id,
        seq,
        request,
    };
    s.write_all(&frame::encode(&f, 1 << 20).unwrap())
        .await
        .unwrap();
    let mut scratch = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        frame::read_frame(s, 1 << 20, &mut scratch),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_receiver_answers_duplicates_without_running_them() {
    let storage = MemStorage::new();
    let config = NetConfig {
        dedup_per_client: 2,
        ..NetConfig::new(NodeId(1), localhost())
    };
    let node = pingpong_node(config, storage.clone()).await;
    let mut s = TcpStream::connect(node.local_addr()).await.unwrap();
    let one = PingFrame::ClientResponse {
        seq: 1,
        result: Ok(1),
    };
    assert_eq!(raw_call(&mut s, 7, 1, Req::Increment).await, one);
    // The same (client, seq) again: answered from the table, not executed.
    assert_eq!(raw_call(&mut s, 7, 1, Req::Increment).await, one);
    // Also from a new connection (a client that reconnected to retry).
    let mut s2 = TcpStream::connect(node.local_addr()).await.unwrap();
    assert_eq!(raw_call(&mut s2, 7, 1, Req::Increment).await, one);
    assert_eq!(storage.len(), 1);
    assert_eq!(node.request(Req::Get).await.unwrap(), 1);
    // Another client's seq 1 is a different request.
    assert_eq!(
        raw_call(&mut s2, 8, 1, Req::Increment).await,
        PingFrame::ClientResponse {
            seq: 1,
            result: Ok(2)
        }
    );
    // With room for two answers per client, seq 1 of client 7 is forgotten after 2 and 3:
    // a late duplicate is refused rather than run again.
    raw_call(&mut s, 7, 2, Req::Get).await;
    raw_call(&mut s, 7, 3, Req::Get).await;
    assert_eq!(
        raw_call(&mut s, 7, 1, Req::Increment).await,
        PingFrame::ClientResponse {
            seq: 1,
            result: Err(RemoteError::Expired)
        }
    );
    assert_eq!(node.request(Req::Get).await.unwrap(), 2);
    node.shutdown().await.unwrap();
}

/// Storage that takes longer than the client's timeout.
struct Slow(MemStorage<u64>);

impl Storage<u64> for Slow {
    fn load(&mut self) -> dsp_net::Result<Vec<u64>> {
        self.0.load()
    }
    fn append(&mut self, ops: &[u64]) -> dsp_net::Result<()> {
        std::thread::sleep(Duration::from_millis(150));
        self.0.append(ops)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_run_a_request_once() {
    let storage = MemStorage::new();
    let (node, _) = spawn(
        NetConfig::new(NodeId(1), localhost()),
        Slow(storage.clone()),
        |d: &[u64]| Node::new(NodeId(1), vec![], Duration::from_secs(1), d),
    )
    .await
    .unwrap();
    let config = ClientConfig {
        timeout: Duration::from_millis(40),
        ..ClientConfig::new(node.local_addr())
    };
    let client = Client::<Req, Resp>::connect(config).await.unwrap();
    // A single attempt times out (the waiting list gives up on it)...
    assert!(matches!(client.request(Req::Get).await, Ok(0)));
    assert!(matches!(
        client.request(Req::Increment).await,
        Err(Error::Timeout)
    ));
    // ...and the retried one, with one sequence number, runs once even though it is resent.
    let v = client.request_idempotent(Req::Increment, 50).await.unwrap();
    assert_eq!(v, 2);
    assert_eq!(node.request(Req::Get).await.unwrap(), 2);
    assert_eq!(storage.len(), 2);
    node.shutdown().await.unwrap();
}

/// A "node" that accepts connections and reads requests but never answers.
async fn black_hole() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind(localhost()).await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            conns.push(s);
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_list_times_out_requests_to_a_silent_node() {
    let (addr, task) = black_hole().await;
    let config = ClientConfig {
        timeout: Duration::from_millis(50),
        ..ClientConfig::new(addr)
    };
    let client = Arc::new(Client::<Req, Resp>::connect(config).await.unwrap());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let c = Arc::clone(&client);
        set.spawn(async move { c.request(Req::Get).await });
    }
    while let Some(r) = set.join_next().await {
        assert!(matches!(r.unwrap(), Err(Error::Timeout)));
    }
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_list_fails_everything_when_the_node_dies() {
    let l = TcpListener::bind(localhost()).await.unwrap();
    let addr = l.local_addr().unwrap();
    // Reads the first few request bytes, then dies (closes the connection and its listener).
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; HEADER_LEN];
        s.read_exact(&mut buf).await.unwrap();
    });
    let config = ClientConfig {
        timeout: Duration::from_secs(30),
        ..ClientConfig::new(addr)
    };
    let client = Arc::new(Client::<Req, Resp>::connect(config).await.unwrap());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let c = Arc::clone(&client);
        set.spawn(async move { c.request(Req::Get).await });
    }
    // Far sooner than the 30 s timeout: the waiting list is cleaned up when the peer dies.
    let all = tokio::time::timeout(Duration::from_secs(5), async {
        let mut n = 0;
        while let Some(r) = set.join_next().await {
            assert!(matches!(
                r.unwrap(),
                Err(Error::ConnectionClosed | Error::Io(_))
            ));
            n += 1;
        }
        n
    })
    .await
    .expect("waiters were not cleaned up");
    assert_eq!(all, 5);
    server.await.unwrap();
    // The next request tries to reconnect and reports that nobody listens.
    assert!(matches!(client.request(Req::Get).await, Err(Error::Io(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_listener_and_every_connection() {
    let (c1, c2) = pair_configs();
    let n1 = echo(c1).await;
    let n2 = echo(c2).await;
    assert_eq!(relay(&n1, NodeId(2), b"up").await, b"up");
    let addr = n1.local_addr();
    let client = Client::<EchoRequest, Vec<u8>>::connect(ClientConfig::new(addr))
        .await
        .unwrap();
    assert_eq!(
        client
            .request(EchoRequest::Echo(b"a".to_vec()))
            .await
            .unwrap(),
        b"a"
    );
    let raw = TcpStream::connect(addr).await.unwrap();
    n1.shutdown().await.unwrap();
    // The listener is gone, and open connections were closed.
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener still accepting"
    );
    closed_by_server(raw).await;
    let r = client.request(EchoRequest::Echo(b"b".to_vec())).await;
    assert!(
        matches!(r, Err(Error::ConnectionClosed | Error::Io(_))),
        "{r:?}"
    );
    n2.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_queue_while_a_peer_is_down_up_to_a_bound() {
    let (mut c1, c2) = pair_configs();
    c1.peer_queue = 4;
    let n1 = Arc::new(echo(c1).await);
    // n2 is not running yet: n1's channel to it keeps failing to connect.
    let mut relays = tokio::task::JoinSet::new();
    for i in 0..10u8 {
        let n1 = Arc::clone(&n1);
        relays.spawn(async move {
            n1.request(EchoRequest::Relay {
                to: NodeId(2),
                payload: vec![i],
            })
            .await
        });
    }
    // Four pings wait in the queue; the other six are dropped and counted.
    wait_for(|| n1.stats().dropped_messages == 6).await;
    let n2 = echo(c2).await;
    // Once n2 is up, the queued pings are delivered and exactly their relays complete.
    let mut done = 0;
    while done < 4 {
        let r = tokio::time::timeout(Duration::from_secs(5), relays.join_next()).await;
        let payload = r
            .expect("queued relays never completed")
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(payload.len(), 1);
        done += 1;
    }
    let extra = tokio::time::timeout(Duration::from_millis(100), relays.join_next()).await;
    assert!(extra.is_err(), "a dropped message was delivered");
    relays.shutdown().await;
    assert_eq!(n1.stats().dropped_messages, 6);
    Arc::into_inner(n1).unwrap().shutdown().await.unwrap();
    n2.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_client_outlives_the_handshake_timeout() {
    let config = NetConfig {
        handshake_timeout: Duration::from_millis(30),
        ..NetConfig::new(NodeId(1), localhost())
    };
    let node = echo(config).await;
    let client = Client::<EchoRequest, Vec<u8>>::connect(ClientConfig::new(node.local_addr()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The client's hello completed the handshake: the connection is still the same one.
    assert_eq!(
        client
            .request(EchoRequest::Echo(b"late".to_vec()))
            .await
            .unwrap(),
        b"late"
    );
    assert_eq!(node.stats().bad_frames, 0);
    node.shutdown().await.unwrap();
}
