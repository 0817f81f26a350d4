//! [`QuantaClock`]: a [`Clock`] backed by the CPU's time-stamp counter through `quanta`.

use std::sync::OnceLock;
use std::time::SystemTime;

use crate::{Clock, Instant, WallTime};

/// The process-wide `quanta` clock and the raw reading that is this process's origin.
#[derive(Debug)]
struct Shared {
    clock: quanta::Clock,
    origin_raw: u64,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let clock = quanta::Clock::new();
        let origin_raw = clock.raw();
        Shared { clock, origin_raw }
    })
}

/// A monotonic clock that reads the CPU's time-stamp counter (via [`quanta`]) instead of asking
/// the operating system.
///
/// **Cost.** [`Clock::now`] is one `rdtsc` (x86-64) or `cntvct_el0` (aarch64) read plus a
/// multiply and a shift that convert counter ticks to nanoseconds (typically 5–20 ns), where
/// [`SystemClock`](crate::SystemClock) pays for a `clock_gettime` call (roughly 20–75 ns
/// depending on the machine and on whether the kernel's vDSO can use the TSC; more in many
/// virtual machines). Prefer it on hot paths that read the time on every call, such as rate
/// limiters and latency measurements. Where the counter is not usable (no invariant TSC, other
/// architectures) `quanta` falls back to the OS monotonic clock and `now` costs about as much as
/// `SystemClock`.
///
/// **Monotonic, one origin per process.** All `QuantaClock`s share one process-wide `quanta`
/// clock and one origin (the first reading taken in the process), so instants from any two
/// `QuantaClock`s in a process are comparable; a reading earlier than the origin (a core whose
/// counter lags) is clamped to [`Instant::ZERO`]. `quanta` only uses the counter when the CPU
/// reports an invariant TSC (constant rate, kept in step across cores), so readings do not
/// decrease: on one thread the counter only moves forward, and across threads readings are as
/// consistent as the hardware keeps the cores' counters (the same assumption `governor` and
/// `quanta::Instant` make). Instants from a `QuantaClock` and from a
/// [`SystemClock`](crate::SystemClock) have different origins and must not be mixed.
///
/// **Calibration.** The first `QuantaClock` created in a process calibrates the counter against
/// the OS monotonic clock (`quanta` spends up to about 200 ms on this, usually much less);
/// later ones reuse it. Create the clock (or the component that owns it) at start-up, not on a
/// request path. The calibrated rate is fixed afterwards, so over hours the clock can drift
/// from the OS clock by the calibration error (parts per million); that is harmless for
/// rate limiting and latency measurement, but use [`SystemClock`](crate::SystemClock) if you
/// need `std::time::Instant`'s exact rate.
///
/// [`Clock::wall`] reads [`SystemTime::now`] like `SystemClock` does.
///
/// ```
/// use dsp_core::{Clock, QuantaClock};
///
/// let clock = QuantaClock::new();
/// let a = clock.now();
/// let b = QuantaClock::default().now(); // same origin: comparable
/// assert!(b >= a);
/// ```
#[derive(Clone, Debug)]
#[cfg_attr(docsrs, doc(cfg(feature = "quanta")))]
pub struct QuantaClock {
    shared: &'static Shared,
}

impl QuantaClock {
    /// A clock reading the process-wide `quanta` clock (calibrated on first use).
    pub fn new() -> Self {
        QuantaClock { shared: shared() }
    }
}

impl Default for QuantaClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for QuantaClock {
    #[inline]
    fn now(&self) -> Instant {
        let clock = &self.shared.clock;
        Instant::from_nanos(clock.delta_as_nanos(self.shared.origin_raw, clock.raw()))
    }

    fn wall(&self) -> WallTime {
        WallTime::from_system_time(SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quanta_clock_is_monotonic_across_instances() {
        let a = QuantaClock::new();
        let b = QuantaClock::default();
        let c = a.clone();
        let mut last = a.now();
        for i in 0..10_000 {
            let clock = match i % 3 {
                0 => &a,
                1 => &b,
                _ => &c,
            };
            let now = clock.now();
            assert!(now >= last, "{now:?} < {last:?}");
            last = now;
        }
    }

    #[test]
    fn quanta_clock_advances_over_a_busy_loop() {
        let clock = QuantaClock::new();
        let earlier = clock.now();
        let started = std::time::Instant::now();
        let mut spins = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(2) {
            spins = std::hint::black_box(spins + 1);
        }
        let later = clock.now();
        assert!(
            later > earlier,
            "{later:?} <= {earlier:?} after {spins} spins"
        );
    }

    #[test]
    fn quanta_clock_wall_time_is_unix_time() {
        assert!(QuantaClock::new().wall() > WallTime::from_unix_nanos(1_600_000_000_000_000_000));
    }
}
