//! Property tests: backoff delays stay within bounds; retry state respects max elapsed and the
//! deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use dsp_core::{DetRng, Instant};
use dsp_retry::{
    Backoff, BackoffConfig, BackoffKind, CallOptions, Decision, Next, RetryPolicy, RetryState,
};
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = BackoffKind> {
    prop::sample::select(vec![
        BackoffKind::Constant,
        BackoffKind::Exponential,
        BackoffKind::FullJitter,
        BackoffKind::DecorrelatedJitter,
    ])
}

fn config() -> impl Strategy<Value = BackoffConfig> {
    (kind(), 1u64..1_000, 1u64..100, 1.0f64..4.0).prop_map(|(kind, base, factor, multiplier)| {
        BackoffConfig {
            kind,
            base: Duration::from_millis(base),
            multiplier,
            max_delay: Duration::from_millis(base * factor),
        }
    })
}

proptest! {
    #[test]
    fn backoff_delays_stay_within_bounds(config in config(), seed in any::<u64>()) {
        let mut prev = Duration::ZERO;
        for (n, d) in Backoff::new(config, DetRng::from_seed(seed)).take(64).enumerate() {
            prop_assert!(d <= config.max_delay, "{d:?} > max");
            match config.kind {
                BackoffKind::Constant => prop_assert_eq!(d, config.base),
                BackoffKind::Exponential => {
                    prop_assert!(d >= prev, "exponential never shrinks");
                    prop_assert!(d >= config.base.min(config.max_delay));
                }
                BackoffKind::FullJitter => {}
                BackoffKind::DecorrelatedJitter => {
                    prop_assert!(d >= config.base);
                    if n > 0 {
                        prop_assert!(d <= (prev * 3).max(config.base));
                    }
                }
            }
            prev = d;
        }
    }

    #[test]
    fn retries_respect_max_elapsed_and_deadline(
        config in config(),
        seed in any::<u64>(),
        max_elapsed_ms in 1u64..20_000,
        deadline_ms in 1u64..20_000,
        attempt_ms in prop::collection::vec(0u64..500, 1..30),
    ) {
        let policy = RetryPolicy {
            backoff: config,
            max_attempts: 30,
            max_elapsed: Some(Duration::from_millis(max_elapsed_ms)),
            seed,
        };
        let start = Instant::from_millis(1_000);
        let deadline = start + Duration::from_millis(deadline_ms);
        let opts = CallOptions::idempotent().with_deadline(deadline);
        let mut state = RetryState::new(&policy, start, opts, DetRng::from_seed(seed));
        let mut now = start;
        for took in attempt_ms {
            now += Duration::from_millis(took);
            match state.on_failure(now, Decision::Retry) {
                Next::RetryAt { at, delay } => {
                    prop_assert_eq!(at, now + delay);
                    prop_assert!(at < deadline, "never sleeps past the deadline");
                    prop_assert!(at - start <= Duration::from_millis(max_elapsed_ms));
                    prop_assert!(state.attempts() < 30);
                    now = at;
                    state.on_attempt_start();
                }
                Next::GiveUp(_) => break,
            }
        }
    }
}
