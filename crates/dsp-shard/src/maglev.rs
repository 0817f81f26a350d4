//! Maglev hashing (Eisenbud et al., NSDI 2016): a lookup table filled from per-node
//! permutations.

use dsp_core::NodeId;

use crate::error::{Error, Result};
use crate::hash::{key_hash, node_point, reduce};
use crate::placement::Placement;

/// The largest accepted table size.
const MAX_TABLE_SIZE: u64 = 1 << 24;

/// Configuration of a [`Maglev`] table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MaglevConfig {
    /// Number of table entries; must be prime and at least the number of nodes. Default 65 537.
    /// The paper recommends about 100 × the number of nodes for < 1 % imbalance.
    pub table_size: u64,
}

impl Default for MaglevConfig {
    fn default() -> Self {
        Self { table_size: 65_537 }
    }
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

impl MaglevConfig {
    /// A configuration with the given table size.
    pub fn with_table_size(table_size: u64) -> Self {
        Self { table_size }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the table size is not a prime in `2..=2^24`.
    pub fn validate(&self) -> Result<()> {
        if self.table_size > MAX_TABLE_SIZE || !is_prime(self.table_size) {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "maglev table size must be a prime <= 2^24, got {}",
                    self.table_size
                ),
            });
        }
        Ok(())
    }
}

/// Maglev consistent hashing: `O(1)` lookups from a prime-sized table in which every node owns
/// an almost equal number of entries (proportional to its weight).
///
/// Membership changes rebuild the table (`O(table size)`) and move slightly more keys than the
/// minimum — the paper's trade of a little disruption for near-perfect balance and constant-time
/// lookup. Replicas are the next distinct nodes along the table.
///
/// ```
/// use dsp_core::NodeId;
/// use dsp_shard::{Maglev, MaglevConfig, Placement};
///
/// let maglev = Maglev::with_nodes(MaglevConfig::default(), (1..=5).map(NodeId))?;
/// let replicas = maglev.replicas(b"flow-17", 3)?;
/// assert_eq!(replicas[0], maglev.owner(b"flow-17")?);
/// # Ok::<(), dsp_shard::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Maglev {
    config: MaglevConfig,
    members: Vec<(NodeId, u32)>,
    /// Index into `members` for each table entry; empty when there are no members.
    table: Vec<u32>,
}

impl Maglev {
    /// An empty table.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` is invalid.
    pub fn new(config: MaglevConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            members: Vec::new(),
            table: Vec::new(),
        })
    }

    /// A table over `nodes`, each with weight 1.
    ///
    /// # Errors
    /// As [`Maglev::new`] and [`Maglev::add_node`].
    pub fn with_nodes(
        config: MaglevConfig,
        nodes: impl IntoIterator<Item = NodeId>,
    ) -> Result<Self> {
        let mut maglev = Self::new(config)?;
        for node in nodes {
            maglev.check_new(node, 1)?;
            maglev.members.push((node, 1));
            maglev.members.sort_unstable();
        }
        maglev.rebuild();
        Ok(maglev)
    }

    fn check_new(&self, node: NodeId, weight: u32) -> Result<()> {
        if weight == 0 {
            return Err(Error::ZeroWeight { node });
        }
        if self.members.iter().any(|&(n, _)| n == node) {
            return Err(Error::DuplicateNode { node });
        }
        if self.members.len() as u64 >= self.config.table_size {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "more nodes than maglev table entries ({})",
                    self.config.table_size
                ),
            });
        }
        Ok(())
    }

    /// Adds `node` with `weight` and rebuilds the table.
    ///
    /// # Errors
    /// [`Error::ZeroWeight`], [`Error::DuplicateNode`], or [`Error::InvalidConfig`] if there
    /// would be more nodes than table entries. Nothing changed.
    pub fn add_node(&mut self, node: NodeId, weight: u32) -> Result<()> {
        self.check_new(node, weight)?;
        self.members.push((node, weight));
        self.members.sort_unstable();
        self.rebuild();
        Ok(())
    }

    /// Removes `node` and rebuilds the table.
    ///
    /// # Errors
    /// [`Error::UnknownNode`]; nothing changed.
    pub fn remove_node(&mut self, node: NodeId) -> Result<()> {
        let idx = self
            .members
            .iter()
            .position(|&(n, _)| n == node)
            .ok_or(Error::UnknownNode { node })?;
        self.members.remove(idx);
        self.rebuild();
        Ok(())
    }

    /// The population algorithm of the paper, with weights as turns per round.
    fn rebuild(&mut self) {
        let m = self.config.table_size;
        self.table.clear();
        if self.members.is_empty() {
            return;
        }
        let perms: Vec<(u64, u64)> = self
            .members
            .iter()
            .map(|&(node, _)| (node_point(node, 0) % m, node_point(node, 1) % (m - 1) + 1))
            .collect();
        let mut next = vec![0u64; self.members.len()];
        let mut entries = vec![u32::MAX; m as usize];
        let mut filled = 0u64;
        'fill: loop {
            for (i, &(_, weight)) in self.members.iter().enumerate() {
                let (offset, skip) = perms[i];
                for _ in 0..weight {
                    // `skip` is coprime with the prime `m`, so this visits every slot.
                    let mut slot = (offset + next[i] % m * skip) % m;
                    while entries[slot as usize] != u32::MAX {
                        next[i] += 1;
                        slot = (offset + next[i] % m * skip) % m;
                    }
                    // At most 2^24 members (table size bound), so the index fits in u32.
                    entries[slot as usize] = i as u32;
                    next[i] += 1;
                    filled += 1;
                    if filled == m {
                        break 'fill;
                    }
                }
            }
        }
        self.table = entries;
    }

    /// How many table entries each node owns, by node.
    pub fn entry_counts(&self) -> Vec<(NodeId, usize)> {
        let mut counts = vec![0usize; self.members.len()];
        for &i in &self.table {
            counts[i as usize] += 1;
        }
        self.members.iter().map(|&(n, _)| n).zip(counts).collect()
    }

    #[inline]
    fn slot(&self, key: &[u8]) -> Result<usize> {
        if self.table.is_empty() {
            return Err(Error::NoNodes);
        }
        Ok(reduce(key_hash(key), self.config.table_size) as usize)
    }
}

impl Placement for Maglev {
    #[inline]
    fn owner(&self, key: &[u8]) -> Result<NodeId> {
        let slot = self.slot(key)?;
        Ok(self.members[self.table[slot] as usize].0)
    }

    fn replicas_into(&self, key: &[u8], n: usize, out: &mut Vec<NodeId>) -> Result<()> {
        out.clear();
        let start = self.slot(key)?;
        let want = n.min(self.members.len());
        let len = self.table.len();
        for step in 0..len {
            if out.len() >= want {
                break;
            }
            let node = self.members[self.table[(start + step) % len] as usize].0;
            if !out.contains(&node) {
                out.push(node);
            }
        }
        // A node can own no entry when another's weight dwarfs it; still return distinct
        // members, in node order, so the count only falls short when nodes do.
        for &(node, _) in &self.members {
            if out.len() >= want {
                break;
            }
            if !out.contains(&node) {
                out.push(node);
            }
        }
        Ok(())
    }

    fn nodes(&self) -> Vec<NodeId> {
        self.members.iter().map(|&(n, _)| n).collect()
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
    fn table_size_must_be_prime() {
        assert!(Maglev::new(MaglevConfig::with_table_size(65_536)).is_err());
        assert!(Maglev::new(MaglevConfig::with_table_size(0)).is_err());
        assert!(Maglev::new(MaglevConfig::with_table_size(13)).is_ok());
    }

    #[test]
    fn entries_are_nearly_equal() {
        let maglev = Maglev::with_nodes(MaglevConfig::default(), (1..=7).map(NodeId)).unwrap();
        let counts = maglev.entry_counts();
        let min = counts.iter().map(|c| c.1).min().unwrap();
        let max = counts.iter().map(|c| c.1).max().unwrap();
        assert!(max - min <= 1, "{counts:?}");
    }

    #[test]
    fn weighted_entries_follow_weights() {
        let mut maglev = Maglev::new(MaglevConfig::with_table_size(10_007)).unwrap();
        maglev.add_node(NodeId(1), 1).unwrap();
        maglev.add_node(NodeId(2), 2).unwrap();
        let counts = maglev.entry_counts();
        assert!(counts[1].1.abs_diff(2 * counts[0].1) <= 2, "{counts:?}");
    }

    #[test]
    fn replicas_cover_nodes_without_entries() {
        let mut maglev = Maglev::new(MaglevConfig::with_table_size(13)).unwrap();
        maglev.add_node(NodeId(1), 1_000).unwrap();
        maglev.add_node(NodeId(2), 1).unwrap();
        assert!(maglev.entry_counts().iter().any(|&(_, c)| c == 0));
        assert_eq!(maglev.replicas(b"k", 2).unwrap().len(), 2);
    }

    #[test]
    fn bad_input_is_typed() {
        let mut maglev = Maglev::new(MaglevConfig::with_table_size(3)).unwrap();
        assert_eq!(maglev.owner(b"x"), Err(Error::NoNodes));
        assert_eq!(
            maglev.add_node(NodeId(1), 0),
            Err(Error::ZeroWeight { node: NodeId(1) })
        );
        for n in 1..=3 {
            maglev.add_node(NodeId(n), 1).unwrap();
        }
        assert!(matches!(
            maglev.add_node(NodeId(4), 1),
            Err(Error::InvalidConfig { .. })
        ));
        assert_eq!(
            maglev.remove_node(NodeId(9)),
            Err(Error::UnknownNode { node: NodeId(9) })
        );
    }
}
