//! dsp-net over loopback: request round trips and messages per second, with and without batching
//! and pipelining.
//!
//! Groups:
//! - `Net::client_echo/<n>-in-flight/<batched|unbatched>`: a pipelined `Client` asks one
//!   `example::Echo` node to echo 16 bytes; `n` requests in flight on one connection.
//! - `Net::peer_relay/<n>-in-flight/<batched|unbatched>`: a local request makes node 1 send a
//!   16-byte message to node 2 over its single socket channel and get it back (two peer messages
//!   per request); `n` relays in flight.
//!
//! "unbatched" sets `batch_max_bytes = 1` on every writer (one frame per `write`), "batched" uses
//! the default (everything queued, up to 64 KiB, per `write`). Throughput is in requests; each
//! iteration runs `n` requests concurrently, so time per iteration / n is the cost per request and
//! the 1-in-flight time is the round-trip latency.
//!
//! Run: `cargo bench -p dsp-benches --bench net -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsp_core::NodeId;
use dsp_net::example::{Echo, EchoRequest};
use dsp_net::{ClientConfig, MemStorage, NetConfig, NodeClient, NodeHandle, spawn};
use tokio::runtime::Runtime;

const PAYLOAD: usize = 16;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn batch_bytes(batched: bool) -> usize {
    if batched { 64 * 1024 } else { 1 }
}

async fn echo_node(config: NetConfig) -> NodeHandle<Echo> {
    spawn(config, MemStorage::new(), |_: &[()]| Echo::new())
        .await
        .unwrap()
        .0
}

/// Runs `iters` rounds of `in_flight` concurrent calls of `call` and returns the elapsed time.
async fn run_rounds<F, Fut>(iters: u64, in_flight: usize, call: Arc<F>) -> Duration
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let call = Arc::clone(&call);
        workers.spawn(async move {
            for _ in 0..iters {
                call().await;
            }
        });
    }
    while let Some(r) = workers.join_next().await {
        r.unwrap();
    }
    start.elapsed()
}

fn client_echo(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("Net::client_echo");
    for batched in [true, false] {
        let config = NetConfig {
            batch_max_bytes: batch_bytes(batched),
            ..NetConfig::new(NodeId(1), free_addr())
        };
        let node = rt.block_on(echo_node(config));
        let client_config = ClientConfig {
            window: 64,
            batch_max_bytes: batch_bytes(batched),
            ..ClientConfig::new(node.local_addr())
        };
        let client = Arc::new(
            rt.block_on(NodeClient::<Echo>::connect(client_config))
                .unwrap(),
        );
        let label = if batched { "batched" } else { "unbatched" };
        for in_flight in [1usize, 64] {
            group.throughput(Throughput::Elements(in_flight as u64));
            let id = BenchmarkId::new(format!("{in_flight}-in-flight"), label);
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let client = Arc::clone(&client);
                    let call = Arc::new(move || {
                        let client = Arc::clone(&client);
                        async move {
                            let r = client.request(EchoRequest::Echo(vec![7; PAYLOAD])).await;
                            assert_eq!(r.unwrap().len(), PAYLOAD);
                        }
                    });
                    rt.block_on(run_rounds(iters, in_flight, call))
                })
            });
        }
        drop(client);
        rt.block_on(node.shutdown()).unwrap();
    }
    group.finish();
}

fn peer_relay(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("Net::peer_relay");
    for batched in [true, false] {
        let (a1, a2) = (free_addr(), free_addr());
        let mk = |id, listen, peer, peer_addr| NetConfig {
            batch_max_bytes: batch_bytes(batched),
            ..NetConfig::new(NodeId(id), listen).with_peer(NodeId(peer), peer_addr)
        };
        let n1 = Arc::new(rt.block_on(echo_node(mk(1, a1, 2, a2))));
        let n2 = rt.block_on(echo_node(mk(2, a2, 1, a1)));
        // Wait until the channel is up (messages sent before are queued, but keep timing clean).
        rt.block_on(async {
            let req = || EchoRequest::Relay {
                to: NodeId(2),
                payload: vec![1],
            };
            while tokio::time::timeout(Duration::from_millis(200), n1.request(req()))
                .await
                .is_err()
            {}
        });
        let label = if batched { "batched" } else { "unbatched" };
        for in_flight in [1usize, 64] {
            group.throughput(Throughput::Elements(in_flight as u64));
            let id = BenchmarkId::new(format!("{in_flight}-in-flight"), label);
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let n1 = Arc::clone(&n1);
                    let call = Arc::new(move || {
                        let n1 = Arc::clone(&n1);
                        async move {
                            let req = EchoRequest::Relay {
                                to: NodeId(2),
                                payload: vec![7; PAYLOAD],
                            };
                            assert_eq!(n1.request(req).await.unwrap().len(), PAYLOAD);
                        }
                    });
                    rt.block_on(run_rounds(iters, in_flight, call))
                })
            });
        }
        let n1 = Arc::into_inner(n1).unwrap();
        rt.block_on(n1.shutdown()).unwrap();
        rt.block_on(n2.shutdown()).unwrap();
    }
    group.finish();
}

criterion_group!(benches, client_echo, peer_relay);
criterion_main!(benches);
