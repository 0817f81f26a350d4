//! Seeded, reproducible randomness.

use std::ops::Range;
use std::time::Duration;

/// A small, fast, seeded pseudo-random generator (xoshiro256**, seeded through SplitMix64).
///
/// Every core that needs randomness receives a `DetRng` (or a seed to build one) from its driver;
/// none calls `thread_rng()`. The algorithm is part of this crate's stability promise: the same
/// seed yields the same sequence in every version of `dsp-core` of the same major version, so a
/// failing simulation seed recorded today replays tomorrow. It is not cryptographically secure.
///
/// ```
/// use dsp_core::DetRng;
///
/// let mut a = DetRng::from_seed(7);
/// let mut b = DetRng::from_seed(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// let roll = a.gen_range(1..7);
/// assert!((1..7).contains(&roll));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetRng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl DetRng {
    /// A generator whose whole sequence is determined by `seed`.
    pub fn from_seed(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        // SplitMix64 never yields four zero words from one stream, so the state is valid.
        Self { s }
    }

    /// An independent generator derived from this one's next output and `stream`.
    ///
    /// Use it to hand each node, client or fault injector its own stream, so that adding draws in
    /// one place does not shift the sequence seen by another.
    pub fn fork(&mut self, stream: u64) -> DetRng {
        let base = self.next_u64();
        let mut sm = stream.wrapping_mul(0xD1B5_4A32_D192_ED03) ^ base;
        DetRng::from_seed(splitmix64(&mut sm))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Fills `dest` with random bytes.
    pub fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    /// A uniform value in `range` (without modulo bias). An empty range yields `range.start`.
    pub fn gen_range(&mut self, range: Range<u64>) -> u64 {
        let span = range.end.saturating_sub(range.start);
        if span == 0 {
            return range.start;
        }
        // Lemire's multiply-shift with rejection.
        let threshold = span.wrapping_neg() % span;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(span);
            if (m as u64) >= threshold {
                return range.start + (m >> 64) as u64;
            }
        }
    }

    /// A uniform index below `len` (zero if `len` is zero).
    pub fn gen_index(&mut self, len: usize) -> usize {
        self.gen_range(0..len as u64) as usize
    }

    /// A uniform float in `[0, 1)`.
    pub fn gen_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// `true` with probability `p` (clamped to `[0, 1]`; NaN counts as 0).
    pub fn gen_bool(&mut self, p: f64) -> bool {
        if p.is_nan() || p <= 0.0 {
            return false;
        }
        p >= 1.0 || self.gen_f64() < p
    }

    /// A uniform duration in `[range.start, range.end)`, at nanosecond resolution.
    pub fn gen_duration(&mut self, range: Range<Duration>) -> Duration {
        let lo = u64::try_from(range.start.as_nanos()).unwrap_or(u64::MAX);
        let hi = u64::try_from(range.end.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.gen_range(lo..hi))
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.gen_index(i + 1);
            items.swap(i, j);
        }
    }

    /// A uniformly chosen element, or `None` if `items` is empty.
    pub fn choose<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.gen_index(items.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sequence_is_pinned_for_replay() {
        // These values are part of the stability promise: changing them breaks recorded seeds.
        let mut r = DetRng::from_seed(0);
        let first: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
        let mut again = DetRng::from_seed(0);
        assert_eq!(first, (0..3).map(|_| again.next_u64()).collect::<Vec<_>>());
        assert_eq!(first[0], 0x99EC_5F36_CB75_F2B4);
    }

    #[test]
    fn forks_are_independent_and_reproducible() {
        let mut a = DetRng::from_seed(1);
        let mut b = DetRng::from_seed(1);
        let (mut fa1, mut fa2) = (a.fork(1), a.fork(2));
        let mut fb1 = b.fork(1);
        assert_eq!(fa1.next_u64(), fb1.next_u64());
        assert_ne!(fa1.next_u64(), fa2.next_u64());
    }

    #[test]
    fn gen_bool_extremes_and_nan() {
        let mut r = DetRng::from_seed(3);
        assert!((0..100).all(|_| !r.gen_bool(0.0)));
        assert!((0..100).all(|_| r.gen_bool(1.0)));
        assert!((0..100).all(|_| !r.gen_bool(f64::NAN)));
    }

    #[test]
    fn gen_range_is_roughly_uniform() {
        let mut r = DetRng::from_seed(11);
        let mut buckets = [0u32; 10];
        for _ in 0..100_000 {
            buckets[r.gen_range(0..10) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&b| (9_000..11_000).contains(&b)),
            "{buckets:?}"
        );
    }

    proptest! {
        #[test]
        fn gen_range_stays_in_range(seed: u64, lo: u64, span in 0u64..1_000_000) {
            let mut r = DetRng::from_seed(seed);
            let hi = lo.saturating_add(span);
            let v = r.gen_range(lo..hi);
            if hi > lo { prop_assert!(v >= lo && v < hi); } else { prop_assert_eq!(v, lo); }
        }

        #[test]
        fn shuffle_is_a_permutation(seed: u64, mut v in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = DetRng::from_seed(seed);
            let mut sorted = v.clone();
            r.shuffle(&mut v);
            v.sort_unstable();
            sorted.sort_unstable();
            prop_assert_eq!(v, sorted);
        }
    }
}
