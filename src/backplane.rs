//! The backplane carries presence changes between gateway nodes. A node always fans a change out
//! to its own sessions itself; the backplane tells the other nodes. The default, [`Standalone`],
//! is the single-node case: there are no other nodes, so there is nothing to carry.

use crate::model::presentity::Presentity;
use std::sync::Arc;

/// A presentity's new state, as other nodes need it to render for their own watchers.
#[derive(Debug, Clone)]
pub struct PresenceChange {
    pub uri: Arc<str>,
    pub presentity: Presentity,
}

pub trait Backplane: Send + Sync {
    /// Announces a change made on this node to every other node.
    fn publish(&self, change: &PresenceChange);
    /// Whether the backplane (and so every peer) is reachable, for `/readyz`.
    fn is_ready(&self) -> bool;
}

/// One node on its own.
#[derive(Debug, Default)]
pub struct Standalone;

impl Backplane for Standalone {
    fn publish(&self, _change: &PresenceChange) {}

    fn is_ready(&self) -> bool {
        true
    }
}
