//! Node membership: every node writes a heartbeat four times per TTL, each lasting three quarters
//! of the TTL (so a node that stops is found out within the TTL). With each beat a node learns
//! which heartbeats have lapsed and removes those nodes' session counts — as ordinary versioned
//! changes, so every node hears of it; whichever node gets there first does it, the others find
//! nothing left. A node that finds its own heartbeat lapsed publishes its session counts again.

use super::{BackplaneError, ChangeHandler, RedisBackplane};
use crate::backplane::{LiveChange, NodeId, Published};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

/// Beats until the backplane goes away.
pub(super) async fn run(backplane: Weak<RedisBackplane>, handler: Arc<dyn ChangeHandler>) {
    let Some(beat) = backplane.upgrade().map(|redis| redis.settings.beat()) else { return };
    let mut ticks = tokio::time::interval(beat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        ticks.tick().await;
        let Some(redis) = backplane.upgrade() else { return };
        match redis.beat(&*handler, first).await {
            Ok(()) => {
                first = false;
                redis.beating.store(true, Ordering::Release);
            }
            Err(e) => {
                if redis.beating.swap(false, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "cannot write this node's heartbeat");
                }
            }
        }
    }
}

impl RedisBackplane {
    /// One heartbeat, and the clearing of nodes found gone.
    pub(super) async fn beat(&self, handler: &dyn ChangeHandler, first: bool) -> Result<(), BackplaneError> {
        if self.left.load(Ordering::Acquire) {
            return Ok(());
        }
        let lifetime = self.settings.heartbeat_ttl.as_millis() as u64 * 3 / 4;
        let mut pipe = ::redis::pipe();
        pipe.cmd("EVAL")
            .arg(super::keys::HEARTBEAT_SCRIPT)
            .arg(2)
            .arg(&self.keys.nodes)
            .arg(&self.keys.advertise)
            .arg(&*self.node)
            .arg(lifetime)
            .arg(&self.settings.advertise);
        let ((lapsed, gone),): ((i64, Vec<String>),) = self.query(&pipe).await?;
        if lapsed == 1 && !first {
            tracing::warn!("this node's heartbeat had lapsed; publishing its sessions again");
            self.republish(handler, false).await?;
        }
        for node in gone {
            self.forget(&NodeId::from(node.as_str()), false).await?;
        }
        Ok(())
    }

    /// Removes a gone node's session counts from every presentity, then the node itself (`leaving`:
    /// this node, whose heartbeat has not lapsed).
    pub(super) async fn forget(&self, node: &NodeId, leaving: bool) -> Result<(), BackplaneError> {
        let users_key = self.keys.node_users(node);
        let mut pipe = ::redis::pipe();
        pipe.cmd("SMEMBERS").arg(&users_key);
        let (uris,): (Vec<String>,) = self.query(&pipe).await?;
        if !leaving {
            tracing::info!(node = %node, users = uris.len(), "a node's heartbeat lapsed; its sessions no longer count");
        }
        let gone = |uri: String| Published {
            uri: Arc::from(uri.as_str()),
            change: LiveChange::Sessions { node: node.clone(), signed_in: 0, idle: 0 },
        };
        let changes: Vec<Published> = uris.into_iter().map(gone).collect();
        for chunk in changes.chunks(super::READ_CHUNK) {
            self.write(chunk, false).await?;
        }
        let mut pipe = ::redis::pipe();
        pipe.cmd("EVAL")
            .arg(super::keys::FORGET_NODE_SCRIPT)
            .arg(3)
            .arg(&self.keys.nodes)
            .arg(&self.keys.advertise)
            .arg(&users_key)
            .arg(&**node)
            .arg(if leaving { "1" } else { "0" })
            .ignore();
        self.query::<()>(&pipe).await
    }
}
