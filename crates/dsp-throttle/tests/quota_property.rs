//! Property tests: a GCRA limiter never admits more than its quota over any window.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dsp_core::{Instant, ManualClock};
use dsp_throttle::{KeyedRateLimiter, Quota, RateLimiter};
use proptest::prelude::*;

/// Checks that every window `[t_i, t_i + w]` holds at most `burst + floor(w / period)` admits.
fn assert_windows(admitted: &[u64], period: u64, burst: u64, windows: &[u64]) {
    for &w in windows {
        let bound = burst + w / period;
        let mut j = 0;
        for i in 0..admitted.len() {
            while j < admitted.len() && admitted[j] <= admitted[i] + w {
                j += 1;
            }
            let count = (j - i) as u64;
            assert!(
                count <= bound,
                "{count} admits in a window of {w} ns; bound {bound}"
            );
        }
    }
}

fn arrivals() -> impl Strategy<Value = Vec<u64>> {
    // Gaps from 0 (simultaneous) to 3 ms, in nanoseconds.
    prop::collection::vec(0u64..3_000_000, 1..400).prop_map(|gaps| {
        let mut t = 0;
        gaps.into_iter()
            .map(|g| {
                t += g;
                t
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn direct_limiter_never_exceeds_quota_over_any_window(
        times in arrivals(),
        period_us in 1u64..2_000,
        burst in 1u32..8,
    ) {
        let quota = Quota::with_period(Duration::from_micros(period_us))
            .unwrap()
            .allow_burst(burst)
            .unwrap();
        let limiter = RateLimiter::with_clock(quota, ManualClock::new());
        let period = period_us * 1_000;
        let mut admitted: Vec<u64> = Vec::new();
        for &t in &times {
            let ok = limiter.check_at(Instant::from_nanos(t)).is_ok();
            // Liveness: a request arriving at least one period after the last admitted one is
            // always admitted (the limiter never refuses more than the quota requires).
            if let Some(&last) = admitted.last() {
                if t >= last + period {
                    prop_assert!(ok, "refused at {} although the last admit was at {}", t, last);
                }
            } else {
                prop_assert!(ok, "the first request is always admitted");
            }
            if ok {
                admitted.push(t);
            }
        }
        let windows = [0, period / 2, period, 3 * period, 10 * period];
        assert_windows(&admitted, period, u64::from(burst), &windows);
    }

    #[test]
    fn check_n_never_exceeds_quota_over_any_window(
        times in arrivals(),
        sizes in prop::collection::vec(1u32..4, 400),
        burst in 3u32..6,
    ) {
        let quota = Quota::with_period(Duration::from_micros(500))
            .unwrap()
            .allow_burst(burst)
            .unwrap();
        let limiter = RateLimiter::with_clock(quota, ManualClock::new());
        let mut admitted = Vec::new();
        for (t, n) in times.iter().zip(sizes.iter()) {
            if limiter.check_n_at(*n, Instant::from_nanos(*t)).is_ok() {
                admitted.extend(std::iter::repeat_n(*t, *n as usize));
            }
        }
        assert_windows(&admitted, 500_000, u64::from(burst), &[0, 250_000, 1_000_000, 5_000_000]);
    }

    #[test]
    fn keyed_limiter_never_exceeds_quota_per_key(
        times in arrivals(),
        keys in prop::collection::vec(0u8..4, 400),
    ) {
        let clock = ManualClock::new();
        let quota = Quota::with_period(Duration::from_micros(700)).unwrap().allow_burst(3).unwrap();
        let limiter = KeyedRateLimiter::with_clock(quota, clock.clone());
        let mut admitted: [Vec<u64>; 4] = Default::default();
        for (t, k) in times.iter().zip(keys.iter()) {
            clock.set(Instant::from_nanos(*t)).unwrap();
            if limiter.check_key(k).is_ok() {
                admitted[*k as usize].push(*t);
            }
            // Evicting idle keys at any moment must not change any decision.
            if t % 7 == 0 {
                limiter.retain_recent();
            }
        }
        for a in &admitted {
            assert_windows(a, 700_000, 3, &[0, 700_000, 2_100_000]);
        }
    }
}
