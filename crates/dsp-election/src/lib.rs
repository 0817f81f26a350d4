#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod bully;
mod config;
mod error;
pub mod ring;
mod state;
#[cfg(test)]
mod testutil;
mod types;

pub use bully::Bully;
pub use config::ElectionConfig;
pub use error::{Error, Result};
pub use ring::Ring;
pub use types::{Event, LeaderView, Persist, Request, Response, Role, Status};

/// Re-exported from `dsp-clock`: the generation every election result carries, the fencing
/// token derived from it, and the resource-side check.
pub use dsp_clock::{Fence, FencingToken, Generation};
