//! The counting Bloom filter: 4-bit saturating counters, so keys can be removed.

use std::fmt;
use std::hash::{BuildHasher, Hash};

use crate::codec::{self, KIND_COUNTING, Writer};
use crate::config::{BloomConfig, Sizing};
use crate::error::{Error, Result};
use crate::hash::{BloomHasher, Probes, fastrange64, fingerprint, hash_key};

/// Largest value of a counter; a counter that reaches it sticks there.
pub const COUNTER_MAX: u8 = 15;

const COUNTERS_PER_WORD: u64 = 16;

/// A counting Bloom filter: each position is a 4-bit counter instead of a bit, so
/// [`remove`](Self::remove) can undo an insert. It uses four times the memory of a
/// [`BloomFilter`](crate::BloomFilter) of the same false-positive rate.
///
/// Counters saturate at [`COUNTER_MAX`] and then stay there: a saturated counter is never
/// decremented, so overflow can never cause a false negative (it only keeps a few positions set
/// forever). Remove only keys you inserted: removing a key that was never inserted (a false
/// positive) decrements counters that belong to other keys and can make them disappear.
///
/// ```
/// use dsp_bloom::CountingBloomFilter;
///
/// let mut filter = CountingBloomFilter::new(1_000, 0.01).unwrap();
/// filter.insert("session-1");
/// assert!(filter.contains("session-1"));
/// assert!(filter.remove("session-1"));
/// assert!(!filter.contains("session-1"));
/// ```
#[derive(Clone)]
pub struct CountingBloomFilter<S = BloomHasher> {
    counters: Vec<u64>,
    sizing: Sizing,
    len: u64,
    hasher: S,
    fingerprint: u64,
}

impl CountingBloomFilter<BloomHasher> {
    /// A filter for `expected_items` at `target_fpr`, with the default hasher.
    pub fn new(expected_items: u64, target_fpr: f64) -> Result<Self> {
        Self::with_sizing(Sizing::classic(expected_items, target_fpr)?)
    }

    /// A filter for a validated [`BloomConfig`].
    pub fn from_config(config: &BloomConfig) -> Result<Self> {
        config.validate()?;
        Self::new(config.expected_items, config.target_fpr)
    }

    /// A filter of the given shape (`num_bits` counters) with the default hasher.
    pub fn with_sizing(sizing: Sizing) -> Result<Self> {
        Self::with_sizing_and_hasher(sizing, BloomHasher::default())
    }
}

#[inline(always)]
fn split(idx: u64) -> (usize, u32) {
    (
        (idx / COUNTERS_PER_WORD) as usize,
        ((idx % COUNTERS_PER_WORD) * 4) as u32,
    )
}

impl<S: BuildHasher> CountingBloomFilter<S> {
    /// A filter of the given shape and hasher (a blocked sizing is reinterpreted as classic).
    pub fn with_sizing_and_hasher(sizing: Sizing, hasher: S) -> Result<Self> {
        let sizing = Sizing::classic_with_bits(
            sizing.num_bits(),
            sizing.num_hashes(),
            sizing.expected_items(),
        )?;
        let words =
            usize::try_from(sizing.num_bits().div_ceil(COUNTERS_PER_WORD)).map_err(|_| {
                Error::TooLarge {
                    bits: sizing.num_bits().saturating_mul(4),
                }
            })?;
        let counters = codec::try_filled(words, 0_u64)?;
        let fingerprint = fingerprint(&hasher);
        Ok(Self {
            counters,
            sizing,
            len: 0,
            hasher,
            fingerprint,
        })
    }

    #[inline(always)]
    fn positions(&self, hash: u64) -> impl Iterator<Item = (usize, u32)> + use<S> {
        let m = self.sizing.num_bits();
        let mut probes = Probes::new(hash);
        (0..self.sizing.num_hashes()).map(move |_| split(fastrange64(probes.next_raw(), m)))
    }

    /// Adds `key` (again, if already present: counters count multiplicity). Returns `true` if
    /// the key was not apparently present before.
    pub fn insert<T: Hash + ?Sized>(&mut self, key: &T) -> bool {
        self.insert_hash(hash_key(&self.hasher, key))
    }

    /// Adds a key by its precomputed 64-bit hash.
    pub fn insert_hash(&mut self, hash: u64) -> bool {
        let mut new = false;
        for (w, shift) in self.positions(hash) {
            let word = &mut self.counters[w];
            let c = (*word >> shift) & 0xF;
            new |= c == 0;
            if c < u64::from(COUNTER_MAX) {
                *word += 1 << shift;
            }
        }
        self.len += 1;
        new
    }

    /// Whether `key` may be present.
    pub fn contains<T: Hash + ?Sized>(&self, key: &T) -> bool {
        self.contains_hash(hash_key(&self.hasher, key))
    }

    /// Lookup by precomputed 64-bit hash.
    pub fn contains_hash(&self, hash: u64) -> bool {
        self.positions(hash)
            .all(|(w, shift)| (self.counters[w] >> shift) & 0xF != 0)
    }

    /// An upper bound on how many times `key` was inserted (minus removals): the smallest of
    /// its counters. [`COUNTER_MAX`] means "at least that many".
    pub fn count<T: Hash + ?Sized>(&self, key: &T) -> u8 {
        let h = hash_key(&self.hasher, key);
        self.positions(h)
            .map(|(w, shift)| ((self.counters[w] >> shift) & 0xF) as u8)
            .min()
            .unwrap_or(0)
    }

    /// Removes one insert of `key`. Returns `false` (and changes nothing) if the key is
    /// certainly absent. See the type docs: remove only keys that were inserted.
    pub fn remove<T: Hash + ?Sized>(&mut self, key: &T) -> bool {
        self.remove_hash(hash_key(&self.hasher, key))
    }

    /// Removal by precomputed 64-bit hash.
    pub fn remove_hash(&mut self, hash: u64) -> bool {
        if !self.contains_hash(hash) {
            return false;
        }
        for (w, shift) in self.positions(hash) {
            let word = &mut self.counters[w];
            let c = (*word >> shift) & 0xF;
            if c != 0 && c < u64::from(COUNTER_MAX) {
                *word -= 1 << shift;
            }
        }
        self.len = self.len.saturating_sub(1);
        true
    }

    /// Counter-wise saturating sum: afterwards `self` contains every key either contained.
    /// [`Error::Incompatible`] (and `self` unchanged) unless same shape and hasher.
    pub fn union(&mut self, other: &Self) -> Result<()> {
        self.combine(other, |a, b| (a + b).min(u64::from(COUNTER_MAX)))?;
        self.len = self.len.saturating_add(other.len);
        Ok(())
    }

    /// Counter-wise minimum: afterwards `self` contains every key both contained.
    /// [`Error::Incompatible`] (and `self` unchanged) unless same shape and hasher.
    pub fn intersect(&mut self, other: &Self) -> Result<()> {
        self.combine(other, u64::min)?;
        self.len = self.len.min(other.len);
        Ok(())
    }

    fn combine(&mut self, other: &Self, f: impl Fn(u64, u64) -> u64) -> Result<()> {
        crate::classic::compatible(
            self.sizing,
            self.fingerprint,
            other.sizing,
            other.fingerprint,
        )?;
        for (a, b) in self.counters.iter_mut().zip(&other.counters) {
            let mut out = 0_u64;
            for shift in (0..64).step_by(4) {
                out |= f((*a >> shift) & 0xF, (b >> shift) & 0xF) << shift;
            }
            *a = out;
        }
        Ok(())
    }

    /// The stable, checksummed byte encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(
            KIND_COUNTING,
            self.fingerprint,
            self.counters.len() * 8 + 28,
        );
        w.u64(self.sizing.num_bits());
        w.u32(self.sizing.num_hashes());
        w.u64(self.sizing.expected_items());
        w.u64(self.len);
        w.words(self.counters.iter().copied());
        w.finish()
    }

    /// Decodes [`to_bytes`](Self::to_bytes) output with the hasher the filter was built with.
    pub fn from_bytes_with_hasher(bytes: &[u8], hasher: S) -> Result<Self> {
        let (fp, mut r) = codec::open(bytes, KIND_COUNTING)?;
        let num_counters = r.u64()?;
        let num_hashes = r.u32()?;
        let expected_items = r.u64()?;
        let len = r.u64()?;
        let sizing = Sizing::classic_with_bits(num_counters, num_hashes, expected_items)
            .map_err(|_| Error::Corrupt("invalid counting filter parameters"))?;
        let words = r.words(num_counters.div_ceil(COUNTERS_PER_WORD))?;
        r.finish()?;
        let fingerprint = fingerprint(&hasher);
        if fp != fingerprint {
            return Err(Error::HasherMismatch);
        }
        let counters = words.to_vec()?;
        let tail = (num_counters % COUNTERS_PER_WORD) * 4;
        if tail != 0 && counters.last().is_some_and(|w| w >> tail != 0) {
            return Err(Error::Corrupt("counters set past the end of the filter"));
        }
        Ok(Self {
            counters,
            sizing,
            len,
            hasher,
            fingerprint,
        })
    }

    /// Decodes with `S::default()` as the hasher.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self>
    where
        S: Default,
    {
        Self::from_bytes_with_hasher(bytes, S::default())
    }
}

impl<S> CountingBloomFilter<S> {
    /// The filter's shape (`num_bits` is the number of counters).
    pub fn sizing(&self) -> Sizing {
        self.sizing
    }

    /// Expected false-positive rate once the sized-for number of items is present.
    pub fn expected_fpr(&self) -> f64 {
        self.sizing.expected_fpr()
    }

    /// Bytes of counters (4 bits each).
    pub fn memory_bytes(&self) -> u64 {
        self.counters.len() as u64 * 8
    }

    /// Inserts minus successful removals (after a union: the sum; after an intersection: the
    /// smaller).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether every counter is zero.
    pub fn is_empty(&self) -> bool {
        self.counters.iter().all(|w| *w == 0)
    }

    /// Number of counters stuck at [`COUNTER_MAX`].
    pub fn saturated_counters(&self) -> u64 {
        self.counters
            .iter()
            .map(|w| (0..64).step_by(4).filter(|s| (w >> s) & 0xF == 0xF).count() as u64)
            .sum()
    }

    /// Removes everything, keeping the memory.
    pub fn clear(&mut self) {
        self.counters.fill(0);
        self.len = 0;
    }

    /// The hasher.
    pub fn hasher(&self) -> &S {
        &self.hasher
    }
}

impl<S> fmt::Debug for CountingBloomFilter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingBloomFilter")
            .field("num_counters", &self.sizing.num_bits())
            .field("num_hashes", &self.sizing.num_hashes())
            .field("expected_items", &self.sizing.expected_items())
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<S> PartialEq for CountingBloomFilter<S> {
    /// Same shape, hasher fingerprint and counters.
    fn eq(&self, other: &Self) -> bool {
        self.sizing == other.sizing
            && self.fingerprint == other.fingerprint
            && self.counters == other.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_saturate_and_never_cause_false_negatives() {
        let sizing = Sizing::classic_with_bits(16, 1, 1).unwrap();
        let mut f = CountingBloomFilter::with_sizing(sizing).unwrap();
        for _ in 0..40 {
            f.insert(&1_u8);
        }
        assert_eq!(f.count(&1_u8), COUNTER_MAX);
        assert!(f.saturated_counters() >= 1);
        for _ in 0..40 {
            f.remove(&1_u8);
        }
        // Saturated: stuck, so still present (no false negative for the other 25 copies).
        assert!(f.contains(&1_u8));
    }

    #[test]
    fn remove_of_absent_key_changes_nothing() {
        let mut f = CountingBloomFilter::new(1000, 0.001).unwrap();
        f.insert(&1_u32);
        let before = f.clone();
        assert!(!f.remove(&2_u32));
        assert_eq!(f, before);
    }

    #[test]
    fn insert_remove_restores_empty() {
        let mut f = CountingBloomFilter::new(1000, 0.01).unwrap();
        for i in 0..500_u32 {
            f.insert(&i);
        }
        for i in 0..500_u32 {
            assert!(f.remove(&i));
        }
        assert!(f.is_empty());
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn round_trip() {
        let mut f = CountingBloomFilter::new(300, 0.01).unwrap();
        for i in 0..300_u32 {
            f.insert(&i);
        }
        let g = CountingBloomFilter::<BloomHasher>::from_bytes(&f.to_bytes()).unwrap();
        assert_eq!(f, g);
    }
}
