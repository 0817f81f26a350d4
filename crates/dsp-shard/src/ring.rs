//! Consistent hash ring with virtual nodes and weights.

use std::collections::BTreeMap;

use dsp_core::NodeId;

use crate::error::{Error, Result};
use crate::hash::{key_hash, node_point};
use crate::placement::Placement;

/// The most points one node may put on the ring (weight × virtual nodes).
const MAX_POINTS_PER_NODE: u64 = 1 << 20;

/// Configuration of a [`HashRing`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HashRingConfig {
    /// Virtual nodes (ring points) per unit of weight. Default 160 (as in ketama); more points
    /// give a more even spread and slower membership changes.
    pub vnodes: u32,
}

impl Default for HashRingConfig {
    fn default() -> Self {
        Self { vnodes: 160 }
    }
}

impl HashRingConfig {
    /// A configuration with `vnodes` virtual nodes per unit of weight.
    pub fn with_vnodes(vnodes: u32) -> Self {
        Self { vnodes }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `vnodes` is zero or above 2^20.
    pub fn validate(&self) -> Result<()> {
        if self.vnodes == 0 || u64::from(self.vnodes) > MAX_POINTS_PER_NODE {
            return Err(Error::InvalidConfig {
                reason: format!("vnodes must be in 1..=2^20, got {}", self.vnodes),
            });
        }
        Ok(())
    }
}

/// A consistent hash ring: each node owns `vnodes × weight` pseudo-random points on a 64-bit
/// ring, and a key belongs to the first point at or after its hash.
///
/// Adding a node moves only the keys that land on its new points (≈ its share of the total
/// weight); removing one moves only its keys. [`Placement::replicas_into`] walks clockwise and
/// skips points of nodes already chosen, so replicas are always distinct physical nodes.
///
/// ```
/// use dsp_core::NodeId;
/// use dsp_shard::{HashRing, HashRingConfig, Placement};
///
/// let mut ring = HashRing::new(HashRingConfig::default())?;
/// for n in 1..=3 {
///     ring.add_node(NodeId(n), 1)?;
/// }
/// let owner = ring.owner(b"user:42")?;
/// let replicas = ring.replicas(b"user:42", 2)?;
/// assert_eq!(replicas[0], owner);
/// assert_ne!(replicas[0], replicas[1]);
/// # Ok::<(), dsp_shard::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct HashRing {
    config: HashRingConfig,
    /// Every point, sorted by (hash, node): the source of truth.
    points: Vec<(u64, NodeId)>,
    /// The point hashes alone, for a cache-friendlier binary search.
    hashes: Vec<u64>,
    /// The owner of each point, parallel to `hashes`.
    owners: Vec<NodeId>,
    weights: BTreeMap<NodeId, u32>,
}

impl HashRing {
    /// An empty ring.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` is invalid.
    pub fn new(config: HashRingConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            points: Vec::new(),
            hashes: Vec::new(),
            owners: Vec::new(),
            weights: BTreeMap::new(),
        })
    }

    /// A ring holding `nodes`, each with weight 1.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`], or [`Error::DuplicateNode`] if a node repeats.
    pub fn with_nodes(
        config: HashRingConfig,
        nodes: impl IntoIterator<Item = NodeId>,
    ) -> Result<Self> {
        let mut ring = Self::new(config)?;
        for node in nodes {
            ring.insert_points(node, 1)?;
        }
        ring.sort();
        Ok(ring)
    }

    fn insert_points(&mut self, node: NodeId, weight: u32) -> Result<()> {
        if weight == 0 {
            return Err(Error::ZeroWeight { node });
        }
        if self.weights.contains_key(&node) {
            return Err(Error::DuplicateNode { node });
        }
        let count = u64::from(self.config.vnodes) * u64::from(weight);
        if count > MAX_POINTS_PER_NODE {
            return Err(Error::InvalidConfig {
                reason: format!("node {node}: weight {weight} x vnodes exceeds 2^20 points"),
            });
        }
        self.weights.insert(node, weight);
        self.points
            .extend((0..count).map(|i| (node_point(node, i), node)));
        Ok(())
    }

    fn sort(&mut self) {
        self.points.sort_unstable();
        self.reindex();
    }

    fn reindex(&mut self) {
        self.hashes = self.points.iter().map(|&(h, _)| h).collect();
        self.owners = self.points.iter().map(|&(_, n)| n).collect();
    }

    /// Adds `node` with `weight` (its share of keys is proportional to it).
    ///
    /// # Errors
    /// [`Error::ZeroWeight`], [`Error::DuplicateNode`], or [`Error::InvalidConfig`] if the
    /// node would have more than 2^20 points. Nothing changed.
    pub fn add_node(&mut self, node: NodeId, weight: u32) -> Result<()> {
        self.insert_points(node, weight)?;
        self.sort();
        Ok(())
    }

    /// Removes `node` and its points.
    ///
    /// # Errors
    /// [`Error::UnknownNode`]; nothing changed.
    pub fn remove_node(&mut self, node: NodeId) -> Result<()> {
        if self.weights.remove(&node).is_none() {
            return Err(Error::UnknownNode { node });
        }
        self.points.retain(|&(_, n)| n != node);
        self.reindex();
        Ok(())
    }

    /// The weight of `node`, if it is a member.
    pub fn weight(&self, node: NodeId) -> Option<u32> {
        self.weights.get(&node).copied()
    }

    /// The number of points on the ring.
    pub fn point_count(&self) -> usize {
        self.points.len()
    }

    /// The configuration.
    pub fn config(&self) -> &HashRingConfig {
        &self.config
    }

    /// The index of the first point at or after `hash`, wrapping.
    #[inline]
    fn first_point(&self, hash: u64) -> usize {
        let idx = self.hashes.partition_point(|&h| h < hash);
        if idx == self.hashes.len() { 0 } else { idx }
    }

    /// The owner of a precomputed key hash ([`key_hash`](crate::key_hash)).
    ///
    /// # Errors
    /// [`Error::NoNodes`].
    #[inline]
    pub fn owner_of_hash(&self, hash: u64) -> Result<NodeId> {
        if self.points.is_empty() {
            return Err(Error::NoNodes);
        }
        Ok(self.owners[self.first_point(hash)])
    }
}

impl Placement for HashRing {
    #[inline]
    fn owner(&self, key: &[u8]) -> Result<NodeId> {
        self.owner_of_hash(key_hash(key))
    }

    fn replicas_into(&self, key: &[u8], n: usize, out: &mut Vec<NodeId>) -> Result<()> {
        out.clear();
        if self.points.is_empty() {
            return Err(Error::NoNodes);
        }
        let want = n.min(self.weights.len());
        let start = self.first_point(key_hash(key));
        let len = self.points.len();
        for step in 0..len {
            if out.len() >= want {
                break;
            }
            let node = self.owners[(start + step) % len];
            if !out.contains(&node) {
                out.push(node);
            }
        }
        Ok(())
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

    #[test]
    fn bad_input_is_typed() {
        assert!(matches!(
            HashRing::new(HashRingConfig::with_vnodes(0)),
            Err(Error::InvalidConfig { .. })
        ));
        let mut ring = HashRing::new(HashRingConfig::default()).unwrap();
        assert_eq!(ring.owner(b"k"), Err(Error::NoNodes));
        assert_eq!(ring.replicas(b"k", 3), Err(Error::NoNodes));
        assert_eq!(
            ring.add_node(NodeId(1), 0),
            Err(Error::ZeroWeight { node: NodeId(1) })
        );
        ring.add_node(NodeId(1), 1).unwrap();
        assert_eq!(
            ring.add_node(NodeId(1), 1),
            Err(Error::DuplicateNode { node: NodeId(1) })
        );
        assert_eq!(
            ring.remove_node(NodeId(2)),
            Err(Error::UnknownNode { node: NodeId(2) })
        );
        assert!(matches!(
            ring.add_node(NodeId(3), u32::MAX),
            Err(Error::InvalidConfig { .. })
        ));
        assert_eq!(ring.node_count(), 1);
    }

    #[test]
    fn replicas_are_distinct_and_capped_by_node_count() {
        let ring = HashRing::with_nodes(HashRingConfig::default(), (1..=3).map(NodeId)).unwrap();
        for i in 0..200u32 {
            let key = i.to_le_bytes();
            let r = ring.replicas(&key, 5).unwrap();
            assert_eq!(r.len(), 3);
            assert_eq!(r[0], ring.owner(&key).unwrap());
            let mut sorted = r.clone();
            sorted.sort();
            sorted.dedup();
            assert_eq!(sorted.len(), 3);
        }
        assert!(ring.replicas(b"k", 0).unwrap().is_empty());
    }

    #[test]
    fn remove_then_add_restores_placement() {
        let mut ring =
            HashRing::with_nodes(HashRingConfig::default(), (1..=4).map(NodeId)).unwrap();
        let before: Vec<_> = (0..100u32)
            .map(|i| ring.owner(&i.to_le_bytes()).unwrap())
            .collect();
        ring.remove_node(NodeId(2)).unwrap();
        ring.add_node(NodeId(2), 1).unwrap();
        let after: Vec<_> = (0..100u32)
            .map(|i| ring.owner(&i.to_le_bytes()).unwrap())
            .collect();
        assert_eq!(before, after);
    }
}
