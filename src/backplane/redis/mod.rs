//! Redis as the live-state engine of a cluster (docs/architecture.md, "Several nodes"). Per
//! presentity one hash holds the live inputs every node needs — each node's session counts, the
//! manual state and note, the sources' reports — and a version. A change writes its field, bumps
//! the version and publishes `version\nchange` on the presentity's own channel in a single Lua
//! script, so the order of versions is the order of changes, and only nodes that follow the
//! presentity receive it. [`routing`] decides what this node follows (what its sessions watch or
//! are, and what reads asked for lately); [`follow`] subscribes, reads, applies what arrives in
//! version order and re-reads a presentity on any gap; [`nodes`] keeps this node's heartbeat and
//! clears the contributions of nodes whose heartbeat lapsed; [`streams`] records which node holds
//! each sign-in's JSON event stream. [`logon`] keeps the cluster's shared counts of failed
//! sign-ins, [`claims`] makes one node carry out each timed transition.

mod claims;
mod follow;
mod keys;
mod logon;
mod nodes;
mod routing;
mod streams;

pub use claims::{CLAIM_HOLD, DONE_KEPT};

use super::{Backplane, BackplaneError, ChangeHandler, Claim, LiveChange, LiveInputs, LogonCount, NodeId, Published};
use crate::config::LogonPolicy;
use crate::model::sources::Timestamp;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How a Redis backplane behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A node whose heartbeat is older than this is gone; its sessions no longer count.
    pub heartbeat_ttl: Duration,
    /// Where other nodes reach this one (recorded with the heartbeat).
    pub advertise: String,
    /// How long a presentity stays followed after its last watcher or read here.
    pub linger: Duration,
}

impl Settings {
    pub fn from_config(config: &crate::config::Config) -> Settings {
        Settings {
            heartbeat_ttl: Duration::from_secs(config.heartbeat_ttl_seconds),
            advertise: config.advertise.clone().unwrap_or_default(),
            linger: Duration::from_secs(config.follow_linger_seconds),
        }
    }

    /// How often the heartbeat is written: four times per TTL, so a node that stops is found
    /// out within the TTL.
    fn beat(&self) -> Duration {
        self.heartbeat_ttl / 4
    }
}

/// How long one Redis command may take before the connection counts as lost.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisBackplane {
    me: std::sync::Weak<RedisBackplane>,
    node: NodeId,
    client: ::redis::Client,
    commands: ConnectionManager,
    settings: Settings,
    keys: keys::Keys,
    /// Subscribed and resynchronised since the last connection loss.
    following: AtomicBool,
    /// The last heartbeat was written.
    beating: AtomicBool,
    /// Set once the node has left the cluster (shutting down): no heartbeat, no session counts.
    left: AtomicBool,
    /// Wakes [`follow`] when commands fail, so a silently dead subscription is replaced too.
    suspect: Arc<tokio::sync::Notify>,
    /// What this node follows, shared with [`follow`].
    routing: Arc<routing::Routing>,
}

fn unreachable(e: ::redis::RedisError) -> BackplaneError {
    BackplaneError::Unreachable(e.to_string())
}

impl RedisBackplane {
    /// Parses `url`; connects lazily (and again after every loss).
    pub fn new(url: &str, settings: Settings) -> Result<Arc<RedisBackplane>, BackplaneError> {
        let client = ::redis::Client::open(url).map_err(|e| BackplaneError::Address(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let commands = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| BackplaneError::Address(e.to_string()))?;
        Ok(Arc::new_cyclic(|me| RedisBackplane {
            me: me.clone(),
            node: super::new_node_id(),
            client,
            commands,
            keys: keys::Keys::default(),
            following: AtomicBool::new(false),
            beating: AtomicBool::new(false),
            left: AtomicBool::new(false),
            suspect: Arc::default(),
            routing: Arc::new(routing::Routing::new(settings.linger)),
            settings,
        }))
    }

    /// Runs a pipeline; a failure marks the connection suspect.
    async fn query<T: ::redis::FromRedisValue>(&self, pipe: &::redis::Pipeline) -> Result<T, BackplaneError> {
        let mut con = self.commands.clone();
        let result = pipe.query_async(&mut con).await;
        if result.is_err() {
            self.suspect.notify_one();
        }
        result.map_err(unreachable)
    }

    /// Publishes `changes`; `only_new` writes a field only where Redis has none (used when
    /// bringing back what a restarted Redis lost, so nothing newer is overwritten).
    async fn write(&self, changes: &[Published], only_new: bool) -> Result<(), BackplaneError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut pipe = ::redis::pipe();
        let left = self.left.load(Ordering::Acquire);
        let own = |change: &LiveChange| matches!(change, LiveChange::Sessions { node, .. } if *node == self.node);
        for published in changes.iter().filter(|p| !(left && own(&p.change))) {
            let message = serde_json::to_string(published).map_err(|e| BackplaneError::Corrupt(e.to_string()))?;
            if published.change.is_levels_change() {
                pipe.cmd("PUBLISH").arg(&self.keys.levels).arg(format!("0\n{message}"));
                continue;
            }
            let (field, value) = keys::field_of(&published.change)?;
            let node_set = match &published.change {
                LiveChange::Sessions { node, .. } => Some(self.keys.node_users(node)),
                _ => None,
            };
            let presentity = self.keys.presentity(&published.uri);
            pipe.cmd("EVAL")
                .arg(keys::PUBLISH_SCRIPT)
                .arg(2)
                .arg(&presentity)
                .arg(node_set.as_deref().unwrap_or(&presentity))
                .arg(field)
                .arg(value)
                .arg(self.keys.channel(&published.uri))
                .arg(message)
                .arg(if only_new { "1" } else { "0" })
                .arg(&*published.uri)
                .arg(if node_set.is_some() { "1" } else { "0" });
        }
        self.query::<Vec<i64>>(&pipe).await.map(|_| ())
    }

    /// Leaves the cluster: no more heartbeats or session counts, and the node's counts cleared.
    async fn leave_now(&self) -> Result<(), BackplaneError> {
        self.left.store(true, Ordering::Release);
        self.forget(&self.node, true).await
    }

    /// The current inputs and version of each of `uris`. Session counts of a node that is gone
    /// are included until it is cleared (which is published as any change).
    async fn read(&self, uris: &[Arc<str>]) -> Result<Vec<(u64, LiveInputs)>, BackplaneError> {
        let mut pipe = ::redis::pipe();
        for uri in uris {
            pipe.cmd("HGETALL").arg(self.keys.presentity(uri));
        }
        let hashes: Vec<HashMap<String, String>> = self.query(&pipe).await?;
        hashes.into_iter().map(keys::inputs_of).collect()
    }

    fn ready_flags(&self) -> bool {
        self.following.load(Ordering::Acquire) && self.beating.load(Ordering::Acquire)
    }
}

/// A handful of presentities re-read at a time.
const READ_CHUNK: usize = 256;

#[async_trait::async_trait]
impl Backplane for RedisBackplane {
    fn node(&self) -> &NodeId {
        &self.node
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn publish(&self, changes: &[Published]) -> Result<(), BackplaneError> {
        self.write(changes, false).await
    }

    /// Follows the channel and beats the heartbeat on two tasks of their own, which hold the
    /// backplane weakly and end with it. Returns at once: connecting is retried in the background.
    async fn subscribe(&self, handler: Arc<dyn ChangeHandler>) -> Result<(), BackplaneError> {
        tokio::spawn(follow::run(self.me.clone(), handler.clone()));
        tokio::spawn(nodes::run(self.me.clone(), handler));
        Ok(())
    }

    async fn leave(&self) -> Result<(), BackplaneError> {
        self.leave_now().await
    }

    async fn address_of(&self, node: &NodeId) -> Result<Option<String>, BackplaneError> {
        let mut pipe = ::redis::pipe();
        pipe.cmd("EVAL").arg(keys::ADDRESS_SCRIPT).arg(2).arg(&self.keys.nodes).arg(&self.keys.advertise).arg(&**node);
        let (address,): (Option<String>,) = self.query(&pipe).await?;
        Ok(address.filter(|a| !a.is_empty()))
    }

    fn is_ready(&self) -> bool {
        self.ready_flags()
    }

    fn interest_changed(&self, uris: &[Arc<str>]) {
        self.routing.hint(uris);
    }

    async fn refresh(&self, uris: &[Arc<str>]) -> Result<(), BackplaneError> {
        self.routing.want(uris, REFRESH_WAIT).await
    }

    fn follows(&self, uri: &str) -> bool {
        self.routing.follows(uri)
    }

    async fn other_nodes(&self) -> Result<Vec<(NodeId, String)>, BackplaneError> {
        self.live_nodes().await
    }

    async fn json_stream_of(&self, login: u64) -> Result<Option<crate::backplane::StreamHolder>, BackplaneError> {
        self.stream_of(login).await
    }

    async fn claim_json_stream(
        &self,
        login: u64,
        sid: u64,
        lifetime: Duration,
    ) -> Result<crate::backplane::StreamHolder, BackplaneError> {
        self.claim_stream(login, sid, lifetime).await
    }

    async fn count_logon(&self, user: &str, address: &str, policy: &LogonPolicy) -> Result<Option<LogonCount>, BackplaneError> {
        self.begin_logon(user, address, policy).await.map(Some)
    }

    async fn logon_succeeded(&self, user: &str, address: &str) -> Result<(), BackplaneError> {
        self.logon_success(user, address).await
    }

    async fn claim(&self, key: &str) -> Result<Claim, BackplaneError> {
        self.claim_now(key).await
    }

    async fn claim_done(&self, key: &str) -> Result<(), BackplaneError> {
        self.mark_done(key).await
    }

    async fn withdraw_expired(&self, uri: &str, source: &str, now: Timestamp) -> Result<bool, BackplaneError> {
        self.withdraw(uri, source, now).await
    }
}

/// How long a read waits for a presentity to be followed (a subscription and a read).
const REFRESH_WAIT: Duration = Duration::from_secs(2);
