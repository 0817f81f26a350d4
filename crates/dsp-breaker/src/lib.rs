#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod breaker;
mod config;
mod error;
mod event;
mod registry;
mod window;

#[cfg(feature = "tower")]
pub mod future;
#[cfg(feature = "tower")]
mod layer;

pub use breaker::{Breaker, BreakerBuilder, OwnedPermit, Permit};
pub use config::{BreakerConfig, SlowCallConfig, WindowConfig};
pub use error::{BreakerError, Error, Result};
pub use event::{
    BreakerEvent, BreakerListener, Classify, DefaultClassifier, Metrics, Mode, Outcome, State,
};
#[cfg(feature = "tower")]
pub use layer::{CircuitBreaker, CircuitBreakerLayer};
pub use registry::BreakerRegistry;
