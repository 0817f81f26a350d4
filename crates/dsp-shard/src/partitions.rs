//! Fixed partitions (Kafka, Redis Cluster): keys map to partitions forever; partitions map to
//! nodes through an assignment that moves as little as possible.

use std::collections::BTreeMap;
use std::fmt;

use dsp_core::NodeId;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};
use crate::hash::{key_hash, node_seed, pair_hash, reduce};
use crate::placement::Placement;

/// The largest accepted partition count.
const MAX_PARTITIONS: u32 = 1 << 24;

/// A partition number, `0..partition_count`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct PartitionId(pub u32);

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// One partition that changed owner in a rebalance.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PartitionMove {
    /// The partition.
    pub partition: PartitionId,
    /// Its previous owner (`None` if it had none: the first node joined).
    pub from: Option<NodeId>,
    /// Its new owner.
    pub to: NodeId,
}

/// The outcome of a membership change: the partitions that moved, in partition order.
///
/// Data for each moved partition must be copied from `from` to `to` (or restored from
/// replicas if `from` has left).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Rebalance {
    /// The moved partitions.
    pub moves: Vec<PartitionMove>,
}

impl Rebalance {
    /// The number of partitions that moved.
    pub fn moved(&self) -> usize {
        self.moves.len()
    }
}

/// A fixed number of partitions assigned to weighted nodes.
///
/// A key's partition is a stable hash of the key modulo the fixed count, so it never changes;
/// growing or shrinking the cluster only reassigns whole partitions. Each node's *quota* is its
/// weighted share of the partitions (rounded, with the rounding extras going to nodes that
/// already hold more); a membership change moves only partitions of departed nodes and
/// partitions above a node's quota, which is the least any balanced assignment can move.
/// Replicas of a partition are its owner followed by the other nodes in rendezvous order of the
/// partition, so they too are stable under membership changes.
///
/// ```
/// use dsp_core::NodeId;
/// use dsp_shard::{FixedPartitions, Placement};
///
/// let mut parts = FixedPartitions::new(12)?;
/// parts.add_node(NodeId(1), 1)?;
/// parts.add_node(NodeId(2), 1)?;
/// let moved = parts.add_node(NodeId(3), 1)?; // n3 takes 4 partitions: 2 from each
/// assert_eq!(moved.moved(), 4);
/// assert_eq!(parts.partitions_of(NodeId(3)).len(), 4);
/// let p = parts.partition_of(b"order:9");
/// assert_eq!(parts.owner(b"order:9")?, parts.owner_of(p)?);
/// # Ok::<(), dsp_shard::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct FixedPartitions {
    count: u32,
    owners: Vec<Option<NodeId>>,
    weights: BTreeMap<NodeId, u32>,
}

impl FixedPartitions {
    /// `partition_count` partitions and no nodes.
    ///
    /// # Errors
    /// [`Error::ZeroPartitions`], or [`Error::InvalidConfig`] above 2^24 partitions.
    pub fn new(partition_count: u32) -> Result<Self> {
        if partition_count == 0 {
            return Err(Error::ZeroPartitions);
        }
        if partition_count > MAX_PARTITIONS {
            return Err(Error::InvalidConfig {
                reason: format!("at most 2^24 partitions, got {partition_count}"),
            });
        }
        Ok(Self {
            count: partition_count,
            owners: vec![None; partition_count as usize],
            weights: BTreeMap::new(),
        })
    }

    /// Rebuilds from a stored assignment (one owner per partition, in partition order) and the
    /// node weights.
    ///
    /// # Errors
    /// [`Error::ZeroPartitions`] for an empty assignment, [`Error::ZeroWeight`], or
    /// [`Error::UnknownNode`] if an owner is not in `weights`.
    pub fn from_assignment(
        assignment: Vec<NodeId>,
        weights: BTreeMap<NodeId, u32>,
    ) -> Result<Self> {
        let mut parts = Self::new(u32::try_from(assignment.len()).unwrap_or(u32::MAX))?;
        if let Some((&node, _)) = weights.iter().find(|&(_, &w)| w == 0) {
            return Err(Error::ZeroWeight { node });
        }
        if let Some(&node) = assignment.iter().find(|n| !weights.contains_key(n)) {
            return Err(Error::UnknownNode { node });
        }
        parts.owners = assignment.into_iter().map(Some).collect();
        parts.weights = weights;
        Ok(parts)
    }

    /// The fixed number of partitions.
    pub fn partition_count(&self) -> u32 {
        self.count
    }

    /// The partition of `key`; the same forever for a given partition count.
    #[inline]
    pub fn partition_of(&self, key: &[u8]) -> PartitionId {
        // reduce(_, count) < count <= u32::MAX.
        PartitionId(reduce(key_hash(key), u64::from(self.count)) as u32)
    }

    /// The owner of `partition`.
    ///
    /// # Errors
    /// [`Error::NoNodes`] if there are no nodes, [`Error::InvalidConfig`] if the partition is
    /// out of range.
    pub fn owner_of(&self, partition: PartitionId) -> Result<NodeId> {
        match self.owners.get(partition.0 as usize) {
            Some(Some(node)) => Ok(*node),
            Some(None) => Err(Error::NoNodes),
            None => Err(Error::InvalidConfig {
                reason: format!("no partition {partition}"),
            }),
        }
    }

    /// The partitions owned by `node`, ascending.
    pub fn partitions_of(&self, node: NodeId) -> Vec<PartitionId> {
        (0..self.count)
            .filter(|&p| self.owners[p as usize] == Some(node))
            .map(PartitionId)
            .collect()
    }

    /// The owner of every partition, in partition order (`None` only when there are no nodes).
    pub fn assignment(&self) -> &[Option<NodeId>] {
        &self.owners
    }

    /// Each node's quota (its target partition count) for the current members.
    pub fn quotas(&self) -> BTreeMap<NodeId, u32> {
        let total_weight: u64 = self.weights.values().map(|&w| u64::from(w)).sum();
        if total_weight == 0 {
            return BTreeMap::new();
        }
        let count = u64::from(self.count);
        let mut held: BTreeMap<NodeId, u32> = BTreeMap::new();
        for owner in self.owners.iter().flatten() {
            *held.entry(*owner).or_default() += 1;
        }
        // Floors of the exact shares, then the remainder, one each, to the nodes that already
        // hold the most above their floor (so rounding itself moves nothing), then by the
        // largest fractional share, then by node id.
        let mut quotas: BTreeMap<NodeId, u32> = BTreeMap::new();
        let mut order = Vec::with_capacity(self.weights.len());
        let mut assigned = 0u64;
        for (&node, &w) in &self.weights {
            let exact = count * u64::from(w);
            let floor = exact / total_weight;
            let frac = exact % total_weight;
            assigned += floor;
            // floor <= count <= 2^24.
            quotas.insert(node, floor as u32);
            let surplus = i64::from(held.get(&node).copied().unwrap_or(0)) - floor as i64;
            order.push((
                std::cmp::Reverse(surplus > 0),
                std::cmp::Reverse(frac),
                node,
            ));
        }
        order.sort_unstable();
        for (_, _, node) in order.into_iter().take((count - assigned) as usize) {
            if let Some(q) = quotas.get_mut(&node) {
                *q += 1;
            }
        }
        quotas
    }

    /// Adds `node` with `weight` and moves it its quota of partitions.
    ///
    /// # Errors
    /// [`Error::ZeroWeight`] or [`Error::DuplicateNode`]; nothing changed.
    pub fn add_node(&mut self, node: NodeId, weight: u32) -> Result<Rebalance> {
        if weight == 0 {
            return Err(Error::ZeroWeight { node });
        }
        if self.weights.contains_key(&node) {
            return Err(Error::DuplicateNode { node });
        }
        self.weights.insert(node, weight);
        Ok(self.rebalance())
    }

    /// Removes `node` and hands its partitions to nodes below their quota. When the last node
    /// leaves, every partition becomes unowned and the rebalance is empty (there is nowhere to
    /// move them); lookups then fail with [`Error::NoNodes`].
    ///
    /// # Errors
    /// [`Error::UnknownNode`]; nothing changed.
    pub fn remove_node(&mut self, node: NodeId) -> Result<Rebalance> {
        if self.weights.remove(&node).is_none() {
            return Err(Error::UnknownNode { node });
        }
        Ok(self.rebalance())
    }

    /// Changes the weight of a member and rebalances.
    ///
    /// # Errors
    /// [`Error::ZeroWeight`] or [`Error::UnknownNode`]; nothing changed.
    pub fn set_weight(&mut self, node: NodeId, weight: u32) -> Result<Rebalance> {
        if weight == 0 {
            return Err(Error::ZeroWeight { node });
        }
        match self.weights.get_mut(&node) {
            Some(w) => *w = weight,
            None => return Err(Error::UnknownNode { node }),
        }
        Ok(self.rebalance())
    }

    /// Moves the fewest partitions that bring every node to its quota.
    fn rebalance(&mut self) -> Rebalance {
        let mut moves = Vec::new();
        if self.weights.is_empty() {
            for owner in &mut self.owners {
                *owner = None;
            }
            return Rebalance { moves };
        }
        let quotas = self.quotas();
        // Partitions per current owner, highest partition first so releases are deterministic.
        let mut held: BTreeMap<NodeId, Vec<u32>> = BTreeMap::new();
        let mut pool: Vec<(u32, Option<NodeId>)> = Vec::new();
        for (p, owner) in self.owners.iter().enumerate() {
            // p < count <= 2^24.
            let p = p as u32;
            match owner {
                Some(node) if quotas.contains_key(node) => held.entry(*node).or_default().push(p),
                other => pool.push((p, *other)),
            }
        }
        for (node, partitions) in &mut held {
            let quota = quotas.get(node).copied().unwrap_or(0) as usize;
            while partitions.len() > quota {
                if let Some(p) = partitions.pop() {
                    pool.push((p, Some(*node)));
                }
            }
        }
        pool.sort_unstable();
        // Hand the pool out to nodes below quota, in node order.
        let mut pool = pool.into_iter();
        for (&node, &quota) in &quotas {
            let have = held.get(&node).map_or(0, Vec::len);
            for _ in have..quota as usize {
                if let Some((p, from)) = pool.next() {
                    self.owners[p as usize] = Some(node);
                    moves.push(PartitionMove {
                        partition: PartitionId(p),
                        from,
                        to: node,
                    });
                }
            }
        }
        moves.sort_unstable_by_key(|m| m.partition);
        Rebalance { moves }
    }

    fn replicas_of_partition(
        &self,
        partition: PartitionId,
        n: usize,
        out: &mut Vec<NodeId>,
    ) -> Result<()> {
        out.clear();
        let owner = self.owner_of(partition)?;
        if n == 0 {
            return Ok(());
        }
        out.push(owner);
        if n > 1 {
            let ph = xxh3_64(&partition.0.to_le_bytes());
            let mut rest: Vec<(u64, NodeId)> = self
                .weights
                .keys()
                .filter(|&&node| node != owner)
                .map(|&node| (pair_hash(ph, node_seed(node)), node))
                .collect();
            rest.sort_unstable_by(|a, b| b.cmp(a));
            out.extend(rest.into_iter().take(n - 1).map(|(_, node)| node));
        }
        Ok(())
    }
}

impl Placement for FixedPartitions {
    #[inline]
    fn owner(&self, key: &[u8]) -> Result<NodeId> {
        self.owner_of(self.partition_of(key))
    }

    fn replicas_into(&self, key: &[u8], n: usize, out: &mut Vec<NodeId>) -> Result<()> {
        self.replicas_of_partition(self.partition_of(key), n, out)
    }

    fn nodes(&self) -> Vec<NodeId> {
        self.weights.keys().copied().collect()
    }

    fn node_count(&self) -> usize {
        self.weights.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn counts(parts: &FixedPartitions) -> BTreeMap<NodeId, usize> {
        parts
            .nodes()
            .into_iter()
            .map(|n| (n, parts.partitions_of(n).len()))
            .collect()
    }

    #[test]
    fn zero_partitions_and_bad_members_are_typed() {
        assert!(matches!(
            FixedPartitions::new(0),
            Err(Error::ZeroPartitions)
        ));
        let mut parts = FixedPartitions::new(8).unwrap();
        assert_eq!(parts.owner(b"k"), Err(Error::NoNodes));
        assert_eq!(
            parts.add_node(NodeId(1), 0),
            Err(Error::ZeroWeight { node: NodeId(1) })
        );
        parts.add_node(NodeId(1), 1).unwrap();
        assert_eq!(
            parts.add_node(NodeId(1), 1),
            Err(Error::DuplicateNode { node: NodeId(1) })
        );
        assert_eq!(
            parts.remove_node(NodeId(2)),
            Err(Error::UnknownNode { node: NodeId(2) })
        );
        assert!(matches!(
            parts.owner_of(PartitionId(8)),
            Err(Error::InvalidConfig { .. })
        ));
    }

    #[test]
    fn first_node_takes_everything_last_leaves_nothing() {
        let mut parts = FixedPartitions::new(5).unwrap();
        let r = parts.add_node(NodeId(1), 1).unwrap();
        assert_eq!(r.moved(), 5);
        assert!(
            r.moves
                .iter()
                .all(|m| m.from.is_none() && m.to == NodeId(1))
        );
        let r = parts.remove_node(NodeId(1)).unwrap();
        assert_eq!(r.moved(), 0);
        assert_eq!(parts.owner(b"k"), Err(Error::NoNodes));
    }

    #[test]
    fn leave_moves_only_the_departed_nodes_partitions() {
        let mut parts = FixedPartitions::new(64).unwrap();
        for n in 1..=4 {
            parts.add_node(NodeId(n), 1).unwrap();
        }
        let before = parts.assignment().to_vec();
        let r = parts.remove_node(NodeId(3)).unwrap();
        assert_eq!(r.moved(), 16);
        for m in &r.moves {
            assert_eq!(m.from, Some(NodeId(3)));
            assert_eq!(before[m.partition.0 as usize], Some(NodeId(3)));
        }
        let c = counts(&parts);
        assert!(c.values().all(|&k| k == 21 || k == 22), "{c:?}");
    }

    #[test]
    fn weights_set_quotas() {
        let mut parts = FixedPartitions::new(100).unwrap();
        parts.add_node(NodeId(1), 1).unwrap();
        parts.add_node(NodeId(2), 3).unwrap();
        assert_eq!(
            counts(&parts),
            BTreeMap::from([(NodeId(1), 25), (NodeId(2), 75)])
        );
        let r = parts.set_weight(NodeId(1), 3).unwrap();
        assert_eq!(r.moved(), 25);
        assert_eq!(
            counts(&parts),
            BTreeMap::from([(NodeId(1), 50), (NodeId(2), 50)])
        );
    }

    #[test]
    fn replicas_are_distinct_and_owner_first() {
        let mut parts = FixedPartitions::new(32).unwrap();
        for n in 1..=5 {
            parts.add_node(NodeId(n), 1).unwrap();
        }
        for i in 0..100u32 {
            let k = i.to_le_bytes();
            let r = parts.replicas(&k, 3).unwrap();
            assert_eq!(r[0], parts.owner(&k).unwrap());
            let mut s = r.clone();
            s.sort();
            s.dedup();
            assert_eq!(s.len(), 3);
            assert_eq!(parts.replicas(&k, 10).unwrap().len(), 5);
        }
    }

    #[test]
    fn assignment_round_trips() {
        let mut parts = FixedPartitions::new(10).unwrap();
        parts.add_node(NodeId(1), 1).unwrap();
        parts.add_node(NodeId(2), 2).unwrap();
        let stored: Vec<NodeId> = parts.assignment().iter().flatten().copied().collect();
        let weights = BTreeMap::from([(NodeId(1), 1), (NodeId(2), 2)]);
        let restored = FixedPartitions::from_assignment(stored.clone(), weights).unwrap();
        assert_eq!(restored.assignment(), parts.assignment());
        assert!(matches!(
            FixedPartitions::from_assignment(stored, BTreeMap::from([(NodeId(1), 1)])),
            Err(Error::UnknownNode { .. })
        ));
        assert!(matches!(
            FixedPartitions::from_assignment(Vec::new(), BTreeMap::new()),
            Err(Error::ZeroPartitions)
        ));
    }
}
