//! Adaptive concurrency limits: the number of requests allowed in flight follows the observed
//! latency and drops (AIMD, or a Vegas-style delay-based rule), as in Netflix's
//! concurrency-limits.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use dsp_core::sync::Mutex;
use dsp_core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use dsp_core::{Clock, Instant, QuantaClock};

use crate::{Error, Result};

/// One completed request, as seen by a [`LimitAlgorithm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Time from acquiring the token to completion.
    pub rtt: Duration,
    /// Requests in flight when this one started (itself included).
    pub in_flight: usize,
    /// Whether the request was dropped (timed out, rejected as overloaded).
    pub dropped: bool,
}

/// A rule that turns samples into a new limit.
pub trait LimitAlgorithm: Send + fmt::Debug {
    /// The limit before any sample.
    fn initial_limit(&self) -> usize;
    /// Folds in one sample and returns the new limit (at least 1).
    fn update(&mut self, sample: Sample) -> usize;
    /// Checks the rule's settings; [`ConcurrencyLimiter`] refuses a rule that fails.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the broken invariant.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
}

/// Additive increase, multiplicative decrease.
///
/// On a drop (or an RTT above `timeout`) the limit is multiplied by `backoff_ratio`; on a
/// success while at least half the limit was in use, it grows by one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aimd {
    /// Starting limit. Default 20.
    pub initial: usize,
    /// Floor. Default 1.
    pub min: usize,
    /// Ceiling. Default 1000.
    pub max: usize,
    /// Multiplier applied on a drop, in (0, 1). Default 0.9.
    pub backoff_ratio: f64,
    /// A sample slower than this counts as a drop. Default 5 s.
    pub timeout: Duration,
    limit: usize,
}

impl Default for Aimd {
    fn default() -> Self {
        Aimd::new(20, 1, 1000, 0.9, Duration::from_secs(5))
    }
}

impl Aimd {
    /// An AIMD rule; see the field docs. Invalid values are reported by [`Aimd::validate`].
    pub fn new(
        initial: usize,
        min: usize,
        max: usize,
        backoff_ratio: f64,
        timeout: Duration,
    ) -> Self {
        Aimd {
            initial,
            min,
            max,
            backoff_ratio,
            timeout,
            limit: initial,
        }
    }

    /// Checks the invariants.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the broken invariant.
    pub fn validate(&self) -> Result<()> {
        if self.min == 0 || self.min > self.initial || self.initial > self.max {
            return Err(Error::InvalidConfig(
                "aimd needs 1 <= min <= initial <= max",
            ));
        }
        if !(self.backoff_ratio > 0.0 && self.backoff_ratio < 1.0) {
            return Err(Error::InvalidConfig("aimd backoff_ratio must be in (0, 1)"));
        }
        if self.timeout.is_zero() {
            return Err(Error::InvalidConfig("aimd timeout must be non-zero"));
        }
        Ok(())
    }
}

impl LimitAlgorithm for Aimd {
    fn validate(&self) -> Result<()> {
        Aimd::validate(self)
    }

    fn initial_limit(&self) -> usize {
        self.initial
    }

    fn update(&mut self, s: Sample) -> usize {
        if s.dropped || s.rtt > self.timeout {
            let reduced = (self.limit as f64 * self.backoff_ratio).floor() as usize;
            self.limit = reduced.clamp(self.min, self.max);
        } else if s.in_flight * 2 >= self.limit {
            self.limit = (self.limit + 1).min(self.max);
        }
        self.limit
    }
}

/// A Vegas-style delay-based rule.
///
/// It keeps the lowest RTT seen (the no-load RTT) and estimates the queue as
/// `limit * (1 - rtt_noload / rtt)`. Below `alpha * log10(limit)` queued requests it grows by
/// `log10(limit)`; above `beta * log10(limit)` it shrinks by `log10(limit)`; a drop shrinks it
/// the same way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vegas {
    /// Starting limit. Default 20.
    pub initial: usize,
    /// Floor. Default 1.
    pub min: usize,
    /// Ceiling. Default 1000.
    pub max: usize,
    /// Queue-size factor under which the limit grows. Default 3.
    pub alpha: f64,
    /// Queue-size factor over which the limit shrinks. Default 6.
    pub beta: f64,
    limit: f64,
    rtt_noload: Option<Duration>,
}

impl Default for Vegas {
    fn default() -> Self {
        Vegas::new(20, 1, 1000)
    }
}

impl Vegas {
    /// A Vegas rule with the default `alpha` and `beta`.
    pub fn new(initial: usize, min: usize, max: usize) -> Self {
        Vegas {
            initial,
            min,
            max,
            alpha: 3.0,
            beta: 6.0,
            limit: initial as f64,
            rtt_noload: None,
        }
    }

    /// Checks the invariants.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the broken invariant.
    pub fn validate(&self) -> Result<()> {
        if self.min == 0 || self.min > self.initial || self.initial > self.max {
            return Err(Error::InvalidConfig(
                "vegas needs 1 <= min <= initial <= max",
            ));
        }
        if !(self.alpha > 0.0 && self.alpha < self.beta && self.beta.is_finite()) {
            return Err(Error::InvalidConfig("vegas needs 0 < alpha < beta"));
        }
        Ok(())
    }
}

impl LimitAlgorithm for Vegas {
    fn validate(&self) -> Result<()> {
        Vegas::validate(self)
    }

    fn initial_limit(&self) -> usize {
        self.initial
    }

    fn update(&mut self, s: Sample) -> usize {
        let step = self.limit.max(2.0).log10().max(1.0);
        if s.dropped {
            self.limit -= step;
        } else if !s.rtt.is_zero() {
            let noload = match self.rtt_noload {
                Some(n) if n <= s.rtt => n,
                _ => {
                    self.rtt_noload = Some(s.rtt);
                    s.rtt
                }
            };
            let queue = self.limit * (1.0 - noload.as_secs_f64() / s.rtt.as_secs_f64());
            let log = self.limit.max(2.0).log10();
            if queue <= self.alpha * log {
                // Grow only when the limit is actually being used.
                if (s.in_flight as f64) * 2.0 >= self.limit {
                    self.limit += step;
                }
            } else if queue >= self.beta * log {
                self.limit -= step;
            }
        }
        self.limit = self.limit.clamp(self.min as f64, self.max as f64);
        self.limit as usize
    }
}

/// Something a [`ConcurrencyLimiter`] did, reported to the listener given to
/// [`ConcurrencyLimiter::with_listener`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitEvent {
    /// A request was refused at the current limit.
    Rejected {
        /// The limit at the time.
        limit: usize,
    },
    /// A sample moved the limit.
    LimitChanged {
        /// The previous limit.
        old: usize,
        /// The new limit.
        new: usize,
        /// The sample that moved it.
        sample: Sample,
    },
}

/// A subscriber to [`LimitEvent`]s; it runs inline, so keep it cheap.
pub type LimitListener = Arc<dyn Fn(&LimitEvent) + Send + Sync>;

struct Inner<C> {
    limit: AtomicUsize,
    in_flight: AtomicUsize,
    rejected: AtomicU64,
    algorithm: Mutex<Box<dyn LimitAlgorithm>>,
    clock: C,
    listener: Option<LimitListener>,
}

/// A concurrency limiter whose limit adapts to latency and drops.
///
/// [`ConcurrencyLimiter::try_acquire`] is a compare-and-swap on the in-flight count (no lock);
/// the algorithm runs under a mutex only when a request completes and reports its outcome.
/// Cloning shares the limiter.
///
/// ```
/// use dsp_core::ManualClock;
/// use dsp_throttle::{Aimd, ConcurrencyLimiter};
///
/// let limiter = ConcurrencyLimiter::with_clock(Aimd::default(), ManualClock::new()).unwrap();
/// let token = limiter.try_acquire().unwrap();
/// assert_eq!(limiter.in_flight(), 1);
/// token.dropped(); // the backend timed out: the limit shrinks
/// assert_eq!(limiter.limit(), 18);
/// ```
pub struct ConcurrencyLimiter<C: Clock = QuantaClock> {
    inner: Arc<Inner<C>>,
}

impl<C: Clock> Clone for ConcurrencyLimiter<C> {
    fn clone(&self) -> Self {
        ConcurrencyLimiter {
            inner: self.inner.clone(),
        }
    }
}

impl ConcurrencyLimiter<QuantaClock> {
    /// A limiter using `algorithm`, reading the default clock, a [`QuantaClock`]: one CPU
    /// time-stamp-counter read per call instead of a system call. The first `QuantaClock` in a
    /// process calibrates the counter (up to ~200 ms), so build limiters at start-up; use
    /// [`ConcurrencyLimiter::with_clock`] for another clock.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the algorithm does not validate or starts at zero.
    pub fn new(algorithm: impl LimitAlgorithm + 'static) -> Result<Self> {
        Self::with_clock(algorithm, QuantaClock::new())
    }
}

impl<C: Clock> ConcurrencyLimiter<C> {
    /// A limiter using `algorithm`, reading `clock` to measure RTTs.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the algorithm does not validate or starts at zero.
    pub fn with_clock(algorithm: impl LimitAlgorithm + 'static, clock: C) -> Result<Self> {
        Self::build(Box::new(algorithm), clock, None)
    }

    /// A limiter that reports every [`LimitEvent`] to `listener`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the algorithm does not validate or starts at zero.
    pub fn with_listener(
        algorithm: impl LimitAlgorithm + 'static,
        clock: C,
        listener: LimitListener,
    ) -> Result<Self> {
        Self::build(Box::new(algorithm), clock, Some(listener))
    }

    fn build(
        algorithm: Box<dyn LimitAlgorithm>,
        clock: C,
        listener: Option<LimitListener>,
    ) -> Result<Self> {
        algorithm.validate()?;
        let initial = algorithm.initial_limit();
        if initial == 0 {
            return Err(Error::InvalidConfig(
                "the initial concurrency limit must be non-zero",
            ));
        }
        Ok(ConcurrencyLimiter {
            inner: Arc::new(Inner {
                limit: AtomicUsize::new(initial),
                in_flight: AtomicUsize::new(0),
                rejected: AtomicU64::new(0),
                algorithm: Mutex::new(algorithm),
                clock,
                listener,
            }),
        })
    }

    /// Takes a slot if fewer than the current limit are in flight.
    ///
    /// # Errors
    /// [`Error::ConcurrencyLimited`] if the limit is reached (the rejection is counted).
    pub fn try_acquire(&self) -> Result<LimitToken<C>> {
        let limit = self.inner.limit.load(Ordering::Relaxed);
        let mut cur = self.inner.in_flight.load(Ordering::Relaxed);
        loop {
            if cur >= limit {
                self.inner.rejected.fetch_add(1, Ordering::Relaxed);
                if let Some(listener) = &self.inner.listener {
                    listener(&LimitEvent::Rejected { limit });
                }
                return Err(Error::ConcurrencyLimited { limit });
            }
            match self.inner.in_flight.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Ok(LimitToken {
                        inner: self.inner.clone(),
                        start: self.inner.clock.now(),
                        in_flight: cur + 1,
                        done: false,
                    });
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.inner.limit.load(Ordering::Relaxed)
    }

    /// Requests currently holding a token.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    /// Requests refused so far.
    pub fn rejected(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }
}

impl<C: Clock> fmt::Debug for ConcurrencyLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrencyLimiter")
            .field("limit", &self.limit())
            .field("in_flight", &self.in_flight())
            .field("rejected", &self.rejected())
            .finish_non_exhaustive()
    }
}

/// A slot in a [`ConcurrencyLimiter`]. Report the outcome with [`LimitToken::success`] or
/// [`LimitToken::dropped`]; dropping the token without a report (a cancelled request) frees the
/// slot and leaves the limit unchanged.
#[must_use = "dropping the token immediately frees the slot"]
pub struct LimitToken<C: Clock = QuantaClock> {
    inner: Arc<Inner<C>>,
    start: Instant,
    in_flight: usize,
    done: bool,
}

impl<C: Clock> LimitToken<C> {
    /// The request succeeded: its RTT feeds the algorithm.
    pub fn success(self) {
        self.finish(false);
    }

    /// The request was dropped (timeout, overload rejection): the limit shrinks.
    pub fn dropped(self) {
        self.finish(true);
    }

    /// Frees the slot without a sample (for outcomes that say nothing about load).
    pub fn ignore(self) {}

    fn finish(mut self, dropped: bool) {
        let rtt = self.inner.clock.now() - self.start;
        let sample = Sample {
            rtt,
            in_flight: self.in_flight,
            dropped,
        };
        let mut algorithm = match self.inner.algorithm.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let new_limit = algorithm.update(sample).max(1);
        let old = self.inner.limit.swap(new_limit, Ordering::Relaxed);
        drop(algorithm);
        if old != new_limit {
            #[cfg(feature = "tracing")]
            tracing::debug!(old, new = new_limit, ?sample, "concurrency limit changed");
            if let Some(listener) = &self.inner.listener {
                listener(&LimitEvent::LimitChanged {
                    old,
                    new: new_limit,
                    sample,
                });
            }
        }
        self.done = true;
        self.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<C: Clock> Drop for LimitToken<C> {
    fn drop(&mut self) {
        if !self.done {
            self.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<C: Clock> fmt::Debug for LimitToken<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitToken")
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use dsp_core::ManualClock;

    use super::*;

    #[test]
    fn aimd_grows_when_used_and_shrinks_on_drop() {
        let clock = ManualClock::new();
        let l =
            ConcurrencyLimiter::with_clock(Aimd::new(4, 1, 6, 0.5, Duration::from_secs(1)), clock)
                .unwrap();
        let tokens: Vec<_> = (0..4).map(|_| l.try_acquire().unwrap()).collect();
        assert!(matches!(
            l.try_acquire(),
            Err(Error::ConcurrencyLimited { limit: 4 })
        ));
        assert_eq!(l.rejected(), 1);
        for t in tokens {
            t.success();
        }
        assert_eq!(
            l.limit(),
            6,
            "grew by one per well-used success, capped at max"
        );
        l.try_acquire().unwrap().dropped();
        assert_eq!(l.limit(), 3);
        assert_eq!(l.in_flight(), 0);
    }

    #[test]
    fn slow_calls_count_as_drops() {
        let clock = ManualClock::new();
        let l = ConcurrencyLimiter::with_clock(
            Aimd::new(10, 2, 10, 0.5, Duration::from_millis(100)),
            clock.clone(),
        )
        .unwrap();
        let t = l.try_acquire().unwrap();
        clock.advance(Duration::from_millis(101));
        t.success();
        assert_eq!(l.limit(), 5);
    }

    #[test]
    fn cancelled_token_frees_the_slot_without_a_sample() {
        let l = ConcurrencyLimiter::with_clock(
            Aimd::new(1, 1, 5, 0.5, Duration::from_secs(1)),
            ManualClock::new(),
        )
        .unwrap();
        let t = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_err());
        drop(t);
        assert_eq!(l.in_flight(), 0);
        assert_eq!(l.limit(), 1);
        l.try_acquire().unwrap().ignore();
        assert_eq!(l.limit(), 1);
    }

    #[test]
    fn vegas_grows_at_low_latency_and_shrinks_when_queueing() {
        let clock = ManualClock::new();
        let l = ConcurrencyLimiter::with_clock(Vegas::new(10, 1, 100), clock.clone()).unwrap();
        for _ in 0..20 {
            let tokens: Vec<_> = (0..l.limit()).map(|_| l.try_acquire().unwrap()).collect();
            clock.advance(Duration::from_millis(10));
            for t in tokens {
                t.success();
            }
        }
        let grown = l.limit();
        assert!(grown > 10, "{grown}");
        // Latency quadruples: the estimated queue is large and the limit shrinks.
        for _ in 0..20 {
            let t = l.try_acquire().unwrap();
            clock.advance(Duration::from_millis(40));
            t.success();
        }
        assert!(l.limit() < grown, "{} !< {grown}", l.limit());
    }

    #[test]
    fn listener_sees_rejections_and_limit_changes() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let listener: LimitListener = Arc::new(move |e: &LimitEvent| s.lock().unwrap().push(*e));
        let aimd = Aimd::new(1, 1, 2, 0.5, Duration::from_secs(1));
        let l = ConcurrencyLimiter::with_listener(aimd, ManualClock::new(), listener).unwrap();
        let t = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_err());
        t.success();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], LimitEvent::Rejected { limit: 1 });
        assert!(matches!(
            seen[1],
            LimitEvent::LimitChanged { old: 1, new: 2, .. }
        ));
    }

    #[test]
    fn invalid_algorithms_are_rejected() {
        assert!(
            Aimd::new(0, 0, 1, 0.5, Duration::from_secs(1))
                .validate()
                .is_err()
        );
        assert!(
            Aimd::new(2, 1, 4, 1.5, Duration::from_secs(1))
                .validate()
                .is_err()
        );
        assert!(Aimd::default().validate().is_ok());
        assert!(Vegas::new(5, 6, 10).validate().is_err());
        assert!(Vegas::default().validate().is_ok());
        assert!(ConcurrencyLimiter::with_clock(Vegas::new(0, 0, 0), ManualClock::new()).is_err());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use dsp_core::ManualClock;
    use dsp_core::sync::{model, thread};

    use super::*;

    #[test]
    fn loom_concurrency_limit_never_exceeded() {
        model(|| {
            let aimd = Aimd::new(2, 1, 2, 0.5, Duration::from_secs(1));
            let l = match ConcurrencyLimiter::with_clock(aimd, ManualClock::new()) {
                Ok(l) => l,
                Err(e) => panic!("{e}"),
            };
            let holders = dsp_core::sync::Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let l = l.clone();
                    let holders = holders.clone();
                    thread::spawn(move || {
                        if let Ok(t) = l.try_acquire() {
                            let n = holders.fetch_add(1, Ordering::SeqCst) + 1;
                            assert!(n <= 2, "{n} requests in flight with a limit of 2");
                            holders.fetch_sub(1, Ordering::SeqCst);
                            t.ignore();
                        }
                    })
                })
                .collect();
            for h in handles {
                let _ = h.join();
            }
            assert_eq!(l.in_flight(), 0);
        });
    }
}
