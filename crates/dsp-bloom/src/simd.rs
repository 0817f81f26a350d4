//! The blocked filter's x86-64 AVX2 kernel, chosen at run time.
//!
//! This is the crate's only module allowed `unsafe`, and it needs it in exactly three places:
//! calling the two `#[target_feature(enable = "avx2")]` functions from code compiled without
//! AVX2, and one 32-byte vector load of a block. Both calls go through [`Avx2`], a token that
//! can only be obtained after `is_x86_feature_detected!("avx2")` returned `true`, so holding one
//! proves the CPU has AVX2. Inside the AVX2 functions every other intrinsic is safe to call
//! (Rust 1.87+), and the updated block is written back as a `[u64; 4]` value (which compiles to
//! one vector store), so there is no raw-pointer store.
//!
//! The kernel computes exactly the scalar path's eight lane bits (see `blocked.rs`): the same
//! `lane_seed`, the same 5-bit positions (word `j`'s low lane from bits `54 - 10j`, its high lane
//! from the five bits above), so filters are bit-identical whichever kernel built them; the
//! differential tests in `blocked.rs` (`avx2_differential`, a proptest over random keys, probes,
//! sizes and seeds, plus 20 000 random blocks) check that.

use std::arch::x86_64::{
    __m256i, _mm256_extract_epi64, _mm256_loadu_si256, _mm256_or_si256, _mm256_set_epi32,
    _mm256_set_epi64x, _mm256_set1_epi32, _mm256_set1_epi64x, _mm256_shuffle_epi32,
    _mm256_sllv_epi32, _mm256_srli_epi32, _mm256_srlv_epi64, _mm256_testc_si256,
};

/// Proof that the running CPU supports AVX2: only [`Avx2::detect`] creates one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// `Some` if the CPU supports AVX2 (std caches the CPUID query). Under Miri the scalar
    /// kernel is used, since Miri's support for vendor intrinsics is partial.
    pub(crate) fn detect() -> Option<Self> {
        if cfg!(miri) {
            return None;
        }
        std::arch::is_x86_feature_detected!("avx2").then_some(Self(()))
    }

    /// Whether the block holds all eight lane bits of `seed` (a `lane_seed`).
    #[inline(always)]
    pub(crate) fn contains(self, block: &[u64; 4], seed: u64) -> bool {
        // SAFETY: `self` exists only if `is_x86_feature_detected!("avx2")` returned true, so
        // the CPU executes the AVX2 instructions of `contains_avx2`. It only reads the block,
        // through a shared reference (its one raw load is justified in `load`).
        unsafe { contains_avx2(block, seed) }
    }

    /// Sets the eight lane bits of `seed` in the block; `true` if any was clear.
    #[inline(always)]
    pub(crate) fn insert(self, block: &mut [u64; 4], seed: u64) -> bool {
        // SAFETY: as in `contains`: `self` proves AVX2 support; `insert_avx2` only reads and
        // writes the block through the `&mut` reference (the load is justified in `load`; the
        // store is a safe assignment of a `[u64; 4]`).
        unsafe { insert_avx2(block, seed) }
    }
}

/// The eight one-bit lane masks of `seed`, lane `i` in 32-bit element `i`.
#[inline]
#[target_feature(enable = "avx2")]
fn masks(seed: u64) -> __m256i {
    // Word j's pair of positions sits at bit 54 - 10j: shift each 64-bit element by its own
    // amount, so bits 0..5 hold the low lane's position and bits 5..10 the high lane's.
    let t = _mm256_srlv_epi64(
        _mm256_set1_epi64x(seed as i64),
        _mm256_set_epi64x(24, 34, 44, 54),
    );
    // Copy each word's low half into both of its 32-bit lanes, move the lane's five bits to
    // the top (27 for the low lane, 22 for the high one) and shift them down: exact positions.
    let pairs = _mm256_shuffle_epi32::<0b10_10_00_00>(t);
    let top = _mm256_sllv_epi32(pairs, _mm256_set_epi32(22, 27, 22, 27, 22, 27, 22, 27));
    _mm256_sllv_epi32(_mm256_set1_epi32(1), _mm256_srli_epi32::<27>(top))
}

/// A block as a vector (element `j` is word `j`; lane `2j` is its low half, as in memory).
///
/// One unaligned 32-byte load. The safe alternative, `_mm256_set_epi64x` of the four words,
/// compiles (rustc 1.95) to a 16-byte load, a permute, a blend, a broadcast and a second blend,
/// which the benchmark measured as a large share of the lookup's cost.
#[inline]
#[target_feature(enable = "avx2")]
fn load(block: &[u64; 4]) -> __m256i {
    // SAFETY: the pointer comes from a live shared reference to a `[u64; 4]`, so all 32 bytes
    // are initialised and readable for the duration of the call; `_mm256_loadu_si256` has no
    // alignment requirement (a `Block` is 32-byte aligned anyway).
    unsafe { _mm256_loadu_si256(std::ptr::from_ref(block).cast::<__m256i>()) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn contains_avx2(block: &[u64; 4], seed: u64) -> bool {
    // testc: all bits of `masks` are set in the block.
    _mm256_testc_si256(load(block), masks(seed)) != 0
}

#[inline]
#[target_feature(enable = "avx2")]
fn insert_avx2(block: &mut [u64; 4], seed: u64) -> bool {
    let b = load(block);
    let m = masks(seed);
    let present = _mm256_testc_si256(b, m) != 0;
    let v = _mm256_or_si256(b, m);
    *block = [
        _mm256_extract_epi64::<0>(v) as u64,
        _mm256_extract_epi64::<1>(v) as u64,
        _mm256_extract_epi64::<2>(v) as u64,
        _mm256_extract_epi64::<3>(v) as u64,
    ];
    !present
}
