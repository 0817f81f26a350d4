#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod adaptive;
mod concurrency;
mod direct;
mod error;
mod keyed;
#[cfg(feature = "tower")]
pub mod layer;
mod quota;

pub use adaptive::{AdaptiveConfig, AdaptiveThrottle};
pub use concurrency::{
    Aimd, ConcurrencyLimiter, LimitAlgorithm, LimitEvent, LimitListener, LimitToken, Sample, Vegas,
};
pub use direct::RateLimiter;
pub use error::{Error, NotUntil, Result};
pub use keyed::{KeyedConfig, KeyedRateLimiter};
#[cfg(feature = "tower")]
pub use layer::{ConcurrencyLimitLayer, RateLimitLayer};
pub use quota::Quota;
