//! A classic filter shared between threads: insert and query through `&self`.

use std::fmt;
use std::hash::{BuildHasher, Hash};

use dsp_core::sync::atomic::{AtomicU64, Ordering};

use crate::classic::{BloomFilter, compatible};
use crate::codec::{self, KIND_CLASSIC, Writer};
use crate::config::{BloomConfig, Sizing};
use crate::error::Result;
use crate::hash::{BloomHasher, Probes, fastrange64, fingerprint, hash_key};

/// A classic Bloom filter whose bits are atomic words, so any number of threads insert and
/// query through `&self` (share it in an `Arc`). Same layout, sizing, false-positive rate and
/// byte encoding as [`BloomFilter`]; convert either way with `From` and
/// [`into_filter`](Self::into_filter).
///
/// Guarantees: an insert that happens-before a query (a join, a channel, a lock, or an
/// acquire load of a flag the inserter released after inserting) is always seen by it, so there
/// are no false negatives. A query running concurrently with the insert of the same key may
/// answer either way. Inserts use `fetch_or` (one atomic read-modify-write per probe); queries
/// are plain loads.
///
/// ```
/// use std::sync::Arc;
/// use dsp_bloom::ConcurrentBloomFilter;
///
/// let filter = Arc::new(ConcurrentBloomFilter::new(10_000, 0.01).unwrap());
/// let workers: Vec<_> = (0..4_u64)
///     .map(|t| {
///         let filter = Arc::clone(&filter);
///         std::thread::spawn(move || {
///             for i in 0..1_000_u64 {
///                 filter.insert(&(t * 1_000 + i));
///             }
///         })
///     })
///     .collect();
/// for w in workers {
///     w.join().unwrap();
/// }
/// assert!((0..4_000_u64).all(|k| filter.contains(&k)));
/// ```
pub struct ConcurrentBloomFilter<S = BloomHasher> {
    bits: Vec<AtomicU64>,
    sizing: Sizing,
    len: AtomicU64,
    hasher: S,
    fingerprint: u64,
}

impl ConcurrentBloomFilter<BloomHasher> {
    /// A filter for `expected_items` at `target_fpr`, with the default hasher.
    pub fn new(expected_items: u64, target_fpr: f64) -> Result<Self> {
        Self::with_sizing(Sizing::classic(expected_items, target_fpr)?)
    }

    /// A filter for a validated [`BloomConfig`].
    pub fn from_config(config: &BloomConfig) -> Result<Self> {
        config.validate()?;
        Self::new(config.expected_items, config.target_fpr)
    }

    /// A filter of the given shape with the default hasher.
    pub fn with_sizing(sizing: Sizing) -> Result<Self> {
        Self::with_sizing_and_hasher(sizing, BloomHasher::default())
    }
}

impl<S: BuildHasher> ConcurrentBloomFilter<S> {
    /// A filter of the given shape and hasher (a blocked sizing is reinterpreted as classic).
    pub fn with_sizing_and_hasher(sizing: Sizing, hasher: S) -> Result<Self> {
        let sizing = Sizing::classic_with_bits(
            sizing.num_bits(),
            sizing.num_hashes(),
            sizing.expected_items(),
        )?;
        let mut bits = codec::try_vec(sizing.words())?;
        bits.extend((0..sizing.words()).map(|_| AtomicU64::new(0)));
        let fingerprint = fingerprint(&hasher);
        Ok(Self {
            bits,
            sizing,
            len: AtomicU64::new(0),
            hasher,
            fingerprint,
        })
    }

    /// Adds `key`. Returns `true` if this call set at least one bit (the key was not apparently
    /// present). Of several threads inserting the same absent key at once, at least one gets
    /// `true`.
    #[inline]
    pub fn insert<T: Hash + ?Sized>(&self, key: &T) -> bool {
        self.insert_hash(hash_key(&self.hasher, key))
    }

    /// Whether `key` may have been inserted: `false` is certain for every insert that
    /// happened-before this call.
    #[inline]
    pub fn contains<T: Hash + ?Sized>(&self, key: &T) -> bool {
        self.contains_hash(hash_key(&self.hasher, key))
    }

    /// Adds a key by its precomputed 64-bit hash.
    #[inline]
    pub fn insert_hash(&self, hash: u64) -> bool {
        let m = self.sizing.num_bits();
        let mut probes = Probes::new(hash);
        let mut new = false;
        for _ in 0..self.sizing.num_hashes() {
            let idx = fastrange64(probes.next_raw(), m);
            let mask = 1_u64 << (idx & 63);
            let word = &self.bits[(idx >> 6) as usize];
            // Skip the read-modify-write when the bit is already set: the common case once
            // the filter fills, and it keeps the cache line shared between readers.
            if word.load(Ordering::Relaxed) & mask == 0 {
                new |= word.fetch_or(mask, Ordering::Relaxed) & mask == 0;
            }
        }
        if new {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        new
    }

    /// Lookup by precomputed 64-bit hash.
    #[inline]
    pub fn contains_hash(&self, hash: u64) -> bool {
        crate::classic::probe_all(self.sizing, hash, |w| self.bits[w].load(Ordering::Relaxed))
    }

    /// Hash of `key` under this filter's hasher.
    pub fn hash_of<T: Hash + ?Sized>(&self, key: &T) -> u64 {
        hash_key(&self.hasher, key)
    }

    /// Adds every bit of `other` through `&self` (safe while other threads insert and query).
    /// [`Error::Incompatible`](crate::Error::Incompatible) unless same shape and hasher.
    pub fn union(&self, other: &Self) -> Result<()> {
        compatible(
            self.sizing,
            self.fingerprint,
            other.sizing,
            other.fingerprint,
        )?;
        for (a, b) in self.bits.iter().zip(&other.bits) {
            let b = b.load(Ordering::Relaxed);
            if b != 0 {
                a.fetch_or(b, Ordering::Relaxed);
            }
        }
        self.len
            .fetch_max(other.len.load(Ordering::Relaxed), Ordering::Relaxed);
        Ok(())
    }

    /// Keeps only the bits also set in `other`. Takes `&mut self`: clearing bits while another
    /// thread inserts could lose that insert.
    pub fn intersect(&mut self, other: &Self) -> Result<()> {
        compatible(
            self.sizing,
            self.fingerprint,
            other.sizing,
            other.fingerprint,
        )?;
        for (a, b) in self.bits.iter().zip(&other.bits) {
            a.fetch_and(b.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let est = crate::classic::estimate_items(&self.snapshot(), self.sizing);
        let len = self
            .len
            .load(Ordering::Relaxed)
            .min(other.len.load(Ordering::Relaxed));
        self.len.store(len.min(est), Ordering::Relaxed);
        Ok(())
    }

    /// The byte encoding of a snapshot (same format as [`BloomFilter::to_bytes`]; inserts
    /// running concurrently may or may not be included).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(KIND_CLASSIC, self.fingerprint, self.bits.len() * 8 + 28);
        crate::classic::write_classic_body(
            &mut w,
            self.sizing,
            self.len.load(Ordering::Relaxed),
            self.bits.iter().map(|b| b.load(Ordering::Relaxed)),
        );
        w.finish()
    }

    /// Decodes [`to_bytes`](Self::to_bytes) (or [`BloomFilter::to_bytes`]) output.
    pub fn from_bytes_with_hasher(bytes: &[u8], hasher: S) -> Result<Self> {
        BloomFilter::from_bytes_with_hasher(bytes, hasher).map(Self::from)
    }

    /// Decodes with `S::default()` as the hasher.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self>
    where
        S: Default,
    {
        Self::from_bytes_with_hasher(bytes, S::default())
    }

    /// A plain (single-owner) filter with the same contents.
    pub fn into_filter(self) -> BloomFilter<S> {
        let bits = self.snapshot();
        BloomFilter {
            bits,
            sizing: self.sizing,
            len: self.len.load(Ordering::Relaxed),
            hasher: self.hasher,
            fingerprint: self.fingerprint,
        }
    }
}

impl<S> ConcurrentBloomFilter<S> {
    fn snapshot(&self) -> Vec<u64> {
        self.bits
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }

    /// The filter's shape.
    pub fn sizing(&self) -> Sizing {
        self.sizing
    }

    /// Expected false-positive rate once the sized-for number of items is inserted.
    pub fn expected_fpr(&self) -> f64 {
        self.sizing.expected_fpr()
    }

    /// Bits per sized-for item.
    pub fn bits_per_key(&self) -> f64 {
        self.sizing.bits_per_key()
    }

    /// Bytes of bit array.
    pub fn memory_bytes(&self) -> u64 {
        self.sizing.memory_bytes()
    }

    /// Inserts that set at least one bit (see [`BloomFilter::len`]).
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether no bit is set.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|b| b.load(Ordering::Relaxed) == 0)
    }

    /// Number of set bits (a snapshot).
    pub fn count_ones(&self) -> u64 {
        self.bits
            .iter()
            .map(|b| u64::from(b.load(Ordering::Relaxed).count_ones()))
            .sum()
    }

    /// The hasher.
    pub fn hasher(&self) -> &S {
        &self.hasher
    }
}

impl<S> From<BloomFilter<S>> for ConcurrentBloomFilter<S> {
    fn from(f: BloomFilter<S>) -> Self {
        Self {
            bits: f.bits.into_iter().map(AtomicU64::new).collect(),
            sizing: f.sizing,
            len: AtomicU64::new(f.len),
            hasher: f.hasher,
            fingerprint: f.fingerprint,
        }
    }
}

impl<S> fmt::Debug for ConcurrentBloomFilter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConcurrentBloomFilter")
            .field("num_bits", &self.sizing.num_bits())
            .field("num_hashes", &self.sizing.num_hashes())
            .field("expected_items", &self.sizing.expected_items())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn threads_insert_without_false_negatives() {
        let f = Arc::new(ConcurrentBloomFilter::new(40_000, 0.01).unwrap());
        let handles: Vec<_> = (0..4_u64)
            .map(|t| {
                let f = Arc::clone(&f);
                std::thread::spawn(move || {
                    for i in 0..10_000_u64 {
                        f.insert(&(t << 32 | i));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        for t in 0..4_u64 {
            assert!((0..10_000_u64).all(|i| f.contains(&(t << 32 | i))));
        }
        let f = Arc::try_unwrap(f).unwrap();
        let plain = f.into_filter();
        assert!(plain.contains(&3_u64));
    }

    #[test]
    fn encoding_is_shared_with_the_classic_filter() {
        let c = ConcurrentBloomFilter::new(100, 0.01).unwrap();
        c.insert("x");
        let plain = BloomFilter::<BloomHasher>::from_bytes(&c.to_bytes()).unwrap();
        assert!(plain.contains("x"));
        let back = ConcurrentBloomFilter::<BloomHasher>::from_bytes(&plain.to_bytes()).unwrap();
        assert!(back.contains("x"));
        let other = ConcurrentBloomFilter::new(100, 0.01).unwrap();
        other.insert("y");
        c.union(&other).unwrap();
        assert!(c.contains("y"));
    }
}

#[cfg(all(test, loom))]
#[allow(clippy::unwrap_used)]
mod loom_tests {
    use super::*;
    use dsp_core::sync::atomic::AtomicBool;
    use dsp_core::sync::{Arc, model, thread};

    fn tiny() -> ConcurrentBloomFilter {
        // Two words, two probes: small enough for loom to explore every interleaving.
        let sizing = Sizing::classic_with_bits(128, 2, 2).unwrap();
        ConcurrentBloomFilter::with_sizing(sizing).unwrap()
    }

    #[test]
    fn loom_concurrent_inserts_are_all_visible_after_join() {
        model(|| {
            let f = Arc::new(tiny());
            let f2 = Arc::clone(&f);
            let t = thread::spawn(move || {
                f2.insert(&1_u64);
            });
            f.insert(&2_u64);
            t.join().unwrap();
            assert!(f.contains(&1_u64));
            assert!(f.contains(&2_u64));
        });
    }

    #[test]
    fn loom_same_key_twice_reports_new_at_least_once() {
        model(|| {
            let f = Arc::new(tiny());
            let f2 = Arc::clone(&f);
            let t = thread::spawn(move || f2.insert(&7_u64));
            let mine = f.insert(&7_u64);
            let theirs = t.join().unwrap();
            assert!(
                mine || theirs,
                "an absent key was reported present by both inserters"
            );
            assert!(f.contains(&7_u64));
        });
    }

    #[test]
    fn loom_insert_released_by_a_flag_is_seen() {
        model(|| {
            let f = Arc::new(tiny());
            let ready = Arc::new(AtomicBool::new(false));
            let (f2, ready2) = (Arc::clone(&f), Arc::clone(&ready));
            let t = thread::spawn(move || {
                f2.insert(&11_u64);
                ready2.store(true, Ordering::Release);
            });
            if ready.load(Ordering::Acquire) {
                assert!(f.contains(&11_u64));
            }
            t.join().unwrap();
            assert!(f.contains(&11_u64));
        });
    }

    #[test]
    fn loom_union_through_shared_ref_keeps_concurrent_inserts() {
        model(|| {
            let f = Arc::new(tiny());
            let other = tiny();
            other.insert(&5_u64);
            let f2 = Arc::clone(&f);
            let t = thread::spawn(move || {
                f2.insert(&6_u64);
            });
            f.union(&other).unwrap();
            t.join().unwrap();
            assert!(f.contains(&5_u64) && f.contains(&6_u64));
        });
    }
}
