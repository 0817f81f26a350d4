//! Placement analysis: load balance and key movement of a scheme over a key sample.
//!
//! ```
//! use dsp_core::NodeId;
//! use dsp_shard::analysis::{load, movement, sample_keys};
//! use dsp_shard::{HashRing, HashRingConfig};
//!
//! let keys = sample_keys(10_000, 7);
//! let before = HashRing::with_nodes(HashRingConfig::default(), (1..=4).map(NodeId))?;
//! let mut after = before.clone();
//! after.add_node(NodeId(5), 1)?;
//!
//! let report = load(&before, &keys)?;
//! assert!(report.max_over_mean() < 1.3);
//! let moved = movement(&before, &after, &keys)?;
//! assert!((moved.fraction() - 0.2).abs() < 0.05); // about 1/5 moves to the new node
//! # Ok::<(), dsp_shard::Error>(())
//! ```

use std::collections::BTreeMap;

use dsp_core::{DetRng, NodeId};

use crate::error::Result;
use crate::placement::Placement;

/// How many sample keys each node owns.
#[derive(Clone, PartialEq, Debug)]
pub struct LoadReport {
    /// Keys per member node (members with no keys count as 0).
    pub per_node: BTreeMap<NodeId, u64>,
    /// Total keys.
    pub keys: u64,
    /// Mean keys per node.
    pub mean: f64,
    /// Population standard deviation of keys per node.
    pub std_dev: f64,
    /// The most keys on one node.
    pub max: u64,
    /// The fewest keys on one node.
    pub min: u64,
}

impl LoadReport {
    /// Standard deviation over mean (coefficient of variation); 0 is perfect balance.
    pub fn std_dev_over_mean(&self) -> f64 {
        if self.mean == 0.0 {
            0.0
        } else {
            self.std_dev / self.mean
        }
    }

    /// The busiest node's load over the mean; 1 is perfect balance.
    pub fn max_over_mean(&self) -> f64 {
        if self.mean == 0.0 {
            0.0
        } else {
            self.max as f64 / self.mean
        }
    }
}

/// The load of `placement` over `keys`.
///
/// # Errors
/// [`Error::NoNodes`](crate::Error::NoNodes) if the placement is empty.
pub fn load<P: Placement, K: AsRef<[u8]>>(
    placement: &P,
    keys: impl IntoIterator<Item = K>,
) -> Result<LoadReport> {
    let mut per_node: BTreeMap<NodeId, u64> =
        placement.nodes().into_iter().map(|n| (n, 0)).collect();
    let mut total = 0u64;
    for key in keys {
        *per_node.entry(placement.owner(key.as_ref())?).or_default() += 1;
        total += 1;
    }
    let n = per_node.len().max(1) as f64;
    let mean = total as f64 / n;
    let variance = per_node
        .values()
        .map(|&c| (c as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let max = per_node.values().copied().max().unwrap_or(0);
    let min = per_node.values().copied().min().unwrap_or(0);
    Ok(LoadReport {
        per_node,
        keys: total,
        mean,
        std_dev: variance.sqrt(),
        max,
        min,
    })
}

/// How many sample keys changed owner between two placements.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Movement {
    /// Keys whose owner differs.
    pub moved: u64,
    /// Keys compared.
    pub total: u64,
}

impl Movement {
    /// `moved / total` (0 for an empty sample).
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.moved as f64 / self.total as f64
        }
    }
}

/// Compares the owners of `keys` under `before` and `after` (for example before and after one
/// node joins).
///
/// # Errors
/// [`Error::NoNodes`](crate::Error::NoNodes) if either placement is empty.
pub fn movement<P: Placement, Q: Placement, K: AsRef<[u8]>>(
    before: &P,
    after: &Q,
    keys: impl IntoIterator<Item = K>,
) -> Result<Movement> {
    let mut m = Movement::default();
    for key in keys {
        let key = key.as_ref();
        if before.owner(key)? != after.owner(key)? {
            m.moved += 1;
        }
        m.total += 1;
    }
    Ok(m)
}

/// `count` pseudo-random 16-byte keys from a fixed seed: the same sample everywhere.
pub fn sample_keys(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = DetRng::from_seed(seed);
    (0..count)
        .map(|_| {
            let mut key = Vec::with_capacity(16);
            key.extend_from_slice(&rng.next_u64().to_le_bytes());
            key.extend_from_slice(&rng.next_u64().to_le_bytes());
            key
        })
        .collect()
}
