//! Quotas: how many cells per period, and how many at once.

use std::time::Duration;

use crate::{Error, Result};

/// A rate: one cell every [`Quota::period`], and up to [`Quota::burst`] cells at once.
///
/// Over any window of length `W`, a limiter with this quota admits at most
/// `burst + floor(W / period)` cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    period_nanos: u64,
    burst: u32,
}

impl Quota {
    /// `n` cells per second, with a burst of `n`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `n` is zero.
    pub fn per_second(n: u32) -> Result<Self> {
        Self::per(Duration::from_secs(1), n)
    }

    /// `n` cells per minute, with a burst of `n`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `n` is zero.
    pub fn per_minute(n: u32) -> Result<Self> {
        Self::per(Duration::from_secs(60), n)
    }

    /// `n` cells per `interval`, with a burst of `n`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `n` is zero or `interval / n` rounds to zero nanoseconds.
    pub fn per(interval: Duration, n: u32) -> Result<Self> {
        if n == 0 {
            return Err(Error::InvalidConfig("a quota needs at least one cell"));
        }
        let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
        Self::with_period(Duration::from_nanos(nanos / u64::from(n)))?.allow_burst(n)
    }

    /// One cell every `period`, with a burst of one.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `period` is zero.
    pub fn with_period(period: Duration) -> Result<Self> {
        let period_nanos = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        let q = Quota {
            period_nanos,
            burst: 1,
        };
        q.validate()?;
        Ok(q)
    }

    /// The same rate with a burst of `burst` cells.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `burst` is zero.
    pub fn allow_burst(self, burst: u32) -> Result<Self> {
        let q = Quota { burst, ..self };
        q.validate()?;
        Ok(q)
    }

    /// Checks the invariants (non-zero period and burst).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the broken invariant.
    pub fn validate(&self) -> Result<()> {
        if self.period_nanos == 0 {
            return Err(Error::InvalidConfig(
                "the period between cells must be non-zero",
            ));
        }
        if self.burst == 0 {
            return Err(Error::InvalidConfig("the burst must be at least one cell"));
        }
        Ok(())
    }

    /// The time between two cells at the steady rate (the GCRA emission interval).
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.period_nanos)
    }

    /// The number of cells admitted at once by an idle limiter.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Rebuilds a quota from stored parts, clamping each to at least one.
    pub(crate) fn from_parts(period_nanos: u64, burst: u32) -> Quota {
        Quota {
            period_nanos: period_nanos.max(1),
            burst: burst.max(1),
        }
    }

    pub(crate) fn period_nanos(&self) -> u64 {
        self.period_nanos
    }

    /// The GCRA delay-variation tolerance: `(burst - 1) * period`.
    pub(crate) fn tau_nanos(&self) -> u64 {
        self.period_nanos
            .saturating_mul(u64::from(self.burst.saturating_sub(1)))
    }
}

/// The GCRA decision for `n` cells (`1 <= n <= burst`) at `now`, given the stored theoretical
/// arrival time `tat`: `Ok(new_tat)` if they conform, else `Err(earliest)` (the first instant
/// at which they would).
#[inline]
pub(crate) fn gcra(tat: u64, now: u64, period: u64, tau: u64, n: u64) -> Result<u64, u64> {
    let base = if tat > now { tat } else { now };
    // The last of the n cells arrives at base + (n-1) * period; it must not be more than tau
    // ahead of now.
    let last = base.saturating_add(period.saturating_mul(n - 1));
    let allow_at = last.saturating_sub(tau);
    if now >= allow_at {
        Ok(last.saturating_add(period))
    } else {
        Err(allow_at)
    }
}
