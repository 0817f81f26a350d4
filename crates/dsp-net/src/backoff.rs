//! Exponential reconnect backoff with jitter (local until `dsp-retry` is wired in).

use std::time::Duration;

use dsp_core::DetRng;

/// Delays that double from `min` up to `max`; each is drawn uniformly from its upper half
/// ("equal jitter") so reconnecting peers spread out.
#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: DetRng,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Self {
            min,
            max,
            attempt: 0,
            rng: DetRng::from_seed(seed),
        }
    }

    /// The delay before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = exp / 2;
        half + self
            .rng
            .gen_duration(Duration::ZERO..half.max(Duration::from_nanos(1)))
    }

    /// Starts over after a success.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let (min, max) = (Duration::from_millis(10), Duration::from_millis(100));
        let mut b = Backoff::new(min, max, 7);
        let mut last_cap = Duration::ZERO;
        for i in 0..10 {
            let cap = min.saturating_mul(1 << i).min(max);
            let d = b.next_delay();
            assert!(
                d >= cap / 2 && d <= cap,
                "attempt {i}: {d:?} outside {cap:?}"
            );
            last_cap = cap;
        }
        assert_eq!(last_cap, max);
        b.reset();
        assert!(b.next_delay() <= min);
    }
}
