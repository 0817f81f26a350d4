//! Client-side adaptive throttling (Google SRE book, "Handling Overload").
//!
//! Each client tracks, over a sliding window, how many requests it attempted and how many the
//! backend accepted. When the backend rejects a growing share, the client starts rejecting
//! locally with probability `max(0, (requests - k * accepts) / (requests + 1))`, which sheds load
//! before it reaches the overloaded backend while still letting enough traffic through to notice
//! recovery.

use std::fmt;
use std::time::Duration;

use dsp_core::sync::Mutex;
use dsp_core::{Clock, DetRng, QuantaClock};

use crate::{Error, Result};

/// Settings of an [`AdaptiveThrottle`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveConfig {
    /// The multiplier `k`: the client allows `k` requests per accepted request before it starts
    /// rejecting. Lower is more aggressive. Must be at least 1. Default 2.0.
    pub k: f64,
    /// Length of the sliding window. Default two minutes.
    pub window: Duration,
    /// Number of buckets the window is divided into (the window slides one bucket at a time).
    /// Default 12.
    pub buckets: u32,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            k: 2.0,
            window: Duration::from_secs(120),
            buckets: 12,
        }
    }
}

impl AdaptiveConfig {
    /// Checks the invariants.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the broken invariant.
    pub fn validate(&self) -> Result<()> {
        if !(self.k.is_finite() && self.k >= 1.0) {
            return Err(Error::InvalidConfig("k must be a finite number >= 1"));
        }
        if self.buckets == 0 || self.buckets > 3600 {
            return Err(Error::InvalidConfig("buckets must be between 1 and 3600"));
        }
        if self.window.as_nanos() < u128::from(self.buckets) {
            return Err(Error::InvalidConfig(
                "window must be at least one nanosecond per bucket",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    epoch: u64,
    requests: u64,
    accepts: u64,
}

#[derive(Debug)]
struct State {
    buckets: Vec<Bucket>,
    rng: DetRng,
}

/// A client-side adaptive throttle: call [`AdaptiveThrottle::try_request`] before sending a
/// request and [`AdaptiveThrottle::record_accepted`] when the backend accepted it.
///
/// State sits behind one mutex held for a few arithmetic operations; randomness comes from an
/// injected [`DetRng`], so runs are reproducible.
///
/// ```
/// use dsp_core::{DetRng, ManualClock};
/// use dsp_throttle::{AdaptiveConfig, AdaptiveThrottle};
///
/// let t = AdaptiveThrottle::with_clock(AdaptiveConfig::default(), DetRng::from_seed(7),
///     ManualClock::new()).unwrap();
/// // A healthy backend: everything accepted, nothing throttled.
/// for _ in 0..100 {
///     t.try_request().unwrap();
///     t.record_accepted();
/// }
/// assert_eq!(t.rejection_probability(), 0.0);
/// ```
pub struct AdaptiveThrottle<C: Clock = QuantaClock> {
    config: AdaptiveConfig,
    bucket_nanos: u64,
    state: Mutex<State>,
    clock: C,
}

impl AdaptiveThrottle<QuantaClock> {
    /// A throttle reading the default clock, a [`QuantaClock`]: one CPU
    /// time-stamp-counter read per call instead of a system call. The first `QuantaClock` in a
    /// process calibrates the counter (up to ~200 ms), so build throttles at start-up; use
    /// [`AdaptiveThrottle::with_clock`] for another clock.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` does not validate.
    pub fn new(config: AdaptiveConfig, rng: DetRng) -> Result<Self> {
        Self::with_clock(config, rng, QuantaClock::new())
    }
}

impl<C: Clock> AdaptiveThrottle<C> {
    /// A throttle reading `clock`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` does not validate.
    pub fn with_clock(config: AdaptiveConfig, rng: DetRng, clock: C) -> Result<Self> {
        config.validate()?;
        let bucket_nanos = u64::try_from(config.window.as_nanos() / u128::from(config.buckets))
            .unwrap_or(u64::MAX);
        Ok(AdaptiveThrottle {
            config,
            bucket_nanos,
            state: Mutex::new(State {
                buckets: vec![Bucket::default(); config.buckets as usize],
                rng,
            }),
            clock,
        })
    }

    fn lock(&self) -> dsp_core::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The current bucket (reset if it belongs to an older epoch) and the window totals.
    fn current<'a>(&self, state: &'a mut State) -> (&'a mut Bucket, u64, u64) {
        let epoch = self.clock.now().as_nanos() / self.bucket_nanos;
        let n = state.buckets.len() as u64;
        let mut requests = 0;
        let mut accepts = 0;
        for b in state.buckets.iter() {
            if b.epoch + n > epoch && b.epoch <= epoch {
                requests += b.requests;
                accepts += b.accepts;
            }
        }
        let idx = (epoch % n) as usize;
        let b = &mut state.buckets[idx];
        if b.epoch != epoch {
            if b.epoch + n > epoch && b.epoch <= epoch {
                requests -= b.requests;
                accepts -= b.accepts;
            }
            *b = Bucket {
                epoch,
                requests: 0,
                accepts: 0,
            };
        }
        (b, requests, accepts)
    }

    fn probability(&self, requests: u64, accepts: u64) -> f64 {
        let p = (requests as f64 - self.config.k * accepts as f64) / (requests as f64 + 1.0);
        p.max(0.0)
    }

    /// Decides whether to send a request. The attempt is counted either way (as the SRE
    /// algorithm requires).
    ///
    /// # Errors
    /// [`Error::Throttled`] if the request should be rejected locally.
    pub fn try_request(&self) -> Result<()> {
        let mut state = self.lock();
        let (bucket, requests, accepts) = self.current(&mut state);
        bucket.requests += 1;
        let p = self.probability(requests, accepts);
        if p > 0.0 && state.rng.gen_f64() < p {
            #[cfg(feature = "tracing")]
            tracing::debug!(
                probability = p,
                "adaptive throttle rejected a request locally"
            );
            return Err(Error::Throttled { probability: p });
        }
        Ok(())
    }

    /// Records that the backend accepted a request sent after [`AdaptiveThrottle::try_request`].
    ///
    /// Do not call it for requests the backend rejected because it was overloaded; requests
    /// that failed for other reasons (not found, bad input) should count as accepted.
    pub fn record_accepted(&self) {
        let mut state = self.lock();
        let (bucket, _, _) = self.current(&mut state);
        bucket.accepts += 1;
    }

    /// The probability with which the next request would be rejected.
    pub fn rejection_probability(&self) -> f64 {
        let mut state = self.lock();
        let (_, requests, accepts) = self.current(&mut state);
        self.probability(requests, accepts)
    }

    /// Requests and accepts counted in the current window.
    pub fn window_totals(&self) -> (u64, u64) {
        let mut state = self.lock();
        let (_, requests, accepts) = self.current(&mut state);
        (requests, accepts)
    }
}

impl<C: Clock> fmt::Debug for AdaptiveThrottle<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveThrottle")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use dsp_core::ManualClock;

    use super::*;

    fn throttle(clock: &ManualClock) -> AdaptiveThrottle<ManualClock> {
        AdaptiveThrottle::with_clock(
            AdaptiveConfig::default(),
            DetRng::from_seed(42),
            clock.clone(),
        )
        .unwrap()
    }

    #[test]
    fn healthy_backend_is_never_throttled() {
        let clock = ManualClock::new();
        let t = throttle(&clock);
        for _ in 0..1000 {
            t.try_request().unwrap();
            t.record_accepted();
            clock.advance(Duration::from_millis(10));
        }
        assert_eq!(t.rejection_probability(), 0.0);
    }

    #[test]
    fn failing_backend_is_throttled_in_proportion() {
        let clock = ManualClock::new();
        let t = throttle(&clock);
        // The backend accepts one request in ten of those sent: the client sheds most of its
        // load locally but keeps probing (p stays below 1).
        let mut local_rejections = 0;
        let mut sent = 0;
        let mut sent_late = 0;
        for i in 0..2000 {
            if t.try_request().is_err() {
                local_rejections += 1;
                continue;
            }
            sent += 1;
            if i >= 1000 {
                sent_late += 1;
            }
            if sent % 10 == 0 {
                t.record_accepted();
            }
        }
        let p = t.rejection_probability();
        assert!(p > 0.5 && p < 1.0, "p = {p}");
        assert!(local_rejections > 1000, "{local_rejections}");
        assert!(sent_late > 0, "the client keeps probing the backend");
        let (requests, accepts) = t.window_totals();
        assert_eq!(requests, 2000);
        assert!(accepts < 200);
    }

    #[test]
    fn old_outcomes_slide_out_of_the_window() {
        let clock = ManualClock::new();
        let t = throttle(&clock);
        for _ in 0..100 {
            let _ = t.try_request();
        }
        assert!(t.rejection_probability() > 0.9);
        clock.advance(Duration::from_secs(121));
        assert_eq!(t.window_totals(), (0, 0));
        assert_eq!(t.rejection_probability(), 0.0);
        t.try_request().unwrap();
    }

    #[test]
    fn same_seed_same_decisions() {
        let run = || {
            let clock = ManualClock::new();
            let t = throttle(&clock);
            (0..200)
                .map(|_| t.try_request().is_ok())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn invalid_adaptive_config_is_rejected() {
        let mut c = AdaptiveConfig {
            k: 0.5,
            ..AdaptiveConfig::default()
        };
        assert!(c.validate().is_err());
        c.k = 2.0;
        c.buckets = 0;
        assert!(c.validate().is_err());
        c.buckets = 10;
        c.window = Duration::from_nanos(5);
        assert!(c.validate().is_err());
    }
}
