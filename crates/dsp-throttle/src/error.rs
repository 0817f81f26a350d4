//! The error type of `dsp-throttle`.

use std::time::Duration;

use dsp_core::Instant;

/// A rate limiter refused a cell: it conforms again at [`NotUntil::earliest`].
///
/// Returned by [`RateLimiter::check`](crate::RateLimiter::check); the limiter's state did not
/// change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited for another {:?}", self.wait_time())]
pub struct NotUntil {
    pub(crate) earliest: Instant,
    pub(crate) now: Instant,
}

impl NotUntil {
    /// The earliest instant at which the same request would conform.
    pub fn earliest(&self) -> Instant {
        self.earliest
    }

    /// The instant at which the limiter decided.
    pub fn decided_at(&self) -> Instant {
        self.now
    }

    /// How long to wait from the decision until the request would conform.
    pub fn wait_time(&self) -> Duration {
        self.earliest - self.now
    }

    /// How long to wait from `now` until the request would conform (zero if already past).
    pub fn wait_time_from(&self, now: Instant) -> Duration {
        self.earliest - now
    }
}

/// Errors returned by `dsp-throttle`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The rate limit is exhausted for now. The limiter's state did not change.
    #[error(transparent)]
    RateLimited(#[from] NotUntil),
    /// More cells were asked for at once than the burst can ever admit. The limiter's state did
    /// not change; retrying cannot succeed unless the quota grows.
    #[error("{requested} cells requested but the burst is only {burst}")]
    InsufficientCapacity {
        /// Cells asked for.
        requested: u32,
        /// The quota's burst.
        burst: u32,
    },
    /// A keyed limiter tracks its maximum number of keys, all of them active, so a new key was
    /// refused. No state changed (idle keys were evicted while looking for room).
    #[error("keyed limiter is full ({capacity} active keys)")]
    KeyCapacityExceeded {
        /// The configured maximum number of keys.
        capacity: usize,
    },
    /// Client-side adaptive throttling rejected the request locally. The request was counted
    /// as attempted.
    #[error("throttled locally (rejection probability {probability:.3})")]
    Throttled {
        /// The rejection probability at the time of the decision.
        probability: f64,
    },
    /// An adaptive concurrency limiter is at its current limit. No state changed apart from the
    /// rejection counter.
    #[error("concurrency limit of {limit} reached")]
    ConcurrencyLimited {
        /// The limit at the time of the decision.
        limit: usize,
    },
    /// A configuration value is invalid. Nothing was created or changed.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
}

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
