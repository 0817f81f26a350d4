//! Types shared by both protocols: roles, leader views, persists, requests, responses, events.

use dsp_clock::{FencingToken, Generation};
use dsp_core::NodeId;

/// What a node currently does in the election.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// Follows a leader (or waits to learn of one).
    Follower,
    /// Runs an election and knows no leader.
    Candidate,
    /// Is the leader of [`Status::leader`]'s generation.
    Leader,
}

/// A node's belief about who leads, and in which generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct LeaderView {
    /// The leader.
    pub leader: NodeId,
    /// The generation the leader was elected in. Unique to this election result.
    pub generation: Generation,
}

impl LeaderView {
    /// The fencing token the leader attaches to its requests: its generation.
    pub fn token(&self) -> FencingToken {
        self.generation.token()
    }
}

/// What an election node makes durable.
///
/// A node rebuilds from its persists with `recover`: the highest generation among them becomes
/// the floor of every generation it will accept or mint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Persist {
    /// The highest generation this node has used (minted, announced or accepted) is at least this.
    Generation(Generation),
}

/// A client request to an election node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Request {
    /// Who leads, according to this node? Answered with [`Response::Leader`].
    WhoIsLeader,
    /// The node's full status. Answered with [`Response::Status`].
    Status,
}

/// The reply to a [`Request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Response {
    /// The node's current leader view; `None` while it knows no leader (during an election).
    Leader(Option<LeaderView>),
    /// The node's status.
    Status(Status),
}

/// A snapshot of a node's election state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// The node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its leader view (itself when it leads), `None` while it knows no leader.
    pub leader: Option<LeaderView>,
    /// The highest generation this node has seen in any message or minted (volatile).
    pub max_seen: Generation,
    /// The highest generation known to be durable on this node. Never decreases, across
    /// restarts too.
    pub durable: Generation,
}

/// What an election node reports. Every event is emitted after the persist of the generation it
/// carries, so a driver releases it only once that generation is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Event {
    /// The node started an election; `generation` is the highest it has seen so far.
    ElectionStarted {
        /// The highest generation seen when the election started.
        generation: Generation,
    },
    /// The node's leader view changed to `leader` in `generation` (also emitted by the leader
    /// itself, after [`Event::BecameLeader`]).
    LeaderElected {
        /// The new leader.
        leader: NodeId,
        /// Its generation.
        generation: Generation,
    },
    /// This node became the leader in `generation`.
    BecameLeader {
        /// The generation it leads in.
        generation: Generation,
    },
    /// This node led in `generation` and no longer does (it learnt of a newer leader, or of a
    /// newer generation and started a new election).
    SteppedDown {
        /// The generation it led in.
        generation: Generation,
    },
    /// The leader stopped sending heartbeats; the node starts an election.
    LeaderLost {
        /// The leader that went silent.
        leader: NodeId,
        /// Its generation.
        generation: Generation,
    },
    /// A message from a node that is not a member, or a malformed one, was dropped.
    Dropped {
        /// The sender.
        from: NodeId,
    },
}
