#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod config;
mod error;
mod format;
mod group;
mod segment;
#[cfg(feature = "tokio")]
mod tokio;
mod wal;

pub use config::{Durability, WalConfig};
pub use error::{Error, Result};
pub use format::FrameError;
pub use segment::{RecoveryReport, TornTail};
#[cfg(feature = "tokio")]
pub use tokio::AsyncWal;
pub use wal::{Wal, WalIter};
