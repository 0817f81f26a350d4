//! Lock-free sliding windows of call outcomes.

use dsp_core::Instant;
use dsp_core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::config::WindowConfig;

/// Pads a value to its own cache line pair, so hot atomics do not share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

const FIELD_BITS: u32 = 21;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;

/// Counts read out of a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) slow: u64,
}

// One window per breaker; boxing the padded count window would add a pointer chase to every call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(cfg: &WindowConfig) -> Self {
        match *cfg {
            WindowConfig::Count { size, buckets } => Window::Count(CountWindow::new(size, buckets)),
            WindowConfig::Time {
                buckets,
                bucket_width,
            } => {
                let width = u64::try_from(bucket_width.as_nanos())
                    .unwrap_or(u64::MAX)
                    .max(1);
                Window::Time(TimeWindow::new(buckets, width))
            }
        }
    }

    pub(crate) fn needs_clock(&self) -> bool {
        matches!(self, Window::Time(_))
    }

    /// Records one outcome. `evaluate` runs on the window's totals before an old bucket is
    /// dropped, so the call just recorded is always part of what it sees; it runs only for
    /// failures and slow calls (a success cannot raise either rate).
    #[inline]
    pub(crate) fn record(
        &self,
        now: Instant,
        failure: bool,
        slow: bool,
        evaluate: impl FnOnce(Totals),
    ) {
        match self {
            Window::Count(w) => w.record(failure, slow, evaluate),
            Window::Time(w) => w.record(now, failure, slow, evaluate),
        }
    }

    /// Records a success in a count window (no-op for time windows, which need `now`).
    #[inline]
    pub(crate) fn record_success(&self) {
        if let Window::Count(w) = self {
            w.record_success();
        }
    }

    pub(crate) fn totals(&self, now: Instant) -> Totals {
        match self {
            Window::Count(w) => w.totals(),
            Window::Time(w) => w.totals(now),
        }
    }

    pub(crate) fn reset(&self) {
        match self {
            Window::Count(w) => w.reset(),
            Window::Time(w) => w.reset(),
        }
    }
}

/// A count window: a ring of buckets, each one packed atomic `calls | failures << 21 | slow << 42`.
///
/// A call adds to the current bucket with one `fetch_add`; the call that fills the bucket clears
/// the oldest bucket and moves the cursor to it.
#[derive(Debug)]
pub(crate) struct CountWindow {
    cursor: CachePadded<AtomicUsize>,
    buckets: Box<[AtomicU64]>,
    bucket_calls: u64,
}

impl CountWindow {
    fn new(size: u32, buckets: u32) -> Self {
        let n = buckets.max(1) as usize;
        Self {
            cursor: CachePadded(AtomicUsize::new(0)),
            buckets: (0..n).map(|_| AtomicU64::new(0)).collect(),
            bucket_calls: u64::from((size / buckets.max(1)).max(1)),
        }
    }

    #[inline]
    fn record_success(&self) {
        let idx = self.cursor.0.load(Ordering::Relaxed);
        let Some(bucket) = self.buckets.get(idx) else {
            return;
        };
        let prev = bucket.fetch_add(1, Ordering::AcqRel);
        if prev & FIELD_MASK == self.bucket_calls - 1 {
            self.rotate(idx);
        }
    }

    /// The call that filled bucket `idx` clears the oldest bucket and makes it current.
    #[cold]
    fn rotate(&self, idx: usize) {
        let next = if idx + 1 == self.buckets.len() {
            0
        } else {
            idx + 1
        };
        if let Some(b) = self.buckets.get(next) {
            b.store(0, Ordering::Release);
        }
        self.cursor.0.store(next, Ordering::Release);
    }

    #[inline]
    fn record(&self, failure: bool, slow: bool, evaluate: impl FnOnce(Totals)) {
        // The cursor only ever holds an index below `len` (no division on the hot path).
        let idx = self.cursor.0.load(Ordering::Relaxed);
        let Some(bucket) = self.buckets.get(idx) else {
            return;
        };
        let add = 1 | (u64::from(failure) << FIELD_BITS) | (u64::from(slow) << (2 * FIELD_BITS));
        let prev = bucket.fetch_add(add, Ordering::AcqRel);
        if failure || slow {
            evaluate(self.totals());
        }
        if prev & FIELD_MASK == self.bucket_calls - 1 {
            self.rotate(idx);
        }
    }

    fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for b in self.buckets.iter() {
            let v = b.load(Ordering::Acquire);
            t.calls += v & FIELD_MASK;
            t.failures += (v >> FIELD_BITS) & FIELD_MASK;
            t.slow += (v >> (2 * FIELD_BITS)) & FIELD_MASK;
        }
        t
    }

    fn reset(&self) {
        for b in self.buckets.iter() {
            b.store(0, Ordering::Release);
        }
        self.cursor.0.store(0, Ordering::Release);
    }
}

#[derive(Debug)]
struct TimeBucket {
    /// Bucket number + 1 (0 = never used).
    epoch: AtomicU64,
    calls: AtomicU64,
    /// `failures | slow << 32`.
    bad: AtomicU64,
}

/// A time window: a ring of buckets, each tagged with the time bucket it holds.
///
/// The first call of a new time bucket claims the slot with a CAS on its tag and clears it; calls
/// racing with that clear may be lost, so counts are exact except at bucket boundaries under
/// contention.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    width_nanos: u64,
    buckets: Box<[TimeBucket]>,
}

impl TimeWindow {
    fn new(buckets: u32, width_nanos: u64) -> Self {
        Self {
            width_nanos,
            buckets: (0..buckets.max(1))
                .map(|_| TimeBucket {
                    epoch: AtomicU64::new(0),
                    calls: AtomicU64::new(0),
                    bad: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    #[inline]
    fn record(&self, now: Instant, failure: bool, slow: bool, evaluate: impl FnOnce(Totals)) {
        let tag = now.as_nanos() / self.width_nanos + 1;
        let len = self.buckets.len() as u64;
        let b = &self.buckets[(tag % len) as usize];
        let seen = b.epoch.load(Ordering::Acquire);
        if seen != tag {
            if seen > tag {
                // The slot already holds a newer bucket: this reading is stale, drop it.
                return;
            }
            if b.epoch
                .compare_exchange(seen, tag, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                b.calls.store(0, Ordering::Release);
                b.bad.store(0, Ordering::Release);
            }
        }
        b.calls.fetch_add(1, Ordering::AcqRel);
        if failure || slow {
            b.bad.fetch_add(
                u64::from(failure) | (u64::from(slow) << 32),
                Ordering::AcqRel,
            );
            evaluate(self.totals(now));
        }
    }

    fn totals(&self, now: Instant) -> Totals {
        let tag = now.as_nanos() / self.width_nanos + 1;
        let len = self.buckets.len() as u64;
        let oldest = tag.saturating_sub(len - 1);
        let mut t = Totals::default();
        for b in self.buckets.iter() {
            let e = b.epoch.load(Ordering::Acquire);
            if e != 0 && e >= oldest && e <= tag {
                t.calls += b.calls.load(Ordering::Acquire);
                let bad = b.bad.load(Ordering::Acquire);
                t.failures += bad & 0xFFFF_FFFF;
                t.slow += bad >> 32;
            }
        }
        t
    }

    fn reset(&self) {
        for b in self.buckets.iter() {
            b.epoch.store(0, Ordering::Release);
            b.calls.store(0, Ordering::Release);
            b.bad.store(0, Ordering::Release);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use super::*;

    fn count(size: u32, buckets: u32) -> Window {
        Window::new(&WindowConfig::Count { size, buckets })
    }

    #[test]
    fn exact_count_window_slides_one_call_at_a_time() {
        let w = count(4, 4);
        let mut last = Totals::default();
        for _ in 0..4 {
            w.record(Instant::ZERO, true, false, |t| last = t);
        }
        assert_eq!(
            last,
            Totals {
                calls: 4,
                failures: 4,
                slow: 0
            }
        );
        w.record(Instant::ZERO, false, false, |_| {
            panic!("successes are not evaluated")
        });
        w.record(Instant::ZERO, true, false, |t| last = t);
        // The window holds the last four calls: F F S F.
        assert_eq!(
            last,
            Totals {
                calls: 4,
                failures: 3,
                slow: 0
            }
        );
    }

    #[test]
    fn evaluation_sees_the_call_just_recorded() {
        let w = count(2, 1);
        w.record(Instant::ZERO, false, false, |_| {});
        let mut seen = None;
        w.record(Instant::ZERO, true, true, |t| seen = Some(t));
        assert_eq!(
            seen,
            Some(Totals {
                calls: 2,
                failures: 1,
                slow: 1
            })
        );
        // The single bucket was full and has been recycled.
        assert_eq!(w.totals(Instant::ZERO).calls, 0);
    }

    #[test]
    fn time_window_forgets_old_buckets() {
        let w = Window::new(&WindowConfig::Time {
            buckets: 3,
            bucket_width: Duration::from_secs(1),
        });
        w.record(Instant::from_millis(100), true, false, |_| {});
        w.record(Instant::from_millis(1100), false, false, |_| {});
        w.record(Instant::from_millis(2100), false, true, |_| {});
        assert_eq!(
            w.totals(Instant::from_millis(2500)),
            Totals {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        assert_eq!(
            w.totals(Instant::from_millis(3000)),
            Totals {
                calls: 2,
                failures: 0,
                slow: 1
            }
        );
        w.record(Instant::from_millis(5000), false, false, |_| {});
        assert_eq!(
            w.totals(Instant::from_millis(5000)),
            Totals {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        w.reset();
        assert_eq!(w.totals(Instant::from_millis(5000)), Totals::default());
    }
}
