//! The classic Bloom filter: `k` probes spread over one bit array.

use std::fmt;
use std::hash::{BuildHasher, Hash};

use crate::codec::{self, KIND_CLASSIC, Reader, Words, Writer};
use crate::config::{BloomConfig, Sizing};
use crate::error::{Error, Result};
use crate::hash::{BloomHasher, Probes, fastrange64, fingerprint, hash_key};

/// Probes tested together between branches in lookups of cache-resident filters.
const PROBE_GROUP: u32 = 4;

/// Filters up to this size use grouped, branch-free probing; larger ones stop at the first miss.
pub(crate) const GROUPED_MAX_BYTES: u64 = 4 << 20;

/// Whether every probe of `hash` hits a set bit; `word(i)` loads word `i`.
///
/// Two strategies, chosen by size. A filter that fits in the caches is bound by branch
/// mispredictions: an absent key stops at a random probe, so lookups test probes in groups of
/// four without branching (the loads overlap, and one predictable branch per group decides).
/// A filter larger than the caches is bound by memory: every avoided probe is a cache miss
/// saved, so lookups stop at the first unset bit (two probes on average for an absent key).
#[inline(always)]
pub(crate) fn probe_all(sizing: Sizing, hash: u64, word: impl Fn(usize) -> u64) -> bool {
    let m = sizing.num_bits();
    let k = sizing.num_hashes();
    let mut probes = Probes::new(hash);
    if sizing.memory_bytes() > GROUPED_MAX_BYTES {
        for _ in 0..k {
            let idx = fastrange64(probes.next_raw(), m);
            if word((idx >> 6) as usize) & (1_u64 << (idx & 63)) == 0 {
                return false;
            }
        }
        return true;
    }
    let mut remaining = k;
    while remaining > 0 {
        let group = remaining.min(PROBE_GROUP);
        let mut hit = true;
        for _ in 0..group {
            let idx = fastrange64(probes.next_raw(), m);
            hit &= word((idx >> 6) as usize) & (1_u64 << (idx & 63)) != 0;
        }
        if !hit {
            return false;
        }
        remaining -= group;
    }
    true
}

/// A classic Bloom filter: `num_bits` bits, `num_hashes` probes per key derived from one 64-bit
/// hash by enhanced double hashing.
///
/// Sized by [`Sizing::classic`], it holds the target false-positive rate at the least memory a
/// Bloom filter can (about 9.6 bits per key at 1 %), and its measured rate matches
/// [`expected_fpr`](Self::expected_fpr). Lookups in filters up to 4 MiB test probes in
/// branch-free groups of four (fast for absent keys); larger filters stop at the first unset
/// bit. For the fastest lookups at a little more memory use
/// [`BlockedBloomFilter`](crate::BlockedBloomFilter).
///
/// ```
/// use dsp_bloom::BloomFilter;
///
/// let mut filter = BloomFilter::new(1_000, 0.01).unwrap();
/// assert!(filter.insert("apple"));
/// assert!(!filter.insert("apple")); // already present
/// assert!(filter.contains("apple"));
/// assert!(!filter.contains("pear")); // absent (a false positive happens ~1 % of the time)
/// ```
#[derive(Clone)]
pub struct BloomFilter<S = BloomHasher> {
    pub(crate) bits: Vec<u64>,
    pub(crate) sizing: Sizing,
    pub(crate) len: u64,
    pub(crate) hasher: S,
    pub(crate) fingerprint: u64,
}

impl BloomFilter<BloomHasher> {
    /// A filter for `expected_items` at `target_fpr`, with the default hasher.
    ///
    /// Errors: [`Error::ZeroItems`], [`Error::InvalidFpr`], [`Error::TooLarge`],
    /// [`Error::Alloc`].
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

impl<S: BuildHasher> BloomFilter<S> {
    /// A filter of the given shape and hasher. A blocked sizing is reinterpreted as a classic
    /// one with the same bits and hashes.
    pub fn with_sizing_and_hasher(sizing: Sizing, hasher: S) -> Result<Self> {
        let sizing = Sizing::classic_with_bits(
            sizing.num_bits(),
            sizing.num_hashes(),
            sizing.expected_items(),
        )?;
        let bits = codec::try_filled(sizing.words(), 0_u64)?;
        let fingerprint = fingerprint(&hasher);
        Ok(Self {
            bits,
            sizing,
            len: 0,
            hasher,
            fingerprint,
        })
    }

    /// Adds `key`. Returns `true` if it was not already (apparently) present, like
    /// `HashSet::insert`.
    #[inline]
    pub fn insert<T: Hash + ?Sized>(&mut self, key: &T) -> bool {
        self.insert_hash(hash_key(&self.hasher, key))
    }

    /// Whether `key` may have been inserted: `false` is certain, `true` is wrong with
    /// probability about [`expected_fpr`](Self::expected_fpr).
    #[inline]
    pub fn contains<T: Hash + ?Sized>(&self, key: &T) -> bool {
        self.contains_hash(hash_key(&self.hasher, key))
    }

    /// Adds a key by its precomputed 64-bit hash (it must come from this filter's hasher to mix
    /// with keys added by [`insert`](Self::insert)).
    #[inline]
    pub fn insert_hash(&mut self, hash: u64) -> bool {
        let m = self.sizing.num_bits();
        let mut probes = Probes::new(hash);
        let mut new = false;
        for _ in 0..self.sizing.num_hashes() {
            let idx = fastrange64(probes.next_raw(), m);
            let mask = 1_u64 << (idx & 63);
            let word = &mut self.bits[(idx >> 6) as usize];
            new |= *word & mask == 0;
            *word |= mask;
        }
        self.len += u64::from(new);
        new
    }

    /// Lookup by precomputed 64-bit hash.
    #[inline]
    pub fn contains_hash(&self, hash: u64) -> bool {
        probe_all(self.sizing, hash, |w| self.bits[w])
    }

    /// Hash of `key` under this filter's hasher (for [`insert_hash`](Self::insert_hash)).
    pub fn hash_of<T: Hash + ?Sized>(&self, key: &T) -> u64 {
        hash_key(&self.hasher, key)
    }

    /// Adds every bit of `other` (set union): afterwards `self` contains every key either
    /// contained.
    ///
    /// Errors with [`Error::Incompatible`] (and leaves `self` unchanged) unless both have the
    /// same bits, hashes and hasher.
    pub fn union(&mut self, other: &Self) -> Result<()> {
        self.check_compatible(other)?;
        self.bits
            .iter_mut()
            .zip(&other.bits)
            .for_each(|(a, b)| *a |= *b);
        self.len = estimate_items(&self.bits, self.sizing).max(self.len.max(other.len));
        Ok(())
    }

    /// Keeps only bits set in both (intersection): afterwards `self` contains every key both
    /// contained (and, as always, some false positives).
    ///
    /// Errors with [`Error::Incompatible`] (and leaves `self` unchanged) unless both have the
    /// same bits, hashes and hasher.
    pub fn intersect(&mut self, other: &Self) -> Result<()> {
        self.check_compatible(other)?;
        self.bits
            .iter_mut()
            .zip(&other.bits)
            .for_each(|(a, b)| *a &= *b);
        self.len = estimate_items(&self.bits, self.sizing).min(self.len.min(other.len));
        Ok(())
    }

    fn check_compatible(&self, other: &Self) -> Result<()> {
        compatible(
            self.sizing,
            self.fingerprint,
            other.sizing,
            other.fingerprint,
        )
    }

    /// The stable, checksummed byte encoding (see the crate docs for the format).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new(KIND_CLASSIC, self.fingerprint, self.bits.len() * 8 + 28);
        write_classic_body(&mut w, self.sizing, self.len, self.bits.iter().copied());
        w.finish()
    }

    /// Decodes [`to_bytes`](Self::to_bytes) output with the given hasher, which must be the one
    /// the filter was built with ([`Error::HasherMismatch`] otherwise).
    pub fn from_bytes_with_hasher(bytes: &[u8], hasher: S) -> Result<Self> {
        let (fp, mut r) = codec::open(bytes, KIND_CLASSIC)?;
        let (sizing, len, words) = read_classic_body(&mut r)?;
        r.finish()?;
        let fingerprint = fingerprint(&hasher);
        if fp != fingerprint {
            return Err(Error::HasherMismatch);
        }
        let bits = words_with_clear_padding(words, sizing.num_bits())?;
        Ok(Self {
            bits,
            sizing,
            len,
            hasher,
            fingerprint,
        })
    }

    /// Decodes [`to_bytes`](Self::to_bytes) output with `S::default()` as the hasher.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self>
    where
        S: Default,
    {
        Self::from_bytes_with_hasher(bytes, S::default())
    }
}

impl<S> BloomFilter<S> {
    /// The filter's shape.
    pub fn sizing(&self) -> Sizing {
        self.sizing
    }

    /// Expected false-positive rate once the sized-for number of items is inserted.
    pub fn expected_fpr(&self) -> f64 {
        self.sizing.expected_fpr()
    }

    /// False-positive rate estimated from the current fill: `(ones / bits)^k`.
    pub fn estimated_fpr(&self) -> f64 {
        let ones = self.count_ones() as f64 / self.sizing.num_bits() as f64;
        ones.powi(self.sizing.num_hashes() as i32)
    }

    /// Bits per sized-for item.
    pub fn bits_per_key(&self) -> f64 {
        self.sizing.bits_per_key()
    }

    /// Bytes of bit array.
    pub fn memory_bytes(&self) -> u64 {
        self.sizing.memory_bytes()
    }

    /// Inserts that changed the filter: the number of distinct keys inserted, less the few that
    /// were already false positives. After a union or intersection, an estimate from the fill.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// Removes everything, keeping the memory.
    pub fn clear(&mut self) {
        self.bits.fill(0);
        self.len = 0;
    }

    /// The hasher.
    pub fn hasher(&self) -> &S {
        &self.hasher
    }
}

impl<S> fmt::Debug for BloomFilter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BloomFilter")
            .field("num_bits", &self.sizing.num_bits())
            .field("num_hashes", &self.sizing.num_hashes())
            .field("expected_items", &self.sizing.expected_items())
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<S> PartialEq for BloomFilter<S> {
    /// Same shape, same hasher fingerprint, same bits.
    fn eq(&self, other: &Self) -> bool {
        self.sizing == other.sizing
            && self.fingerprint == other.fingerprint
            && self.bits == other.bits
    }
}

pub(crate) fn compatible(a: Sizing, a_fp: u64, b: Sizing, b_fp: u64) -> Result<()> {
    if a.num_bits() != b.num_bits() {
        return Err(Error::Incompatible("different number of bits"));
    }
    if a.num_hashes() != b.num_hashes() {
        return Err(Error::Incompatible("different number of hash functions"));
    }
    if a_fp != b_fp {
        return Err(Error::Incompatible("different hasher or seed"));
    }
    Ok(())
}

/// Swamidass-Baldi estimate of the distinct items behind a fill: `-(m/k) ln(1 - X/m)`.
pub(crate) fn estimate_items(bits: &[u64], sizing: Sizing) -> u64 {
    let ones: u64 = bits.iter().map(|w| u64::from(w.count_ones())).sum();
    let m = sizing.num_bits() as f64;
    let k = f64::from(sizing.num_hashes());
    if ones as f64 >= m {
        return u64::MAX;
    }
    let est = -(m / k) * (-(ones as f64) / m).ln_1p();
    est.round() as u64
}

pub(crate) fn write_classic_body(
    w: &mut Writer,
    sizing: Sizing,
    len: u64,
    words: impl IntoIterator<Item = u64>,
) {
    w.u64(sizing.num_bits());
    w.u32(sizing.num_hashes());
    w.u64(sizing.expected_items());
    w.u64(len);
    w.words(words);
}

pub(crate) fn read_classic_body<'a>(r: &mut Reader<'a>) -> Result<(Sizing, u64, Words<'a>)> {
    let num_bits = r.u64()?;
    let num_hashes = r.u32()?;
    let expected_items = r.u64()?;
    let len = r.u64()?;
    let sizing = Sizing::classic_with_bits(num_bits, num_hashes, expected_items)
        .map_err(|_| Error::Corrupt("invalid classic filter parameters"))?;
    let words = r.words(num_bits.div_ceil(64))?;
    Ok((sizing, len, words))
}

/// Copies the words, rejecting set bits past `num_bits` (no insert can set them).
pub(crate) fn words_with_clear_padding(words: Words<'_>, num_bits: u64) -> Result<Vec<u64>> {
    let bits = words.to_vec()?;
    let tail = num_bits % 64;
    if tail != 0 && bits.last().is_some_and(|w| w >> tail != 0) {
        return Err(Error::Corrupt("bits set past the end of the filter"));
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_items_is_an_error_not_a_hang() {
        assert_eq!(BloomFilter::new(0, 0.01).err(), Some(Error::ZeroItems));
        assert!(matches!(
            BloomFilter::new(10, f64::NAN),
            Err(Error::InvalidFpr(_))
        ));
    }

    #[test]
    fn union_and_intersection_need_the_same_shape_and_hasher() {
        let mut a = BloomFilter::new(100, 0.01).unwrap();
        let b = BloomFilter::new(200, 0.01).unwrap();
        assert!(matches!(a.union(&b), Err(Error::Incompatible(_))));
        let c = BloomFilter::with_sizing_and_hasher(a.sizing(), BloomHasher::with_seed(9)).unwrap();
        let mut a2 =
            BloomFilter::with_sizing_and_hasher(a.sizing(), BloomHasher::with_seed(1)).unwrap();
        assert_eq!(
            a2.intersect(&c),
            Err(Error::Incompatible("different hasher or seed"))
        );
        a.insert(&1_u32);
        let snapshot = a.clone();
        assert!(a.union(&b).is_err());
        assert_eq!(a, snapshot);
    }

    #[test]
    fn round_trips_and_detects_corruption() {
        let mut f = BloomFilter::new(500, 0.01).unwrap();
        for i in 0..500_u32 {
            f.insert(&i);
        }
        let bytes = f.to_bytes();
        let g = BloomFilter::<BloomHasher>::from_bytes(&bytes).unwrap();
        assert_eq!(f, g);
        assert_eq!(g.len(), f.len());
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        assert!(matches!(
            BloomFilter::<BloomHasher>::from_bytes(&bad),
            Err(Error::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            BloomFilter::<BloomHasher>::from_bytes(&bytes[..bytes.len() - 9]),
            Err(Error::Truncated { .. })
        ));
        let mut v2 = bytes.clone();
        v2[4] = 2;
        assert_eq!(
            BloomFilter::<BloomHasher>::from_bytes(&v2).err(),
            Some(Error::UnsupportedVersion(2))
        );
        assert_eq!(
            BloomFilter::from_bytes_with_hasher(&bytes, BloomHasher::with_seed(3)).err(),
            Some(Error::HasherMismatch)
        );
    }

    #[test]
    fn absurd_length_field_does_not_allocate() {
        let f = BloomFilter::new(10, 0.01).unwrap();
        let mut bytes = f.to_bytes();
        // num_bits := MAX_BITS (valid parameter, but the data is not there).
        bytes[16..24].copy_from_slice(&crate::MAX_BITS.to_le_bytes());
        assert!(matches!(
            BloomFilter::<BloomHasher>::from_bytes(&bytes),
            Err(Error::Truncated { .. })
        ));
        bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            BloomFilter::<BloomHasher>::from_bytes(&bytes),
            Err(Error::Corrupt(_))
        ));
    }
}
