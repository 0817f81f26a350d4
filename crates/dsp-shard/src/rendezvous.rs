//! Rendezvous (highest random weight) hashing, with weights.

use dsp_core::NodeId;

use crate::error::{Error, Result};
use crate::hash::{key_hash, node_seed, pair_hash};
use crate::placement::Placement;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Member {
    node: NodeId,
    seed: u64,
    weight: u32,
}

/// Rendezvous hashing: every node scores every key, and the highest score owns it; replicas
/// are the next highest. Removing a node moves only its keys; adding one takes only the keys
/// it now wins. `O(nodes)` per lookup, so it suits tens of nodes, not thousands.
///
/// Weighted nodes use the logarithmic method (score = `weight / -ln(u)`, Schindelhauer and
/// Schomaker), which gives each node a share of keys proportional to its weight. The logarithm
/// is computed with basic IEEE operations only, so scores are bit-identical on every platform.
///
/// ```
/// use dsp_core::NodeId;
/// use dsp_shard::{Placement, Rendezvous};
///
/// let mut hrw = Rendezvous::new();
/// hrw.add_node(NodeId(1), 1)?;
/// hrw.add_node(NodeId(2), 3)?; // gets about three times the keys of n1
/// let replicas = hrw.replicas(b"key", 2)?;
/// assert_eq!(replicas.len(), 2);
/// # Ok::<(), dsp_shard::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Rendezvous {
    members: Vec<Member>,
    uniform: bool,
}

/// Natural logarithm of `x > 0` using only `+ - * /` and bit manipulation, so the result is the
/// same on every platform (unlike `f64::ln`, which may differ in the last bit between libms).
fn det_ln(x: f64) -> f64 {
    const LN_2: f64 = std::f64::consts::LN_2;
    let bits = x.to_bits();
    // x = m * 2^e with m in [1, 2); inputs here are normal numbers in (0, 1).
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mantissa = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    // ln(m) = 2 atanh(s), s = (m - 1) / (m + 1) in [0, 1/3): the series converges fast.
    let s = (mantissa - 1.0) / (mantissa + 1.0);
    let s2 = s * s;
    let mut term = s;
    let mut sum = 0.0;
    let mut k = 1.0;
    for _ in 0..24 {
        sum += term / k;
        term *= s2;
        k += 2.0;
    }
    exponent as f64 * LN_2 + 2.0 * sum
}

/// Maps a hash onto (0, 1), excluding both ends.
fn unit(hash: u64) -> f64 {
    ((hash >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

impl Rendezvous {
    /// An empty placement.
    pub fn new() -> Self {
        Self {
            members: Vec::new(),
            uniform: true,
        }
    }

    /// A placement over `nodes`, each with weight 1.
    ///
    /// # Errors
    /// [`Error::DuplicateNode`] if a node repeats.
    pub fn with_nodes(nodes: impl IntoIterator<Item = NodeId>) -> Result<Self> {
        let mut hrw = Self::new();
        for node in nodes {
            hrw.add_node(node, 1)?;
        }
        Ok(hrw)
    }

    /// Adds `node` with `weight`.
    ///
    /// # Errors
    /// [`Error::ZeroWeight`] or [`Error::DuplicateNode`]; nothing changed.
    pub fn add_node(&mut self, node: NodeId, weight: u32) -> Result<()> {
        if weight == 0 {
            return Err(Error::ZeroWeight { node });
        }
        match self.members.binary_search_by_key(&node, |m| m.node) {
            Ok(_) => Err(Error::DuplicateNode { node }),
            Err(idx) => {
                let seed = node_seed(node);
                self.members.insert(idx, Member { node, seed, weight });
                self.refresh_uniform();
                Ok(())
            }
        }
    }

    /// Removes `node`.
    ///
    /// # Errors
    /// [`Error::UnknownNode`]; nothing changed.
    pub fn remove_node(&mut self, node: NodeId) -> Result<()> {
        let idx = self
            .members
            .binary_search_by_key(&node, |m| m.node)
            .map_err(|_| Error::UnknownNode { node })?;
        self.members.remove(idx);
        self.refresh_uniform();
        Ok(())
    }

    fn refresh_uniform(&mut self) {
        self.uniform = self.members.windows(2).all(|w| w[0].weight == w[1].weight);
    }

    /// The weight of `node`, if it is a member.
    pub fn weight(&self, node: NodeId) -> Option<u32> {
        self.members
            .iter()
            .find(|m| m.node == node)
            .map(|m| m.weight)
    }

    /// The weighted score of member `m` for a key hash; higher wins. With equal weights the raw
    /// pair hash is compared instead (the same order, without the logarithm).
    #[inline]
    fn score(&self, m: &Member, kh: u64) -> f64 {
        f64::from(m.weight) / -det_ln(unit(pair_hash(kh, m.seed)))
    }

    #[inline]
    fn owner_of_hash(&self, kh: u64) -> Result<NodeId> {
        if self.uniform {
            // Exact integer comparison; ties (astronomically rare) go to the lower node id.
            let best = self
                .members
                .iter()
                .map(|m| (pair_hash(kh, m.seed), std::cmp::Reverse(m.node)))
                .max()
                .ok_or(Error::NoNodes)?;
            return Ok(best.1.0);
        }
        let mut best: Option<(f64, NodeId)> = None;
        for m in &self.members {
            let s = self.score(m, kh);
            if best.is_none_or(|(bs, _)| s > bs) {
                best = Some((s, m.node));
            }
        }
        best.map(|(_, n)| n).ok_or(Error::NoNodes)
    }
}

impl Placement for Rendezvous {
    #[inline]
    fn owner(&self, key: &[u8]) -> Result<NodeId> {
        self.owner_of_hash(key_hash(key))
    }

    fn replicas_into(&self, key: &[u8], n: usize, out: &mut Vec<NodeId>) -> Result<()> {
        out.clear();
        if self.members.is_empty() {
            return Err(Error::NoNodes);
        }
        let kh = key_hash(key);
        if self.uniform {
            // Exact integer scores, as in `owner`; ties go to the lower node id.
            let mut scored: Vec<(u64, std::cmp::Reverse<NodeId>)> = self
                .members
                .iter()
                .map(|m| (pair_hash(kh, m.seed), std::cmp::Reverse(m.node)))
                .collect();
            scored.sort_unstable_by(|a, b| b.cmp(a));
            out.extend(scored.into_iter().take(n).map(|(_, node)| node.0));
        } else {
            let mut scored: Vec<(f64, NodeId)> = self
                .members
                .iter()
                .map(|m| (self.score(m, kh), m.node))
                .collect();
            // Highest score first; equal scores by node id, as in `owner`.
            scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            out.extend(scored.into_iter().take(n).map(|(_, node)| node));
        }
        Ok(())
    }

    fn nodes(&self) -> Vec<NodeId> {
        self.members.iter().map(|m| m.node).collect()
    }

    fn node_count(&self) -> usize {
        self.members.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn det_ln_matches_std_closely() {
        for &x in &[1e-300, 1e-10, 0.001, 0.1, 0.25, 0.5, 0.75, 0.999_999] {
            let ours = det_ln(x);
            let std = x.ln();
            assert!(
                (ours - std).abs() <= 1e-12 * std.abs().max(1.0),
                "{x}: {ours} vs {std}"
            );
        }
    }

    #[test]
    fn bad_input_is_typed() {
        let mut hrw = Rendezvous::new();
        assert_eq!(hrw.owner(b"k"), Err(Error::NoNodes));
        assert_eq!(
            hrw.add_node(NodeId(1), 0),
            Err(Error::ZeroWeight { node: NodeId(1) })
        );
        hrw.add_node(NodeId(1), 1).unwrap();
        assert_eq!(
            hrw.add_node(NodeId(1), 2),
            Err(Error::DuplicateNode { node: NodeId(1) })
        );
        assert_eq!(
            hrw.remove_node(NodeId(5)),
            Err(Error::UnknownNode { node: NodeId(5) })
        );
    }

    #[test]
    fn owner_is_first_replica_weighted_and_not() {
        let mut hrw = Rendezvous::with_nodes((1..=5).map(NodeId)).unwrap();
        for i in 0..300u32 {
            let k = i.to_le_bytes();
            let r = hrw.replicas(&k, 3).unwrap();
            assert_eq!(r[0], hrw.owner(&k).unwrap());
        }
        hrw.add_node(NodeId(9), 4).unwrap();
        for i in 0..300u32 {
            let k = i.to_le_bytes();
            let r = hrw.replicas(&k, 6).unwrap();
            assert_eq!(r[0], hrw.owner(&k).unwrap());
            assert_eq!(r.len(), 6);
        }
    }

    #[test]
    fn weights_shift_share() {
        let mut hrw = Rendezvous::new();
        hrw.add_node(NodeId(1), 1).unwrap();
        hrw.add_node(NodeId(2), 3).unwrap();
        let heavy = (0..20_000u32)
            .filter(|i| hrw.owner(&i.to_le_bytes()).unwrap() == NodeId(2))
            .count();
        // Expected share 3/4; allow a generous statistical margin.
        assert!((14_200..=15_800).contains(&heavy), "heavy node got {heavy}");
    }
}
