#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod bound;
mod dvv;
mod error;
mod generation;
mod hlc;
mod lamport;
mod version_vector;
mod versioned;

pub use bound::{ClockBound, ReadUncertainty, TimeInterval};
pub use dvv::{Dot, DottedVersionVector, Siblings};
pub use error::{Error, Result, StoreError};
pub use generation::{
    AtomicFence, Fence, FencingToken, Generation, GenerationClock, GenerationStore,
    InjectedFailure, MemoryGenerationStore,
};
pub use hlc::{AtomicHybridClock, HlcConfig, HlcTimestamp, HybridClock};
pub use lamport::{LamportClock, LamportTimestamp};
pub use version_vector::{Causality, VersionVector};
pub use versioned::VersionedStore;
