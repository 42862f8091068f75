//! Following the change channel. Each (re)connection subscribes first, then publishes this node's
//! contribution again (everything it holds when Redis lost its data) and re-reads every
//! presentity, so nothing published while the node was away is missed. Changes then apply in
//! per-presentity version order: an old or repeated version is dropped, a version that skips one
//! makes the node re-read that presentity — never a silent gap. Reconnects back off up to 5 s.

use super::keys::parse_message;
use super::{BackplaneError, ChangeHandler, RedisBackplane, READ_CHUNK, RESPONSE_TIMEOUT};
use crate::backplane::{LiveChange, Published};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Follows until the backplane goes away.
pub(super) async fn run(backplane: Weak<RedisBackplane>, handler: Arc<dyn ChangeHandler>) {
    let mut retry = FIRST_RETRY;
    let mut epoch = None;
    loop {
        let Some(redis) = backplane.upgrade() else { return };
        let error = match connect(&redis, &*handler, &mut epoch).await {
            Ok(session) => {
                retry = FIRST_RETRY;
                drop(redis);
                follow(&backplane, &*handler, session).await
            }
            Err(e) => e,
        };
        let Some(redis) = backplane.upgrade() else { return };
        redis.following.store(false, Ordering::Release);
        tracing::warn!(error = %error, retry_in = ?retry, "backplane connection lost; reconnecting");
        drop(redis);
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// A subscription and the version this node holds of each presentity.
struct Subscription {
    stream: ::redis::aio::PubSubStream,
    versions: HashMap<Arc<str>, u64>,
}

/// Subscribes, brings Redis up to this node's contribution and resynchronises everything.
async fn connect(
    redis: &RedisBackplane,
    handler: &dyn ChangeHandler,
    epoch: &mut Option<String>,
) -> Result<Subscription, BackplaneError> {
    let subscribe = async {
        let mut pubsub = redis.client.get_async_pubsub().await?;
        pubsub.subscribe(&redis.keys.channel).await?;
        Ok::<_, ::redis::RedisError>(pubsub)
    };
    let pubsub = tokio::time::timeout(RESPONSE_TIMEOUT, subscribe)
        .await
        .map_err(|_| BackplaneError::Unreachable("subscribing timed out".into()))?
        .map_err(super::unreachable)?;
    let current = redis.epoch().await?;
    let lost = epoch.as_ref().is_some_and(|known| *known != current);
    if lost {
        tracing::warn!("the backplane lost its data (Redis restarted empty); publishing this node's part again");
    }
    // The heartbeat first: session counts are only ever written by a node that Redis knows, so
    // they are cleared if it dies.
    redis.beat(handler, true).await?;
    redis.republish(handler, lost).await?;
    *epoch = Some(current);
    let versions = resync(redis, handler).await?;
    redis.following.store(true, Ordering::Release);
    tracing::info!(node = %redis.node, "backplane in step");
    Ok(Subscription { stream: pubsub.into_on_message(), versions })
}

/// Re-reads every presentity and hands each to the handler; returns the versions read.
async fn resync(redis: &RedisBackplane, handler: &dyn ChangeHandler) -> Result<HashMap<Arc<str>, u64>, BackplaneError> {
    let mut versions = HashMap::new();
    for chunk in handler.presentities().chunks(READ_CHUNK) {
        for (uri, (version, inputs)) in chunk.iter().zip(redis.read(chunk).await?) {
            versions.insert(uri.clone(), version);
            handler.replace(uri, inputs);
        }
    }
    Ok(versions)
}

/// Applies messages until the connection is lost or suspected lost. Holds the backplane only
/// while applying, so it can go away while this waits.
async fn follow(backplane: &Weak<RedisBackplane>, handler: &dyn ChangeHandler, mut session: Subscription) -> BackplaneError {
    let Some(suspect) = backplane.upgrade().map(|redis| redis.suspect.clone()) else { return stopped() };
    loop {
        let message = tokio::select! {
            message = session.stream.next() => message,
            _ = suspect.notified() => return BackplaneError::Unreachable("a command failed".into()),
        };
        let Some(message) = message else { return BackplaneError::Unreachable("the subscription ended".into()) };
        let Some(redis) = backplane.upgrade() else { return stopped() };
        match parse_message(message.get_payload_bytes()) {
            Ok((version, published)) => {
                if let Err(e) = receive(&redis, handler, &mut session.versions, version, published).await {
                    return e;
                }
            }
            Err(e) => tracing::warn!(error = %e, "ignoring an unreadable backplane message"),
        }
    }
}

fn stopped() -> BackplaneError {
    BackplaneError::Unreachable("stopped".into())
}

/// Applies one change in version order, or re-reads its presentity after a gap.
async fn receive(
    redis: &RedisBackplane,
    handler: &dyn ChangeHandler,
    versions: &mut HashMap<Arc<str>, u64>,
    version: u64,
    published: Published,
) -> Result<(), BackplaneError> {
    let known = versions.get(&published.uri).copied().unwrap_or(0);
    if version <= known {
        return Ok(());
    }
    if version == known + 1 {
        versions.insert(published.uri.clone(), version);
        handler.apply(published);
        return Ok(());
    }
    tracing::debug!(uri = %published.uri, known, version, "gap in a presentity's changes; re-reading it");
    let uri = published.uri;
    let (read, inputs) = redis.read(std::slice::from_ref(&uri)).await?.pop().unwrap_or_default();
    versions.insert(uri.clone(), read.max(version));
    handler.replace(&uri, inputs);
    Ok(())
}

impl RedisBackplane {
    /// The data set's epoch: set by the first node to ask; a different one means Redis lost it.
    async fn epoch(&self) -> Result<String, BackplaneError> {
        let mut pipe = ::redis::pipe();
        pipe.cmd("SET").arg(&self.keys.epoch).arg(format!("{:016x}", rand::random::<u64>())).arg("NX").ignore();
        pipe.cmd("GET").arg(&self.keys.epoch);
        let (epoch,): (String,) = self.query(&pipe).await?;
        Ok(epoch)
    }

    /// Publishes this node's session counts again; when Redis lost its data, also the reports
    /// and manual states it holds (only where Redis has none, so nothing newer is overwritten).
    pub(super) async fn republish(&self, handler: &dyn ChangeHandler, everything: bool) -> Result<(), BackplaneError> {
        let (own, others): (Vec<Published>, Vec<Published>) = handler
            .contribution()
            .into_iter()
            .partition(|p| matches!(&p.change, LiveChange::Sessions { node, .. } if *node == self.node));
        for chunk in own.chunks(READ_CHUNK) {
            self.write(chunk, false).await?;
        }
        if everything {
            for chunk in others.chunks(READ_CHUNK) {
                self.write(chunk, true).await?;
            }
        }
        Ok(())
    }
}
