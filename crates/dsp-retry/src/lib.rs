#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backoff;
mod budget;
mod config;
mod error;
mod histogram;
mod policy;
#[cfg(feature = "tokio")]
mod tokio;

#[cfg(feature = "tower")]
pub mod future;
#[cfg(feature = "tower")]
mod layer;

pub use backoff::Backoff;
pub use budget::{BudgetToken, RetryBudget};
pub use config::{
    BackoffConfig, BackoffKind, BudgetConfig, DEFAULT_SEED, HedgeConfig, HedgeDelay, RetryPolicy,
};
pub use error::{Error, Result};
pub use histogram::LatencyHistogram;
#[cfg(feature = "tower")]
pub use layer::{Retry, RetryLayer};
pub use policy::{CallOptions, Decision, GiveUp, Next, RetryState};
#[cfg(feature = "tokio")]
pub use tokio::{Hedger, Retrier, TokioClock, retry};
