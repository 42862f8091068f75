//! The backplane carries the live inputs of presence between gateway nodes (docs/architecture.md,
//! "Several nodes"). It is a fallible, asynchronous, two-way interface: a node publishes the
//! changes it makes ([`LiveChange`], plain serialisable data, never a rendering) and receives,
//! through a [`ChangeHandler`], the changes of the presentities it follows in per-presentity order
//! — or, when it starts following one or may have missed a change, the presentity's whole current
//! inputs to resynchronise from. A node follows what its sessions watch or are
//! ([`ChangeHandler::interested`]) and, for a while, what it was asked to read
//! ([`Backplane::refresh`]); changes of other presentities do not reach it.
//!
//! [`connect`] is the one constructor: [`Standalone`] when no Redis is configured (one node: there
//! is nobody to tell), [`redis::RedisBackplane`] otherwise.

pub mod redis;

use crate::config::LogonPolicy;
use crate::model::reports::SourceReport;
use crate::model::sources::{ManualState, Note, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A gateway process in the cluster: a random 20-bit number in hex, new per start (so a restarted
/// node is a new node). The number is also the top of every session id the node hands out, so a
/// sid says which node holds the session ([`node_of_sid`]).
pub type NodeId = Arc<str>;

/// Where a node's session ids start: its number above 32 bits of counter (below 2^53, so the
/// ids stay exact in JavaScript). Standalone (no number) starts at 0.
pub fn sid_base(node: &NodeId) -> u64 {
    u64::from_str_radix(node, 16).map(|n| (n & 0xF_FFFF) << 32).unwrap_or(0)
}

/// The node that handed out `sid`, if it came from a node of a cluster.
pub fn node_of_sid(sid: u64) -> Option<NodeId> {
    let number = (sid >> 32) & 0xF_FFFF;
    (number != 0 && sid >> 52 == 0).then(|| Arc::from(format!("{number:05x}").as_str()))
}

/// One change to a presentity's live inputs. Every variant sets one part outright, so applying
/// a change twice, or one that is already in force, changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LiveChange {
    /// How many of the user's sessions `node` holds, and how many of those are idle.
    Sessions { node: NodeId, signed_in: u32, idle: u32 },
    /// The manual state and note in force.
    Manual { manual: Option<ManualState>, note: Option<Note> },
    /// A source's report, or (`None`) its withdrawal.
    Report { source: String, report: Option<SourceReport> },
    /// The owner's rights entries changed in the store, written by `node`; `token` tells this
    /// change from every other. Carried in the presentity's order so that a node that did not
    /// write them reads them before it applies what follows (a note set after a block).
    Rights { node: NodeId, token: u64 },
    /// The entries that apply to every owner changed in the store, written by `node`. Published
    /// as about [`EVERY_OWNER`], on a channel every node hears, ahead of every change made after it.
    GlobalRights { node: NodeId, token: u64 },
    /// The user's profile changed in the store, written by `node`: their groups, and so their
    /// level wherever a group entry names one, may have. Published on the same channel as
    /// [`LiveChange::GlobalRights`], for the same reason.
    Profile { node: NodeId, token: u64 },
}

impl LiveChange {
    /// A change published on the channel every node hears (global rights, a profile), not on a
    /// presentity's.
    pub fn is_levels_change(&self) -> bool {
        matches!(self, LiveChange::GlobalRights { .. } | LiveChange::Profile { .. })
    }
}

/// What a [`LiveChange::GlobalRights`] is published about.
pub const EVERY_OWNER: &str = "*";

/// A change and the presentity it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub uri: Arc<str>,
    pub change: LiveChange,
}

/// Everything the backplane holds about one presentity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveInputs {
    /// Each node's session counts (signed in, idle); a node that is gone until it is cleared.
    pub sessions: BTreeMap<NodeId, (u32, u32)>,
    /// The manual state and note, when the backplane has them (else the store's stand).
    pub manual: Option<(Option<ManualState>, Option<Note>)>,
    pub reports: BTreeMap<String, SourceReport>,
    /// The token of the last [`LiveChange::Rights`] published, if any.
    pub rights: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackplaneError {
    #[error("the backplane is unreachable: {0}")]
    Unreachable(String),
    #[error("the backplane sent something unreadable: {0}")]
    Corrupt(String),
    #[error("backplane address: {0}")]
    Address(String),
}

/// What a node does with what arrives from the backplane. Called from one task, in order: what
/// follows waits until a call has returned.
#[async_trait::async_trait]
pub trait ChangeHandler: Send + Sync {
    /// A change of a followed presentity, in per-presentity order (this node's own changes
    /// included).
    async fn apply(&self, change: Published);
    /// A presentity's complete inputs, when following it begins, after a gap or after a lost
    /// connection: replace and push what changed.
    async fn replace(&self, uri: &str, inputs: LiveInputs);
    /// The global entries may have changed unseen (the backplane's connection was lost): read
    /// them before anything that follows.
    async fn reread_global_rights(&self);
    /// Whether a session of this node watches the presentity or belongs to its user.
    fn interested(&self, uri: &str) -> bool;
    /// Every presentity this node is interested in, to follow after (re)connecting.
    fn interests(&self) -> Vec<Arc<str>>;
    /// The changes that make up this node's own contribution (its session counts, the reports and
    /// manual states it holds), to publish again when the backplane lost its data.
    fn contribution(&self) -> Vec<Published>;
    /// The JSON event streams this node holds, to record again when the backplane lost its data
    /// (otherwise other nodes would no longer find them).
    fn held_streams(&self) -> Vec<HeldStream>;
}

#[async_trait::async_trait]
pub trait Backplane: Send + Sync {
    /// This node's identity.
    fn node(&self) -> &NodeId;
    /// What kind of backplane this is (`standalone`, `redis`), never its address.
    fn kind(&self) -> &'static str;
    /// Whether other nodes exist to tell; false means publishing can be skipped altogether.
    fn is_shared(&self) -> bool;
    /// Publishes changes made on this node, in order. Changes that already hold are not sent.
    async fn publish(&self, changes: &[Published]) -> Result<(), BackplaneError>;
    /// Starts delivering the changes of the presentities this node follows to `handler` (until
    /// the process ends).
    async fn subscribe(&self, handler: Arc<dyn ChangeHandler>) -> Result<(), BackplaneError>;
    /// This node stops (a graceful shutdown): its sessions stop counting everywhere at once
    /// instead of when its heartbeat lapses, and it publishes nothing more of them.
    async fn leave(&self) -> Result<(), BackplaneError>;
    /// Where a live node is reached (its `advertise` URL); `None` when it is gone or unknown.
    async fn address_of(&self, node: &NodeId) -> Result<Option<String>, BackplaneError>;
    /// Whether the backplane answers and this node is in step with it, for `/readyz`.
    fn is_ready(&self) -> bool;
    /// The node's interest in `uris` may have begun or ended: follow them (at once) or stop
    /// following them (after a while), as [`ChangeHandler::interested`] now says.
    fn interest_changed(&self, uris: &[Arc<str>]);
    /// Brings the handler's inputs of `uris` up to date and keeps them so for a while (a read of
    /// presentities no session here watches); returns once they are in step, or fails when that
    /// cannot be done at once.
    async fn refresh(&self, uris: &[Arc<str>]) -> Result<(), BackplaneError>;
    /// Whether this node follows the presentity (or is starting to): its changes arrive here in
    /// order, so other sources of its live inputs must not overtake them.
    fn follows(&self, uri: &str) -> bool;
    /// Every live node but this one, with its address (docs/architecture.md §5, "Several nodes").
    /// Alone: none.
    async fn other_nodes(&self) -> Result<Vec<(NodeId, String)>, BackplaneError> {
        Ok(Vec::new())
    }
    /// The JSON event stream recorded for a sign-in, when the node holding it is live.
    /// Alone: none (the node's own map is all there is).
    async fn json_stream_of(&self, _login: u64) -> Result<Option<StreamHolder>, BackplaneError> {
        Ok(None)
    }
    /// Records this node's stream `sid` for a sign-in (for `lifetime`, the sign-in's longest
    /// life), unless a live other node's stream is recorded: returns the stream recorded
    /// afterwards, this one or the other. Alone: this one.
    async fn claim_json_stream(&self, _login: u64, sid: u64, _lifetime: Duration) -> Result<StreamHolder, BackplaneError> {
        Ok(StreamHolder { node: self.node().clone(), sid, address: String::new() })
    }

    /// Checks a sign-in attempt against the cluster's shared counts and counts it when it may go
    /// ahead (README "Sign-in limits"); `user` and `address` are digests. `Ok(None)`: there are
    /// no shared counts (standalone), the node's own limiter decides.
    async fn count_logon(
        &self,
        _user: &str,
        _address: &str,
        _policy: &LogonPolicy,
    ) -> Result<Option<LogonCount>, BackplaneError> {
        Ok(None)
    }
    /// A counted attempt had the right password: its count is taken back and the address becomes
    /// one the user signs in from.
    async fn logon_succeeded(&self, _user: &str, _address: &str) -> Result<(), BackplaneError> {
        Ok(())
    }
    /// Claims a timed transition's cluster-wide effects for this node (docs/architecture.md §5);
    /// `key` names the presentity, the part and the deadline. Standalone: always this node's.
    async fn claim(&self, _key: &str) -> Result<Claim, BackplaneError> {
        Ok(Claim::Won)
    }
    /// The claimed transition is carried out: nobody needs to take it over.
    async fn claim_done(&self, _key: &str) -> Result<(), BackplaneError> {
        Ok(())
    }
    /// Withdraws a source's report if the one the backplane holds has expired at `now` (a newer
    /// one stays); true if it was withdrawn.
    async fn withdraw_expired(&self, _uri: &str, _source: &str, _now: Timestamp) -> Result<bool, BackplaneError> {
        Ok(false)
    }
}

/// What the shared sign-in counts say of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogonCount {
    /// It passed the limits and was counted.
    Counted,
    /// Refused: the next attempt can pass after this long.
    Refused(std::time::Duration),
}

/// Who carries out a timed transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This node: it does the store write and publishes.
    Won,
    /// Another node, which has this long left to finish before anyone may take over.
    Held(std::time::Duration),
    /// It is done.
    Done,
}

/// Where a sign-in's JSON event stream lives: its node, its sid and the node's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHolder {
    pub node: NodeId,
    pub sid: u64,
    pub address: String,
}

/// A JSON event stream this node holds: its sign-in, its sid and how long its record lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldStream {
    pub login: u64,
    pub sid: u64,
    pub lifetime: Duration,
}

/// The backplane the configuration names: Redis when `redis` is set, else [`Standalone`]. Only
/// parses the address; connecting happens (and is retried) in the background.
pub fn connect(config: &crate::config::Config) -> Result<Arc<dyn Backplane>, BackplaneError> {
    match &config.redis {
        None => Ok(Arc::new(Standalone::default())),
        Some(url) => Ok(redis::RedisBackplane::new(url, redis::Settings::from_config(config))?),
    }
}

/// One node on its own: there are no other nodes, so nothing is sent and nothing arrives.
#[derive(Debug)]
pub struct Standalone {
    node: NodeId,
}

impl Default for Standalone {
    fn default() -> Self {
        Standalone { node: Arc::from("standalone") }
    }
}

#[async_trait::async_trait]
impl Backplane for Standalone {
    fn node(&self) -> &NodeId {
        &self.node
    }

    fn kind(&self) -> &'static str {
        "standalone"
    }

    fn is_shared(&self) -> bool {
        false
    }

    async fn publish(&self, _changes: &[Published]) -> Result<(), BackplaneError> {
        Ok(())
    }

    async fn subscribe(&self, _handler: Arc<dyn ChangeHandler>) -> Result<(), BackplaneError> {
        Ok(())
    }

    async fn leave(&self) -> Result<(), BackplaneError> {
        Ok(())
    }

    async fn address_of(&self, _node: &NodeId) -> Result<Option<String>, BackplaneError> {
        Ok(None)
    }

    fn is_ready(&self) -> bool {
        true
    }

    fn interest_changed(&self, _uris: &[Arc<str>]) {}

    async fn refresh(&self, _uris: &[Arc<str>]) -> Result<(), BackplaneError> {
        Ok(())
    }

    fn follows(&self, _uri: &str) -> bool {
        false
    }
}

/// A fresh node identity: a random number in 1..2^20, in hex.
pub fn new_node_id() -> NodeId {
    let number = rand::random_range(1..=0xF_FFFFu32);
    Arc::from(format!("{number:05x}").as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_through_json() {
        let change = Published {
            uri: Arc::from("sip:a@example.com"),
            change: LiveChange::Sessions { node: Arc::from("n1"), signed_in: 2, idle: 1 },
        };
        let text = serde_json::to_string(&change).unwrap();
        assert_eq!(serde_json::from_str::<Published>(&text).unwrap(), change);
        assert!(text.contains(r#""kind":"sessions""#), "{text}");
    }

    #[test]
    fn a_sid_names_the_node_that_handed_it_out() {
        for _ in 0..100 {
            let node = new_node_id();
            let sid = sid_base(&node) + u64::from(rand::random::<u32>() >> 4) + 1;
            assert_eq!(node_of_sid(sid), Some(node));
            assert!(sid < 1 << 53);
        }
        assert_eq!(sid_base(&Standalone::default().node), 0);
        assert_eq!(node_of_sid(12345), None, "a standalone sid names no node");
        assert_eq!(node_of_sid(u64::MAX), None);
    }
}
