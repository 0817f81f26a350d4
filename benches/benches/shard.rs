//! Placement lookup cost of every dsp-shard scheme beside `hashring`, `consistent_hash_ring`
//! and `jumphash`, plus the imbalance and keys-moved figures of each (printed once, to stderr).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hash::Hash;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsp_core::NodeId;
use dsp_shard::analysis::{load, movement, sample_keys};
use dsp_shard::{
    FixedPartitions, HashRing, HashRingConfig, JumpHash, KeyRanges, Maglev, MaglevConfig,
    Placement, Rendezvous, Result,
};

const VNODES: u32 = 160;
const LOOKUP_KEYS: usize = 1024;
const ANALYSIS_KEYS: usize = 100_000;
const SEED: u64 = 0xbe7c_0001;

/// A `hashring` virtual node: (physical node, replica index), as its docs suggest.
#[derive(Clone, Copy, Debug, Hash, PartialEq)]
struct VNode {
    node: u64,
    id: u32,
}

/// `hashring` 0.3 with 160 virtual nodes per node.
#[derive(Clone)]
struct PeerHashring {
    ring: hashring::HashRing<VNode>,
    nodes: Vec<NodeId>,
}

impl PeerHashring {
    fn new(nodes: &[NodeId]) -> Self {
        let mut ring = hashring::HashRing::new();
        ring.batch_add(
            nodes
                .iter()
                .flat_map(|n| (0..VNODES).map(move |id| VNode { node: n.0, id }))
                .collect(),
        );
        Self {
            ring,
            nodes: nodes.to_vec(),
        }
    }
}

/// `consistent_hash_ring` 0.8 with 160 virtual nodes per node.
#[derive(Clone)]
struct PeerChr {
    ring: consistent_hash_ring::Ring<u64>,
}

impl PeerChr {
    fn new(nodes: &[NodeId]) -> Self {
        let ring = consistent_hash_ring::RingBuilder::default()
            .vnodes(VNODES as usize)
            .nodes_iter(nodes.iter().map(|n| n.0))
            .build();
        Self { ring }
    }
}

/// `jumphash` 0.1 (SipHash-1-3 with fixed keys) over a node list.
#[derive(Clone)]
struct PeerJump {
    hasher: jumphash::JumpHasher,
    nodes: Vec<NodeId>,
}

impl PeerJump {
    fn new(nodes: &[NodeId]) -> Self {
        Self {
            hasher: jumphash::JumpHasher::new_with_keys(1, 2),
            nodes: nodes.to_vec(),
        }
    }
    fn slot<K: Hash>(&self, key: &K) -> usize {
        self.hasher.slot(key, self.nodes.len() as u32) as usize
    }
}

// The peers wrapped in the `Placement` trait so the same analysis runs over every scheme.

impl Placement for PeerHashring {
    fn owner(&self, key: &[u8]) -> Result<NodeId> {
        self.ring
            .get(&key)
            .map(|v| NodeId(v.node))
            .ok_or(dsp_shard::Error::NoNodes)
    }
    fn replicas_into(&self, key: &[u8], n: usize, out: &mut Vec<NodeId>) -> Result<()> {
        // hashring returns virtual nodes, repeating physical ones: dedup them here.
        out.clear();
        let all = self
            .ring
            .get_with_replicas(&key, usize::MAX)
            .ok_or(dsp_shard::Error::NoNodes)?;
        for v in all {
            if out.len() == n {
                break;
            }
            if !out.contains(&NodeId(v.node)) {
                out.push(NodeId(v.node));
            }
        }
        Ok(())
    }
    fn nodes(&self) -> Vec<NodeId> {
        self.nodes.clone()
    }
}

impl Placement for PeerChr {
    fn owner(&self, key: &[u8]) -> Result<NodeId> {
        self.ring
            .try_get(key)
            .map(|&n| NodeId(n))
            .ok_or(dsp_shard::Error::NoNodes)
    }
    fn replicas_into(&self, key: &[u8], n: usize, out: &mut Vec<NodeId>) -> Result<()> {
        out.clear();
        out.extend(self.ring.replicas(key).take(n).map(|&x| NodeId(x)));
        Ok(())
    }
    fn nodes(&self) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = self
            .ring
            .resident_ranges()
            .map(|r| NodeId(*r.node()))
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }
}

impl Placement for PeerJump {
    fn owner(&self, key: &[u8]) -> Result<NodeId> {
        if self.nodes.is_empty() {
            return Err(dsp_shard::Error::NoNodes);
        }
        Ok(self.nodes[self.slot(&key)])
    }
    fn replicas_into(&self, key: &[u8], n: usize, out: &mut Vec<NodeId>) -> Result<()> {
        out.clear();
        let first = self.slot(&key);
        let len = self.nodes.len();
        out.extend((0..n.min(len)).map(|i| self.nodes[(first + i) % len]));
        Ok(())
    }
    fn nodes(&self) -> Vec<NodeId> {
        self.nodes.clone()
    }
}

fn node_ids(n: u64) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

fn fixed(nodes: &[NodeId]) -> FixedPartitions {
    let mut p = FixedPartitions::new(1024).unwrap();
    for &n in nodes {
        p.add_node(n, 1).unwrap();
    }
    p
}

/// Key ranges split at `n - 1` sampled keys, range `i` owned by node `i + 1`.
fn ranges(nodes: &[NodeId]) -> KeyRanges {
    let mut splits = sample_keys(nodes.len() - 1, SEED ^ 0x5a5a);
    splits.sort();
    let mut r = KeyRanges::new(vec![nodes[0]]).unwrap();
    for (i, at) in splits.iter().enumerate() {
        let (_, right) = r.split(at).unwrap();
        r.set_replicas(right, vec![nodes[i + 1]]).unwrap();
    }
    r
}

/// Builds one scheme over `nodes`.
type Builder = fn(&[NodeId]) -> Box<dyn Placement>;

fn schemes() -> Vec<(&'static str, &'static str, Builder)> {
    vec![
        ("ring-160vn", "dsp-shard", |n| {
            Box::new(
                HashRing::with_nodes(HashRingConfig::with_vnodes(VNODES), n.iter().copied())
                    .unwrap(),
            )
        }),
        ("ring-160vn", "hashring", |n| Box::new(PeerHashring::new(n))),
        ("ring-160vn", "consistent_hash_ring", |n| {
            Box::new(PeerChr::new(n))
        }),
        ("jump", "dsp-shard", |n| {
            Box::new(JumpHash::with_nodes(n.iter().copied()).unwrap())
        }),
        ("jump", "jumphash", |n| Box::new(PeerJump::new(n))),
        ("rendezvous", "dsp-shard", |n| {
            Box::new(Rendezvous::with_nodes(n.iter().copied()).unwrap())
        }),
        ("maglev-65537", "dsp-shard", |n| {
            Box::new(Maglev::with_nodes(MaglevConfig::default(), n.iter().copied()).unwrap())
        }),
        ("fixed-1024", "dsp-shard", |n| Box::new(fixed(n))),
    ]
}

/// Prints load imbalance and movement on join / leave for every scheme, once.
fn print_figures() {
    let keys = sample_keys(ANALYSIS_KEYS, SEED);
    eprintln!(
        "\n| scheme | crate | nodes | std-dev/mean | max/mean | moved on join (ideal) | moved on leave (ideal) |"
    );
    eprintln!("|---|---|---|---|---|---|---|");
    for n in [10u64, 100] {
        let base = node_ids(n);
        let grown = node_ids(n + 1);
        // The last node leaves: the best case for jump hash, neutral for the others.
        let shrunk = node_ids(n - 1);
        for (scheme, krate, build) in schemes() {
            let before = build(&base);
            let report = load(&before, &keys).unwrap();
            let join = movement(&before, &build(&grown), &keys).unwrap().fraction();
            let leave = if scheme == "fixed-1024" {
                // The assignment depends on history: remove the node from the live assignment
                // (the join above already extends the same history).
                let mut after = fixed(&base);
                after.remove_node(NodeId(n)).unwrap();
                movement(&before, &after, &keys).unwrap().fraction()
            } else {
                movement(&before, &build(&shrunk), &keys)
                    .unwrap()
                    .fraction()
            };
            eprintln!(
                "| {scheme} | {krate} | {n} | {:.4} | {:.3} | {:.4} ({:.4}) | {:.4} ({:.4}) |",
                report.std_dev_over_mean(),
                report.max_over_mean(),
                join,
                1.0 / (n + 1) as f64,
                leave,
                1.0 / n as f64,
            );
        }
    }
    eprintln!();
}

fn bench_lookup(c: &mut Criterion) {
    print_figures();
    let keys = sample_keys(LOOKUP_KEYS, SEED);
    let mut group = c.benchmark_group("Shard::lookup");
    group.throughput(Throughput::Elements(LOOKUP_KEYS as u64));
    for n in [10u64, 100] {
        let nodes = node_ids(n);
        let param = format!("{n}-nodes");
        // Concrete types (no dyn dispatch) for the timed loops.
        let ring = HashRing::with_nodes(HashRingConfig::with_vnodes(VNODES), nodes.iter().copied())
            .unwrap();
        group.bench_with_input(
            BenchmarkId::new("ring-160vn/dsp-shard", &param),
            &keys,
            |b, keys| {
                b.iter(|| {
                    keys.iter()
                        .map(|k| ring.owner(k).unwrap().0)
                        .fold(0, u64::wrapping_add)
                })
            },
        );
        let peer = PeerHashring::new(&nodes);
        group.bench_with_input(
            BenchmarkId::new("ring-160vn/hashring", &param),
            &keys,
            |b, keys| {
                b.iter(|| {
                    keys.iter()
                        .map(|k| peer.ring.get(&k.as_slice()).unwrap().node)
                        .fold(0, u64::wrapping_add)
                })
            },
        );
        let chr = PeerChr::new(&nodes);
        group.bench_with_input(
            BenchmarkId::new("ring-160vn/consistent_hash_ring", &param),
            &keys,
            |b, keys| {
                b.iter(|| {
                    keys.iter()
                        .map(|k| *chr.ring.get(k.as_slice()))
                        .fold(0, u64::wrapping_add)
                })
            },
        );
        let jump = JumpHash::with_nodes(nodes.iter().copied()).unwrap();
        group.bench_with_input(
            BenchmarkId::new("jump/dsp-shard", &param),
            &keys,
            |b, keys| {
                b.iter(|| {
                    keys.iter()
                        .map(|k| jump.owner(k).unwrap().0)
                        .fold(0, u64::wrapping_add)
                })
            },
        );
        let pjump = PeerJump::new(&nodes);
        group.bench_with_input(
            BenchmarkId::new("jump/jumphash", &param),
            &keys,
            |b, keys| {
                b.iter(|| {
                    keys.iter()
                        .map(|k| pjump.nodes[pjump.slot(&k.as_slice())].0)
                        .fold(0, u64::wrapping_add)
                })
            },
        );
        let hrw = Rendezvous::with_nodes(nodes.iter().copied()).unwrap();
        group.bench_with_input(
            BenchmarkId::new("rendezvous/dsp-shard", &param),
            &keys,
            |b, keys| {
                b.iter(|| {
                    keys.iter()
                        .map(|k| hrw.owner(k).unwrap().0)
                        .fold(0, u64::wrapping_add)
                })
            },
        );
        let maglev = Maglev::with_nodes(MaglevConfig::default(), nodes.iter().copied()).unwrap();
        group.bench_with_input(
            BenchmarkId::new("maglev-65537/dsp-shard", &param),
            &keys,
            |b, keys| {
                b.iter(|| {
                    keys.iter()
                        .map(|k| maglev.owner(k).unwrap().0)
                        .fold(0, u64::wrapping_add)
                })
            },
        );
        let parts = fixed(&nodes);
        group.bench_with_input(
            BenchmarkId::new("fixed-1024/dsp-shard", &param),
            &keys,
            |b, keys| {
                b.iter(|| {
                    keys.iter()
                        .map(|k| parts.owner(k).unwrap().0)
                        .fold(0, u64::wrapping_add)
                })
            },
        );
        let kr = ranges(&nodes);
        group.bench_with_input(
            BenchmarkId::new("key-ranges/dsp-shard", &param),
            &keys,
            |b, keys| {
                b.iter(|| {
                    keys.iter()
                        .map(|k| kr.owner(k).unwrap().0)
                        .fold(0, u64::wrapping_add)
                })
            },
        );
    }
    group.finish();
}

fn bench_replicas(c: &mut Criterion) {
    let keys = sample_keys(LOOKUP_KEYS, SEED);
    let mut group = c.benchmark_group("Shard::replicas-3");
    group.throughput(Throughput::Elements(LOOKUP_KEYS as u64));
    let nodes = node_ids(10);
    let ring =
        HashRing::with_nodes(HashRingConfig::with_vnodes(VNODES), nodes.iter().copied()).unwrap();
    let mut out = Vec::with_capacity(3);
    group.bench_function("ring-160vn/dsp-shard/10-nodes", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for k in &keys {
                ring.replicas_into(k, 3, &mut out).unwrap();
                acc = acc.wrapping_add(out[2].0);
            }
            acc
        })
    });
    let chr = PeerChr::new(&nodes);
    group.bench_function("ring-160vn/consistent_hash_ring/10-nodes", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for k in &keys {
                acc = acc.wrapping_add(*chr.ring.replicas(k.as_slice()).nth(2).unwrap());
            }
            acc
        })
    });
    let hrw = Rendezvous::with_nodes(nodes.iter().copied()).unwrap();
    group.bench_function("rendezvous/dsp-shard/10-nodes", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for k in &keys {
                hrw.replicas_into(k, 3, &mut out).unwrap();
                acc = acc.wrapping_add(out[2].0);
            }
            acc
        })
    });
    group.finish();
    black_box(out);
}

criterion_group!(benches, bench_lookup, bench_replicas);
criterion_main!(benches);
