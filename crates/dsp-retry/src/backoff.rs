//! Delay sequences: constant, exponential, full and decorrelated jitter.

use std::time::Duration;

use dsp_core::DetRng;

use crate::config::{BackoffConfig, BackoffKind};

/// An endless sequence of delays (an [`Iterator`] of [`Duration`]s), randomised by an injected
/// [`DetRng`]. Every delay is at most `max_delay`; jittered ones are at least zero (full jitter)
/// or at least `base` (decorrelated jitter).
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    rng: DetRng,
    /// Retries computed so far.
    n: u32,
    /// The previous delay (decorrelated jitter).
    prev: Duration,
}

impl Backoff {
    /// A sequence for `config` (assumed validated) drawing randomness from `rng`.
    pub fn new(config: BackoffConfig, rng: DetRng) -> Self {
        Self {
            config,
            rng,
            n: 0,
            prev: config.base,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let c = &self.config;
        let cap = c.max_delay;
        let grown = || {
            let exp = i32::try_from(self.n.min(1024)).unwrap_or(1024);
            let secs = c.base.as_secs_f64() * c.multiplier.powi(exp);
            if !secs.is_finite() || secs >= cap.as_secs_f64() {
                cap
            } else {
                Duration::from_secs_f64(secs)
            }
        };
        let d = match c.kind {
            BackoffKind::Constant => c.base.min(cap),
            BackoffKind::Exponential => grown(),
            BackoffKind::FullJitter => {
                let hi = grown();
                uniform(&mut self.rng, Duration::ZERO, hi)
            }
            BackoffKind::DecorrelatedJitter => {
                let hi = self.prev.saturating_mul(3).min(cap).max(c.base);
                uniform(&mut self.rng, c.base, hi)
            }
        };
        self.n = self.n.saturating_add(1);
        self.prev = d;
        d
    }

    /// Starts the sequence over (the random stream continues).
    pub fn reset(&mut self) {
        self.n = 0;
        self.prev = self.config.base;
    }
}

/// Uniform in `[lo, hi]` at nanosecond resolution.
fn uniform(rng: &mut DetRng, lo: Duration, hi: Duration) -> Duration {
    let lo_n = u64::try_from(lo.as_nanos()).unwrap_or(u64::MAX);
    let hi_n = u64::try_from(hi.as_nanos()).unwrap_or(u64::MAX);
    if hi_n <= lo_n {
        return lo;
    }
    Duration::from_nanos(rng.gen_range(lo_n..hi_n.saturating_add(1)))
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: BackoffKind) -> BackoffConfig {
        BackoffConfig {
            kind,
            base: Duration::from_millis(100),
            multiplier: 2.0,
            max_delay: Duration::from_secs(1),
        }
    }

    #[test]
    fn constant_backoff_repeats_base() {
        let b = Backoff::new(cfg(BackoffKind::Constant), DetRng::from_seed(1));
        assert!(b.take(5).all(|d| d == Duration::from_millis(100)));
    }

    #[test]
    fn exponential_backoff_doubles_until_capped() {
        let b = Backoff::new(cfg(BackoffKind::Exponential), DetRng::from_seed(1));
        let got: Vec<u64> = b.take(6).map(|d| d.as_millis() as u64).collect();
        assert_eq!(got, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn same_seed_gives_same_jitter() {
        let a: Vec<_> = Backoff::new(cfg(BackoffKind::FullJitter), DetRng::from_seed(7))
            .take(10)
            .collect();
        let b: Vec<_> = Backoff::new(cfg(BackoffKind::FullJitter), DetRng::from_seed(7))
            .take(10)
            .collect();
        let c: Vec<_> = Backoff::new(cfg(BackoffKind::FullJitter), DetRng::from_seed(8))
            .take(10)
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn reset_starts_growth_over() {
        let mut b = Backoff::new(cfg(BackoffKind::Exponential), DetRng::from_seed(1));
        b.next_delay();
        b.next_delay();
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
