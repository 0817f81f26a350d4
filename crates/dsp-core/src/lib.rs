#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
pub mod example;
mod id;
pub mod protocol;
#[cfg(feature = "quanta")]
mod quanta_clock;
mod rng;
pub mod sync;
mod time;

pub use error::{Error, Result};
pub use id::{NodeId, PersistId, RequestId};
pub use protocol::{Input, Output, Outputs, Protocol};
#[cfg(feature = "quanta")]
pub use quanta_clock::QuantaClock;
pub use rng::DetRng;
pub use time::{Clock, Instant, ManualClock, SystemClock, WallTime};
