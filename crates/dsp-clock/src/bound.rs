//! Clock-bound wait: commit wait and read uncertainty for clocks with a known error bound.
//!
//! A clock whose reading may be off from true time by up to `epsilon` (TrueTime, AWS
//! ClockBound, an NTP-disciplined clock with a known maximum offset) cannot tell which of two
//! timestamps within `epsilon` of each other came first. Two techniques restore external
//! consistency, and both are plain arithmetic here — the caller does the waiting:
//!
//! - **Commit wait** (Spanner): a write with timestamp `ts` is acknowledged only once every
//!   clock is past `ts`, that is once the local reading is `>= ts + epsilon`.
//!   [`ClockBound::commit_wait`] returns that deadline.
//! - **Read uncertainty** (CockroachDB): a read at `ts` that finds a value stamped in
//!   `(ts, ts + epsilon]` cannot know whether that write happened before the read began;
//!   [`ClockBound::read_uncertainty`] reports it so the reader can restart above the value.

use std::time::Duration;

use dsp_core::{Instant, WallTime};

use crate::error::{Error, Result};

/// The interval `[earliest, latest]` that contains true time.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TimeInterval {
    /// True time is not before this.
    pub earliest: WallTime,
    /// True time is not after this.
    pub latest: WallTime,
}

impl TimeInterval {
    /// Whether true time is certainly after `ts`.
    pub fn after(&self, ts: WallTime) -> bool {
        self.earliest > ts
    }

    /// Whether true time is certainly before `ts`.
    pub fn before(&self, ts: WallTime) -> bool {
        self.latest < ts
    }
}

/// What a read at some timestamp should do with a value it found.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ReadUncertainty {
    /// The value was written at or before the read timestamp: it is visible.
    Visible,
    /// The value's timestamp is after the read timestamp but within the clock error bound: it
    /// may have been written before the read started. The reader must restart at (or above)
    /// `restart_at` to read consistently.
    Uncertain {
        /// The value's timestamp: restart the read at this timestamp or later.
        restart_at: WallTime,
    },
    /// The value's timestamp is beyond the uncertainty window: it certainly happened after the
    /// read began and is not visible.
    Invisible,
}

/// A clock error bound and the arithmetic built on it.
///
/// ```
/// use std::time::Duration;
/// use dsp_clock::{ClockBound, ReadUncertainty};
/// use dsp_core::WallTime;
///
/// let bound = ClockBound::new(Duration::from_millis(7))?;
/// let now = WallTime::from_unix_nanos(1_000_000_000);
/// let ts = bound.commit_timestamp(now);            // now + 7 ms
/// let ack_after = bound.commit_wait(ts);           // ts + 7 ms
/// assert!(!bound.is_safe(now, ts));
/// assert!(bound.is_safe(ack_after, ts));
///
/// let read_ts = now;
/// let value_ts = now + Duration::from_millis(3);
/// assert!(matches!(bound.read_uncertainty(read_ts, value_ts), ReadUncertainty::Uncertain { .. }));
/// # Ok::<(), dsp_clock::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ClockBound {
    epsilon: Duration,
}

impl ClockBound {
    /// A bound of `epsilon` in either direction.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `epsilon` exceeds one hour (clearly a unit mistake).
    pub fn new(epsilon: Duration) -> Result<Self> {
        if epsilon > Duration::from_secs(3600) {
            return Err(Error::InvalidConfig {
                reason: format!("clock error bound {epsilon:?} exceeds one hour"),
            });
        }
        Ok(Self { epsilon })
    }

    /// The error bound.
    pub fn epsilon(&self) -> Duration {
        self.epsilon
    }

    /// The interval that contains true time when the local clock reads `now`.
    pub fn interval(&self, now: WallTime) -> TimeInterval {
        TimeInterval {
            earliest: now - self.epsilon,
            latest: now + self.epsilon,
        }
    }

    /// A commit timestamp for a write when the local clock reads `now`: `now + epsilon`, not
    /// earlier than any true time at this moment.
    pub fn commit_timestamp(&self, now: WallTime) -> WallTime {
        now + self.epsilon
    }

    /// The local clock reading after which a write stamped `ts` may be acknowledged:
    /// `ts + epsilon`. Once the local clock reads at least this, true time is past `ts` on
    /// every clock within the bound.
    pub fn commit_wait(&self, ts: WallTime) -> WallTime {
        ts + self.epsilon
    }

    /// The same deadline on the monotonic clock: given a simultaneous reading `(now, now_wall)`
    /// of both clocks, the [`Instant`] to sleep until before acknowledging a write stamped `ts`.
    /// Sleeping on the monotonic clock is immune to wall-clock steps during the wait.
    pub fn commit_wait_until(&self, now: Instant, now_wall: WallTime, ts: WallTime) -> Instant {
        now + self.commit_wait(ts).saturating_duration_since(now_wall)
    }

    /// How much longer to wait, from a local reading `now`, before acknowledging `ts`.
    pub fn commit_wait_remaining(&self, now: WallTime, ts: WallTime) -> Duration {
        self.commit_wait(ts).saturating_duration_since(now)
    }

    /// Whether a write stamped `ts` may be acknowledged when the local clock reads `now`.
    pub fn is_safe(&self, now: WallTime, ts: WallTime) -> bool {
        now >= self.commit_wait(ts)
    }

    /// Classifies a value stamped `value_ts` found by a read at `read_ts`.
    pub fn read_uncertainty(&self, read_ts: WallTime, value_ts: WallTime) -> ReadUncertainty {
        if value_ts <= read_ts {
            ReadUncertainty::Visible
        } else if value_ts <= read_ts + self.epsilon {
            ReadUncertainty::Uncertain {
                restart_at: value_ts,
            }
        } else {
            ReadUncertainty::Invisible
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ms(n: u64) -> WallTime {
        WallTime::from_unix_nanos(n * 1_000_000)
    }

    #[test]
    fn commit_wait_deadline_is_ts_plus_epsilon() {
        let bound = ClockBound::new(Duration::from_millis(5)).unwrap();
        let ts = bound.commit_timestamp(ms(100));
        assert_eq!(ts, ms(105));
        assert_eq!(bound.commit_wait(ts), ms(110));
        assert_eq!(
            bound.commit_wait_remaining(ms(100), ts),
            Duration::from_millis(10)
        );
        assert_eq!(bound.commit_wait_remaining(ms(200), ts), Duration::ZERO);
        assert!(!bound.is_safe(ms(109), ts));
        assert!(bound.is_safe(ms(110), ts));
        assert!(bound.interval(ms(111)).after(ts));
    }

    #[test]
    fn monotonic_deadline_tracks_wall_deadline() {
        let bound = ClockBound::new(Duration::from_millis(5)).unwrap();
        let at = bound.commit_wait_until(Instant::from_millis(40), ms(100), ms(105));
        assert_eq!(at, Instant::from_millis(50));
        // Already safe: the deadline is now.
        assert_eq!(
            bound.commit_wait_until(Instant::from_millis(40), ms(500), ms(105)),
            Instant::from_millis(40)
        );
    }

    #[test]
    fn read_uncertainty_window_is_half_open_above_read() {
        let bound = ClockBound::new(Duration::from_millis(5)).unwrap();
        assert_eq!(
            bound.read_uncertainty(ms(100), ms(100)),
            ReadUncertainty::Visible
        );
        assert_eq!(
            bound.read_uncertainty(ms(100), ms(105)),
            ReadUncertainty::Uncertain {
                restart_at: ms(105)
            }
        );
        assert_eq!(
            bound.read_uncertainty(ms(100), ms(106)),
            ReadUncertainty::Invisible
        );
    }

    #[test]
    fn zero_epsilon_is_a_perfect_clock_and_huge_is_rejected() {
        let perfect = ClockBound::new(Duration::ZERO).unwrap();
        assert_eq!(perfect.commit_wait(ms(5)), ms(5));
        assert_eq!(
            perfect.read_uncertainty(ms(5), ms(6)),
            ReadUncertainty::Invisible
        );
        assert!(matches!(
            ClockBound::new(Duration::from_secs(7200)),
            Err(Error::InvalidConfig { .. })
        ));
    }
}
