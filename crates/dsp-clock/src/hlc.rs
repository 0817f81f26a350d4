//! Hybrid logical clocks (Kulkarni et al., as in CockroachDB and `uhlc`).
//!
//! A timestamp is a physical part (milliseconds since the Unix epoch, 48 bits) and a logical
//! part (16 bits), packed into one `u64` whose numeric order is the timestamp order. The clock
//! reads physical time from a [`dsp_core::Clock`] (or takes it as an argument) and guarantees:
//!
//! - every timestamp it issues is greater than every timestamp it issued or observed before,
//!   even when the physical clock steps backwards;
//! - it stays close to physical time: it runs ahead of the local physical clock only by what it
//!   learned from remote timestamps (bounded by [`HlcConfig::max_drift`]) plus one millisecond
//!   per 65 536 events issued within one millisecond.
//!
//! **Overflow**: when the logical part would exceed `u16::MAX`, it carries into the physical
//! part (the packed `u64` is simply incremented): the clock moves one millisecond ahead of
//! physical time rather than wrapping. The physical part cannot reach its 48-bit limit (the year
//! 10889) from a [`WallTime`], which ends in 2554.

use std::fmt;
use std::time::Duration;

use dsp_core::sync::atomic::{AtomicU64, Ordering};
use dsp_core::{Clock, SystemClock, WallTime};

use crate::error::{Error, Result};

const LOGICAL_BITS: u32 = 16;
const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;
/// The largest physical part, in milliseconds since the Unix epoch.
const MAX_PHYSICAL_MS: u64 = u64::MAX >> LOGICAL_BITS;
/// The largest accepted maximum drift (one year); larger values are configuration mistakes.
const MAX_MAX_DRIFT: Duration = Duration::from_secs(365 * 24 * 3600);

/// A hybrid-logical-clock timestamp: 48-bit physical milliseconds and a 16-bit logical counter,
/// packed into one `u64`.
///
/// Orders by physical then logical part. Every `u64` is a valid timestamp, so decoding never
/// fails for [`HlcTimestamp::from_u64`]; [`HlcTimestamp::from_bytes`] checks only the length.
/// Displays as `<physical ms>.<logical>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct HlcTimestamp(u64);

impl HlcTimestamp {
    /// The Unix epoch with logical part zero.
    pub const ZERO: HlcTimestamp = HlcTimestamp(0);
    /// The largest timestamp.
    pub const MAX: HlcTimestamp = HlcTimestamp(u64::MAX);
    /// The size of [`HlcTimestamp::to_bytes`].
    pub const ENCODED_LEN: usize = 8;

    /// Builds a timestamp from its parts.
    ///
    /// # Errors
    /// [`Error::InvalidTimestamp`] if `physical_ms` does not fit in 48 bits.
    pub fn from_parts(physical_ms: u64, logical: u16) -> Result<Self> {
        if physical_ms > MAX_PHYSICAL_MS {
            return Err(Error::InvalidTimestamp {
                reason: format!("physical part {physical_ms} ms does not fit in 48 bits"),
            });
        }
        Ok(Self((physical_ms << LOGICAL_BITS) | u64::from(logical)))
    }

    /// The timestamp with logical part zero at a wall-clock time (truncated to milliseconds).
    pub const fn from_wall(wall: WallTime) -> Self {
        // u64::MAX ns is ~1.8e13 ms, well inside 48 bits, so the shift cannot lose bits.
        Self((wall.as_unix_nanos() / 1_000_000) << LOGICAL_BITS)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical counter.
    pub const fn logical(self) -> u16 {
        // The mask keeps 16 bits, so the cast is lossless.
        (self.0 & LOGICAL_MASK) as u16
    }

    /// The physical part as a wall-clock time.
    pub const fn to_wall(self) -> WallTime {
        WallTime::from_unix_nanos(self.physical_ms().saturating_mul(1_000_000))
    }

    /// The packed form.
    pub const fn to_u64(self) -> u64 {
        self.0
    }

    /// Unpacks; every `u64` is a valid timestamp.
    pub const fn from_u64(packed: u64) -> Self {
        Self(packed)
    }

    /// Big-endian bytes: byte order equals timestamp order, so they work as sort keys.
    pub const fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Decodes [`HlcTimestamp::to_bytes`].
    ///
    /// # Errors
    /// [`Error::InvalidTimestamp`] if `bytes` is not exactly 8 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let array: [u8; 8] = bytes.try_into().map_err(|_| Error::InvalidTimestamp {
            reason: format!("expected {} bytes, got {}", Self::ENCODED_LEN, bytes.len()),
        })?;
        Ok(Self(u64::from_be_bytes(array)))
    }

    /// The next timestamp: logical part + 1, carrying into the physical part; saturates at
    /// [`HlcTimestamp::MAX`].
    const fn successor(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

impl fmt::Debug for HlcTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HlcTimestamp({}.{})", self.physical_ms(), self.logical())
    }
}

impl fmt::Display for HlcTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.physical_ms(), self.logical())
    }
}

/// Configuration of a [`HybridClock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HlcConfig {
    /// How far ahead of the local physical clock a remote timestamp may be before
    /// [`HybridClock::update`] rejects it. Default 500 ms (CockroachDB's default maximum offset).
    /// At most one year.
    pub max_drift: Duration,
}

impl Default for HlcConfig {
    fn default() -> Self {
        Self {
            max_drift: Duration::from_millis(500),
        }
    }
}

impl HlcConfig {
    /// The default configuration with a different maximum drift.
    pub fn with_max_drift(max_drift: Duration) -> Self {
        Self { max_drift }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `max_drift` is longer than one year.
    pub fn validate(&self) -> Result<()> {
        if self.max_drift > MAX_MAX_DRIFT {
            return Err(Error::InvalidConfig {
                reason: format!("max_drift {:?} exceeds one year", self.max_drift),
            });
        }
        Ok(())
    }
}

/// The timestamp following `last` at physical time `wall`.
fn tick(last: HlcTimestamp, wall: WallTime) -> HlcTimestamp {
    let physical = HlcTimestamp::from_wall(wall);
    if physical > last {
        physical
    } else {
        last.successor()
    }
}

/// Checks `remote` against physical time `wall` and the drift bound.
fn check_drift(remote: HlcTimestamp, wall: WallTime, max_drift: Duration) -> Result<()> {
    let local = HlcTimestamp::from_wall(wall);
    if remote.physical_ms() > local.physical_ms() {
        let ahead = Duration::from_millis(remote.physical_ms() - local.physical_ms());
        if ahead > max_drift {
            return Err(Error::ClockDrift {
                remote,
                ahead,
                max_drift,
            });
        }
    }
    Ok(())
}

/// A hybrid logical clock owned by one thread (`&mut self`).
///
/// ```
/// use std::time::Duration;
/// use dsp_clock::{HlcConfig, HybridClock, HlcTimestamp};
/// use dsp_core::{ManualClock, Instant, WallTime};
///
/// let wall = ManualClock::starting_at(Instant::ZERO, WallTime::from_unix_nanos(1_000_000_000));
/// let mut hlc = HybridClock::new(wall.clone(), HlcConfig::default())?;
/// let a = hlc.now();
/// let b = hlc.now(); // same millisecond: the logical part grows
/// assert!(b > a && b.physical_ms() == a.physical_ms());
///
/// // A remote timestamp slightly ahead is absorbed; one too far ahead is rejected.
/// let remote = HlcTimestamp::from_parts(1_100, 3)?;
/// assert!(hlc.update(remote)? > remote);
/// assert!(hlc.update(HlcTimestamp::from_parts(60_000, 0)?).is_err());
/// # Ok::<(), dsp_clock::Error>(())
/// ```
#[derive(Debug)]
pub struct HybridClock<C: Clock = SystemClock> {
    clock: C,
    config: HlcConfig,
    last: HlcTimestamp,
}

impl<C: Clock> HybridClock<C> {
    /// A clock reading physical time from `clock`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` is invalid.
    pub fn new(clock: C, config: HlcConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            clock,
            config,
            last: HlcTimestamp::ZERO,
        })
    }

    /// Restores a clock that must stay above `last` (for example the highest timestamp it
    /// persisted before a restart). Timestamps saturate at [`HlcTimestamp::MAX`] (no longer
    /// strictly increasing) — reachable only by starting at or near it.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` is invalid.
    pub fn starting_after(clock: C, config: HlcConfig, last: HlcTimestamp) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            clock,
            config,
            last,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HlcConfig {
        &self.config
    }

    /// The last timestamp issued or observed.
    pub fn last(&self) -> HlcTimestamp {
        self.last
    }

    /// A new timestamp for a local or send event, greater than every earlier one.
    pub fn now(&mut self) -> HlcTimestamp {
        let wall = self.clock.wall();
        self.now_at(wall)
    }

    /// [`HybridClock::now`] with physical time given explicitly.
    pub fn now_at(&mut self, wall: WallTime) -> HlcTimestamp {
        self.last = tick(self.last, wall);
        self.last
    }

    /// Merges a remote timestamp (a receive event) and returns a new timestamp greater than both
    /// it and every earlier one.
    ///
    /// # Errors
    /// [`Error::ClockDrift`] if `remote` is more than [`HlcConfig::max_drift`] ahead of the
    /// local physical clock; the clock is unchanged.
    pub fn update(&mut self, remote: HlcTimestamp) -> Result<HlcTimestamp> {
        let wall = self.clock.wall();
        self.update_at(wall, remote)
    }

    /// [`HybridClock::update`] with physical time given explicitly.
    ///
    /// # Errors
    /// As [`HybridClock::update`].
    pub fn update_at(&mut self, wall: WallTime, remote: HlcTimestamp) -> Result<HlcTimestamp> {
        check_drift(remote, wall, self.config.max_drift)?;
        self.last = tick(self.last.max(remote), wall);
        Ok(self.last)
    }
}

/// A hybrid logical clock shared between threads (`&self`): one compare-and-swap per event.
///
/// Same guarantees as [`HybridClock`]; timestamps handed to concurrent callers are distinct.
#[derive(Debug)]
pub struct AtomicHybridClock<C: Clock = SystemClock> {
    clock: C,
    config: HlcConfig,
    last: AtomicU64,
}

impl<C: Clock> AtomicHybridClock<C> {
    /// A clock reading physical time from `clock`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` is invalid.
    pub fn new(clock: C, config: HlcConfig) -> Result<Self> {
        Self::starting_after(clock, config, HlcTimestamp::ZERO)
    }

    /// Restores a clock that must stay above `last`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` is invalid.
    pub fn starting_after(clock: C, config: HlcConfig, last: HlcTimestamp) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            clock,
            config,
            last: AtomicU64::new(last.0),
        })
    }

    /// The last timestamp issued or observed.
    pub fn last(&self) -> HlcTimestamp {
        HlcTimestamp(self.last.load(Ordering::Acquire))
    }

    fn advance(&self, wall: WallTime, floor: HlcTimestamp) -> HlcTimestamp {
        let mut current = self.last.load(Ordering::Acquire);
        loop {
            let next = tick(HlcTimestamp(current).max(floor), wall);
            match self.last.compare_exchange_weak(
                current,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return next,
                Err(actual) => current = actual,
            }
        }
    }

    /// A new timestamp, greater than every earlier one issued or observed by this clock.
    pub fn now(&self) -> HlcTimestamp {
        self.now_at(self.clock.wall())
    }

    /// [`AtomicHybridClock::now`] with physical time given explicitly.
    pub fn now_at(&self, wall: WallTime) -> HlcTimestamp {
        self.advance(wall, HlcTimestamp::ZERO)
    }

    /// Merges a remote timestamp; see [`HybridClock::update`].
    ///
    /// # Errors
    /// [`Error::ClockDrift`]; the clock is unchanged.
    pub fn update(&self, remote: HlcTimestamp) -> Result<HlcTimestamp> {
        self.update_at(self.clock.wall(), remote)
    }

    /// [`AtomicHybridClock::update`] with physical time given explicitly.
    ///
    /// # Errors
    /// [`Error::ClockDrift`]; the clock is unchanged.
    pub fn update_at(&self, wall: WallTime, remote: HlcTimestamp) -> Result<HlcTimestamp> {
        check_drift(remote, wall, self.config.max_drift)?;
        Ok(self.advance(wall, remote))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use dsp_core::{Instant, ManualClock};

    fn ms(n: u64) -> WallTime {
        WallTime::from_unix_nanos(n * 1_000_000)
    }

    #[test]
    fn parts_round_trip_and_order() {
        let t = HlcTimestamp::from_parts(123_456, 7).unwrap();
        assert_eq!((t.physical_ms(), t.logical()), (123_456, 7));
        assert!(t < HlcTimestamp::from_parts(123_456, 8).unwrap());
        assert!(
            HlcTimestamp::from_parts(123_456, u16::MAX).unwrap()
                < HlcTimestamp::from_parts(123_457, 0).unwrap()
        );
        assert_eq!(HlcTimestamp::from_bytes(&t.to_bytes()).unwrap(), t);
        assert_eq!(t.to_string(), "123456.7");
    }

    #[test]
    fn malformed_encodings_are_typed_errors() {
        assert!(matches!(
            HlcTimestamp::from_bytes(&[1, 2, 3]),
            Err(Error::InvalidTimestamp { .. })
        ));
        assert!(matches!(
            HlcTimestamp::from_bytes(&[0; 9]),
            Err(Error::InvalidTimestamp { .. })
        ));
        assert!(matches!(
            HlcTimestamp::from_parts(1 << 48, 0),
            Err(Error::InvalidTimestamp { .. })
        ));
    }

    #[test]
    fn monotonic_when_physical_time_goes_backwards() {
        let mut hlc = HybridClock::new(ManualClock::new(), HlcConfig::default()).unwrap();
        let a = hlc.now_at(ms(1_000));
        let b = hlc.now_at(ms(500));
        assert!(b > a);
        assert_eq!(b.physical_ms(), 1_000);
        assert_eq!(b.logical(), 1);
        let c = hlc.now_at(ms(2_000));
        assert_eq!(c, HlcTimestamp::from_parts(2_000, 0).unwrap());
    }

    #[test]
    fn logical_overflow_carries_into_physical() {
        let start = HlcTimestamp::from_parts(10, u16::MAX).unwrap();
        let mut hlc =
            HybridClock::starting_after(ManualClock::new(), HlcConfig::default(), start).unwrap();
        let next = hlc.now_at(ms(10));
        assert_eq!(next, HlcTimestamp::from_parts(11, 0).unwrap());
    }

    #[test]
    fn update_exceeds_remote_and_rejects_drift() {
        let mut hlc = HybridClock::new(ManualClock::new(), HlcConfig::default()).unwrap();
        hlc.now_at(ms(1_000));
        let remote = HlcTimestamp::from_parts(1_400, 9).unwrap();
        let merged = hlc.update_at(ms(1_000), remote).unwrap();
        assert_eq!(merged, HlcTimestamp::from_parts(1_400, 10).unwrap());
        let before = hlc.last();
        let far = HlcTimestamp::from_parts(1_501, 0).unwrap();
        let err = hlc.update_at(ms(1_000), far).unwrap_err();
        assert!(
            matches!(err, Error::ClockDrift { ahead, .. } if ahead == Duration::from_millis(501))
        );
        assert_eq!(
            hlc.last(),
            before,
            "a rejected update leaves the clock unchanged"
        );
    }

    #[test]
    fn reads_physical_time_from_the_injected_clock() {
        let wall = ManualClock::starting_at(Instant::ZERO, ms(5_000));
        let mut hlc = HybridClock::new(wall.clone(), HlcConfig::default()).unwrap();
        assert_eq!(hlc.now().physical_ms(), 5_000);
        wall.advance(Duration::from_millis(3));
        assert_eq!(hlc.now(), HlcTimestamp::from_parts(5_003, 0).unwrap());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serde_form_is_the_packed_u64() {
        use serde::Deserialize;
        use serde::de::value::{Error as ValueError, U64Deserializer};
        let t = HlcTimestamp::from_parts(1_234, 5).unwrap();
        let back = HlcTimestamp::deserialize(U64Deserializer::<ValueError>::new(t.to_u64()));
        assert_eq!(back.unwrap(), t);
        let g = crate::Generation::deserialize(U64Deserializer::<ValueError>::new(9));
        assert_eq!(g.unwrap(), crate::Generation(9));
    }

    #[test]
    fn invalid_config_is_rejected() {
        let config = HlcConfig::with_max_drift(Duration::from_secs(400 * 24 * 3600));
        assert!(matches!(
            HybridClock::new(ManualClock::new(), config),
            Err(Error::InvalidConfig { .. })
        ));
        assert!(AtomicHybridClock::new(ManualClock::new(), config).is_err());
    }

    #[test]
    fn atomic_clock_issues_distinct_increasing_timestamps_across_threads() {
        let wall = ManualClock::starting_at(Instant::ZERO, ms(7));
        let hlc = std::sync::Arc::new(AtomicHybridClock::new(wall, HlcConfig::default()).unwrap());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let hlc = std::sync::Arc::clone(&hlc);
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    let mut prev = HlcTimestamp::ZERO;
                    for _ in 0..500 {
                        let t = hlc.now();
                        assert!(t > prev);
                        prev = t;
                        seen.push(t);
                    }
                    seen
                })
            })
            .collect();
        let mut all: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 2_000);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use dsp_core::ManualClock;
    use dsp_core::sync::{Arc, model, thread};

    #[test]
    fn loom_atomic_hlc_now_and_update_are_distinct_and_above_remote() {
        model(|| {
            let hlc =
                Arc::new(AtomicHybridClock::new(ManualClock::new(), HlcConfig::default()).unwrap());
            let h2 = Arc::clone(&hlc);
            let remote = HlcTimestamp::from_parts(0, 5).unwrap();
            let t = thread::spawn(move || h2.update_at(WallTime::UNIX_EPOCH, remote).unwrap());
            let a = hlc.now_at(WallTime::UNIX_EPOCH);
            let b = t.join().unwrap();
            assert_ne!(a, b);
            assert!(b > remote);
            assert!(hlc.last() >= a.max(b));
        });
    }
}
