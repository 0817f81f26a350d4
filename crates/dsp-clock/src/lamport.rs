//! Lamport logical clocks.
//!
//! Each node keeps a counter; it ticks on every local or send event and, on receiving a message,
//! jumps past the sender's time. The pair `(time, node)` is a total order consistent with
//! happens-before: if event `a` happened before `b` then `a < b` (the converse does not hold —
//! use a [`VersionVector`](crate::VersionVector) to detect concurrency).

use std::fmt;

use dsp_core::NodeId;

use crate::error::{Error, Result};

/// A Lamport timestamp: the logical time and the node that issued it, ordered by time then node.
///
/// Displays as `7@n2`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct LamportTimestamp {
    /// The logical time.
    pub time: u64,
    /// The issuing node, the tie-breaker between equal times.
    pub node: NodeId,
}

impl LamportTimestamp {
    /// Creates a timestamp.
    pub const fn new(time: u64, node: NodeId) -> Self {
        Self { time, node }
    }
}

impl fmt::Display for LamportTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.time, self.node)
    }
}

/// A Lamport clock for one node.
///
/// ```
/// use dsp_clock::LamportClock;
/// use dsp_core::NodeId;
///
/// let mut a = LamportClock::new(NodeId(1));
/// let mut b = LamportClock::new(NodeId(2));
/// let sent = a.tick()?;            // a sends a message stamped `sent`
/// let received = b.observe(sent.time)?;
/// assert!(sent < received);        // the send happened before the receive
/// # Ok::<(), dsp_clock::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LamportClock {
    node: NodeId,
    time: u64,
}

impl LamportClock {
    /// A clock at time zero.
    pub const fn new(node: NodeId) -> Self {
        Self { node, time: 0 }
    }

    /// A clock resuming at `time` (for example after a restart from persisted state).
    pub const fn starting_at(node: NodeId, time: u64) -> Self {
        Self { node, time }
    }

    /// The node this clock belongs to.
    pub const fn node(&self) -> NodeId {
        self.node
    }

    /// The current time (of the last event).
    pub const fn time(&self) -> u64 {
        self.time
    }

    /// The timestamp of the last event.
    pub const fn current(&self) -> LamportTimestamp {
        LamportTimestamp {
            time: self.time,
            node: self.node,
        }
    }

    /// A local or send event: advances the time by one and returns the event's timestamp.
    ///
    /// # Errors
    /// [`Error::CounterOverflow`] at `u64::MAX`; the clock is unchanged.
    pub fn tick(&mut self) -> Result<LamportTimestamp> {
        self.time = self
            .time
            .checked_add(1)
            .ok_or_else(|| Error::CounterOverflow { what: "lamport" })?;
        Ok(self.current())
    }

    /// A receive event for a message stamped `remote_time`: the time becomes
    /// `max(local, remote) + 1`.
    ///
    /// # Errors
    /// [`Error::CounterOverflow`] if that exceeds `u64::MAX`; the clock is unchanged.
    pub fn observe(&mut self, remote_time: u64) -> Result<LamportTimestamp> {
        self.time = self
            .time
            .max(remote_time)
            .checked_add(1)
            .ok_or_else(|| Error::CounterOverflow { what: "lamport" })?;
        Ok(self.current())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn tick_and_observe_follow_lamport_rules() {
        let mut a = LamportClock::new(NodeId(1));
        assert_eq!(a.tick().unwrap(), LamportTimestamp::new(1, NodeId(1)));
        assert_eq!(a.observe(10).unwrap().time, 11);
        assert_eq!(a.observe(3).unwrap().time, 12);
        assert_eq!(a.current().to_string(), "12@n1");
    }

    #[test]
    fn equal_times_are_ordered_by_node() {
        assert!(LamportTimestamp::new(5, NodeId(1)) < LamportTimestamp::new(5, NodeId(2)));
        assert!(LamportTimestamp::new(5, NodeId(9)) < LamportTimestamp::new(6, NodeId(1)));
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let mut a = LamportClock::starting_at(NodeId(1), u64::MAX);
        assert!(matches!(a.tick(), Err(Error::CounterOverflow { .. })));
        let mut b = LamportClock::new(NodeId(2));
        assert!(matches!(
            b.observe(u64::MAX),
            Err(Error::CounterOverflow { .. })
        ));
        assert_eq!(b.time(), 0);
    }
}
