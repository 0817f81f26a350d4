//! Rate-limit check cost: dsp-throttle beside `governor` 0.10, direct and keyed, same quota,
//! 1 and 2 threads. Pairs run each crate on its real default clock (`direct/...`, `keyed-1024/...`,
//! `*-2-threads/...`: `RateLimiter::new` reads `dsp_core::QuantaClock`, `governor`'s `direct` and
//! `keyed` read governor's `QuantaClock`; both are quanta TSC readings, converted differently), on
//! the very same clock (`*-quanta-clock`: governor's quanta clock injected into dsp-throttle;
//! `*-std-clock`: both on `std::time::Instant`), and on frozen manual clocks (`*-manual-clock`),
//! so the algorithm cost is separated from the clock read.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dsp_core::{ManualClock, SystemClock, WallTime};
use governor::clock::{
    Clock as _, FakeRelativeClock, MonotonicClock, QuantaClock, QuantaInstant, Reference as _,
};
use governor::{Quota as GQuota, RateLimiter as GRateLimiter};

/// One billion cells per second with a burst of one billion: every check is admitted, so the
/// benchmark measures the admit path (a compare-and-swap for the direct limiters).
const RATE: u32 = 1_000_000_000;
const KEYS: u64 = 1024;

fn ours_quota() -> dsp_throttle::Quota {
    dsp_throttle::Quota::per_second(RATE).unwrap()
}

fn gov_quota() -> GQuota {
    GQuota::per_second(NonZeroU32::new(RATE).unwrap())
}

/// governor's default clock (quanta, TSC-based) behind `dsp_core::Clock`, so both crates can run
/// on the very same time source.
#[derive(Debug, Clone)]
struct SameClockAsGovernor {
    clock: QuantaClock,
    origin: QuantaInstant,
}

impl SameClockAsGovernor {
    fn new() -> Self {
        let clock = QuantaClock::default();
        let origin = clock.now();
        SameClockAsGovernor { clock, origin }
    }
}

impl dsp_core::Clock for SameClockAsGovernor {
    fn now(&self) -> dsp_core::Instant {
        dsp_core::Instant::from_nanos(self.clock.now().duration_since(self.origin).as_u64())
    }
    fn wall(&self) -> WallTime {
        WallTime::from_system_time(std::time::SystemTime::now())
    }
}

fn direct(c: &mut Criterion) {
    let mut g = c.benchmark_group("Throttle::check");
    g.throughput(Throughput::Elements(1));

    // Each crate on its default clock, as a user gets it from the plain constructor
    // (dsp: `dsp_core::QuantaClock`; governor: its `QuantaClock`).
    let ours = dsp_throttle::RateLimiter::new(ours_quota());
    g.bench_function("direct/dsp-throttle", |b| {
        b.iter(|| black_box(ours.check().is_ok()))
    });
    let gov = GRateLimiter::direct(gov_quota());
    g.bench_function("direct/governor", |b| {
        b.iter(|| black_box(gov.check().is_ok()))
    });

    // Both on governor's quanta clock.
    let ours = dsp_throttle::RateLimiter::with_clock(ours_quota(), SameClockAsGovernor::new());
    g.bench_function("direct-quanta-clock/dsp-throttle", |b| {
        b.iter(|| black_box(ours.check().is_ok()))
    });
    let gov = GRateLimiter::direct(gov_quota());
    g.bench_function("direct-quanta-clock/governor", |b| {
        b.iter(|| black_box(gov.check().is_ok()))
    });

    // Both on the std monotonic clock.
    let ours = dsp_throttle::RateLimiter::with_clock(ours_quota(), SystemClock::new());
    g.bench_function("direct-std-clock/dsp-throttle", |b| {
        b.iter(|| black_box(ours.check().is_ok()))
    });
    let gov = GRateLimiter::direct_with_clock(gov_quota(), MonotonicClock);
    g.bench_function("direct-std-clock/governor", |b| {
        b.iter(|| black_box(gov.check().is_ok()))
    });

    // Both on a manual clock, time frozen, quota exhausted: the deny path of the algorithm
    // alone, without a clock read.
    let q1 = dsp_throttle::Quota::per_second(1).unwrap();
    let ours = dsp_throttle::RateLimiter::with_clock(q1, ManualClock::new());
    ours.check().unwrap();
    g.bench_function("direct-deny-manual-clock/dsp-throttle", |b| {
        b.iter(|| black_box(ours.check().is_err()))
    });
    let gov = GRateLimiter::direct_with_clock(
        GQuota::per_second(NonZeroU32::new(1).unwrap()),
        FakeRelativeClock::default(),
    );
    gov.check().unwrap();
    g.bench_function("direct-deny-manual-clock/governor", |b| {
        b.iter(|| black_box(gov.check().is_err()))
    });
    g.finish();
}

fn keyed(c: &mut Criterion) {
    let mut g = c.benchmark_group("Throttle::check");
    g.throughput(Throughput::Elements(1));
    // Default clocks (plain constructors).
    let ours = dsp_throttle::KeyedRateLimiter::<u64>::new(ours_quota());
    g.bench_function("keyed-1024/dsp-throttle", |b| {
        let mut k = 0u64;
        b.iter(|| {
            k = (k + 1) % KEYS;
            black_box(ours.check_key(&k).is_ok())
        })
    });
    // governor's default keyed store (DashMap) on its default clock.
    let gov = GRateLimiter::<u64, _, _>::keyed(gov_quota());
    g.bench_function("keyed-1024/governor", |b| {
        let mut k = 0u64;
        b.iter(|| {
            k = (k + 1) % KEYS;
            black_box(gov.check_key(&k).is_ok())
        })
    });
    let ours = dsp_throttle::KeyedRateLimiter::<u64, _>::with_clock(
        ours_quota(),
        SameClockAsGovernor::new(),
    );
    g.bench_function("keyed-1024-quanta-clock/dsp-throttle", |b| {
        let mut k = 0u64;
        b.iter(|| {
            k = (k + 1) % KEYS;
            black_box(ours.check_key(&k).is_ok())
        })
    });
    g.bench_function("keyed-1024-quanta-clock/governor", |b| {
        let mut k = 0u64;
        b.iter(|| {
            k = (k + 1) % KEYS;
            black_box(gov.check_key(&k).is_ok())
        })
    });
    g.finish();
}

/// Runs `f(i)` on two threads at once for `iters` iterations each (thread 1 offsets `i` by
/// half the key space); returns the slower thread's time, so criterion reports the time per
/// check per thread.
fn two_threads<F: Fn(u64) -> bool + Sync>(iters: u64, f: &F) -> Duration {
    let barrier = Barrier::new(2);
    let times: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|t: u64| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..iters {
                        black_box(f(i + t * KEYS / 2));
                    }
                    start.elapsed()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    times.into_iter().max().unwrap_or_default()
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("Throttle::check");
    g.throughput(Throughput::Elements(1));
    // Default clocks first (plain constructors), then governor's quanta clock in both.
    let ours = Arc::new(dsp_throttle::RateLimiter::new(ours_quota()));
    g.bench_function("direct-2-threads/dsp-throttle", |b| {
        b.iter_custom(|iters| two_threads(iters, &|_| ours.check().is_ok()))
    });
    let gov = Arc::new(GRateLimiter::direct(gov_quota()));
    g.bench_function("direct-2-threads/governor", |b| {
        b.iter_custom(|iters| two_threads(iters, &|_| gov.check().is_ok()))
    });
    let ours = dsp_throttle::RateLimiter::with_clock(ours_quota(), SameClockAsGovernor::new());
    g.bench_function("direct-2-threads-quanta-clock/dsp-throttle", |b| {
        b.iter_custom(|iters| two_threads(iters, &|_| ours.check().is_ok()))
    });
    g.bench_function("direct-2-threads-quanta-clock/governor", |b| {
        b.iter_custom(|iters| two_threads(iters, &|_| gov.check().is_ok()))
    });
    let ours = dsp_throttle::KeyedRateLimiter::<u64>::new(ours_quota());
    g.bench_function("keyed-1024-2-threads/dsp-throttle", |b| {
        b.iter_custom(|iters| two_threads(iters, &|i| ours.check_key(&(i % KEYS)).is_ok()))
    });
    let gov = GRateLimiter::<u64, _, _>::keyed(gov_quota());
    g.bench_function("keyed-1024-2-threads/governor", |b| {
        b.iter_custom(|iters| two_threads(iters, &|i| gov.check_key(&(i % KEYS)).is_ok()))
    });
    let ours = dsp_throttle::KeyedRateLimiter::<u64, _>::with_clock(
        ours_quota(),
        SameClockAsGovernor::new(),
    );
    g.bench_function("keyed-1024-2-threads-quanta-clock/dsp-throttle", |b| {
        b.iter_custom(|iters| two_threads(iters, &|i| ours.check_key(&(i % KEYS)).is_ok()))
    });
    g.bench_function("keyed-1024-2-threads-quanta-clock/governor", |b| {
        b.iter_custom(|iters| two_threads(iters, &|i| gov.check_key(&(i % KEYS)).is_ok()))
    });
    g.finish();
}

criterion_group!(benches, direct, keyed, contended);
criterion_main!(benches);
