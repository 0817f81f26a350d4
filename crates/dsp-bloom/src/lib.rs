#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod blocked;
mod classic;
mod codec;
mod concurrent;
mod config;
mod counting;
mod error;
mod hash;
mod scalable;
#[cfg(feature = "serde")]
mod serde_impl;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod simd;

pub use blocked::BlockedBloomFilter;
pub use classic::BloomFilter;
pub use concurrent::ConcurrentBloomFilter;
pub use config::{BLOCK_BITS, BLOCK_HASHES, BloomConfig, Layout, MAX_BITS, MAX_HASHES, Sizing};
pub use counting::{COUNTER_MAX, CountingBloomFilter};
pub use error::{Error, Result};
pub use hash::BloomHasher;
pub use scalable::{MAX_STAGES, ScalableBloomFilter, ScalableConfig};
