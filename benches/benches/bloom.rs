//! Bloom filters side by side: every dsp-bloom variant beside fastbloom, sbbf-rs-safe and bloomfilter.
//!
//! Groups `Bloom::insert/<n>`, `Bloom::lookup_present/<n>` and `Bloom::lookup_absent/<n>` for
//! n = 1M and 10M random u64 keys (the same keys for every filter, from `DetRng`), 1 % target
//! false-positive rate. At setup each filter's measured false-positive rate (over 1M absent keys)
//! and bits per key are printed once to stderr, for BENCHMARKS.md, followed by an interleaved
//! min-of-10 timing of every filter's lookups with the ratios peer time / our time (robust against the
//! load spikes of a shared machine, which skew back-to-back criterion runs).
//!
//! Run: `cargo bench -p dsp-benches --bench bloom -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hash::BuildHasher;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsp_bloom::{
    BlockedBloomFilter, BloomFilter, ConcurrentBloomFilter, CountingBloomFilter,
    ScalableBloomFilter, ScalableConfig, Sizing,
};
use dsp_core::DetRng;
use foldhash::fast::FixedState;

const FPR: f64 = 0.01;
/// Absent keys used for the false-positive measurement and the absent-lookup benchmark.
const ABSENT: usize = 1_000_000;
/// Bits per key given to sbbf-rs-safe (its integer parameter) and to `dsp-blocked-11bpk`.
const SBBF_BITS_PER_KEY: usize = 11;

/// The operations every compared filter offers.
trait Filter {
    fn put(&mut self, key: u64);
    fn has(&self, key: u64) -> bool;
    fn memory_bits(&self) -> u64;

    /// Looks every key up (monomorphised per filter, so one dynamic call per batch).
    fn count_hits(&self, keys: &[u64]) -> u64 {
        keys.iter()
            .map(|&k| u64::from(self.has(black_box(k))))
            .sum()
    }
}

impl Filter for BloomFilter {
    fn put(&mut self, key: u64) {
        self.insert(&key);
    }
    fn has(&self, key: u64) -> bool {
        self.contains(&key)
    }
    fn memory_bits(&self) -> u64 {
        self.memory_bytes() * 8
    }
}

impl Filter for BlockedBloomFilter {
    fn put(&mut self, key: u64) {
        self.insert(&key);
    }
    fn has(&self, key: u64) -> bool {
        self.contains(&key)
    }
    fn memory_bits(&self) -> u64 {
        self.memory_bytes() * 8
    }
}

impl Filter for ConcurrentBloomFilter {
    fn put(&mut self, key: u64) {
        // Through `&self`, as concurrent users call it.
        self.insert(&key);
    }
    fn has(&self, key: u64) -> bool {
        self.contains(&key)
    }
    fn memory_bits(&self) -> u64 {
        self.memory_bytes() * 8
    }
}

impl Filter for CountingBloomFilter {
    fn put(&mut self, key: u64) {
        self.insert(&key);
    }
    fn has(&self, key: u64) -> bool {
        self.contains(&key)
    }
    fn memory_bits(&self) -> u64 {
        self.memory_bytes() * 8
    }
}

impl Filter for ScalableBloomFilter {
    fn put(&mut self, key: u64) {
        self.insert(&key).unwrap();
    }
    fn has(&self, key: u64) -> bool {
        self.contains(&key)
    }
    fn memory_bits(&self) -> u64 {
        self.memory_bytes() * 8
    }
}

impl<S: BuildHasher> Filter for fastbloom::BloomFilter<S> {
    fn put(&mut self, key: u64) {
        self.insert(&key);
    }
    fn has(&self, key: u64) -> bool {
        self.contains(&key)
    }
    fn memory_bits(&self) -> u64 {
        self.num_bits() as u64
    }
}

impl<S: BuildHasher> Filter for fastbloom::AtomicBloomFilter<S> {
    fn put(&mut self, key: u64) {
        self.insert(&key);
    }
    fn has(&self, key: u64) -> bool {
        self.contains(&key)
    }
    fn memory_bits(&self) -> u64 {
        self.num_bits() as u64
    }
}

/// sbbf-rs-safe takes hashes: give it the same foldhash our default hasher uses.
struct Sbbf(sbbf_rs_safe::Filter, FixedState);

impl Filter for Sbbf {
    fn put(&mut self, key: u64) {
        self.0.insert_hash(self.1.hash_one(key));
    }
    fn has(&self, key: u64) -> bool {
        self.0.contains_hash(self.1.hash_one(key))
    }
    fn memory_bits(&self) -> u64 {
        self.0.as_bytes().len() as u64 * 8
    }
}

impl Filter for bloomfilter::Bloom<u64> {
    fn put(&mut self, key: u64) {
        self.set(&key);
    }
    fn has(&self, key: u64) -> bool {
        self.check(&key)
    }
    fn memory_bits(&self) -> u64 {
        self.len()
    }
}

struct Keys {
    present: Vec<u64>,
    absent: Vec<u64>,
}

fn keys(n: usize) -> Keys {
    let mut rng = DetRng::from_seed(0x00B1_00F1_17E5);
    let mut absent_rng = rng.fork(1);
    let present = (0..n).map(|_| rng.next_u64()).collect();
    let absent = (0..ABSENT).map(|_| absent_rng.next_u64()).collect();
    Keys { present, absent }
}

fn label(n: usize) -> &'static str {
    if n >= 10_000_000 { "10M" } else { "1M" }
}

/// Builds the filter with every present key, prints its measured false-positive rate and bits
/// per key, and benchmarks insert, present lookup and absent lookup.
fn compare<F: Filter>(c: &mut Criterion, n: usize, keys: &Keys, name: &str, make: impl Fn() -> F) {
    let mut filter = make();
    for &k in &keys.present {
        filter.put(k);
    }
    assert!(
        keys.present.iter().step_by(97).all(|&k| filter.has(k)),
        "{name}: false negative"
    );
    let fp = keys.absent.iter().filter(|&&k| filter.has(k)).count();
    eprintln!(
        "bloom {} {name}: measured fpr {:.3}% over {} absent keys, {:.2} bits/key",
        label(n),
        fp as f64 * 100.0 / keys.absent.len() as f64,
        keys.absent.len(),
        filter.memory_bits() as f64 / n as f64,
    );
    let samples = if n >= 10_000_000 { 10 } else { 30 };

    let mut group = c.benchmark_group(format!("Bloom::insert/{}", label(n)));
    group
        .throughput(Throughput::Elements(1))
        .sample_size(samples);
    let mut fresh = make();
    let mut i = 0;
    group.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter(|| {
            fresh.put(black_box(keys.present[i]));
            i += 1;
            if i == keys.present.len() {
                i = 0;
            }
        })
    });
    group.finish();
    drop(fresh);

    for (op, set) in [
        ("lookup_present", &keys.present),
        ("lookup_absent", &keys.absent),
    ] {
        let mut group = c.benchmark_group(format!("Bloom::{op}/{}", label(n)));
        group
            .throughput(Throughput::Elements(1))
            .sample_size(samples);
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                let hit = filter.has(black_box(set[i]));
                i += 1;
                if i == set.len() {
                    i = 0;
                }
                hit
            })
        });
        group.finish();
    }
}

/// Calls `$visit(<leading args>, name, constructor)` for every compared filter.
macro_rules! each_filter {
    ($n:expr, $visit:ident($($arg:expr),*)) => {{
        let n: usize = $n;
        let items = n as u64;
        let sbbf_bits = sbbf_rs_safe::Filter::new(SBBF_BITS_PER_KEY, n).as_bytes().len() as u64 * 8;
        $visit($($arg,)* "dsp-blocked", || BlockedBloomFilter::new(items, FPR).unwrap());
        $visit($($arg,)* "dsp-blocked-11bpk", || {
            BlockedBloomFilter::with_sizing(Sizing::blocked_with_bits(sbbf_bits, items).unwrap())
                .unwrap()
        });
        $visit($($arg,)* "sbbf-rs-safe-11bpk", || {
            Sbbf(sbbf_rs_safe::Filter::new(SBBF_BITS_PER_KEY, n), FixedState::default())
        });
        $visit($($arg,)* "dsp-classic", || BloomFilter::new(items, FPR).unwrap());
        $visit($($arg,)* "fastbloom-foldhash", || {
            fastbloom::BloomFilter::with_false_pos(FPR)
                .hasher(FixedState::default())
                .expected_items(n)
        });
        $visit($($arg,)* "fastbloom-default", || {
            fastbloom::BloomFilter::with_false_pos(FPR).expected_items(n)
        });
        $visit($($arg,)* "dsp-concurrent", || ConcurrentBloomFilter::new(items, FPR).unwrap());
        $visit($($arg,)* "fastbloom-atomic-foldhash", || {
            fastbloom::AtomicBloomFilter::with_false_pos(FPR)
                .hasher(FixedState::default())
                .expected_items(n)
        });
        $visit($($arg,)* "dsp-counting", || CountingBloomFilter::new(items, FPR).unwrap());
        // Starting at n/15, n keys fill four stages (n/15 * (1 + 2 + 4 + 8)) almost exactly.
        $visit($($arg,)* "dsp-scalable-4stages", || {
            ScalableBloomFilter::new(ScalableConfig::new(items.div_ceil(15), FPR)).unwrap()
        });
        $visit($($arg,)* "bloomfilter", || {
            let seed: [u8; 32] =
                std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
            bloomfilter::Bloom::new_for_fp_rate_with_seed(n, FPR, &seed).unwrap()
        });
    }};
}

/// Builds a filter holding every present key, boxed for the interleaved timing.
fn build<F: Filter + 'static>(
    out: &mut Vec<(&'static str, Box<dyn Filter>)>,
    keys: &Keys,
    name: &'static str,
    make: impl Fn() -> F,
) {
    let mut filter = make();
    for &k in &keys.present {
        filter.put(k);
    }
    out.push((name, Box::new(filter)));
}

/// Rounds of the interleaved timing.
const ROUNDS: usize = 10;
/// Lookups per filter, per round and key set in the interleaved timing.
const BATCH: usize = 200_000;

/// The shared machines are noisy on a scale of seconds, which skews back-to-back criterion
/// runs of different filters. This times every filter in turn, round after round, on the same
/// 200 000 present and absent keys and keeps each filter's fastest round, so load spikes hit
/// all filters alike; it prints ns per lookup and the ratios the goals are about.
fn interleaved(n: usize, keys: &Keys) {
    let mut filters = Vec::new();
    each_filter!(n, build(&mut filters, keys));
    let sets = [&keys.present[..BATCH], &keys.absent[..BATCH]];
    let mut best = vec![[f64::MAX; 2]; filters.len()];
    for _ in 0..ROUNDS {
        for (i, (_, filter)) in filters.iter().enumerate() {
            for (j, set) in sets.iter().enumerate() {
                let start = std::time::Instant::now();
                black_box(filter.count_hits(set));
                let ns = start.elapsed().as_nanos() as f64 / set.len() as f64;
                best[i][j] = best[i][j].min(ns);
            }
        }
    }
    let find = |name: &str| filters.iter().position(|(n, _)| *n == name).unwrap();
    for (i, (name, _)) in filters.iter().enumerate() {
        eprintln!(
            "bloom {} interleaved min-of-{ROUNDS} {name}: present {:.2} ns, absent {:.2} ns",
            label(n),
            best[i][0],
            best[i][1]
        );
    }
    for (ours, peer) in [
        ("dsp-blocked-11bpk", "sbbf-rs-safe-11bpk"),
        ("dsp-blocked", "sbbf-rs-safe-11bpk"),
        ("dsp-classic", "fastbloom-foldhash"),
        ("dsp-classic", "fastbloom-default"),
        ("dsp-concurrent", "fastbloom-atomic-foldhash"),
        ("dsp-classic", "bloomfilter"),
    ] {
        let (o, p) = (find(ours), find(peer));
        eprintln!(
            "bloom {} ratio {peer} / {ours} (above 1: ours faster): present {:.2}, absent {:.2}",
            label(n),
            best[p][0] / best[o][0],
            best[p][1] / best[o][1]
        );
    }
}

fn run(c: &mut Criterion, n: usize) {
    let keys = keys(n);
    interleaved(n, &keys);
    each_filter!(n, compare(c, n, &keys));
}

fn bloom_1m(c: &mut Criterion) {
    run(c, 1_000_000);
}

fn bloom_10m(c: &mut Criterion) {
    run(c, 10_000_000);
}

criterion_group! {
    name = small;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bloom_1m
}
criterion_group! {
    name = large;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bloom_10m
}
criterion_main!(small, large);
