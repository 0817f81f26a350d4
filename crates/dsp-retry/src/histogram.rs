//! A small lock-free latency histogram for percentile-based hedging.

use std::time::Duration;

use dsp_core::sync::atomic::{AtomicU64, Ordering};

const BUCKETS: usize = 256;

/// Log-scale latency histogram: four buckets per power of two of nanoseconds (relative error
/// under 25 %), 256 atomic counters, lock-free recording.
///
/// When `max_samples` have been recorded every count is halved, so old latencies fade.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    total: AtomicU64,
    max_samples: u64,
}

fn index(nanos: u64) -> usize {
    if nanos < 4 {
        return nanos as usize;
    }
    let log = 63 - u64::from(nanos.leading_zeros());
    let sub = (nanos >> (log - 2)) & 3;
    (log * 4 + sub) as usize
}

fn upper_bound(idx: usize) -> u64 {
    if idx < 4 {
        return idx as u64;
    }
    let log = (idx / 4) as u32;
    let sub = (idx % 4) as u128;
    let hi = ((4 + sub + 1) << (log - 2)) - 1;
    u64::try_from(hi).unwrap_or(u64::MAX)
}

impl LatencyHistogram {
    /// An empty histogram that halves its counts every `max_samples` samples (at least 2).
    pub fn new(max_samples: u64) -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            total: AtomicU64::new(0),
            max_samples: max_samples.max(2),
        }
    }

    /// Records one latency.
    pub fn record(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[index(nanos)].fetch_add(1, Ordering::Relaxed);
        if self.total.fetch_add(1, Ordering::AcqRel) + 1 == self.max_samples {
            let mut sum = 0;
            for b in self.buckets.iter() {
                let prev = b.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(v / 2));
                sum += prev.unwrap_or(0) / 2;
            }
            self.total.store(sum, Ordering::Release);
        }
    }

    /// Samples currently counted.
    pub fn count(&self) -> u64 {
        self.total.load(Ordering::Acquire)
    }

    /// The latency below which a `p` share of samples fall (bucket upper bound), or `None` if
    /// empty. `p` is clamped to `[0, 1]`.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Acquire))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((p.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Duration::from_nanos(upper_bound(i)));
            }
        }
        Some(Duration::from_nanos(u64::MAX))
    }
}

impl Default for LatencyHistogram {
    /// Halves every 10 000 samples.
    fn default() -> Self {
        Self::new(10_000)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_their_values() {
        for v in [
            0u64,
            1,
            3,
            4,
            5,
            7,
            8,
            100,
            1_000_000,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let i = index(v);
            assert!(
                upper_bound(i) >= v,
                "{v} in bucket {i} with bound {}",
                upper_bound(i)
            );
            assert!(upper_bound(i) as f64 <= (v as f64) * 1.25 + 1.0, "{v}");
        }
    }

    #[test]
    fn percentile_tracks_distribution() {
        let h = LatencyHistogram::new(1_000_000);
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.percentile(0.5).unwrap();
        let p95 = h.percentile(0.95).unwrap();
        assert!(
            p50 >= Duration::from_millis(50) && p50 <= Duration::from_millis(63),
            "{p50:?}"
        );
        assert!(
            p95 >= Duration::from_millis(95) && p95 <= Duration::from_millis(119),
            "{p95:?}"
        );
        assert_eq!(LatencyHistogram::default().percentile(0.5), None);
    }

    #[test]
    fn old_samples_fade() {
        let h = LatencyHistogram::new(10);
        for _ in 0..10 {
            h.record(Duration::from_secs(1));
        }
        assert_eq!(h.count(), 5);
    }
}
