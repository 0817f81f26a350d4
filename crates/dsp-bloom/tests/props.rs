//! Property tests: no false negatives, union/intersection laws, round-trips, and a decoder that
//! never panics on arbitrary or corrupted bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use dsp_bloom::{
    BlockedBloomFilter, BloomFilter, BloomHasher, ConcurrentBloomFilter, CountingBloomFilter,
    Error, ScalableBloomFilter, ScalableConfig, Sizing,
};
use proptest::prelude::*;

fn classic(keys: &[u64], seed: u64) -> BloomFilter {
    let sizing = Sizing::classic(256, 0.05).unwrap();
    let mut f = BloomFilter::with_sizing_and_hasher(sizing, BloomHasher::with_seed(seed)).unwrap();
    for k in keys {
        f.insert(k);
    }
    f
}

fn blocked(keys: &[u64]) -> BlockedBloomFilter {
    let mut f = BlockedBloomFilter::new(256, 0.05).unwrap();
    for k in keys {
        f.insert(k);
    }
    f
}

fn counting(keys: &[u64]) -> CountingBloomFilter {
    let mut f = CountingBloomFilter::new(256, 0.05).unwrap();
    for k in keys {
        f.insert(k);
    }
    f
}

fn scalable(keys: &[u64]) -> ScalableBloomFilter {
    let mut f = ScalableBloomFilter::new(ScalableConfig::new(16, 0.05)).unwrap();
    for k in keys {
        f.insert(k).unwrap();
    }
    f
}

fn encodings(keys: &[u64]) -> Vec<Vec<u8>> {
    vec![
        classic(keys, 0).to_bytes(),
        blocked(keys).to_bytes(),
        counting(keys).to_bytes(),
        scalable(keys).to_bytes(),
    ]
}

/// Runs every decoder on `bytes`; returns how many accepted.
fn decode_all(bytes: &[u8]) -> usize {
    [
        BloomFilter::<BloomHasher>::from_bytes(bytes).is_ok(),
        BlockedBloomFilter::<BloomHasher>::from_bytes(bytes).is_ok(),
        ConcurrentBloomFilter::<BloomHasher>::from_bytes(bytes).is_ok(),
        CountingBloomFilter::<BloomHasher>::from_bytes(bytes).is_ok(),
        ScalableBloomFilter::<BloomHasher>::from_bytes(bytes).is_ok(),
    ]
    .into_iter()
    .filter(|ok| *ok)
    .count()
}

fn key_vec() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(any::<u64>(), 0..300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_false_negatives_in_any_filter(keys in key_vec(), strings in prop::collection::vec(".{0,24}", 0..50), seed in any::<u64>()) {
        let c = classic(&keys, seed);
        let b = blocked(&keys);
        let n = counting(&keys);
        let s = scalable(&keys);
        let conc = ConcurrentBloomFilter::from(classic(&[], seed));
        for k in &keys {
            conc.insert(k);
        }
        for k in &keys {
            prop_assert!(c.contains(k) && b.contains(k) && n.contains(k) && s.contains(k) && conc.contains(k));
        }
        let mut text = BloomFilter::new(64, 0.01).unwrap();
        for s in &strings {
            text.insert(s.as_str());
        }
        prop_assert!(strings.iter().all(|s| text.contains(s.as_str())));
    }

    #[test]
    fn union_equals_the_filter_of_the_union(a in key_vec(), b in key_vec(), c in key_vec()) {
        let all: Vec<u64> = a.iter().chain(&b).copied().collect();
        // Classic: bitwise equal to inserting both sets; commutative, associative, idempotent.
        let mut ab = classic(&a, 1);
        ab.union(&classic(&b, 1)).unwrap();
        prop_assert!(ab == classic(&all, 1));
        let mut ba = classic(&b, 1);
        ba.union(&classic(&a, 1)).unwrap();
        prop_assert!(ab == ba);
        let mut ab_c = ab.clone();
        ab_c.union(&classic(&c, 1)).unwrap();
        let mut bc = classic(&b, 1);
        bc.union(&classic(&c, 1)).unwrap();
        let mut a_bc = classic(&a, 1);
        a_bc.union(&bc).unwrap();
        prop_assert!(ab_c == a_bc);
        let mut aa = classic(&a, 1);
        aa.union(&classic(&a, 1)).unwrap();
        prop_assert!(aa == classic(&a, 1));
        // Blocked: same law.
        let mut bab = blocked(&a);
        bab.union(&blocked(&b)).unwrap();
        prop_assert!(bab == blocked(&all));
        // Counting: the union contains everything either contained.
        let mut cab = counting(&a);
        cab.union(&counting(&b)).unwrap();
        prop_assert!(all.iter().all(|k| cab.contains(k)));
        // Concurrent: union through &self equals the classic union.
        let conc = ConcurrentBloomFilter::from(classic(&a, 1));
        conc.union(&ConcurrentBloomFilter::from(classic(&b, 1))).unwrap();
        prop_assert!(conc.into_filter() == classic(&all, 1));
    }

    #[test]
    fn intersection_keeps_common_keys_and_is_a_lattice_meet(a in key_vec(), b in key_vec()) {
        let sa: BTreeSet<u64> = a.iter().copied().collect();
        let common: Vec<u64> = b.iter().copied().filter(|k| sa.contains(k)).collect();
        let mut x = classic(&a, 2);
        let y = classic(&b, 2);
        let z = classic(&common, 2);
        let mut yx = y.clone();
        x.intersect(&y).unwrap();
        yx.intersect(&classic(&a, 2)).unwrap();
        prop_assert!(x == yx, "intersection is commutative");
        prop_assert!(common.iter().all(|k| x.contains(k)));
        // Every bit of the filter of the common keys survives the intersection.
        let mut zx = z.clone();
        zx.intersect(&x).unwrap();
        prop_assert!(zx == z);
        // Absorption: a | (a & b) = a.
        let mut absorb = classic(&a, 2);
        absorb.union(&x).unwrap();
        prop_assert!(absorb == classic(&a, 2));
        let mut bx = blocked(&a);
        bx.intersect(&blocked(&b)).unwrap();
        prop_assert!(common.iter().all(|k| bx.contains(k)));
        let mut cx = counting(&a);
        cx.intersect(&counting(&b)).unwrap();
        prop_assert!(common.iter().all(|k| cx.contains(k)));
    }

    #[test]
    fn every_filter_round_trips(keys in key_vec(), seed in any::<u64>()) {
        let c = classic(&keys, seed);
        let back = BloomFilter::from_bytes_with_hasher(&c.to_bytes(), BloomHasher::with_seed(seed)).unwrap();
        prop_assert!(back == c);
        prop_assert_eq!(back.len(), c.len());
        let b = blocked(&keys);
        prop_assert!(BlockedBloomFilter::<BloomHasher>::from_bytes(&b.to_bytes()).unwrap() == b);
        let n = counting(&keys);
        prop_assert!(CountingBloomFilter::<BloomHasher>::from_bytes(&n.to_bytes()).unwrap() == n);
        let s = scalable(&keys);
        prop_assert!(ScalableBloomFilter::<BloomHasher>::from_bytes(&s.to_bytes()).unwrap() == s);
    }

    #[test]
    fn counting_remove_undoes_insert(keys in prop::collection::btree_set(any::<u64>(), 0..200), extra in key_vec()) {
        let keys: Vec<u64> = keys.into_iter().collect();
        let base = counting(&extra);
        let mut f = base.clone();
        for k in &keys {
            f.insert(k);
        }
        for k in &keys {
            prop_assert!(f.remove(k));
        }
        // Nothing saturates at these sizes, so removal restores the counters exactly.
        prop_assert!(f == base);
        prop_assert!(extra.iter().all(|k| f.contains(k)));
    }

}

proptest! {
    // The decoder properties are cheap: run more cases.
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
        // Also behind a valid header and checksum, so the parameter parsing is exercised.
        for kind in 1..=4_u8 {
            let mut framed = b"DSPB".to_vec();
            framed.extend_from_slice(&[1, kind, 0, 0]);
            framed.extend_from_slice(&0_u64.to_le_bytes());
            framed.extend_from_slice(&bytes);
            let crc = crc32c_of(&framed);
            framed.extend_from_slice(&crc.to_le_bytes());
            decode_all(&framed);
        }
    }

    #[test]
    fn any_single_bit_flip_is_rejected(keys in key_vec(), which in 0..4_usize, bit in any::<prop::sample::Index>()) {
        let mut bytes = encodings(&keys).swap_remove(which);
        let i = bit.index(bytes.len() * 8);
        bytes[i / 8] ^= 1 << (i % 8);
        prop_assert_eq!(decode_all(&bytes), 0);
    }

    #[test]
    fn truncation_is_rejected(keys in key_vec(), which in 0..4_usize, cut in any::<prop::sample::Index>()) {
        let bytes = encodings(&keys).swap_remove(which);
        let len = cut.index(bytes.len());
        prop_assert_eq!(decode_all(&bytes[..len]), 0);
    }
}

/// CRC32C (Castagnoli), bitwise: an independent implementation to frame test inputs.
fn crc32c_of(bytes: &[u8]) -> u32 {
    let mut crc = !0_u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn independent_crc_matches_a_known_vector() {
    assert_eq!(crc32c_of(b"123456789"), 0xE306_9283);
}

#[test]
fn typed_errors_for_each_kind_of_damage() {
    let bytes = classic(&[1, 2, 3], 0).to_bytes();
    assert_eq!(
        BloomFilter::<BloomHasher>::from_bytes(b"nope").err(),
        Some(Error::BadMagic)
    );
    assert!(matches!(
        BloomFilter::<BloomHasher>::from_bytes(b"DSP"),
        Err(Error::Truncated { .. })
    ));
    assert!(matches!(
        BloomFilter::<BloomHasher>::from_bytes(&[]),
        Err(Error::Truncated { .. })
    ));
    let mut v = bytes.clone();
    v[4] = 9;
    assert_eq!(
        BloomFilter::<BloomHasher>::from_bytes(&v).err(),
        Some(Error::UnsupportedVersion(9))
    );
    assert_eq!(
        CountingBloomFilter::<BloomHasher>::from_bytes(&bytes).err(),
        Some(Error::WrongKind {
            expected: 3,
            found: 1
        })
    );
    let mut long = bytes.clone();
    long.push(0);
    assert!(matches!(
        BloomFilter::<BloomHasher>::from_bytes(&long),
        Err(Error::Corrupt(_))
    ));
}

#[cfg(feature = "serde")]
#[test]
fn serde_round_trip_through_postcard() {
    let c = classic(&[1, 2, 3], 0);
    let bytes = postcard::to_allocvec(&c).unwrap();
    let back: BloomFilter = postcard::from_bytes(&bytes).unwrap();
    assert!(back == c);
    let s = scalable(&(0..100).collect::<Vec<_>>());
    let back: ScalableBloomFilter =
        postcard::from_bytes(&postcard::to_allocvec(&s).unwrap()).unwrap();
    assert!(back == s);
    let mut damaged = postcard::to_allocvec(&blocked(&[5])).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xFF;
    assert!(postcard::from_bytes::<BlockedBloomFilter>(&damaged).is_err());
}
