//! The direct (un-keyed) GCRA rate limiter: one atomic, no lock.

use std::fmt;

use dsp_core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use dsp_core::{Clock, Instant, QuantaClock};

use crate::quota::gcra;
use crate::{Error, NotUntil, Quota, Result};

/// The quota, stored in atomics so that it can change at runtime.
///
/// A reader racing a [`QuotaCell::store`] may see the new period with the old tolerance (or the
/// reverse) for one decision; both are valid quotas, so the limiter stays within the larger of
/// the two.
pub(crate) struct QuotaCell {
    period: AtomicU64,
    tau: AtomicU64,
    burst: AtomicU32,
}

impl QuotaCell {
    pub(crate) fn new(q: Quota) -> Self {
        QuotaCell {
            period: AtomicU64::new(q.period_nanos()),
            tau: AtomicU64::new(q.tau_nanos()),
            burst: AtomicU32::new(q.burst()),
        }
    }

    pub(crate) fn store(&self, q: Quota) {
        self.period.store(q.period_nanos(), Ordering::Relaxed);
        self.tau.store(q.tau_nanos(), Ordering::Relaxed);
        self.burst.store(q.burst(), Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn period(&self) -> u64 {
        self.period.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn tau(&self) -> u64 {
        self.tau.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn burst(&self) -> u32 {
        self.burst.load(Ordering::Relaxed)
    }

    pub(crate) fn load(&self) -> Quota {
        Quota::from_parts(self.period(), self.burst())
    }
}

impl fmt::Debug for QuotaCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quota")
            .field("period_nanos", &self.period())
            .field("burst", &self.burst())
            .finish()
    }
}

/// A GCRA rate limiter for one resource, safe to share between threads (`&self` methods).
///
/// Its whole state is one `AtomicU64`, the *theoretical arrival time* (TAT) of the next cell,
/// updated with a compare-and-swap loop; no lock is taken and nothing is allocated. The quota
/// lives in atomics too, so [`RateLimiter::set_quota`] changes the rate without forgetting how
/// much of the burst has been used.
///
/// ```
/// use std::time::Duration;
/// use dsp_core::ManualClock;
/// use dsp_throttle::{Quota, RateLimiter};
///
/// let clock = ManualClock::new();
/// let limiter = RateLimiter::with_clock(Quota::per_second(2).unwrap(), clock.clone());
/// assert!(limiter.check().is_ok());
/// assert!(limiter.check().is_ok());
/// let denied = limiter.check().unwrap_err();
/// assert_eq!(denied.wait_time(), Duration::from_millis(500));
/// clock.advance(Duration::from_millis(500));
/// assert!(limiter.check().is_ok());
/// ```
pub struct RateLimiter<C: Clock = QuantaClock> {
    tat: AtomicU64,
    quota: QuotaCell,
    clock: C,
}

impl RateLimiter<QuantaClock> {
    /// A limiter reading the default clock, a [`QuantaClock`]: one CPU
    /// time-stamp-counter read per call instead of a system call. The first `QuantaClock` in a
    /// process calibrates the counter (up to ~200 ms), so build limiters at start-up; use
    /// [`RateLimiter::with_clock`] for another clock.
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, QuantaClock::new())
    }
}

impl<C: Clock> RateLimiter<C> {
    /// A limiter reading `clock`.
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        RateLimiter {
            tat: AtomicU64::new(0),
            quota: QuotaCell::new(quota),
            clock,
        }
    }

    /// Admits one cell now, or says when it would conform. A refusal changes nothing.
    #[inline]
    pub fn check(&self) -> Result<(), NotUntil> {
        self.check_at(self.clock.now())
    }

    /// [`RateLimiter::check`] at a time the caller already read from the same clock.
    ///
    /// Times must come from one monotonic clock, normally [`RateLimiter::clock`] (a
    /// [`QuantaClock`] by default, whose instants must not be mixed with a `SystemClock`'s). A `now` older than earlier calls is safe: the
    /// stored arrival time never moves backwards, so the quota bound holds over the times the
    /// limiter was given (a reading stale by `d` can widen a real-time window by `d`).
    #[inline]
    pub fn check_at(&self, now: Instant) -> Result<(), NotUntil> {
        let now_n = now.as_nanos();
        let period = self.quota.period();
        let tau = self.quota.tau();
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            match gcra(tat, now_n, period, tau, 1) {
                Ok(next) => {
                    match self.tat.compare_exchange_weak(
                        tat,
                        next,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return Ok(()),
                        Err(actual) => tat = actual,
                    }
                }
                Err(earliest) => {
                    return Err(NotUntil {
                        earliest: Instant::from_nanos(earliest),
                        now,
                    });
                }
            }
        }
    }

    /// Admits `n` cells at once (all or none).
    ///
    /// # Errors
    /// [`Error::InsufficientCapacity`] if `n` is zero or exceeds the burst (it could never
    /// conform), [`Error::RateLimited`] if it does not conform now. Neither changes state.
    pub fn check_n(&self, n: u32) -> Result<()> {
        self.check_n_at(n, self.clock.now())
    }

    /// [`RateLimiter::check_n`] at a time the caller already read.
    ///
    /// # Errors
    /// As [`RateLimiter::check_n`].
    pub fn check_n_at(&self, n: u32, now: Instant) -> Result<()> {
        let burst = self.quota.burst();
        if n == 0 || n > burst {
            return Err(Error::InsufficientCapacity {
                requested: n,
                burst,
            });
        }
        let now_n = now.as_nanos();
        let period = self.quota.period();
        let tau = self.quota.tau();
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            match gcra(tat, now_n, period, tau, u64::from(n)) {
                Ok(next) => match self.tat.compare_exchange_weak(
                    tat,
                    next,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok(()),
                    Err(actual) => tat = actual,
                },
                Err(earliest) => {
                    return Err(NotUntil {
                        earliest: Instant::from_nanos(earliest),
                        now,
                    }
                    .into());
                }
            }
        }
    }

    /// Replaces the quota. The theoretical arrival time is kept, so cells already admitted still
    /// count against the new rate (a burst cannot be renewed by toggling the quota).
    pub fn set_quota(&self, quota: Quota) {
        self.quota.store(quota);
    }

    /// The current quota.
    pub fn quota(&self) -> Quota {
        self.quota.load()
    }

    /// Cells that would be admitted right now if asked one by one (the unused burst).
    pub fn remaining_burst(&self) -> u32 {
        let now = self.clock.now().as_nanos();
        let tat = self.tat.load(Ordering::Relaxed);
        let period = self.quota.period();
        let burst = self.quota.burst();
        let used = tat.saturating_sub(now).div_ceil(period);
        u32::try_from(u64::from(burst).saturating_sub(used)).unwrap_or(0)
    }

    /// Forgets all history: the full burst is available again.
    pub fn reset(&self) {
        self.tat.store(0, Ordering::Relaxed);
    }

    /// The limiter's clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

impl<C: Clock> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("tat_nanos", &self.tat.load(Ordering::Relaxed))
            .field("quota", &self.quota)
            .field("clock", &self.clock)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use dsp_core::ManualClock;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_then_steady_rate() {
        let clock = ManualClock::new();
        let l = RateLimiter::with_clock(Quota::per_second(10).unwrap(), clock.clone());
        for _ in 0..10 {
            l.check().unwrap();
        }
        let e = l.check().unwrap_err();
        assert_eq!(e.wait_time(), ms(100));
        // Steady state: exactly one cell per 100 ms.
        for _ in 0..20 {
            clock.advance(ms(99));
            assert!(l.check().is_err());
            clock.advance(ms(1));
            l.check().unwrap();
        }
    }

    #[test]
    fn idle_limiter_refills_to_burst_only() {
        let clock = ManualClock::new();
        let l = RateLimiter::with_clock(Quota::per_second(5).unwrap(), clock.clone());
        clock.advance(Duration::from_secs(3600));
        assert_eq!(l.remaining_burst(), 5);
        for _ in 0..5 {
            l.check().unwrap();
        }
        assert!(l.check().is_err());
        assert_eq!(l.remaining_burst(), 0);
    }

    #[test]
    fn check_n_is_all_or_nothing_and_rejects_above_burst() {
        let clock = ManualClock::new();
        let l = RateLimiter::with_clock(Quota::per_second(4).unwrap(), clock.clone());
        assert_eq!(
            l.check_n(5),
            Err(Error::InsufficientCapacity {
                requested: 5,
                burst: 4
            })
        );
        assert_eq!(
            l.check_n(0),
            Err(Error::InsufficientCapacity {
                requested: 0,
                burst: 4
            })
        );
        l.check_n(3).unwrap();
        assert!(matches!(l.check_n(2), Err(Error::RateLimited(_))));
        l.check_n(1).unwrap();
        clock.advance(ms(500));
        l.check_n(2).unwrap();
        assert!(l.check().is_err());
    }

    #[test]
    fn runtime_quota_change_keeps_state() {
        let clock = ManualClock::new();
        let l = RateLimiter::with_clock(Quota::per_second(10).unwrap(), clock.clone());
        for _ in 0..10 {
            l.check().unwrap();
        }
        // The state is a time debt of one second. Switching to 20/s (burst 20) does not hand out
        // a fresh burst: the debt is still one second, i.e. the whole new burst.
        l.set_quota(Quota::per_second(20).unwrap());
        assert_eq!(l.quota().burst(), 20);
        assert!(l.check().is_err());
        // It refills at the new rate: one cell per 50 ms.
        clock.advance(ms(50));
        l.check().unwrap();
        assert!(l.check().is_err());
        clock.advance(ms(100));
        l.check().unwrap();
        l.check().unwrap();
        assert!(l.check().is_err());
        // Lowering the rate slows the refill without resetting it.
        l.set_quota(Quota::per_second(1).unwrap());
        let e = l.check().unwrap_err();
        assert!(e.wait_time() > ms(900), "{e:?}");
    }

    #[test]
    fn invalid_quotas_are_rejected() {
        assert!(Quota::per_second(0).is_err());
        assert!(Quota::with_period(Duration::ZERO).is_err());
        assert!(Quota::per_second(1).unwrap().allow_burst(0).is_err());
        assert!(Quota::per(Duration::from_nanos(1), 10).is_err());
    }

    #[test]
    fn reset_restores_the_burst() {
        let clock = ManualClock::new();
        let l = RateLimiter::with_clock(Quota::per_minute(2).unwrap(), clock);
        l.check().unwrap();
        l.check().unwrap();
        assert!(l.check().is_err());
        l.reset();
        l.check().unwrap();
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use dsp_core::ManualClock;
    use dsp_core::sync::atomic::{AtomicUsize, Ordering};
    use dsp_core::sync::{Arc, model, thread};

    use super::*;

    #[test]
    fn loom_gcra_cas_never_admits_more_than_burst() {
        model(|| {
            let quota = match Quota::per_second(2) {
                Ok(q) => q,
                Err(e) => panic!("{e}"),
            };
            let l = Arc::new(RateLimiter::with_clock(quota, ManualClock::new()));
            let admitted = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let l = l.clone();
                    let admitted = admitted.clone();
                    thread::spawn(move || {
                        if l.check().is_ok() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for h in handles {
                let _ = h.join();
            }
            assert_eq!(admitted.load(Ordering::Relaxed), 2);
        });
    }
}
