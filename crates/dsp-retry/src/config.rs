//! Policy, backoff, budget and hedging configuration.

use std::time::Duration;

use crate::{Error, Result};

/// How delays between attempts grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackoffKind {
    /// Always `base`.
    Constant,
    /// `base * multiplier^n`, capped at `max_delay`.
    Exponential,
    /// Uniform in `[0, min(max_delay, base * multiplier^n)]` ("full jitter", AWS).
    FullJitter,
    /// Uniform in `[base, min(max_delay, previous * 3)]` ("decorrelated jitter", AWS).
    DecorrelatedJitter,
}

/// Backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// The delay shape.
    pub kind: BackoffKind,
    /// The first (or constant) delay.
    pub base: Duration,
    /// Growth factor for exponential and full jitter (>= 1).
    pub multiplier: f64,
    /// Upper bound of every delay.
    pub max_delay: Duration,
}

impl Default for BackoffConfig {
    /// Full jitter from 50 ms doubling up to 20 s (the AWS SDK's standard mode).
    fn default() -> Self {
        Self {
            kind: BackoffKind::FullJitter,
            base: Duration::from_millis(50),
            multiplier: 2.0,
            max_delay: Duration::from_secs(20),
        }
    }
}

impl BackoffConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `base` is zero, `max_delay < base`, or `multiplier` is not a
    /// finite number >= 1.
    pub fn validate(&self) -> Result<()> {
        if self.base.is_zero() {
            return Err(Error::InvalidConfig("backoff base must be > 0"));
        }
        if self.max_delay < self.base {
            return Err(Error::InvalidConfig("backoff max delay is below base"));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(Error::InvalidConfig("backoff multiplier must be >= 1"));
        }
        Ok(())
    }
}

/// When to stop retrying.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delays between attempts.
    pub backoff: BackoffConfig,
    /// Attempts in total, the first included (>= 1; 1 = never retry).
    pub max_attempts: u32,
    /// Give up rather than start an attempt later than this after the first one began.
    pub max_elapsed: Option<Duration>,
    /// Seed of the jitter. Every run of a `Retrier` derives its own stream from
    /// it; give each client instance its own seed (e.g. from its node id) so that clients do not
    /// jitter in lockstep.
    pub seed: u64,
}

/// The default jitter seed: an explicit constant, so runs are reproducible.
pub const DEFAULT_SEED: u64 = 0x5EED_D5B0_0000_0001;

impl Default for RetryPolicy {
    /// 3 attempts, full jitter from 50 ms, no elapsed-time limit.
    fn default() -> Self {
        Self {
            backoff: BackoffConfig::default(),
            max_attempts: 3,
            max_elapsed: None,
            seed: DEFAULT_SEED,
        }
    }
}

impl RetryPolicy {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `max_attempts` is zero or the backoff is invalid.
    pub fn validate(&self) -> Result<()> {
        if self.max_attempts == 0 {
            return Err(Error::InvalidConfig("max attempts must be >= 1"));
        }
        self.backoff.validate()
    }
}

/// A retry budget's parameters (the AWS SDK retry quota).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Tokens the bucket holds, and starts with.
    pub capacity: u64,
    /// Tokens a retry costs.
    pub retry_cost: u64,
    /// Tokens a retry after a timeout costs.
    pub timeout_cost: u64,
    /// Tokens a success without retries deposits (up to capacity).
    pub success_deposit: u64,
}

impl Default for BudgetConfig {
    /// The AWS SDK standard mode: 500 tokens, 5 per retry, 10 per timeout retry, 1 back per
    /// success. Retries are thereby capped at about one per five successes once the initial
    /// tokens are spent.
    fn default() -> Self {
        Self {
            capacity: 500,
            retry_cost: 5,
            timeout_cost: 10,
            success_deposit: 1,
        }
    }
}

impl BudgetConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `capacity` or a cost is zero, or a cost exceeds the capacity.
    pub fn validate(&self) -> Result<()> {
        if self.capacity == 0 || self.capacity > u64::MAX / 2 {
            return Err(Error::InvalidConfig("budget capacity must be in 1..=2^63"));
        }
        if self.retry_cost == 0 || self.timeout_cost == 0 {
            return Err(Error::InvalidConfig("budget costs must be > 0"));
        }
        if self.retry_cost > self.capacity || self.timeout_cost > self.capacity {
            return Err(Error::InvalidConfig("budget costs exceed the capacity"));
        }
        Ok(())
    }
}

/// When a hedged request sends its backup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HedgeDelay {
    /// After a fixed delay.
    Fixed(Duration),
    /// After the given latency percentile (in `(0, 1)`) of recent attempts, or `fallback` until
    /// `min_samples` latencies have been seen.
    Percentile {
        /// The percentile, e.g. 0.95.
        percentile: f64,
        /// Samples needed before the percentile is trusted.
        min_samples: u64,
        /// Delay used until then.
        fallback: Duration,
    },
}

/// Hedged-request parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HedgeConfig {
    /// When to send each backup.
    pub delay: HedgeDelay,
    /// Backup requests at most (>= 1).
    pub max_hedges: u32,
}

impl Default for HedgeConfig {
    /// One backup after the p95 latency (50 ms until 20 samples are in).
    fn default() -> Self {
        Self {
            delay: HedgeDelay::Percentile {
                percentile: 0.95,
                min_samples: 20,
                fallback: Duration::from_millis(50),
            },
            max_hedges: 1,
        }
    }
}

impl HedgeConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `max_hedges` is zero or the percentile is outside `(0, 1)`.
    pub fn validate(&self) -> Result<()> {
        if self.max_hedges == 0 {
            return Err(Error::InvalidConfig("max hedges must be >= 1"));
        }
        if let HedgeDelay::Percentile { percentile, .. } = self.delay
            && !(percentile > 0.0 && percentile < 1.0)
        {
            return Err(Error::InvalidConfig("hedge percentile must be in (0, 1)"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(RetryPolicy::default().validate(), Ok(()));
        assert_eq!(BudgetConfig::default().validate(), Ok(()));
        assert_eq!(HedgeConfig::default().validate(), Ok(()));
    }

    #[test]
    fn invalid_configs_are_typed_errors() {
        let p = RetryPolicy {
            max_attempts: 0,
            ..Default::default()
        };
        assert!(p.validate().is_err());
        let b = BackoffConfig {
            base: Duration::ZERO,
            ..Default::default()
        };
        assert!(b.validate().is_err());
        let b = BackoffConfig {
            multiplier: f64::NAN,
            ..Default::default()
        };
        assert!(b.validate().is_err());
        let b = BackoffConfig {
            max_delay: Duration::from_millis(1),
            ..Default::default()
        };
        assert!(b.validate().is_err());
        assert!(
            BudgetConfig {
                capacity: 0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            BudgetConfig {
                retry_cost: 501,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            HedgeConfig {
                max_hedges: 0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        let h = HedgeConfig {
            delay: HedgeDelay::Percentile {
                percentile: 1.0,
                min_samples: 1,
                fallback: Duration::ZERO,
            },
            max_hedges: 1,
        };
        assert!(h.validate().is_err());
    }
}
