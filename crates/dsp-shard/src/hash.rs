//! Stable hashing: placement must be identical across processes, machines and releases.
//!
//! Everything in this crate hashes with xxHash's XXH3 (a specified, platform-independent
//! function), never with `std`'s randomly seeded `DefaultHasher`. Integers are hashed as
//! little-endian bytes. Changing any of these functions changes where keys live, so they are
//! pinned by golden-value tests.

use dsp_core::NodeId;
use xxhash_rust::xxh3::xxh3_64;

/// The 64-bit hash of a key: XXH3-64 with seed 0.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// The hash of the `index`-th point of `node` (virtual nodes, Maglev permutations).
#[inline]
pub(crate) fn node_point(node: NodeId, index: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&node.0.to_le_bytes());
    bytes[8..].copy_from_slice(&index.to_le_bytes());
    xxh3_64(&bytes)
}

/// The seed of a node for [`pair_hash`]: XXH3 of its id's little-endian bytes.
#[inline]
pub(crate) fn node_seed(node: NodeId) -> u64 {
    xxh3_64(&node.0.to_le_bytes())
}

/// A pairwise hash of a key hash and a node seed (rendezvous scores, backup ordering): the
/// MurmurHash3 64-bit finalizer of their XOR. Both inputs are already well mixed, so one
/// finalizer round is enough and costs a few cycles instead of a full hash per node.
#[inline]
pub(crate) fn pair_hash(key_hash: u64, node_seed: u64) -> u64 {
    let mut h = key_hash ^ node_seed;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// Maps a 64-bit hash uniformly onto `0..n` (Lemire's multiply-shift), `n > 0`.
#[inline]
pub(crate) fn reduce(hash: u64, n: u64) -> u64 {
    ((u128::from(hash) * u128::from(n)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the hash function: if this test changes, every stored placement moves.
    #[test]
    fn key_hash_is_pinned() {
        assert_eq!(key_hash(b""), 0x2d06800538d394c2);
        assert_eq!(key_hash(b"hello"), 0x9555e8555c62dcfd);
    }

    #[test]
    fn reduce_stays_in_range() {
        for n in [1u64, 2, 7, 1000] {
            assert!(reduce(u64::MAX, n) < n);
            assert_eq!(reduce(0, n), 0);
        }
    }
}
