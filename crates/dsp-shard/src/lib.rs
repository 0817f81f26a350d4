#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod analysis;
mod error;
mod hash;
mod jump;
mod maglev;
mod partitions;
mod placement;
mod range;
mod rendezvous;
mod ring;
mod router;

pub use error::{Error, Result};
pub use hash::key_hash;
pub use jump::{JumpHash, jump_hash};
pub use maglev::{Maglev, MaglevConfig};
pub use partitions::{FixedPartitions, PartitionId, PartitionMove, Rebalance};
pub use placement::Placement;
pub use range::{KeyRange, KeyRanges, RangeId, ScanSpan};
pub use rendezvous::Rendezvous;
pub use ring::{HashRing, HashRingConfig};
pub use router::{Route, Router, RouterConfig};
