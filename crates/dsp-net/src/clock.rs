//! A [`Clock`] read from tokio's clock, so paused-time tests are deterministic.

use std::time::{Duration, SystemTime};

use dsp_core::{Clock, Instant, WallTime};

/// Monotonic time from [`tokio::time::Instant`], as [`dsp_core::Instant`] nanoseconds since the
/// clock was created; wall time from the system.
///
/// Under `#[tokio::test(start_paused = true)]` it advances only with tokio's virtual time, so the
/// node's view of time is exactly the test's.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading zero now.
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }

    /// The tokio instant at which this clock reads `at`, or `None` if it is too far away to
    /// represent (a timer at such a deadline never fires).
    pub fn to_tokio(&self, at: Instant) -> Option<tokio::time::Instant> {
        self.origin.checked_add(Duration::from_nanos(at.as_nanos()))
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        let d = tokio::time::Instant::now().saturating_duration_since(self.origin);
        Instant::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    fn wall(&self) -> WallTime {
        WallTime::from_system_time(SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_tokio_time() {
        let c = TokioClock::new();
        assert_eq!(c.now(), Instant::ZERO);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(c.now(), Instant::from_millis(1500));
        assert_eq!(
            c.to_tokio(Instant::from_millis(10)),
            Some(c.origin + Duration::from_millis(10))
        );
        // "Never" maps to a far deadline or to none, without panicking.
        assert!(c.to_tokio(Instant::MAX).is_none_or(|t| t > c.origin));
    }
}
