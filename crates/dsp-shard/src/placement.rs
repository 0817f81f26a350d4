//! The [`Placement`] trait: what every scheme answers.

use dsp_core::NodeId;

use crate::error::Result;

/// A scheme that places keys on nodes.
///
/// Implemented by every scheme in this crate, so a [`Router`](crate::Router) and the
/// [`analysis`](crate::analysis) functions work with any of them. All answers are deterministic
/// functions of the key bytes and the membership: the same in every process and release.
pub trait Placement {
    /// The node that owns `key`.
    ///
    /// # Errors
    /// [`Error::NoNodes`](crate::Error::NoNodes) if there are no nodes.
    fn owner(&self, key: &[u8]) -> Result<NodeId>;

    /// Clears `out` and fills it with up to `n` distinct nodes for `key`, owner first. Fewer
    /// than `n` only when the scheme has fewer than `n` nodes (a key range lists only its own
    /// replicas).
    ///
    /// # Errors
    /// [`Error::NoNodes`](crate::Error::NoNodes) if there are no nodes.
    fn replicas_into(&self, key: &[u8], n: usize, out: &mut Vec<NodeId>) -> Result<()>;

    /// [`Placement::replicas_into`] into a new vector.
    ///
    /// # Errors
    /// As [`Placement::replicas_into`].
    fn replicas(&self, key: &[u8], n: usize) -> Result<Vec<NodeId>> {
        let mut out = Vec::with_capacity(n.min(16));
        self.replicas_into(key, n, &mut out)?;
        Ok(out)
    }

    /// The member nodes, in ascending order.
    fn nodes(&self) -> Vec<NodeId>;

    /// The number of member nodes.
    fn node_count(&self) -> usize {
        self.nodes().len()
    }
}

impl<P: Placement + ?Sized> Placement for &P {
    fn owner(&self, key: &[u8]) -> Result<NodeId> {
        (**self).owner(key)
    }
    fn replicas_into(&self, key: &[u8], n: usize, out: &mut Vec<NodeId>) -> Result<()> {
        (**self).replicas_into(key, n, out)
    }
    fn nodes(&self) -> Vec<NodeId> {
        (**self).nodes()
    }
    fn node_count(&self) -> usize {
        (**self).node_count()
    }
}

impl<P: Placement + ?Sized> Placement for Box<P> {
    fn owner(&self, key: &[u8]) -> Result<NodeId> {
        (**self).owner(key)
    }
    fn replicas_into(&self, key: &[u8], n: usize, out: &mut Vec<NodeId>) -> Result<()> {
        (**self).replicas_into(key, n, out)
    }
    fn nodes(&self) -> Vec<NodeId> {
        (**self).nodes()
    }
    fn node_count(&self) -> usize {
        (**self).node_count()
    }
}
