//! Breaker configuration.

use std::time::Duration;

use crate::{Error, Result};

/// Largest count-window sub-bucket (calls per bucket).
pub(crate) const MAX_BUCKET_CALLS: u32 = 1 << 19;
/// Largest number of half-open trials (trial outcomes are packed in 16-bit fields).
pub(crate) const MAX_TRIALS: u32 = u16::MAX as u32;

/// The sliding window the breaker judges the closed state on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowConfig {
    /// The last `size` calls, kept as `buckets` sub-buckets of `size / buckets` calls.
    ///
    /// The oldest sub-bucket leaves the window whole, so the window covers between
    /// `size - size / buckets + 1` and `size` of the most recent calls. `buckets == size` is an
    /// exact sliding window; fewer buckets make the hot path cheaper (a bucket rotates once per
    /// `size / buckets` calls). `size` must be a multiple of `buckets`.
    Count {
        /// Calls in the window.
        size: u32,
        /// Sub-buckets (1..=size).
        buckets: u32,
    },
    /// The calls of the last `buckets * bucket_width` of time, in buckets of `bucket_width`
    /// (typically one second). Reads the clock once per recorded call.
    Time {
        /// Number of buckets in the ring.
        buckets: u32,
        /// Width of one bucket.
        bucket_width: Duration,
    },
}

/// Slow-call detection: calls that take at least `duration` count as slow, and the breaker opens
/// when the slow share reaches `rate_threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlowCallConfig {
    /// Calls taking at least this long are slow.
    pub duration: Duration,
    /// Share of slow calls (in `(0, 1]`) at which the breaker opens.
    pub rate_threshold: f64,
}

/// Configuration of a [`Breaker`](crate::Breaker).
///
/// Defaults follow resilience4j where the bucketed window allows: a 100-call count window (10
/// buckets), 50 % failure-rate threshold, judged after 50 calls, 10 half-open trials, 60 s open, no slow-call detection, no growth of
/// the open duration.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// The closed-state window.
    pub window: WindowConfig,
    /// Share of failed calls (in `(0, 1]`) at which the breaker opens.
    pub failure_rate_threshold: f64,
    /// Optional slow-call detection (off by default: then the closed path reads no clock for
    /// count windows).
    pub slow_call: Option<SlowCallConfig>,
    /// Calls the window must hold before rates are judged (for count windows at most
    /// `size - size / buckets + 1`, the fewest calls a full window holds).
    pub minimum_calls: u32,
    /// Trial calls admitted in half-open; their outcomes decide between closed and open.
    pub half_open_trials: u32,
    /// If set, a half-open breaker that has not completed its trials within this time reopens.
    pub max_wait_in_half_open: Option<Duration>,
    /// Time spent open after the first trip.
    pub open_duration: Duration,
    /// Factor the open duration grows by on each consecutive trip (1.0 = constant).
    pub open_backoff_multiplier: f64,
    /// Cap on the grown open duration.
    pub max_open_duration: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            window: WindowConfig::Count {
                size: 100,
                buckets: 10,
            },
            failure_rate_threshold: 0.5,
            slow_call: None,
            minimum_calls: 50,
            half_open_trials: 10,
            max_wait_in_half_open: None,
            open_duration: Duration::from_secs(60),
            open_backoff_multiplier: 1.0,
            max_open_duration: Duration::from_secs(60),
        }
    }
}

fn rate_ok(r: f64) -> bool {
    r.is_finite() && r > 0.0 && r <= 1.0
}

impl BreakerConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first problem found.
    pub fn validate(&self) -> Result<()> {
        match self.window {
            WindowConfig::Count { size, buckets } => {
                if size == 0 || buckets == 0 {
                    return Err(Error::InvalidConfig(
                        "count window size and buckets must be > 0",
                    ));
                }
                if buckets > size || size % buckets != 0 {
                    return Err(Error::InvalidConfig(
                        "count window size must be a multiple of buckets",
                    ));
                }
                if size / buckets > MAX_BUCKET_CALLS {
                    return Err(Error::InvalidConfig(
                        "count window buckets hold at most 2^19 calls",
                    ));
                }
                if self.minimum_calls > size - size / buckets + 1 {
                    return Err(Error::InvalidConfig(
                        "minimum calls exceed what the count window holds (size - size / buckets + 1)",
                    ));
                }
            }
            WindowConfig::Time {
                buckets,
                bucket_width,
            } => {
                if buckets == 0 || buckets > 1 << 16 {
                    return Err(Error::InvalidConfig(
                        "time window buckets must be in 1..=65536",
                    ));
                }
                if bucket_width.is_zero() || bucket_width.as_nanos() > u128::from(u64::MAX / 4) {
                    return Err(Error::InvalidConfig(
                        "time window bucket width out of range",
                    ));
                }
            }
        }
        if !rate_ok(self.failure_rate_threshold) {
            return Err(Error::InvalidConfig(
                "failure rate threshold must be in (0, 1]",
            ));
        }
        if let Some(slow) = &self.slow_call
            && !rate_ok(slow.rate_threshold)
        {
            return Err(Error::InvalidConfig(
                "slow call rate threshold must be in (0, 1]",
            ));
        }
        if self.minimum_calls == 0 {
            return Err(Error::InvalidConfig("minimum calls must be > 0"));
        }
        if self.half_open_trials == 0 || self.half_open_trials > MAX_TRIALS {
            return Err(Error::InvalidConfig(
                "half-open trials must be in 1..=65535",
            ));
        }
        if self.open_duration.is_zero() {
            return Err(Error::InvalidConfig("open duration must be > 0"));
        }
        if !(self.open_backoff_multiplier.is_finite() && self.open_backoff_multiplier >= 1.0) {
            return Err(Error::InvalidConfig("open backoff multiplier must be >= 1"));
        }
        if self.max_open_duration < self.open_duration {
            return Err(Error::InvalidConfig(
                "max open duration is below the open duration",
            ));
        }
        Ok(())
    }

    /// The open duration after `trips` consecutive trips (1 = first trip).
    pub(crate) fn open_duration_for(&self, trips: u32) -> Duration {
        let exp = trips.saturating_sub(1).min(1024);
        let factor = self
            .open_backoff_multiplier
            .powi(i32::try_from(exp).unwrap_or(i32::MAX));
        let secs = self.open_duration.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max_open_duration.as_secs_f64() {
            self.max_open_duration
        } else {
            Duration::from_secs_f64(secs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert_eq!(BreakerConfig::default().validate(), Ok(()));
    }

    #[test]
    fn bad_configs_are_typed_errors() {
        let bad = [
            BreakerConfig {
                window: WindowConfig::Count {
                    size: 0,
                    buckets: 1,
                },
                ..Default::default()
            },
            BreakerConfig {
                window: WindowConfig::Count {
                    size: 10,
                    buckets: 3,
                },
                ..Default::default()
            },
            BreakerConfig {
                failure_rate_threshold: 0.0,
                ..Default::default()
            },
            BreakerConfig {
                failure_rate_threshold: f64::NAN,
                ..Default::default()
            },
            BreakerConfig {
                minimum_calls: 0,
                ..Default::default()
            },
            BreakerConfig {
                minimum_calls: 101,
                ..Default::default()
            },
            BreakerConfig {
                half_open_trials: 0,
                ..Default::default()
            },
            BreakerConfig {
                open_duration: Duration::ZERO,
                ..Default::default()
            },
            BreakerConfig {
                open_backoff_multiplier: 0.5,
                ..Default::default()
            },
            BreakerConfig {
                max_open_duration: Duration::from_secs(1),
                ..Default::default()
            },
            BreakerConfig {
                window: WindowConfig::Time {
                    buckets: 10,
                    bucket_width: Duration::ZERO,
                },
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(
                matches!(c.validate(), Err(Error::InvalidConfig(_))),
                "{c:?}"
            );
        }
    }

    #[test]
    fn open_duration_grows_and_is_capped() {
        let c = BreakerConfig {
            open_duration: Duration::from_secs(1),
            open_backoff_multiplier: 2.0,
            max_open_duration: Duration::from_secs(5),
            ..Default::default()
        };
        assert_eq!(c.open_duration_for(1), Duration::from_secs(1));
        assert_eq!(c.open_duration_for(2), Duration::from_secs(2));
        assert_eq!(c.open_duration_for(3), Duration::from_secs(4));
        assert_eq!(c.open_duration_for(4), Duration::from_secs(5));
        assert_eq!(c.open_duration_for(u32::MAX), Duration::from_secs(5));
    }
}
