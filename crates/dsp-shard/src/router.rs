//! A sharded-service router: request key → owner and replicas, over any [`Placement`].

use std::collections::BTreeMap;

use dsp_core::NodeId;

use crate::error::{Error, Result};
use crate::placement::Placement;

/// Configuration of a [`Router`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterConfig {
    /// How many distinct nodes hold each key (owner included). Default 3.
    pub replication_factor: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            replication_factor: 3,
        }
    }
}

impl RouterConfig {
    /// A configuration with the given replication factor.
    pub fn with_replication_factor(replication_factor: usize) -> Self {
        Self { replication_factor }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the replication factor is zero or above 64.
    pub fn validate(&self) -> Result<()> {
        if !(1..=64).contains(&self.replication_factor) {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "replication factor must be in 1..=64, got {}",
                    self.replication_factor
                ),
            });
        }
        Ok(())
    }
}

/// Where a key lives.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Route {
    /// The replicas, owner first, all distinct.
    pub replicas: Vec<NodeId>,
    /// The replication factor asked for; `replicas` is shorter only when there are fewer nodes.
    pub wanted: usize,
}

impl Route {
    /// The owner (coordinator, leader, primary) of the key.
    pub fn owner(&self) -> Option<NodeId> {
        self.replicas.first().copied()
    }

    /// The replicas other than the owner.
    pub fn followers(&self) -> &[NodeId] {
        self.replicas.get(1..).unwrap_or(&[])
    }

    /// Whether fewer replicas than wanted exist (too few nodes).
    pub fn is_degraded(&self) -> bool {
        self.replicas.len() < self.wanted
    }

    /// Whether `node` holds the key.
    pub fn contains(&self, node: NodeId) -> bool {
        self.replicas.contains(&node)
    }
}

/// Routes request keys to their owner and replicas with any placement scheme.
///
/// ```
/// use dsp_core::NodeId;
/// use dsp_shard::{HashRing, HashRingConfig, Router, RouterConfig};
///
/// let ring = HashRing::with_nodes(HashRingConfig::default(), (1..=5).map(NodeId))?;
/// let router = Router::new(ring, RouterConfig::with_replication_factor(3))?;
/// let route = router.route(b"cart:alice")?;
/// assert_eq!(route.replicas.len(), 3);
/// assert!(!route.is_degraded());
///
/// // Fan a batch out by owner.
/// let keys: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d"];
/// let batches = router.group_by_owner(keys.iter().copied())?;
/// assert_eq!(batches.values().map(Vec::len).sum::<usize>(), 4);
/// # Ok::<(), dsp_shard::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Router<P> {
    placement: P,
    config: RouterConfig,
}

impl<P: Placement> Router<P> {
    /// A router over `placement`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` is invalid.
    pub fn new(placement: P, config: RouterConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { placement, config })
    }

    /// The configuration.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// The owner of `key`.
    ///
    /// # Errors
    /// [`Error::NoNodes`].
    pub fn owner(&self, key: &[u8]) -> Result<NodeId> {
        self.placement.owner(key)
    }

    /// The owner and replicas of `key`.
    ///
    /// # Errors
    /// [`Error::NoNodes`].
    pub fn route(&self, key: &[u8]) -> Result<Route> {
        let mut route = Route::default();
        self.route_into(key, &mut route)?;
        Ok(route)
    }

    /// [`Router::route`] reusing `route`'s allocation.
    ///
    /// # Errors
    /// [`Error::NoNodes`].
    pub fn route_into(&self, key: &[u8], route: &mut Route) -> Result<()> {
        route.wanted = self.config.replication_factor;
        self.placement
            .replicas_into(key, self.config.replication_factor, &mut route.replicas)
    }

    /// Whether `node` is one of `key`'s replicas (should serve or store it).
    ///
    /// # Errors
    /// [`Error::NoNodes`].
    pub fn is_replica(&self, key: &[u8], node: NodeId) -> Result<bool> {
        Ok(self.route(key)?.contains(node))
    }

    /// Groups keys by owner: for each owner, the positions of its keys in the input.
    ///
    /// # Errors
    /// [`Error::NoNodes`].
    pub fn group_by_owner<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> Result<BTreeMap<NodeId, Vec<usize>>> {
        let mut groups: BTreeMap<NodeId, Vec<usize>> = BTreeMap::new();
        for (i, key) in keys.into_iter().enumerate() {
            groups
                .entry(self.placement.owner(key)?)
                .or_default()
                .push(i);
        }
        Ok(groups)
    }

    /// The placement.
    pub fn placement(&self) -> &P {
        &self.placement
    }

    /// The placement, to change membership.
    pub fn placement_mut(&mut self) -> &mut P {
        &mut self.placement
    }

    /// Consumes the router, returning the placement.
    pub fn into_placement(self) -> P {
        self.placement
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::{JumpHash, Rendezvous};

    #[test]
    fn zero_replication_factor_is_rejected() {
        assert!(matches!(
            Router::new(JumpHash::new(), RouterConfig::with_replication_factor(0)),
            Err(Error::InvalidConfig { .. })
        ));
    }

    #[test]
    fn route_reports_degraded_when_too_few_nodes() {
        let mut router = Router::new(
            Rendezvous::with_nodes([NodeId(1)]).unwrap(),
            RouterConfig::default(),
        )
        .unwrap();
        let route = router.route(b"k").unwrap();
        assert_eq!(route.owner(), Some(NodeId(1)));
        assert!(route.is_degraded());
        assert!(route.followers().is_empty());
        router.placement_mut().add_node(NodeId(2), 1).unwrap();
        router.placement_mut().add_node(NodeId(3), 1).unwrap();
        let route = router.route(b"k").unwrap();
        assert!(!route.is_degraded());
        assert_eq!(route.followers().len(), 2);
        assert!(router.is_replica(b"k", NodeId(1)).unwrap());
    }

    #[test]
    fn empty_placement_is_no_nodes() {
        let router = Router::new(JumpHash::new(), RouterConfig::default()).unwrap();
        assert_eq!(router.route(b"k"), Err(Error::NoNodes));
        assert_eq!(router.group_by_owner([&b"k"[..]]), Err(Error::NoNodes));
    }
}
