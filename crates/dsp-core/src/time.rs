//! Time as plain values, and the [`Clock`] trait that supplies it.
//!
//! Sans-IO cores never read a clock: they receive `now` as an argument. Drivers and the
//! request-path crates (breaker, limiter, retry) read time through a [`Clock`], so tests can use a
//! [`ManualClock`] and simulations a virtual one.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A reading of a monotonic clock, in nanoseconds since an arbitrary origin.
///
/// Unlike [`std::time::Instant`] it is a plain value: it can be constructed (simulations start at
/// zero), compared, stored and sent. Readings from different clocks share no origin and must not
/// be compared. Arithmetic saturates instead of overflowing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);
    /// The largest representable instant; useful as "never".
    pub const MAX: Instant = Instant(u64::MAX);

    /// An instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// An instant `millis` milliseconds after the origin (saturating).
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1_000_000))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// Time elapsed from `earlier` to `self`, or `None` if `earlier` is later.
    pub fn checked_duration_since(self, earlier: Instant) -> Option<Duration> {
        self.0.checked_sub(earlier.0).map(Duration::from_nanos)
    }

    /// `self + d`, or `None` on overflow.
    pub fn checked_add(self, d: Duration) -> Option<Instant> {
        u64::try_from(d.as_nanos())
            .ok()
            .and_then(|n| self.0.checked_add(n))
            .map(Instant)
    }

    /// `self - d`, or `None` if that would precede the origin.
    pub fn checked_sub(self, d: Duration) -> Option<Instant> {
        u64::try_from(d.as_nanos())
            .ok()
            .and_then(|n| self.0.checked_sub(n))
            .map(Instant)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturates at [`Instant::MAX`].
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_nanos(d)))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    /// Saturates at [`Instant::ZERO`].
    fn sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(duration_nanos(d)))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturates at zero, like [`Instant::saturating_duration_since`].
    fn sub(self, earlier: Instant) -> Duration {
        self.saturating_duration_since(earlier)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", Duration::from_nanos(self.0))
    }
}

/// A reading of a wall clock: nanoseconds since the Unix epoch.
///
/// Wall time can jump backwards (NTP, an operator); only crates that need calendar time, such as
/// hybrid logical clocks, read it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct WallTime(u64);

impl WallTime {
    /// The Unix epoch.
    pub const UNIX_EPOCH: WallTime = WallTime(0);

    /// `nanos` nanoseconds after the Unix epoch.
    pub const fn from_unix_nanos(nanos: u64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn as_unix_nanos(self) -> u64 {
        self.0
    }

    /// Converts a [`SystemTime`]; times before the epoch map to the epoch, times past the year
    /// 2554 saturate.
    pub fn from_system_time(t: SystemTime) -> Self {
        Self(
            t.duration_since(UNIX_EPOCH)
                .map(duration_nanos)
                .unwrap_or(0),
        )
    }

    /// Converts to a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.0)
    }

    /// Time from `earlier` to `self`, or zero if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: WallTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for WallTime {
    type Output = WallTime;
    /// Saturates.
    fn add(self, d: Duration) -> WallTime {
        WallTime(self.0.saturating_add(duration_nanos(d)))
    }
}

impl Sub<Duration> for WallTime {
    type Output = WallTime;
    /// Saturates at the epoch.
    fn sub(self, d: Duration) -> WallTime {
        WallTime(self.0.saturating_sub(duration_nanos(d)))
    }
}

impl fmt::Debug for WallTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WallTime({}.{:09})",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// A source of monotonic and wall-clock time.
///
/// Implementations must make [`Clock::now`] non-decreasing. [`Clock::wall`] may jump in either
/// direction. A `Clock` is shared between threads and tasks; `&C`, `Arc<C>` and `Box<C>` are clocks
/// too.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current monotonic time.
    fn now(&self) -> Instant;
    /// The current wall-clock time.
    fn wall(&self) -> WallTime;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn wall(&self) -> WallTime {
        (**self).wall()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn wall(&self) -> WallTime {
        (**self).wall()
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    fn now(&self) -> Instant {
        (**self).now()
    }
    fn wall(&self) -> WallTime {
        (**self).wall()
    }
}

/// The operating system's clocks.
///
/// Monotonic readings are measured from one process-wide origin (fixed the first time any
/// `SystemClock` is read), so instants from every `SystemClock` in a process are comparable.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl SystemClock {
    /// Creates a system clock.
    pub const fn new() -> Self {
        Self
    }
}

fn process_origin() -> std::time::Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant(duration_nanos(process_origin().elapsed()))
    }

    fn wall(&self) -> WallTime {
        WallTime::from_system_time(SystemTime::now())
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// Use it in tests to step time exactly, and to share one notion of time across tasks:
///
/// ```
/// use std::time::Duration;
/// use dsp_core::{Clock, Instant, ManualClock};
///
/// let clock = ManualClock::new();
/// let shared = clock.clone();
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(shared.now(), Instant::from_millis(250));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug, Default)]
struct ManualInner {
    mono: AtomicU64,
    wall: AtomicU64,
}

impl ManualClock {
    /// A clock at [`Instant::ZERO`], with wall time at the Unix epoch.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock starting at the given readings.
    pub fn starting_at(now: Instant, wall: WallTime) -> Self {
        let clock = Self::new();
        clock.inner.mono.store(now.as_nanos(), Ordering::SeqCst);
        clock
            .inner
            .wall
            .store(wall.as_unix_nanos(), Ordering::SeqCst);
        clock
    }

    /// Moves both monotonic and wall time forward by `d` (saturating).
    pub fn advance(&self, d: Duration) {
        let n = duration_nanos(d);
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self
            .inner
            .mono
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_add(n))
            });
        let _ = self
            .inner
            .wall
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_add(n))
            });
    }

    /// Sets monotonic time to `now`, moving wall time forward by the same amount.
    ///
    /// # Errors
    /// [`Error::TimeWentBackwards`] if `now` is earlier than the current reading; the clock is
    /// left unchanged.
    pub fn set(&self, now: Instant) -> Result<()> {
        let current = self.now();
        let delta = now
            .checked_duration_since(current)
            .ok_or(Error::TimeWentBackwards {
                now_nanos: current.as_nanos(),
                requested_nanos: now.as_nanos(),
            })?;
        self.advance(delta);
        Ok(())
    }

    /// Sets wall time only (it may go backwards, as real wall clocks do).
    pub fn set_wall(&self, wall: WallTime) {
        self.inner
            .wall
            .store(wall.as_unix_nanos(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant(self.inner.mono.load(Ordering::SeqCst))
    }

    fn wall(&self) -> WallTime {
        WallTime(self.inner.wall.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_arithmetic_saturates() {
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(Instant::ZERO - Duration::from_secs(1), Instant::ZERO);
        assert_eq!(
            Instant::from_millis(1) - Instant::from_millis(5),
            Duration::ZERO
        );
        assert_eq!(Instant::ZERO.checked_sub(Duration::from_nanos(1)), None);
        assert_eq!(Instant::MAX.checked_add(Duration::from_nanos(1)), None);
    }

    #[test]
    fn manual_clock_is_shared_between_clones() {
        let a = ManualClock::starting_at(Instant::from_millis(10), WallTime::from_unix_nanos(99));
        let b = a.clone();
        a.advance(Duration::from_millis(5));
        assert_eq!(b.now(), Instant::from_millis(15));
        assert_eq!(b.wall(), WallTime::from_unix_nanos(99 + 5_000_000));
    }

    #[test]
    fn manual_clock_refuses_to_go_backwards() {
        let c = ManualClock::starting_at(Instant::from_millis(10), WallTime::UNIX_EPOCH);
        assert_eq!(
            c.set(Instant::from_millis(9)),
            Err(Error::TimeWentBackwards {
                now_nanos: 10_000_000,
                requested_nanos: 9_000_000
            })
        );
        assert_eq!(c.now(), Instant::from_millis(10));
        c.set(Instant::from_millis(12)).unwrap();
        assert_eq!(c.now(), Instant::from_millis(12));
        c.set_wall(WallTime::UNIX_EPOCH);
        assert_eq!(c.wall(), WallTime::UNIX_EPOCH);
    }

    #[test]
    fn system_clock_is_monotonic_across_instances() {
        let a = SystemClock::new().now();
        let b = SystemClock.now();
        assert!(b >= a);
        assert!(SystemClock.wall() > WallTime::from_unix_nanos(1_600_000_000_000_000_000));
    }
}
