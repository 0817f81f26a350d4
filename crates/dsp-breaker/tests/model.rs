//! Property test: the breaker behaves like a simple reference model on random call sequences.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::time::Duration;

use dsp_breaker::{Breaker, BreakerConfig, State, WindowConfig};
use dsp_core::ManualClock;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Call { fail: bool },
    Advance { millis: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<bool>().prop_map(|fail| Op::Call { fail }),
        1 => (0u64..3_000).prop_map(|millis| Op::Advance { millis }),
    ]
}

/// The textbook breaker with an exact sliding window and one half-open trial.
struct Model {
    size: usize,
    min: usize,
    threshold: f64,
    window: VecDeque<bool>,
    state: State,
    open_until: u64,
    now: u64,
}

impl Model {
    fn call(&mut self, fail: bool) -> bool {
        match self.state {
            State::Open if self.now < self.open_until => false,
            State::Open | State::HalfOpen => {
                if fail {
                    self.state = State::Open;
                    self.open_until = self.now + 1_000;
                } else {
                    self.state = State::Closed;
                    self.window.clear();
                }
                true
            }
            _ => {
                self.window.push_back(fail);
                if self.window.len() > self.size {
                    self.window.pop_front();
                }
                let fails = self.window.iter().filter(|f| **f).count();
                if fail
                    && self.window.len() >= self.min
                    && fails as f64 >= self.threshold * self.window.len() as f64
                {
                    self.state = State::Open;
                    self.open_until = self.now + 1_000;
                }
                true
            }
        }
    }
}

proptest! {
    #[test]
    fn breaker_matches_reference_model(
        size in 1u32..8,
        min_frac in 0.0f64..1.0,
        threshold in prop::sample::select(vec![0.25, 0.5, 0.75, 1.0]),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let min = 1 + ((size - 1) as f64 * min_frac) as u32;
        let clock = ManualClock::new();
        let config = BreakerConfig {
            window: WindowConfig::Count { size, buckets: size },
            failure_rate_threshold: threshold,
            minimum_calls: min,
            half_open_trials: 1,
            open_duration: Duration::from_secs(1),
            max_open_duration: Duration::from_secs(1),
            ..BreakerConfig::default()
        };
        let b = Breaker::with_clock(config, clock.clone()).unwrap();
        let mut m = Model {
            size: size as usize,
            min: min as usize,
            threshold,
            window: VecDeque::new(),
            state: State::Closed,
            open_until: 0,
            now: 0,
        };
        for op in ops {
            match op {
                Op::Call { fail } => {
                    let permitted = m.call(fail);
                    let got = b.call_sync(|| if fail { Err(()) } else { Ok(()) });
                    prop_assert_eq!(permitted, !got.as_ref().is_err_and(|e| e.is_rejected()));
                }
                Op::Advance { millis } => {
                    m.now += millis;
                    clock.advance(Duration::from_millis(millis));
                }
            }
            prop_assert_eq!(b.state(), m.state);
        }
    }
}
