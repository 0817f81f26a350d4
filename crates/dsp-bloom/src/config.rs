//! Sizing: from `(expected_items, target_fpr)` or from explicit bits and hashes.

use crate::error::{Error, Result};

/// Largest filter this crate builds or decodes: 2^38 bits (32 GiB).
pub const MAX_BITS: u64 = 1 << 38;

/// Largest number of hash functions (probes per key) of a classic filter.
pub const MAX_HASHES: u32 = 64;

/// Bits in one block of a [`BlockedBloomFilter`](crate::BlockedBloomFilter).
pub const BLOCK_BITS: u64 = 256;

/// Probes per key of a [`BlockedBloomFilter`](crate::BlockedBloomFilter): one bit in each of the
/// eight 32-bit lanes of its block.
pub const BLOCK_HASHES: u32 = 8;

/// What a filter is asked to hold: how many distinct items and at which false-positive rate.
///
/// ```
/// use dsp_bloom::BloomConfig;
///
/// let config = BloomConfig::new(1_000, 0.01);
/// config.validate().unwrap();
/// assert!(BloomConfig::new(0, 0.01).validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BloomConfig {
    /// Distinct items the filter should hold at `target_fpr` (at least 1).
    pub expected_items: u64,
    /// Wanted probability that an absent item is reported present, in the open interval (0, 1).
    pub target_fpr: f64,
}

impl Default for BloomConfig {
    /// 100 000 items at 1 %.
    fn default() -> Self {
        Self {
            expected_items: 100_000,
            target_fpr: 0.01,
        }
    }
}

impl BloomConfig {
    /// A config for `expected_items` at `target_fpr` (not yet validated).
    pub const fn new(expected_items: u64, target_fpr: f64) -> Self {
        Self {
            expected_items,
            target_fpr,
        }
    }

    /// Checks the ranges: `expected_items >= 1` and `0 < target_fpr < 1` (not NaN).
    pub fn validate(&self) -> Result<()> {
        check_items(self.expected_items)?;
        check_fpr(self.target_fpr)
    }
}

pub(crate) fn check_items(n: u64) -> Result<()> {
    if n == 0 {
        Err(Error::ZeroItems)
    } else {
        Ok(())
    }
}

pub(crate) fn check_fpr(p: f64) -> Result<()> {
    // Written so that NaN fails too.
    if p > 0.0 && p < 1.0 {
        Ok(())
    } else {
        Err(Error::InvalidFpr(p))
    }
}

/// Memory layout a [`Sizing`] was computed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Layout {
    /// Bits spread over the whole array, `k` probes per key (classic, concurrent, counting and
    /// scalable filters).
    Classic,
    /// Split-block: every key touches one 256-bit block, one bit in each of its 8 lanes.
    Blocked,
}

/// The shape of a filter: number of bits (or counters), number of hash probes, and the item count
/// it was sized for. It reports the expected false-positive rate, bits per key and memory.
///
/// ```
/// use dsp_bloom::Sizing;
///
/// let s = Sizing::classic(1_000_000, 0.01).unwrap();
/// assert_eq!(s.num_hashes(), 7);
/// assert!((s.bits_per_key() - 9.59).abs() < 0.01);
/// assert!(s.expected_fpr() <= 0.01);
/// assert_eq!(s.memory_bytes(), s.num_bits() / 8);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sizing {
    layout: Layout,
    num_bits: u64,
    num_hashes: u32,
    expected_items: u64,
}

impl Sizing {
    /// The smallest classic filter (bits rounded up to whole 64-bit words) whose expected
    /// false-positive rate at `expected_items` is at most `target_fpr`, choosing the number of
    /// hashes that minimises memory.
    pub fn classic(expected_items: u64, target_fpr: f64) -> Result<Self> {
        check_items(expected_items)?;
        check_fpr(target_fpr)?;
        let n = expected_items as f64;
        let mut best: Option<(f64, u32)> = None;
        for k in 1..=MAX_HASHES {
            // Solve (1 - e^{-kn/m})^k = p for m.
            let root = target_fpr.powf(1.0 / f64::from(k));
            let bits_per_key = -f64::from(k) / (-root).ln_1p();
            if bits_per_key.is_finite() && best.is_none_or(|(b, _)| bits_per_key < b) {
                best = Some((bits_per_key, k));
            }
        }
        let (bits_per_key, k) = best.ok_or(Error::TooLarge { bits: u64::MAX })?;
        let bits = checked_bits(n * bits_per_key)?;
        let num_bits = round_up(bits, 64)?;
        let sizing = Self::classic_with_bits(num_bits, k, expected_items)?;
        if sizing.expected_fpr() <= target_fpr {
            return Ok(sizing);
        }
        // Rounding of the float solution left us a hair above target: binary-search the word
        // count up to twice the estimate (bounded work, never a long loop).
        let (mut lo, mut hi) = (num_bits / 64 + 1, (num_bits / 64).saturating_mul(2).max(2));
        let fits =
            |words: u64| classic_fpr(words.saturating_mul(64), k, expected_items) <= target_fpr;
        if hi.saturating_mul(64) > MAX_BITS || !fits(hi) {
            return Err(Error::TooLarge {
                bits: hi.saturating_mul(64),
            });
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) { hi = mid } else { lo = mid + 1 }
        }
        Self::classic_with_bits(lo * 64, k, expected_items)
    }

    /// A classic filter of exactly `num_bits` bits and `num_hashes` probes, reporting its
    /// expected false-positive rate for `expected_items`.
    pub fn classic_with_bits(num_bits: u64, num_hashes: u32, expected_items: u64) -> Result<Self> {
        check_items(expected_items)?;
        if num_bits == 0 {
            return Err(Error::ZeroBits);
        }
        if num_bits > MAX_BITS {
            return Err(Error::TooLarge { bits: num_bits });
        }
        if num_hashes == 0 || num_hashes > MAX_HASHES {
            return Err(Error::InvalidHashes(num_hashes));
        }
        Ok(Self {
            layout: Layout::Classic,
            num_bits,
            num_hashes,
            expected_items,
        })
    }

    /// The smallest split-block filter (whole 256-bit blocks) whose expected false-positive rate
    /// at `expected_items` is at most `target_fpr`.
    pub fn blocked(expected_items: u64, target_fpr: f64) -> Result<Self> {
        check_items(expected_items)?;
        check_fpr(target_fpr)?;
        let max_blocks = MAX_BITS / BLOCK_BITS;
        if blocked_fpr(max_blocks, expected_items) > target_fpr {
            return Err(Error::TooLarge { bits: u64::MAX });
        }
        // The false-positive rate falls monotonically with the block count: binary search.
        let (mut lo, mut hi) = (1_u64, max_blocks);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if blocked_fpr(mid, expected_items) <= target_fpr {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Self::blocked_with_bits(lo * BLOCK_BITS, expected_items)
    }

    /// A split-block filter of `num_bits` bits (rounded up to whole 256-bit blocks), reporting
    /// its expected false-positive rate for `expected_items`.
    pub fn blocked_with_bits(num_bits: u64, expected_items: u64) -> Result<Self> {
        check_items(expected_items)?;
        if num_bits == 0 {
            return Err(Error::ZeroBits);
        }
        let num_bits = round_up(num_bits, BLOCK_BITS)?;
        Ok(Self {
            layout: Layout::Blocked,
            num_bits,
            num_hashes: BLOCK_HASHES,
            expected_items,
        })
    }

    /// The layout this sizing is for.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Number of bits (for a counting filter: number of counters).
    pub fn num_bits(&self) -> u64 {
        self.num_bits
    }

    /// Number of probes per key.
    pub fn num_hashes(&self) -> u32 {
        self.num_hashes
    }

    /// Items the filter was sized for.
    pub fn expected_items(&self) -> u64 {
        self.expected_items
    }

    /// Expected false-positive rate once `expected_items` distinct items are inserted.
    pub fn expected_fpr(&self) -> f64 {
        self.fpr_at(self.expected_items)
    }

    /// Expected false-positive rate after `items` distinct items.
    pub fn fpr_at(&self, items: u64) -> f64 {
        match self.layout {
            Layout::Classic => classic_fpr(self.num_bits, self.num_hashes, items),
            Layout::Blocked => blocked_fpr(self.num_bits / BLOCK_BITS, items),
        }
    }

    /// Bits of filter per expected item.
    pub fn bits_per_key(&self) -> f64 {
        self.num_bits as f64 / self.expected_items as f64
    }

    /// Bytes of bit array (a counting filter uses four times this: 4-bit counters).
    pub fn memory_bytes(&self) -> u64 {
        self.num_bits.div_ceil(64) * 8
    }

    /// 64-bit words holding the bits.
    pub(crate) fn words(&self) -> usize {
        // `num_bits <= MAX_BITS`, so this fits in usize on 64-bit targets; on 32-bit targets the
        // allocation fails with a typed error before this can matter.
        usize::try_from(self.num_bits.div_ceil(64)).unwrap_or(usize::MAX)
    }
}

fn checked_bits(bits: f64) -> Result<u64> {
    let bits = bits.ceil();
    if !(bits.is_finite() && bits <= MAX_BITS as f64) {
        let shown = if bits.is_finite() && bits < u64::MAX as f64 {
            bits as u64
        } else {
            u64::MAX
        };
        return Err(Error::TooLarge { bits: shown });
    }
    Ok((bits as u64).max(1))
}

fn round_up(bits: u64, unit: u64) -> Result<u64> {
    let rounded = bits.div_ceil(unit).saturating_mul(unit);
    if rounded > MAX_BITS {
        Err(Error::TooLarge { bits: rounded })
    } else {
        Ok(rounded)
    }
}

/// `(1 - e^{-kn/m})^k`.
pub(crate) fn classic_fpr(num_bits: u64, num_hashes: u32, items: u64) -> f64 {
    let k = f64::from(num_hashes);
    let fill = -(-k * items as f64 / num_bits as f64).exp_m1();
    fill.powf(k)
}

/// Split-block false-positive rate: a Poisson-distributed number of keys `j` lands in the probed
/// block (mean `n / blocks`); with `j` keys each 32-bit lane has a given bit set with probability
/// `1 - (31/32)^j`, and all 8 lanes must hit.
pub(crate) fn blocked_fpr(blocks: u64, items: u64) -> f64 {
    if items == 0 {
        return 0.0;
    }
    let lambda = items as f64 / blocks as f64;
    if lambda > 4096.0 {
        // Every lane of a block with thousands of keys is full: 1 - (31/32)^4096 rounds to 1.
        return 1.0;
    }
    let ln_lambda = lambda.ln();
    let upper = (lambda + 12.0 * lambda.sqrt() + 40.0).ceil() as u64;
    let lower = (lambda - 12.0 * lambda.sqrt() - 40.0).max(0.0).floor() as u64;
    let miss = (31.0_f64 / 32.0).ln();
    let mut log_pmf = -lambda; // j = 0
    let mut total = 0.0;
    for j in 0..=upper {
        if j > 0 {
            log_pmf += ln_lambda - (j as f64).ln();
        }
        if j >= lower {
            let lane_hit = -(miss * j as f64).exp_m1();
            total += log_pmf.exp() * lane_hit.powi(BLOCK_HASHES as i32);
        }
    }
    total.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_input() {
        assert_eq!(Sizing::classic(0, 0.01), Err(Error::ZeroItems));
        assert!(matches!(
            Sizing::classic(10, 0.0),
            Err(Error::InvalidFpr(_))
        ));
        assert!(matches!(
            Sizing::classic(10, 1.0),
            Err(Error::InvalidFpr(_))
        ));
        assert!(matches!(
            Sizing::classic(10, f64::NAN),
            Err(Error::InvalidFpr(_))
        ));
        assert!(matches!(
            Sizing::blocked(10, -0.5),
            Err(Error::InvalidFpr(_))
        ));
        assert!(matches!(
            Sizing::classic(u64::MAX, 0.01),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            Sizing::blocked(u64::MAX, 0.01),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            Sizing::classic(1_000_000, 1e-300),
            Err(Error::TooLarge { .. })
        ));
        // Tiny but representable rates are sized (in bounded time), not rejected.
        let tiny = Sizing::classic(1000, 1e-300).unwrap();
        assert!(tiny.expected_fpr() <= 1e-300);
        assert_eq!(Sizing::classic_with_bits(0, 3, 1), Err(Error::ZeroBits));
        assert_eq!(
            Sizing::classic_with_bits(64, 0, 1),
            Err(Error::InvalidHashes(0))
        );
        assert_eq!(
            Sizing::classic_with_bits(64, 65, 1),
            Err(Error::InvalidHashes(65))
        );
        assert!(matches!(
            Sizing::blocked_with_bits(u64::MAX, 1),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn classic_sizing_matches_theory() {
        let s = Sizing::classic(1_000_000, 0.01).unwrap();
        assert_eq!(s.num_hashes(), 7);
        assert!(s.expected_fpr() <= 0.01 && s.expected_fpr() > 0.0099);
        assert_eq!(s.num_bits() % 64, 0);
        let s = Sizing::classic(1, 0.5).unwrap();
        assert!(s.num_bits() >= 1);
    }

    #[test]
    fn blocked_sizing_is_minimal() {
        let s = Sizing::blocked(1_000_000, 0.01).unwrap();
        assert!(s.expected_fpr() <= 0.01);
        let smaller = Sizing::blocked_with_bits(s.num_bits() - BLOCK_BITS, 1_000_000).unwrap();
        assert!(smaller.expected_fpr() > 0.01);
        // Split-block filters need more bits than classic ones for the same rate.
        assert!(
            s.bits_per_key() > 9.6 && s.bits_per_key() < 12.0,
            "{}",
            s.bits_per_key()
        );
    }
}
