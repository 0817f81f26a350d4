//! Hybrid logical clock `now` and `update` beside `uhlc`, plus version-vector and Lamport costs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dsp_clock::{
    AtomicHybridClock, HlcConfig, HlcTimestamp, HybridClock, LamportClock, VersionVector,
};
use dsp_core::{Clock, NodeId, SystemClock};

/// A constant physical clock for uhlc: about 2023-11 in NTP64 (seconds in the high 32 bits).
fn fixed_ntp() -> uhlc::NTP64 {
    uhlc::NTP64(3_909_000_000u64 << 32)
}

fn bench_hlc(c: &mut Criterion) {
    let mut group = c.benchmark_group("Hlc::now");
    group.throughput(Throughput::Elements(1));
    // All three read the system wall clock on every call, as uhlc's default does.
    let uhlc = uhlc::HLCBuilder::new()
        .with_max_delta(Duration::from_millis(500))
        .build();
    group.bench_function("system-clock/uhlc", |b| {
        b.iter(|| black_box(uhlc.new_timestamp()))
    });
    let mut ours = HybridClock::new(SystemClock::new(), HlcConfig::default()).unwrap();
    group.bench_function("system-clock/dsp-clock", |b| {
        b.iter(|| black_box(ours.now()))
    });
    let shared = AtomicHybridClock::new(SystemClock::new(), HlcConfig::default()).unwrap();
    group.bench_function("system-clock/dsp-clock-atomic", |b| {
        b.iter(|| black_box(shared.now()))
    });
    // The logic alone: a fixed physical clock, so every call takes the logical-increment path.
    let uhlc_fixed = uhlc::HLCBuilder::new().with_clock(fixed_ntp).build();
    group.bench_function("fixed-clock/uhlc", |b| {
        b.iter(|| black_box(uhlc_fixed.new_timestamp()))
    });
    let wall = SystemClock::new().wall();
    group.bench_function("fixed-clock/dsp-clock", |b| {
        b.iter(|| black_box(ours.now_at(black_box(wall))))
    });
    group.bench_function("fixed-clock/dsp-clock-atomic", |b| {
        b.iter(|| black_box(shared.now_at(black_box(wall))))
    });
    group.finish();

    let mut group = c.benchmark_group("Hlc::update");
    group.throughput(Throughput::Elements(1));
    // A remote timestamp from another clock, slightly in the past: the common case.
    let remote_uhlc = uhlc::HLCBuilder::new().build().new_timestamp();
    group.bench_function("system-clock/uhlc", |b| {
        b.iter(|| black_box(uhlc.update_with_timestamp(black_box(&remote_uhlc)).is_ok()))
    });
    let remote: HlcTimestamp = HybridClock::new(SystemClock::new(), HlcConfig::default())
        .unwrap()
        .now();
    // Note: ours also returns the receive event's new timestamp; uhlc only updates its state.
    group.bench_function("system-clock/dsp-clock", |b| {
        b.iter(|| black_box(ours.update(black_box(remote)).unwrap()))
    });
    group.bench_function("system-clock/dsp-clock-atomic", |b| {
        b.iter(|| black_box(shared.update(black_box(remote)).unwrap()))
    });
    let remote_fixed = uhlc_fixed.new_timestamp();
    // A remote stamped at the fixed physical time, like uhlc's.
    let remote_at_wall = HlcTimestamp::from_wall(wall);
    group.bench_function("fixed-clock/uhlc", |b| {
        b.iter(|| {
            black_box(
                uhlc_fixed
                    .update_with_timestamp(black_box(&remote_fixed))
                    .is_ok(),
            )
        })
    });
    group.bench_function("fixed-clock/dsp-clock", |b| {
        b.iter(|| {
            black_box(
                ours.update_at(black_box(wall), black_box(remote_at_wall))
                    .unwrap(),
            )
        })
    });
    group.bench_function("fixed-clock/dsp-clock-atomic", |b| {
        b.iter(|| {
            black_box(
                shared
                    .update_at(black_box(wall), black_box(remote_at_wall))
                    .unwrap(),
            )
        })
    });
    group.finish();
}

fn bench_logical(c: &mut Criterion) {
    let mut group = c.benchmark_group("Logical");
    group.throughput(Throughput::Elements(1));
    let mut lamport = LamportClock::new(NodeId(1));
    group.bench_function("lamport-observe/dsp-clock", |b| {
        b.iter(|| black_box(lamport.observe(black_box(7)).unwrap()))
    });
    let a: VersionVector = (0..8).map(|i| (NodeId(i), i * 3 + 1)).collect();
    let b_vv: VersionVector = (0..8).map(|i| (NodeId(i), 25 - i * 3)).collect();
    group.bench_function("vv-compare-8/dsp-clock", |b| {
        b.iter(|| black_box(a.compare(black_box(&b_vv))))
    });
    group.bench_function("vv-merge-8/dsp-clock", |b| {
        b.iter(|| black_box(a.merged(black_box(&b_vv))))
    });
    group.finish();
}

criterion_group!(benches, bench_hlc, bench_logical);
criterion_main!(benches);
