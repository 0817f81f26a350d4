//! The scalable Bloom filter: a chain of classic filters that grows while holding a target rate.

use std::fmt;
use std::hash::{BuildHasher, Hash};

use crate::classic::{
    BloomFilter, read_classic_body, words_with_clear_padding, write_classic_body,
};
use crate::codec::{self, KIND_SCALABLE, Writer};
use crate::config::{Sizing, check_fpr, check_items};
use crate::error::{Error, Result};
use crate::hash::{BloomHasher, fingerprint, hash_key};

/// Most stages a [`ScalableBloomFilter`] grows to.
pub const MAX_STAGES: usize = 64;

/// How a [`ScalableBloomFilter`] starts and grows.
///
/// Stage `i` holds `initial_capacity * growth^i` items at false-positive rate
/// `target_fpr * (1 - tightening) * tightening^i`; the rates sum to less than `target_fpr`, so
/// the filter as a whole stays under its target however far it grows (Almeida et al., 2007).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ScalableConfig {
    /// Items the first stage holds (at least 1).
    pub initial_capacity: u64,
    /// Bound on the whole filter's false-positive rate, in (0, 1).
    pub target_fpr: f64,
    /// Each stage holds this many times the items of the one before (2..=16).
    pub growth: u32,
    /// Each stage's rate is this fraction of the one before, in (0, 1). Smaller spends more
    /// bits on early stages; 0.5 suits filters that grow a few times, 0.8-0.9 ones that grow a
    /// lot.
    pub tightening: f64,
}

impl Default for ScalableConfig {
    /// 1 024 items to start, 1 % overall, doubling, rates halving.
    fn default() -> Self {
        Self {
            initial_capacity: 1024,
            target_fpr: 0.01,
            growth: 2,
            tightening: 0.5,
        }
    }
}

impl ScalableConfig {
    /// The default config with the given start size and target.
    pub fn new(initial_capacity: u64, target_fpr: f64) -> Self {
        Self {
            initial_capacity,
            target_fpr,
            ..Self::default()
        }
    }

    /// Checks every range.
    pub fn validate(&self) -> Result<()> {
        check_items(self.initial_capacity)?;
        check_fpr(self.target_fpr)?;
        if !(2..=16).contains(&self.growth) {
            return Err(Error::InvalidGrowth("growth must be in 2..=16"));
        }
        if !(self.tightening > 0.0 && self.tightening < 1.0) {
            return Err(Error::InvalidGrowth("tightening must be in (0, 1)"));
        }
        Ok(())
    }

    fn stage_sizing(&self, stage: usize) -> Result<Sizing> {
        let exp = i32::try_from(stage).map_err(|_| Error::CapacityExhausted(stage))?;
        let capacity = u64::from(self.growth)
            .checked_pow(exp as u32)
            .and_then(|g| g.checked_mul(self.initial_capacity))
            .ok_or(Error::TooLarge { bits: u64::MAX })?;
        let fpr = self.target_fpr * (1.0 - self.tightening) * self.tightening.powi(exp);
        Sizing::classic(capacity, fpr)
    }
}

/// A Bloom filter for an unknown number of items: when its newest stage reaches capacity it
/// adds a larger stage with a tighter rate, so the overall false-positive rate stays below the
/// target whatever the final size. Lookups check every stage (a few for most sizes: with
/// growth 2, going from 1 000 to 1 000 000 items takes 10 stages), so prefer a
/// [`BloomFilter`] when the size is known.
///
/// ```
/// use dsp_bloom::{ScalableBloomFilter, ScalableConfig};
///
/// let mut filter = ScalableBloomFilter::new(ScalableConfig::new(100, 0.01)).unwrap();
/// for i in 0..10_000_u32 {
///     filter.insert(&i).unwrap();
/// }
/// assert!(filter.stages() > 1);
/// assert!((0..10_000_u32).all(|i| filter.contains(&i)));
/// assert!(filter.expected_fpr() < 0.01);
/// ```
#[derive(Clone)]
pub struct ScalableBloomFilter<S = BloomHasher> {
    config: ScalableConfig,
    stages: Vec<BloomFilter<S>>,
    hasher: S,
    fingerprint: u64,
}

impl ScalableBloomFilter<BloomHasher> {
    /// An empty filter (one stage) with the default hasher.
    pub fn new(config: ScalableConfig) -> Result<Self> {
        Self::with_hasher(config, BloomHasher::default())
    }
}

impl<S: BuildHasher + Clone> ScalableBloomFilter<S> {
    /// An empty filter (one stage) with the given hasher.
    pub fn with_hasher(config: ScalableConfig, hasher: S) -> Result<Self> {
        config.validate()?;
        let first = BloomFilter::with_sizing_and_hasher(config.stage_sizing(0)?, hasher.clone())?;
        let fingerprint = fingerprint(&hasher);
        Ok(Self {
            config,
            stages: vec![first],
            hasher,
            fingerprint,
        })
    }

    /// Adds `key`; returns `Ok(true)` if it was not apparently present. Errors only when a new
    /// stage is needed and cannot be built ([`Error::CapacityExhausted`], [`Error::TooLarge`],
    /// [`Error::Alloc`]); the key is then not inserted and the filter is unchanged.
    pub fn insert<T: Hash + ?Sized>(&mut self, key: &T) -> Result<bool> {
        self.insert_hash(hash_key(&self.hasher, key))
    }

    /// Insertion by precomputed 64-bit hash.
    pub fn insert_hash(&mut self, hash: u64) -> Result<bool> {
        if self.contains_hash(hash) {
            return Ok(false);
        }
        let full = self
            .stages
            .last()
            .is_none_or(|s| s.len() >= s.sizing().expected_items());
        if full {
            if self.stages.len() >= MAX_STAGES {
                return Err(Error::CapacityExhausted(MAX_STAGES));
            }
            let sizing = self.config.stage_sizing(self.stages.len())?;
            let stage = BloomFilter::with_sizing_and_hasher(sizing, self.hasher.clone())?;
            self.stages.push(stage);
        }
        match self.stages.last_mut() {
            Some(stage) => Ok(stage.insert_hash(hash)),
            None => Err(Error::CapacityExhausted(0)),
        }
    }

    /// Whether `key` may have been inserted: `false` is certain.
    pub fn contains<T: Hash + ?Sized>(&self, key: &T) -> bool {
        self.contains_hash(hash_key(&self.hasher, key))
    }

    /// Lookup by precomputed 64-bit hash. Newest stage first: it holds most items.
    pub fn contains_hash(&self, hash: u64) -> bool {
        self.stages.iter().rev().any(|s| s.contains_hash(hash))
    }

    /// Hash of `key` under this filter's hasher.
    pub fn hash_of<T: Hash + ?Sized>(&self, key: &T) -> u64 {
        hash_key(&self.hasher, key)
    }

    /// Stage-wise union. [`Error::Incompatible`] (and `self` unchanged) unless both have the
    /// same config, hasher and number of stages.
    pub fn union(&mut self, other: &Self) -> Result<()> {
        self.check_compatible(other)?;
        for (a, b) in self.stages.iter_mut().zip(&other.stages) {
            a.union(b)?;
        }
        Ok(())
    }

    /// Stage-wise intersection. [`Error::Incompatible`] (and `self` unchanged) unless both have
    /// the same config, hasher and number of stages.
    pub fn intersect(&mut self, other: &Self) -> Result<()> {
        self.check_compatible(other)?;
        for (a, b) in self.stages.iter_mut().zip(&other.stages) {
            a.intersect(b)?;
        }
        Ok(())
    }

    fn check_compatible(&self, other: &Self) -> Result<()> {
        if self.config != other.config {
            return Err(Error::Incompatible("different scalable configs"));
        }
        if self.fingerprint != other.fingerprint {
            return Err(Error::Incompatible("different hasher or seed"));
        }
        if self.stages.len() != other.stages.len()
            || self
                .stages
                .iter()
                .zip(&other.stages)
                .any(|(a, b)| a.sizing() != b.sizing())
        {
            return Err(Error::Incompatible("different stages"));
        }
        Ok(())
    }

    /// The stable, checksummed byte encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let data: usize = self.stages.iter().map(|s| s.bits.len() * 8 + 28).sum();
        let mut w = Writer::new(KIND_SCALABLE, self.fingerprint, data + 32);
        w.u64(self.config.initial_capacity);
        w.f64(self.config.target_fpr);
        w.u32(self.config.growth);
        w.f64(self.config.tightening);
        w.u32(self.stages.len() as u32);
        for s in &self.stages {
            write_classic_body(&mut w, s.sizing, s.len, s.bits.iter().copied());
        }
        w.finish()
    }

    /// Decodes [`to_bytes`](Self::to_bytes) output with the hasher the filter was built with.
    pub fn from_bytes_with_hasher(bytes: &[u8], hasher: S) -> Result<Self> {
        let (fp, mut r) = codec::open(bytes, KIND_SCALABLE)?;
        let config = ScalableConfig {
            initial_capacity: r.u64()?,
            target_fpr: r.f64()?,
            growth: r.u32()?,
            tightening: r.f64()?,
        };
        config
            .validate()
            .map_err(|_| Error::Corrupt("invalid scalable config"))?;
        let count = r.u32()? as usize;
        if count == 0 || count > MAX_STAGES {
            return Err(Error::Corrupt("invalid number of stages"));
        }
        let mut parts = Vec::with_capacity(count);
        for _ in 0..count {
            parts.push(read_classic_body(&mut r)?);
        }
        r.finish()?;
        let fingerprint = fingerprint(&hasher);
        if fp != fingerprint {
            return Err(Error::HasherMismatch);
        }
        let mut stages = Vec::with_capacity(count);
        for (sizing, len, words) in parts {
            stages.push(BloomFilter {
                bits: words_with_clear_padding(words, sizing.num_bits())?,
                sizing,
                len,
                hasher: hasher.clone(),
                fingerprint,
            });
        }
        Ok(Self {
            config,
            stages,
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

impl<S> ScalableBloomFilter<S> {
    /// The config.
    pub fn config(&self) -> &ScalableConfig {
        &self.config
    }

    /// Number of stages so far.
    pub fn stages(&self) -> usize {
        self.stages.len()
    }

    /// Items inserted (those that were not apparently present already).
    pub fn len(&self) -> u64 {
        self.stages.iter().map(BloomFilter::len).sum()
    }

    /// Whether nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.stages.iter().all(BloomFilter::is_empty)
    }

    /// Items the current stages hold before the next one is added.
    pub fn capacity(&self) -> u64 {
        self.stages
            .iter()
            .map(|s| s.sizing().expected_items())
            .sum()
    }

    /// Expected false-positive rate now: `1 - prod(1 - fpr_i)` over the stages at their current
    /// fill. Always below [`ScalableConfig::target_fpr`].
    pub fn expected_fpr(&self) -> f64 {
        1.0 - self
            .stages
            .iter()
            .map(|s| 1.0 - s.sizing().fpr_at(s.len()))
            .product::<f64>()
    }

    /// Bytes of bit arrays over all stages.
    pub fn memory_bytes(&self) -> u64 {
        self.stages.iter().map(BloomFilter::memory_bytes).sum()
    }

    /// Bits of memory per inserted item (infinite when empty).
    pub fn bits_per_key(&self) -> f64 {
        self.memory_bytes() as f64 * 8.0 / self.len() as f64
    }

    /// The hasher.
    pub fn hasher(&self) -> &S {
        &self.hasher
    }
}

impl<S> fmt::Debug for ScalableBloomFilter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScalableBloomFilter")
            .field("config", &self.config)
            .field("stages", &self.stages.len())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<S> PartialEq for ScalableBloomFilter<S> {
    /// Same config, hasher fingerprint and stages.
    fn eq(&self, other: &Self) -> bool {
        self.config == other.config
            && self.fingerprint == other.fingerprint
            && self.stages == other.stages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_config() {
        assert_eq!(
            ScalableBloomFilter::new(ScalableConfig::new(0, 0.01)).err(),
            Some(Error::ZeroItems)
        );
        let bad = ScalableConfig {
            growth: 1,
            ..ScalableConfig::default()
        };
        assert!(matches!(
            ScalableBloomFilter::new(bad),
            Err(Error::InvalidGrowth(_))
        ));
        let bad = ScalableConfig {
            tightening: f64::NAN,
            ..ScalableConfig::default()
        };
        assert!(matches!(
            ScalableBloomFilter::new(bad),
            Err(Error::InvalidGrowth(_))
        ));
        let bad = ScalableConfig {
            target_fpr: 1.5,
            ..ScalableConfig::default()
        };
        assert!(matches!(
            ScalableBloomFilter::new(bad),
            Err(Error::InvalidFpr(_))
        ));
    }

    #[test]
    fn grows_and_stays_under_target() {
        let mut f = ScalableBloomFilter::new(ScalableConfig::new(10, 0.02)).unwrap();
        for i in 0..5_000_u32 {
            f.insert(&i).unwrap();
        }
        assert!(f.stages() >= 9);
        assert!(f.capacity() >= f.len());
        assert!(f.expected_fpr() < 0.02);
        let g = ScalableBloomFilter::<BloomHasher>::from_bytes(&f.to_bytes()).unwrap();
        assert_eq!(f, g);
        assert!((0..5_000_u32).all(|i| g.contains(&i)));
    }

    #[test]
    fn failing_growth_is_a_typed_error_and_changes_nothing() {
        // Stage 1 would need a rate of ~1e-302 for 200 000 items: above MAX_BITS.
        let config = ScalableConfig {
            initial_capacity: 100_000,
            tightening: 1e-300,
            ..Default::default()
        };
        let mut f = ScalableBloomFilter::new(config).unwrap();
        let mut inserted = 0_u64;
        let err = loop {
            match f.insert(&inserted) {
                Ok(_) => inserted += 1,
                Err(e) => break e,
            }
            assert!(inserted <= 200_000, "stage 0 never filled");
        };
        assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
        assert_eq!(f.stages(), 1);
        assert!(f.contains(&0_u64));
        assert_eq!(f.insert(&0_u64), Ok(false));
    }
}
