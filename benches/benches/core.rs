//! `Clock::now` through dsp-core's abstraction beside the raw `std` call `SystemClock` wraps, and
//! the TSC-based `QuantaClock` (feature `quanta`, enabled here through dsp-throttle), so the cost
//! of injecting a clock into request-path crates is known.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dsp_core::{Clock, DetRng, ManualClock, QuantaClock, SystemClock};

fn clock_now(c: &mut Criterion) {
    let mut g = c.benchmark_group("Clock::now");
    g.throughput(Throughput::Elements(1));
    g.bench_function("std::time::Instant::now", |b| {
        b.iter(|| black_box(std::time::Instant::now()))
    });
    g.bench_function("dsp_core::SystemClock", |b| {
        let clock = SystemClock::new();
        b.iter(|| black_box(clock.now()))
    });
    g.bench_function("dsp_core::ManualClock", |b| {
        let clock = ManualClock::new();
        b.iter(|| black_box(clock.now()))
    });
    g.bench_function("dsp_core::QuantaClock", |b| {
        let clock = QuantaClock::new();
        b.iter(|| black_box(clock.now()))
    });
    let dynamic: Box<dyn Clock> = Box::new(SystemClock::new());
    g.bench_function("dsp_core::SystemClock as dyn Clock", |b| {
        b.iter(|| black_box(dynamic.now()))
    });
    g.finish();
}

fn rng(c: &mut Criterion) {
    let mut g = c.benchmark_group("DetRng");
    g.throughput(Throughput::Elements(1));
    g.bench_function("next_u64", |b| {
        let mut r = DetRng::from_seed(1);
        b.iter(|| black_box(r.next_u64()))
    });
    g.bench_function("gen_range(0..1000)", |b| {
        let mut r = DetRng::from_seed(1);
        b.iter(|| black_box(r.gen_range(0..1000)))
    });
    g.finish();
}

criterion_group!(benches, clock_now, rng);
criterion_main!(benches);
