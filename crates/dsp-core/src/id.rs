//! Identifiers shared by every protocol and driver.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The identity of one node (process, replica, member) in a cluster.
///
/// A `NodeId` is a plain `u64`: cheap to copy, hash and compare. Protocols that need an order
/// between nodes (the bully election, for instance) use the numeric order. It displays as `n7`
/// and parses from either `n7` or `7`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct NodeId(pub u64);

impl NodeId {
    /// Creates a node id.
    pub const fn new(id: u64) -> Self {
        Self(id)
    }

    /// The numeric value.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

impl From<u64> for NodeId {
    fn from(id: u64) -> Self {
        Self(id)
    }
}

impl FromStr for NodeId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let digits = s.strip_prefix('n').unwrap_or(s);
        digits
            .parse::<u64>()
            .map(NodeId)
            .map_err(|_| Error::InvalidNodeId {
                input: s.to_owned(),
            })
    }
}

/// Identifies one client request handed to a node, so that its reply can be matched to it.
///
/// Drivers allocate request ids; a protocol only copies the id from
/// [`Input::Request`](crate::Input::Request) into [`Output::Reply`](crate::Output::Reply).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct RequestId(pub u64);

/// Identifies one persistence request, so that its completion can be matched to it.
///
/// The protocol chooses the value (a log index, a counter); drivers copy it from
/// [`Output::Persist`](crate::Output::Persist) into [`Input::Persisted`](crate::Input::Persisted).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct PersistId(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_displays_and_parses_round_trip() {
        let id = NodeId::new(42);
        assert_eq!(id.to_string(), "n42");
        assert_eq!("n42".parse::<NodeId>(), Ok(id));
        assert_eq!("42".parse::<NodeId>(), Ok(id));
    }

    #[test]
    fn node_id_rejects_garbage_with_typed_error() {
        assert_eq!(
            "node-1".parse::<NodeId>(),
            Err(Error::InvalidNodeId {
                input: "node-1".into()
            })
        );
        assert!("".parse::<NodeId>().is_err());
        assert!("n".parse::<NodeId>().is_err());
        assert!("n-1".parse::<NodeId>().is_err());
    }
}
