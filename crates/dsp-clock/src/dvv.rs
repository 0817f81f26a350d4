//! Dotted version vectors: tracking the siblings written concurrently to one key (Riak's model).
//!
//! A replica stores, for one key, a set of sibling values, each tagged with the [`Dot`] (node,
//! counter) of the write that created it, plus a [`VersionVector`] summarising every write it
//! has seen. A client reads the values and the vector (its *context*), and writes back with that
//! context: the write replaces exactly the siblings the client saw, and anything written
//! concurrently survives as a sibling. Unlike plain per-value version vectors, siblings do not
//! multiply when many clients write through the same server ("sibling explosion").

use dsp_core::NodeId;

use crate::error::Result;
use crate::version_vector::{Causality, VersionVector};

/// One event: the `counter`-th write coordinated by `node`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Dot {
    /// The node that coordinated the write.
    pub node: NodeId,
    /// Its sequence number on that node (starting at 1).
    pub counter: u64,
}

impl Dot {
    /// Whether `vv` includes this event.
    pub fn covered_by(&self, vv: &VersionVector) -> bool {
        vv.contains(self.node, self.counter)
    }
}

/// The clock of one write: its own [`Dot`] and the causal past it was written over.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DottedVersionVector {
    /// The write's own event.
    pub dot: Dot,
    /// The context the client supplied: the history the write supersedes.
    pub past: VersionVector,
}

impl DottedVersionVector {
    /// The full history of this write: its past plus its dot.
    pub fn history(&self) -> VersionVector {
        let mut vv = self.past.clone();
        let counter = vv.get(self.dot.node).max(self.dot.counter);
        vv.set(self.dot.node, counter);
        vv
    }

    /// Whether this write is superseded by a history `vv` (its dot is in `vv`).
    pub fn covered_by(&self, vv: &VersionVector) -> bool {
        self.dot.covered_by(vv)
    }

    /// How this write relates to another, by dots: `a` is before `b` if `b`'s past contains
    /// `a`'s dot.
    pub fn compare(&self, other: &DottedVersionVector) -> Causality {
        if self.dot == other.dot {
            return Causality::Equal;
        }
        match (self.covered_by(&other.past), other.covered_by(&self.past)) {
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            // Both covering each other cannot happen for well-formed clocks; treat as
            // concurrent rather than invent an order.
            _ => Causality::Concurrent,
        }
    }
}

/// The values of one key on one replica, with the causal information to keep siblings right.
///
/// ```
/// use dsp_clock::Siblings;
/// use dsp_core::NodeId;
///
/// let mut key = Siblings::new();
/// // Two clients read the empty key and write concurrently through server n1.
/// let (_, empty) = key.read();
/// key.write(&empty, "red", NodeId(1))?;
/// key.write(&empty, "blue", NodeId(1))?;
/// let (values, context) = key.read();
/// assert_eq!(values, vec![&"red", &"blue"]); // both survive as siblings
///
/// // A client that read both resolves them by writing with the context it read.
/// key.write(&context, "purple", NodeId(1))?;
/// assert_eq!(key.read().0, vec![&"purple"]);
/// # Ok::<(), dsp_clock::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Siblings<V> {
    vv: VersionVector,
    values: Vec<(Dot, V)>,
}

impl<V> Default for Siblings<V> {
    fn default() -> Self {
        Self {
            vv: VersionVector::new(),
            values: Vec::new(),
        }
    }
}

impl<V> Siblings<V> {
    /// An empty key: no values, empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current sibling values and the context a client must send back with its next write.
    pub fn read(&self) -> (Vec<&V>, VersionVector) {
        (
            self.values.iter().map(|(_, v)| v).collect(),
            self.vv.clone(),
        )
    }

    /// The history of every write this replica has seen for the key.
    pub fn context(&self) -> &VersionVector {
        &self.vv
    }

    /// The siblings with their dots, oldest first within a node.
    pub fn iter(&self) -> impl Iterator<Item = (Dot, &V)> + '_ {
        self.values.iter().map(|(d, v)| (*d, v))
    }

    /// The number of sibling values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the key holds no value.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether the key holds more than one value (concurrent writes to resolve).
    pub fn is_conflicted(&self) -> bool {
        self.values.len() > 1
    }

    /// A write coordinated by `node` with the `context` the client read: drops the siblings
    /// that context covers, adds `value` under a new dot, and returns the write's clock.
    ///
    /// # Errors
    /// [`Error::CounterOverflow`](crate::Error::CounterOverflow) if `node`'s counter is at
    /// `u64::MAX`; nothing changed.
    pub fn write(
        &mut self,
        context: &VersionVector,
        value: V,
        node: NodeId,
    ) -> Result<DottedVersionVector> {
        let mut vv = self.vv.clone();
        let counter = vv.increment(node)?;
        let dot = Dot { node, counter };
        vv.merge(context);
        self.values.retain(|(d, _)| !d.covered_by(context));
        self.values.push((dot, value));
        self.vv = vv;
        Ok(DottedVersionVector {
            dot,
            past: context.clone(),
        })
    }

    /// Removes every value covered by `context` (a delete with what the client read); returns
    /// how many were removed. The history is kept, so the delete wins over the values it saw.
    pub fn discard(&mut self, context: &VersionVector) -> usize {
        let before = self.values.len();
        self.values.retain(|(d, _)| !d.covered_by(context));
        self.vv.merge(context);
        before - self.values.len()
    }

    /// Resolves siblings: passes all current values to `resolve` and writes its result back
    /// with the full context, leaving exactly one value.
    ///
    /// # Errors
    /// As [`Siblings::write`].
    pub fn resolve(
        &mut self,
        node: NodeId,
        resolve: impl FnOnce(Vec<V>) -> V,
    ) -> Result<DottedVersionVector> {
        if self.vv.get(node) == u64::MAX {
            return Err(crate::Error::CounterOverflow {
                what: "version vector",
            });
        }
        let context = self.vv.clone();
        let values = std::mem::take(&mut self.values);
        let merged = resolve(values.into_iter().map(|(_, v)| v).collect());
        self.write(&context, merged, node)
    }
}

impl<V: Clone> Siblings<V> {
    /// Anti-entropy between two replicas of the key: keeps every value the other side has not
    /// superseded, from both sides, and merges the histories. `a.sync(&b)` then `b.sync(&a)`
    /// leave both replicas equal.
    pub fn sync(&mut self, other: &Siblings<V>) {
        let mut kept: Vec<(Dot, V)> = Vec::with_capacity(self.values.len() + other.values.len());
        for (dot, value) in &self.values {
            let in_other = other.values.iter().any(|(d, _)| d == dot);
            if in_other || !dot.covered_by(&other.vv) {
                kept.push((*dot, value.clone()));
            }
        }
        for (dot, value) in &other.values {
            let in_self = self.values.iter().any(|(d, _)| d == dot);
            if !in_self && !dot.covered_by(&self.vv) {
                kept.push((*dot, value.clone()));
            }
        }
        kept.sort_by_key(|(d, _)| *d);
        self.values = kept;
        self.vv.merge(&other.vv);
    }

    /// The result of syncing `self` with `other`, as a new value.
    pub fn synced(&self, other: &Siblings<V>) -> Siblings<V> {
        let mut out = self.clone();
        out.sync(other);
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn write_with_stale_context_keeps_concurrent_sibling() {
        let mut key = Siblings::new();
        let (_, ctx0) = key.read();
        key.write(&ctx0, 1, NodeId(1)).unwrap();
        let (_, ctx1) = key.read();
        key.write(&ctx1, 2, NodeId(1)).unwrap(); // replaces 1
        key.write(&ctx1, 3, NodeId(1)).unwrap(); // concurrent with 2
        let mut values: Vec<_> = key.read().0.into_iter().copied().collect();
        values.sort();
        assert_eq!(values, vec![2, 3]);
        assert!(key.is_conflicted());
    }

    #[test]
    fn sync_is_symmetric_and_drops_superseded_values() {
        let mut a = Siblings::new();
        let empty = VersionVector::new();
        a.write(&empty, "a1", NodeId(1)).unwrap();
        let mut b = a.clone();
        // a overwrites a1; b writes concurrently on another server.
        let ctx = a.context().clone();
        a.write(&ctx, "a2", NodeId(1)).unwrap();
        let ctx_b = b.context().clone();
        b.write(&ctx_b, "b1", NodeId(2)).unwrap();

        let ab = a.synced(&b);
        let ba = b.synced(&a);
        let mut va: Vec<_> = ab.read().0.into_iter().copied().collect();
        let mut vb: Vec<_> = ba.read().0.into_iter().copied().collect();
        va.sort();
        vb.sort();
        assert_eq!(va, vec!["a2", "b1"]);
        assert_eq!(va, vb);
        assert_eq!(ab.context(), ba.context());
    }

    #[test]
    fn resolve_leaves_one_value_that_supersedes_all() {
        let mut key = Siblings::new();
        let empty = VersionVector::new();
        key.write(&empty, 2, NodeId(1)).unwrap();
        key.write(&empty, 5, NodeId(2)).unwrap();
        let clock = key
            .resolve(NodeId(1), |vs| vs.into_iter().max().unwrap_or(0))
            .unwrap();
        assert_eq!(key.read().0, vec![&5]);
        assert_eq!(clock.history(), *key.context());
    }

    #[test]
    fn dvv_compare_orders_writes() {
        let mut key = Siblings::new();
        let first = key.write(&VersionVector::new(), 'x', NodeId(1)).unwrap();
        let ctx = key.context().clone();
        let second = key.write(&ctx, 'y', NodeId(1)).unwrap();
        let third = key.write(&VersionVector::new(), 'z', NodeId(2)).unwrap();
        assert_eq!(first.compare(&second), Causality::Before);
        assert_eq!(second.compare(&first), Causality::After);
        assert_eq!(second.compare(&third), Causality::Concurrent);
        assert_eq!(first.compare(&first.clone()), Causality::Equal);
    }

    #[test]
    fn discard_removes_seen_values_only() {
        let mut key = Siblings::new();
        key.write(&VersionVector::new(), 1, NodeId(1)).unwrap();
        let ctx = key.context().clone();
        key.write(&VersionVector::new(), 2, NodeId(2)).unwrap();
        assert_eq!(key.discard(&ctx), 1);
        assert_eq!(key.read().0, vec![&2]);
    }
}
