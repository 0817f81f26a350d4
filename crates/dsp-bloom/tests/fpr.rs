//! Measured false-positive rates against the targets, over 1M absent keys with fixed seeds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use dsp_bloom::{
    BlockedBloomFilter, BloomFilter, BloomHasher, ScalableBloomFilter, ScalableConfig, Sizing,
};
use dsp_core::DetRng;

const ABSENT: usize = 1_000_000;
const SEED: u64 = 0x005E_ED0F_B100;

/// `n` present keys and `ABSENT` absent keys (disjoint: present keys are even, absent odd).
fn keys(n: usize) -> (Vec<u64>, Vec<u64>) {
    let mut rng = DetRng::from_seed(SEED);
    let present = (0..n).map(|_| rng.next_u64() & !1).collect();
    let absent = (0..ABSENT).map(|_| rng.next_u64() | 1).collect();
    (present, absent)
}

fn rate(hits: usize) -> f64 {
    hits as f64 / ABSENT as f64
}

fn assert_within_10_percent(measured: f64, expected: f64, what: &str) {
    let ratio = measured / expected;
    assert!(
        (0.9..=1.1).contains(&ratio),
        "{what}: measured {measured:.5} vs expected {expected:.5} (ratio {ratio:.3})"
    );
}

#[test]
fn classic_filter_holds_the_target_rate() {
    let n = 1_000_000;
    let (present, absent) = keys(n);
    let mut f = BloomFilter::new(n as u64, 0.01).unwrap();
    for k in &present {
        f.insert(k);
    }
    assert!(present.iter().all(|k| f.contains(k)));
    let measured = rate(absent.iter().filter(|k| f.contains(*k)).count());
    assert!(f.expected_fpr() <= 0.01 && f.expected_fpr() > 0.0098);
    assert_within_10_percent(measured, 0.01, "classic vs target");
    assert_within_10_percent(measured, f.estimated_fpr(), "classic vs fill estimate");
}

#[test]
fn blocked_filter_matches_its_expected_rate() {
    let n = 500_000;
    let (present, absent) = keys(n);
    let mut f = BlockedBloomFilter::new(n as u64, 0.01).unwrap();
    for k in &present {
        f.insert(k);
    }
    assert!(present.iter().all(|k| f.contains(k)));
    let measured = rate(absent.iter().filter(|k| f.contains(*k)).count());
    assert!(f.expected_fpr() <= 0.01);
    assert_within_10_percent(measured, f.expected_fpr(), "blocked vs expected");
}

#[test]
fn scalable_filter_stays_under_target_and_matches_its_estimate() {
    // 1M items starting from 1M/15: four stages of 66 667 * (1, 2, 4, 8), all nearly full.
    let n = 1_000_000;
    let (present, absent) = keys(n);
    let mut f = ScalableBloomFilter::new(ScalableConfig::new(66_667, 0.01)).unwrap();
    for k in &present {
        f.insert(k).unwrap();
    }
    assert_eq!(f.stages(), 4);
    assert!(present.iter().all(|k| f.contains(k)));
    let measured = rate(absent.iter().filter(|k| f.contains(*k)).count());
    let expected = f.expected_fpr();
    assert!(expected < 0.01);
    assert!(
        measured < 0.01 * 1.1,
        "scalable measured {measured} over the 1% target"
    );
    assert_within_10_percent(measured, expected, "scalable vs expected");
}

#[test]
fn no_seed_degrades_the_rate() {
    // Symmetric, zero and all-ones seeds are exactly as good as any other.
    let n = 100_000;
    let (present, absent) = keys(n);
    let sizing = Sizing::classic(n as u64, 0.01).unwrap();
    for seed in [
        0,
        u64::MAX,
        0x5555_5555_5555_5555,
        0xAAAA_AAAA_AAAA_AAAA,
        0x0101_0101_0101_0101,
    ] {
        let mut f =
            BloomFilter::with_sizing_and_hasher(sizing, BloomHasher::with_seed(seed)).unwrap();
        for k in &present {
            f.insert(k);
        }
        let measured = rate(absent.iter().filter(|k| f.contains(*k)).count());
        assert_within_10_percent(measured, 0.01, &format!("seed {seed:#x}"));
    }
}
