//! The error type of this crate.

use std::time::Duration;

use dsp_core::NodeId;

/// Everything that can go wrong when building an election node.
///
/// All variants are returned by constructors and [`ElectionConfig::validate`](crate::ElectionConfig::validate);
/// no node is created and no state changes when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The membership list is empty.
    #[error("the cluster has no members")]
    EmptyCluster,
    /// The node's own id is not in the membership list.
    #[error("node {0} is not a member of the cluster")]
    NotAMember(NodeId),
    /// An id appears more than once in the membership list.
    #[error("member {0} is listed more than once")]
    DuplicateMember(NodeId),
    /// A timeout or interval is zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// Followers would time out between two heartbeats of a healthy leader.
    #[error(
        "leader timeout ({leader_timeout:?}) must be greater than the heartbeat interval ({heartbeat_interval:?})"
    )]
    TimeoutNotAboveHeartbeat {
        /// The configured heartbeat interval.
        heartbeat_interval: Duration,
        /// The configured leader timeout.
        leader_timeout: Duration,
    },
    /// A ring round could never finish before the round timeout restarts it.
    #[error(
        "round timeout ({round_timeout:?}) must be greater than the hop timeout ({hop_timeout:?})"
    )]
    RoundNotAboveHop {
        /// The configured hop timeout.
        hop_timeout: Duration,
        /// The configured round timeout.
        round_timeout: Duration,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
