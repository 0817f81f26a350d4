//! serde support: every filter serializes as its checksummed byte encoding.
//!
//! Deserializing runs the same validating decoder as `from_bytes`, with `S::default()` as the
//! hasher, so corrupt or foreign input is an error, never a panic or a huge allocation.

use std::hash::BuildHasher;

use serde::de::{Deserializer, Error as _, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::{
    BlockedBloomFilter, BloomFilter, ConcurrentBloomFilter, CountingBloomFilter,
    ScalableBloomFilter,
};

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a dsp-bloom byte encoding")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
        Ok(v)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Formats without a bytes type (JSON) send a sequence; cap the preallocation.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

macro_rules! serde_via_bytes {
    ($($ty:ident $(: $extra:path)?),*) => {$(
        impl<S: BuildHasher $(+ $extra)?> Serialize for $ty<S> {
            fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
                serializer.serialize_bytes(&self.to_bytes())
            }
        }

        impl<'de, S: BuildHasher + Default $(+ $extra)?> Deserialize<'de> for $ty<S> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let bytes = deserializer.deserialize_bytes(BytesVisitor)?;
                $ty::from_bytes(&bytes).map_err(D::Error::custom)
            }
        }
    )*};
}

serde_via_bytes!(
    BloomFilter,
    BlockedBloomFilter,
    ConcurrentBloomFilter,
    CountingBloomFilter,
    ScalableBloomFilter: Clone
);
