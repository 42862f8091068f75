//! What the HTTP layer and operators ask of this node, without reaching into its parts: the
//! configuration it runs with, its time, whether it is ready, where in a cluster a session lives,
//! and the few inspection hooks tests and operators use (a live session, the password checks,
//! closing the store). The parts themselves (store, hub, clock, backplane) stay private to the
//! service (docs/architecture.md §4, "The service's parts").

use super::auth::PasswordChecks;
use super::Gateway;
use crate::backplane::{BackplaneError, NodeId};
use crate::config::Config;
use crate::hub::session::Session;
use crate::model::sources::Timestamp;
use std::sync::Arc;

/// Whether the store and the backplane answer, as `/readyz` reports it.
#[derive(Debug, Clone)]
pub struct Readiness {
    /// The store's backend (`sqlite` or `postgres`), never its location.
    pub store: String,
    pub store_ok: bool,
    /// The backplane's kind (`standalone` or `redis`).
    pub backplane: &'static str,
    pub backplane_ok: bool,
    /// In a cluster, this node's number (the top of its sids).
    pub node: Option<NodeId>,
}

impl Gateway {
    /// The configuration this gateway runs with (read-only).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The gateway's time: its clock's (a manual clock in tests).
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Live sessions on this node.
    pub fn session_count(&self) -> usize {
        self.hub.session_count()
    }

    /// The first step of shutting down: every held poll is answered and no new one is held.
    pub fn begin_shutdown(&self) {
        self.hub.begin_shutdown();
    }

    /// Asks the store and looks at the backplane.
    pub async fn readiness(&self) -> Readiness {
        let store_ok = self.store.ping().await.is_ok();
        let store = self.store.describe().split("://").next().unwrap_or_default().to_string();
        let node = self.backplane.is_shared().then(|| self.backplane.node().clone());
        Readiness { store, store_ok, backplane: self.backplane.kind(), backplane_ok: self.backplane.is_ready(), node }
    }

    /// Whether other nodes share this one's live state (a cluster, README "Several nodes").
    pub fn clustered(&self) -> bool {
        self.backplane.is_shared()
    }

    /// The node holding session `sid` when that is another node of the cluster; `None`
    /// standalone, for this node's sessions, and for a sid of no node.
    pub fn other_holder(&self, sid: u64) -> Option<NodeId> {
        let node = crate::backplane::node_of_sid(sid).filter(|node| node != self.backplane.node());
        node.filter(|_| self.backplane.is_shared())
    }

    /// Where another node answers HTTP (`None` once it has left or its heartbeat lapsed).
    pub async fn node_address(&self, node: &NodeId) -> Result<Option<String>, BackplaneError> {
        self.backplane.address_of(node).await
    }

    /// Every other live node of the cluster with its address (none standalone).
    pub async fn other_nodes(&self) -> Result<Vec<(NodeId, String)>, BackplaneError> {
        self.backplane.other_nodes().await
    }

    /// Notes where a session's client connects from, for the administrators' session list.
    pub fn set_session_client(&self, sid: u64, client: std::net::IpAddr) {
        if let Some(session) = self.hub.get(sid) {
            session.set_client(client);
        }
    }

    /// The live session `sid` on this node, for inspection by tests and operators (its queue,
    /// its held polls); changes go through the service's methods.
    pub fn live_session(&self, sid: u64) -> Option<Arc<Session>> {
        self.hub.get(sid)
    }

    /// Every live session on this node, for inspection as [`Gateway::live_session`].
    pub fn live_sessions(&self) -> Vec<Arc<Session>> {
        self.hub.all_sessions()
    }

    /// The password checks' counters (capacity, peak, admitted), for tests and operators.
    pub fn password_checks(&self) -> &PasswordChecks {
        &self.password_checks
    }

    /// Closes the store as shutdown does last: every later store call fails. Tests of a store
    /// that went away use it.
    pub async fn close_store(&self) {
        self.store.close().await;
    }
}
