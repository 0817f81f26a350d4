//! The deterministic simulator and the linearizability checker of dsp-sim (no peer crate: these
//! measure ours).
//!
//! Groups:
//! - `Sim::run/pingpong-5`: one second of virtual time of five `dsp_core::example::PingPong`
//!   nodes pinging every 10 ms, without faults and under faults (5 % drop, 5 % duplication,
//!   random crashes, restarts, partitions, one-way blocks, heals and clock skew every 20-200 ms).
//!   Elements/s = simulated events processed per second on one core (deliveries, timers,
//!   persists, client requests and replies, fault ticks). Building the simulation is not timed.
//! - `lin::check/register`: checking linearizable single-register histories of 1,000 and 10,000
//!   operations from 4 concurrent clients (elements/s = operations checked per second).
//! - `lin::check/kv-16-keys`: a 10,000-operation key-value history over 16 keys (partitioned).
//!
//! Run: `cargo bench -p dsp-benches --bench sim -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsp_core::example::{Config, Persist, PingPong, Request};
use dsp_core::{DetRng, Instant, NodeId};
use dsp_sim::lin::{
    History, KvInput, KvModel, KvOutput, RegisterInput, RegisterModel, RegisterOutput,
};
use dsp_sim::{FaultPlan, NetworkConfig, Sim, SimConfig};

fn cluster(faults: bool) -> Sim<PingPong> {
    let ids: Vec<NodeId> = (1..=5).map(NodeId).collect();
    let peers = ids.clone();
    let network = if faults {
        NetworkConfig {
            drop_rate: 0.05,
            duplicate_rate: 0.05,
            ..Default::default()
        }
    } else {
        NetworkConfig::default()
    };
    let config = SimConfig {
        seed: 7,
        network,
        trace: false,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(config, ids, move |id, durable: &[Persist], _rng| {
        let config = Config {
            interval: Duration::from_millis(10),
        };
        PingPong::recover(id, peers.clone(), config, durable)
    })
    .unwrap();
    if faults {
        let plan = FaultPlan {
            interval: (Duration::from_millis(20), Duration::from_millis(200)),
            skew: 1,
            ..FaultPlan::default()
        };
        sim.set_fault_plan(plan).unwrap();
    }
    for i in 0..100 {
        sim.request(NodeId(1 + i % 5), Request::Increment);
    }
    sim
}

fn run(sim: &mut Sim<PingPong>) -> u64 {
    sim.run_for(Duration::from_secs(1)).unwrap();
    sim.report().steps
}

fn bench_sim(c: &mut Criterion) {
    let mut group = c.benchmark_group("Sim::run/pingpong-5");
    for (name, faults) in [("no-faults", false), ("faults", true)] {
        let events = run(&mut cluster(faults)); // deterministic: the same in every iteration
        group.throughput(Throughput::Elements(events));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || cluster(faults),
                |mut sim| black_box(run(&mut sim)),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

/// A linearizable register history: each operation takes effect at a random instant inside
/// its interval, against a real register.
fn register_history(
    ops: usize,
    clients: u64,
    seed: u64,
) -> History<RegisterInput<u64>, RegisterOutput<u64>> {
    let mut rng = DetRng::from_seed(seed);
    let mut free = vec![0u64; clients as usize];
    let mut plan = Vec::with_capacity(ops);
    for _ in 0..ops {
        let c = rng.gen_index(clients as usize);
        let call = free[c] + rng.gen_range(0..20);
        let effect = call + rng.gen_range(0..20);
        let ret = effect + rng.gen_range(0..20);
        free[c] = ret + 1;
        plan.push((effect, call, ret, c as u64, rng.gen_bool(0.4)));
    }
    plan.sort_unstable();
    let (mut value, mut next) = (0u64, 1u64);
    let mut records = Vec::with_capacity(ops);
    for (_, call, ret, c, write) in plan {
        if write {
            value = next;
            next += 1;
            records.push((
                call,
                ret,
                c,
                RegisterInput::Write(value),
                RegisterOutput::Written,
            ));
        } else {
            records.push((
                call,
                ret,
                c,
                RegisterInput::Read,
                RegisterOutput::Value(value),
            ));
        }
    }
    records.sort_by_key(|r| r.0);
    let mut h = History::new();
    for (call, ret, c, input, output) in records {
        let id = h.invoke(c, input, us(call));
        h.complete(id, output, us(ret)).unwrap();
    }
    h
}

fn us(micros: u64) -> Instant {
    Instant::from_nanos(micros * 1_000)
}

fn kv_history(ops: usize, keys: u64, seed: u64) -> History<KvInput<u64, u64>, KvOutput<u64>> {
    let mut h = History::new();
    for k in 0..keys {
        // Each key's operations come from a register history, shifted onto that key.
        for op in register_history(ops / keys as usize, 4, seed ^ k).ops() {
            let input = match op.input {
                RegisterInput::Write(v) => KvInput::Put { key: k, value: v },
                _ => KvInput::Get { key: k },
            };
            let output = match op.output() {
                Some(RegisterOutput::Value(0)) => KvOutput::Value(None),
                Some(RegisterOutput::Value(v)) => KvOutput::Value(Some(*v)),
                _ => KvOutput::Ok,
            };
            let (ret, _) = op.returned.as_ref().unwrap();
            let id = h.invoke(op.client + 10 * k, input, op.call);
            h.complete(id, output, *ret).unwrap();
        }
    }
    h
}

fn bench_lin(c: &mut Criterion) {
    let mut group = c.benchmark_group("lin::check/register");
    for ops in [1_000usize, 10_000] {
        let h = register_history(ops, 4, 1);
        let model = RegisterModel { initial: 0 };
        assert!(dsp_sim::check(&model, &h).is_linearizable());
        group.throughput(Throughput::Elements(ops as u64));
        group.bench_function(BenchmarkId::from_parameter(ops), |b| {
            b.iter(|| black_box(dsp_sim::check(&model, &h)));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("lin::check/kv-16-keys");
    let h = kv_history(10_000, 16, 2);
    let model = KvModel::<u64, u64>::new();
    assert!(dsp_sim::check(&model, &h).is_linearizable());
    group.throughput(Throughput::Elements(h.len() as u64));
    group.bench_function(BenchmarkId::from_parameter(h.len()), |b| {
        b.iter(|| black_box(dsp_sim::check(&model, &h)));
    });
    group.finish();
}

criterion_group!(benches, bench_sim, bench_lin);
criterion_main!(benches);
