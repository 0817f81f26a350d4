//! The error type of `dsp-shard`.

use dsp_core::NodeId;

use crate::range::RangeId;

/// Errors returned by `dsp-shard`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A lookup was made on a placement with no nodes. Nothing changed.
    #[error("the placement has no nodes")]
    NoNodes,

    /// A node was added with weight zero. Nothing changed.
    #[error("node {node} has weight 0; weights must be at least 1")]
    ZeroWeight {
        /// The rejected node.
        node: NodeId,
    },

    /// A node was added twice. Nothing changed.
    #[error("node {node} is already a member")]
    DuplicateNode {
        /// The node.
        node: NodeId,
    },

    /// A node that is not a member was removed or referenced. Nothing changed.
    #[error("node {node} is not a member")]
    UnknownNode {
        /// The node.
        node: NodeId,
    },

    /// A fixed-partition scheme was configured with zero partitions. Nothing was built.
    #[error("the partition count must be at least 1")]
    ZeroPartitions,

    /// A configuration value is out of range. Nothing was built or changed.
    #[error("invalid configuration: {reason}")]
    InvalidConfig {
        /// What was wrong.
        reason: String,
    },

    /// A key range `[start, end)` with `start >= end` was given. Nothing changed.
    #[error("empty key range: start {start:?} is not below end {end:?}")]
    EmptyRange {
        /// The start of the rejected range.
        start: Vec<u8>,
        /// The end of the rejected range.
        end: Vec<u8>,
    },

    /// A split key is already a range boundary (or is the empty key, the start of the key
    /// space). Nothing changed.
    #[error("cannot split at {key:?}: it is already a range boundary")]
    InvalidSplit {
        /// The rejected split key.
        key: Vec<u8>,
    },

    /// A range id that does not exist was referenced. Nothing changed.
    #[error("no range with id {id}")]
    UnknownRange {
        /// The id.
        id: RangeId,
    },

    /// A merge named the last range, which has no right-hand neighbour. Nothing changed.
    #[error("range {id} is the last range and has no right-hand neighbour to merge with")]
    NoNeighbour {
        /// The id.
        id: RangeId,
    },
}

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
