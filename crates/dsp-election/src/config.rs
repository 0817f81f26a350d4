//! Configuration shared by the bully and ring protocols.

use std::collections::BTreeSet;
use std::time::Duration;

use dsp_core::NodeId;

use crate::{Error, Result};

/// Configuration of an election node ([`Bully`](crate::Bully) or [`Ring`](crate::Ring)).
///
/// Every node of a cluster MUST be given the same `members` (in any order): generations are
/// minted from disjoint residue classes derived from the sorted member list, which is what makes
/// two leaders with the same generation impossible.
///
/// The default has no members (so it does not validate) and timings suited to a LAN: a heartbeat
/// every 100 ms and a leader declared lost after 500–750 ms of silence.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ElectionConfig {
    /// Every node of the cluster, including this one. Ids must be unique.
    pub members: Vec<NodeId>,
    /// How often a leader sends heartbeats to every other member.
    pub heartbeat_interval: Duration,
    /// How long a follower waits without hearing from its leader before starting an election.
    pub leader_timeout: Duration,
    /// A random extra in `[0, timeout_jitter)` added to every leader and round timeout, drawn
    /// from the node's [`DetRng`](dsp_core::DetRng), so that followers do not all time out at
    /// once. May be zero.
    pub timeout_jitter: Duration,
    /// Bully: how long a candidate waits for an `Answer` from a higher node before declaring
    /// itself the leader.
    pub answer_timeout: Duration,
    /// Bully: how long a candidate that got an `Answer` waits for the `Coordinator` message
    /// before starting over.
    pub coordinator_timeout: Duration,
    /// Ring: how long a node waits for its successor to acknowledge a ring message before
    /// skipping it and sending to the next node on the ring.
    pub hop_timeout: Duration,
    /// Ring: how long the initiator of an election waits for its outcome before starting over.
    pub round_timeout: Duration,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        Self {
            members: Vec::new(),
            heartbeat_interval: Duration::from_millis(100),
            leader_timeout: Duration::from_millis(500),
            timeout_jitter: Duration::from_millis(250),
            answer_timeout: Duration::from_millis(200),
            coordinator_timeout: Duration::from_millis(600),
            hop_timeout: Duration::from_millis(200),
            round_timeout: Duration::from_millis(2_500),
        }
    }
}

impl ElectionConfig {
    /// The default configuration with these members.
    pub fn with_members(members: impl IntoIterator<Item = NodeId>) -> Self {
        Self {
            members: members.into_iter().collect(),
            ..Self::default()
        }
    }

    /// Checks the configuration for node `id`.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyCluster`], [`Error::DuplicateMember`], [`Error::NotAMember`],
    /// [`Error::ZeroDuration`], [`Error::TimeoutNotAboveHeartbeat`] or
    /// [`Error::RoundNotAboveHop`].
    pub fn validate(&self, id: NodeId) -> Result<()> {
        if self.members.is_empty() {
            return Err(Error::EmptyCluster);
        }
        let mut seen = BTreeSet::new();
        for &m in &self.members {
            if !seen.insert(m) {
                return Err(Error::DuplicateMember(m));
            }
        }
        if !seen.contains(&id) {
            return Err(Error::NotAMember(id));
        }
        for (name, d) in [
            ("heartbeat interval", self.heartbeat_interval),
            ("leader timeout", self.leader_timeout),
            ("answer timeout", self.answer_timeout),
            ("coordinator timeout", self.coordinator_timeout),
            ("hop timeout", self.hop_timeout),
            ("round timeout", self.round_timeout),
        ] {
            if d.is_zero() {
                return Err(Error::ZeroDuration(name));
            }
        }
        if self.leader_timeout <= self.heartbeat_interval {
            return Err(Error::TimeoutNotAboveHeartbeat {
                heartbeat_interval: self.heartbeat_interval,
                leader_timeout: self.leader_timeout,
            });
        }
        if self.round_timeout <= self.hop_timeout {
            return Err(Error::RoundNotAboveHop {
                hop_timeout: self.hop_timeout,
                round_timeout: self.round_timeout,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ids(v: &[u64]) -> Vec<NodeId> {
        v.iter().map(|&i| NodeId(i)).collect()
    }

    #[test]
    fn default_with_members_validates() {
        ElectionConfig::with_members(ids(&[1, 2, 3]))
            .validate(NodeId(2))
            .unwrap();
    }

    #[test]
    fn invalid_configs_are_typed_errors() {
        assert_eq!(
            ElectionConfig::default().validate(NodeId(1)),
            Err(Error::EmptyCluster)
        );
        let c = ElectionConfig::with_members(ids(&[1, 2]));
        assert_eq!(c.validate(NodeId(3)), Err(Error::NotAMember(NodeId(3))));
        let c = ElectionConfig::with_members(ids(&[1, 2, 1]));
        assert_eq!(
            c.validate(NodeId(1)),
            Err(Error::DuplicateMember(NodeId(1)))
        );
        let c = ElectionConfig {
            leader_timeout: Duration::ZERO,
            ..ElectionConfig::with_members(ids(&[1]))
        };
        assert_eq!(
            c.validate(NodeId(1)),
            Err(Error::ZeroDuration("leader timeout"))
        );
        let c = ElectionConfig {
            leader_timeout: Duration::from_millis(100),
            ..ElectionConfig::with_members(ids(&[1]))
        };
        assert!(matches!(
            c.validate(NodeId(1)),
            Err(Error::TimeoutNotAboveHeartbeat { .. })
        ));
        let c = ElectionConfig {
            round_timeout: Duration::from_millis(100),
            ..ElectionConfig::with_members(ids(&[1]))
        };
        assert!(matches!(
            c.validate(NodeId(1)),
            Err(Error::RoundNotAboveHop { .. })
        ));
    }
}
