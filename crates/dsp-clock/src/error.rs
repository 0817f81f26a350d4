//! The error type of `dsp-clock`.

use std::time::Duration;

use crate::generation::FencingToken;
use crate::hlc::HlcTimestamp;

/// A boxed error from a caller-supplied [`GenerationStore`](crate::GenerationStore).
pub type StoreError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors returned by `dsp-clock`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A [`GenerationStore`](crate::GenerationStore) failed to load or store. When returned by
    /// [`GenerationClock::advance`](crate::GenerationClock::advance) or
    /// [`GenerationClock::observe`](crate::GenerationClock::observe) the clock did not change:
    /// the new generation must not be used.
    #[error("generation store failed")]
    Store(#[source] StoreError),

    /// A request carried a fencing token older than the newest one the resource has accepted.
    /// The fence did not change; the request must be rejected.
    #[error("stale fencing token {presented}: the resource has seen {current}")]
    Stale {
        /// The token that was presented.
        presented: FencingToken,
        /// The highest token the fence has accepted.
        current: FencingToken,
    },

    /// A counter (generation, Lamport time, version-vector entry) is at `u64::MAX` and cannot
    /// grow. Nothing changed.
    #[error("{what} counter is exhausted at u64::MAX")]
    CounterOverflow {
        /// Which counter overflowed.
        what: &'static str,
    },

    /// A remote hybrid-logical-clock timestamp is further ahead of the local physical clock than
    /// the configured maximum drift. The clock did not change.
    #[error(
        "remote timestamp {remote} is {ahead:?} ahead of local physical time, more than the maximum drift {max_drift:?}"
    )]
    ClockDrift {
        /// The rejected remote timestamp.
        remote: HlcTimestamp,
        /// How far ahead of the local physical clock it was.
        ahead: Duration,
        /// The configured maximum drift.
        max_drift: Duration,
    },

    /// Bytes or parts could not be decoded as a timestamp. Nothing changed.
    #[error("invalid timestamp: {reason}")]
    InvalidTimestamp {
        /// What was wrong.
        reason: String,
    },

    /// A configuration value is out of range. Nothing was built.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What was wrong.
        reason: String,
    },

    /// A write to a [`VersionedStore`](crate::VersionedStore) reused a version that already
    /// holds a value for that key. Nothing changed.
    #[error("version already written for this key")]
    DuplicateVersion,

    /// A read or write of a [`VersionedStore`](crate::VersionedStore) asked for a version below
    /// the garbage-collection watermark, whose history is gone. Nothing changed.
    #[error("version is below the garbage-collection watermark")]
    BelowWatermark,
}

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
