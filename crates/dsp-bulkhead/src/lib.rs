#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod error;
#[cfg(feature = "tower")]
pub mod layer;
#[cfg(feature = "tokio")]
mod pool;
mod registry;
mod semaphore;
#[cfg(feature = "tokio")]
mod wait;

pub use config::{BulkheadConfig, PoolConfig, WhenFull};
pub use error::{Error, Result};
#[cfg(feature = "tower")]
pub use layer::{Bulkhead, BulkheadLayer};
#[cfg(feature = "tokio")]
pub use pool::{JobHandle, PoolBulkhead, PoolMetrics};
pub use registry::BulkheadRegistry;
pub use semaphore::{
    BulkheadEvent, BulkheadMetrics, Listener, OwnedPermit, Permit, RejectReason, SemaphoreBulkhead,
};
