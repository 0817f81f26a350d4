//! Jump consistent hash (Lamping and Veach, 2014).

use dsp_core::NodeId;

use crate::error::{Error, Result};
use crate::hash::key_hash;
use crate::placement::Placement;

/// Jump consistent hash: maps a 64-bit key onto `0..buckets` so that growing from `n` to `n + 1`
/// buckets moves exactly the keys that land in the new bucket (about `1/(n+1)` of them).
/// No memory, `O(ln n)` time.
///
/// # Errors
/// [`Error::InvalidConfig`] if `buckets` is zero.
pub fn jump_hash(key: u64, buckets: u32) -> Result<u32> {
    if buckets == 0 {
        return Err(Error::InvalidConfig {
            reason: "jump hash needs at least one bucket".into(),
        });
    }
    Ok(jump(key, buckets))
}

/// The algorithm from the paper; `buckets > 0`.
#[inline]
fn jump(mut key: u64, buckets: u32) -> u32 {
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // (b + 1) * 2^31 / ((key >> 33) + 1), computed in f64 as in the paper; the result is
        // below 2^63 so the conversion cannot saturate.
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    // 0 <= b < buckets, so it fits in u32.
    b as u32
}

/// A [`Placement`] over [`jump_hash`]: bucket `i` is the `i`-th node.
///
/// Best when nodes are only ever added (or removed from the end, as when scaling a
/// `StatefulSet` down): then it is perfectly balanced and moves the minimum. Removing a node
/// from the middle moves the last node into its bucket ([`JumpHash::remove_node`]), which moves
/// about twice the minimum. No weights. Replicas are the following buckets.
///
/// ```
/// use dsp_core::NodeId;
/// use dsp_shard::{JumpHash, Placement};
///
/// let jump = JumpHash::with_nodes((1..=4).map(NodeId))?;
/// assert_eq!(jump.replicas(b"key", 2)?.len(), 2);
/// # Ok::<(), dsp_shard::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JumpHash {
    nodes: Vec<NodeId>,
}

impl JumpHash {
    /// An empty placement.
    pub fn new() -> Self {
        Self::default()
    }

    /// A placement over `nodes`, in bucket order.
    ///
    /// # Errors
    /// [`Error::DuplicateNode`] if a node repeats.
    pub fn with_nodes(nodes: impl IntoIterator<Item = NodeId>) -> Result<Self> {
        let mut jump = Self::new();
        for node in nodes {
            jump.add_node(node)?;
        }
        Ok(jump)
    }

    /// Appends `node` as the last bucket.
    ///
    /// # Errors
    /// [`Error::DuplicateNode`], or [`Error::InvalidConfig`] beyond `u32::MAX` nodes.
    pub fn add_node(&mut self, node: NodeId) -> Result<()> {
        if self.nodes.contains(&node) {
            return Err(Error::DuplicateNode { node });
        }
        if self.nodes.len() >= u32::MAX as usize {
            return Err(Error::InvalidConfig {
                reason: "too many nodes for jump hash".into(),
            });
        }
        self.nodes.push(node);
        Ok(())
    }

    /// Removes `node`: the last bucket's node takes over its bucket and the last bucket is
    /// dropped.
    ///
    /// # Errors
    /// [`Error::UnknownNode`]; nothing changed.
    pub fn remove_node(&mut self, node: NodeId) -> Result<()> {
        let idx = self
            .nodes
            .iter()
            .position(|&n| n == node)
            .ok_or(Error::UnknownNode { node })?;
        self.nodes.swap_remove(idx);
        Ok(())
    }

    /// The nodes in bucket order.
    pub fn buckets(&self) -> &[NodeId] {
        &self.nodes
    }

    /// The bucket of a precomputed key hash.
    ///
    /// # Errors
    /// [`Error::NoNodes`].
    #[inline]
    pub fn bucket_of_hash(&self, hash: u64) -> Result<usize> {
        if self.nodes.is_empty() {
            return Err(Error::NoNodes);
        }
        // At most u32::MAX nodes, enforced by add_node.
        Ok(jump(hash, self.nodes.len() as u32) as usize)
    }
}

impl Placement for JumpHash {
    #[inline]
    fn owner(&self, key: &[u8]) -> Result<NodeId> {
        Ok(self.nodes[self.bucket_of_hash(key_hash(key))?])
    }

    fn replicas_into(&self, key: &[u8], n: usize, out: &mut Vec<NodeId>) -> Result<()> {
        out.clear();
        let first = self.bucket_of_hash(key_hash(key))?;
        let len = self.nodes.len();
        out.extend((0..n.min(len)).map(|i| self.nodes[(first + i) % len]));
        Ok(())
    }

    fn nodes(&self) -> Vec<NodeId> {
        let mut nodes = self.nodes.clone();
        nodes.sort_unstable();
        nodes
    }

    fn node_count(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn zero_buckets_is_typed() {
        assert!(matches!(jump_hash(1, 0), Err(Error::InvalidConfig { .. })));
        assert_eq!(JumpHash::new().owner(b"k"), Err(Error::NoNodes));
    }

    #[test]
    fn growing_moves_keys_only_to_the_new_bucket() {
        for key in 0..2_000u64 {
            let h = key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut prev = jump_hash(h, 1).unwrap();
            assert_eq!(prev, 0);
            for n in 2..40 {
                let b = jump_hash(h, n).unwrap();
                assert!(b == prev || b == n - 1);
                prev = b;
            }
        }
    }

    #[test]
    fn remove_swaps_last_node_in() {
        let mut j = JumpHash::with_nodes((1..=4).map(NodeId)).unwrap();
        j.remove_node(NodeId(2)).unwrap();
        assert_eq!(j.buckets(), &[NodeId(1), NodeId(4), NodeId(3)]);
        assert_eq!(
            j.remove_node(NodeId(9)),
            Err(Error::UnknownNode { node: NodeId(9) })
        );
        assert_eq!(
            j.add_node(NodeId(1)),
            Err(Error::DuplicateNode { node: NodeId(1) })
        );
    }
}
