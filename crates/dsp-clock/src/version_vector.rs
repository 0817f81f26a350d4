//! Version vectors: one counter per node, comparing causal histories.

use std::collections::BTreeMap;
use std::fmt;

use dsp_core::NodeId;

use crate::error::{Error, Result};

/// How two causal histories relate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Causality {
    /// The left history is strictly contained in the right one (it happened before).
    Before,
    /// The left history strictly contains the right one (it happened after).
    After,
    /// The histories are the same.
    Equal,
    /// Neither contains the other: the events were concurrent.
    Concurrent,
}

/// A version vector: for each node, how many of its events the history contains.
///
/// Missing entries are zero and zero entries are never stored, so two vectors with the same
/// history are `==`. [`merge`](VersionVector::merge) is the least upper bound: commutative,
/// associative and idempotent.
///
/// ```
/// use dsp_clock::{Causality, VersionVector};
/// use dsp_core::NodeId;
///
/// let mut a = VersionVector::new();
/// a.increment(NodeId(1))?;
/// let mut b = a.clone();
/// b.increment(NodeId(2))?;
/// a.increment(NodeId(1))?;
/// assert_eq!(a.compare(&b), Causality::Concurrent);
/// let merged = a.merged(&b);
/// assert_eq!(a.compare(&merged), Causality::Before);
/// # Ok::<(), dsp_clock::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct VersionVector {
    entries: BTreeMap<NodeId, u64>,
}

impl VersionVector {
    /// The empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter of `node` (zero if absent).
    pub fn get(&self, node: NodeId) -> u64 {
        self.entries.get(&node).copied().unwrap_or(0)
    }

    /// Sets the counter of `node`; zero removes the entry.
    pub fn set(&mut self, node: NodeId, counter: u64) {
        if counter == 0 {
            self.entries.remove(&node);
        } else {
            self.entries.insert(node, counter);
        }
    }

    /// Records one more event of `node` and returns its new counter.
    ///
    /// # Errors
    /// [`Error::CounterOverflow`] at `u64::MAX`; the vector is unchanged.
    pub fn increment(&mut self, node: NodeId) -> Result<u64> {
        let next = self
            .get(node)
            .checked_add(1)
            .ok_or_else(|| Error::CounterOverflow {
                what: "version vector",
            })?;
        self.entries.insert(node, next);
        Ok(next)
    }

    /// Takes the entry-wise maximum with `other` (the least upper bound).
    pub fn merge(&mut self, other: &VersionVector) {
        for (&node, &counter) in &other.entries {
            let entry = self.entries.entry(node).or_insert(0);
            *entry = (*entry).max(counter);
        }
    }

    /// The merge of `self` and `other`, as a new vector.
    pub fn merged(&self, other: &VersionVector) -> VersionVector {
        let mut out = self.clone();
        out.merge(other);
        out
    }

    /// Whether this history contains all of `other` (`self >= other` entry-wise).
    pub fn descends(&self, other: &VersionVector) -> bool {
        other
            .entries
            .iter()
            .all(|(&node, &counter)| self.get(node) >= counter)
    }

    /// Whether the history contains event number `counter` of `node`.
    pub fn contains(&self, node: NodeId, counter: u64) -> bool {
        self.get(node) >= counter
    }

    /// How this history relates to `other`.
    pub fn compare(&self, other: &VersionVector) -> Causality {
        match (self.descends(other), other.descends(self)) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::After,
            (false, true) => Causality::Before,
            (false, false) => Causality::Concurrent,
        }
    }

    /// The non-zero entries, by node.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.entries.iter().map(|(&n, &c)| (n, c))
    }

    /// The number of non-zero entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether this is the empty history.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromIterator<(NodeId, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (NodeId, u64)>>(iter: I) -> Self {
        let mut vv = VersionVector::new();
        for (node, counter) in iter {
            let merged = vv.get(node).max(counter);
            vv.set(node, merged);
        }
        vv
    }
}

impl fmt::Debug for VersionVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn vv(entries: &[(u64, u64)]) -> VersionVector {
        entries.iter().map(|&(n, c)| (NodeId(n), c)).collect()
    }

    #[test]
    fn compare_covers_all_four_cases() {
        assert_eq!(vv(&[(1, 1)]).compare(&vv(&[(1, 1)])), Causality::Equal);
        assert_eq!(vv(&[(1, 1)]).compare(&vv(&[(1, 2)])), Causality::Before);
        assert_eq!(
            vv(&[(1, 2), (2, 1)]).compare(&vv(&[(1, 2)])),
            Causality::After
        );
        assert_eq!(vv(&[(1, 2)]).compare(&vv(&[(2, 1)])), Causality::Concurrent);
        assert_eq!(
            VersionVector::new().compare(&VersionVector::new()),
            Causality::Equal
        );
    }

    #[test]
    fn zero_entries_are_not_stored() {
        let mut a = vv(&[(1, 0), (2, 3)]);
        assert_eq!(a.len(), 1);
        a.set(NodeId(2), 0);
        assert!(a.is_empty());
        assert_eq!(a, VersionVector::new());
    }

    #[test]
    fn increment_overflow_is_typed() {
        let mut a = vv(&[(1, u64::MAX)]);
        assert!(matches!(
            a.increment(NodeId(1)),
            Err(Error::CounterOverflow { .. })
        ));
        assert_eq!(a.get(NodeId(1)), u64::MAX);
    }
}
