//! Following the presentities this node needs, each on its own channel (`routing.rs` decides
//! which). Each (re)connection publishes this node's contribution again (everything it holds when
//! Redis lost its data), then subscribes to every presentity of interest and re-reads it, so
//! nothing published while the node was away is missed. A presentity whose interest begins later
//! is subscribed first and read after, and changes then apply in per-presentity version order: an
//! old or repeated version is dropped, a version that skips one makes the node re-read that
//! presentity — never a silent gap. One connection carries every subscription; messages that
//! arrive while it subscribes or reads wait in its queue. Reconnects back off up to 5 s.

use super::keys::parse_message;
use super::routing::{Received, Routing};
use super::{BackplaneError, ChangeHandler, RedisBackplane, READ_CHUNK, RESPONSE_TIMEOUT};
use crate::backplane::{LiveChange, Published};
use ::redis::aio::{PubSubSink, PubSubStream};
use futures_util::StreamExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);
/// How often presentities whose linger ended are looked at.
const RELEASE_EVERY: Duration = Duration::from_secs(1);

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
        redis.routing.lost(handler.interests());
        tracing::warn!(error = %error, retry_in = ?retry, "backplane connection lost; reconnecting");
        drop(redis);
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// The connection that carries every subscription: its sink (subscribe, unsubscribe) and its
/// stream of messages.
struct Subscription {
    sink: PubSubSink,
    stream: PubSubStream,
}

/// Connects, brings Redis up to this node's contribution and follows every presentity of
/// interest.
async fn connect(
    redis: &RedisBackplane,
    handler: &dyn ChangeHandler,
    epoch: &mut Option<String>,
) -> Result<Subscription, BackplaneError> {
    let pubsub = tokio::time::timeout(RESPONSE_TIMEOUT, redis.client.get_async_pubsub())
        .await
        .map_err(|_| BackplaneError::Unreachable("connecting timed out".into()))?
        .map_err(super::unreachable)?;
    let (sink, stream) = pubsub.split();
    let mut session = Subscription { sink, stream };
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
    redis.routing.hint(&handler.interests());
    // Global rights changed while no message could arrive are read before any presentity is.
    within(session.sink.subscribe(&redis.keys.levels)).await?;
    handler.reread_global_rights().await;
    reconcile(redis, handler, &mut session.sink).await?;
    redis.routing.connected();
    redis.following.store(true, Ordering::Release);
    tracing::info!(node = %redis.node, "backplane in step");
    Ok(session)
}

/// Starts following what interest or reads now ask for: subscribes first, then reads each
/// presentity and hands it to the handler whole; its changes above the version read apply after.
async fn reconcile(redis: &RedisBackplane, handler: &dyn ChangeHandler, sink: &mut PubSubSink) -> Result<(), BackplaneError> {
    let plan = redis.routing.plan(|uri| handler.interested(uri));
    for chunk in plan.follow.chunks(READ_CHUNK) {
        let channels: Vec<String> = chunk.iter().map(|uri| redis.keys.channel(uri)).collect();
        redis.routing.starting(chunk);
        within(sink.subscribe(&channels)).await?;
        let mut read = Vec::with_capacity(chunk.len());
        for (uri, (version, inputs)) in chunk.iter().zip(redis.read(chunk).await?) {
            handler.replace(uri, inputs).await;
            read.push((uri.clone(), version));
        }
        redis.routing.followed(read);
    }
    Ok(())
}

/// Stops following what no session here needs and no read asked for within the linger.
async fn release(redis: &RedisBackplane, handler: &dyn ChangeHandler, sink: &mut PubSubSink) -> Result<(), BackplaneError> {
    let mut lapsed = redis.routing.lapsed(tokio::time::Instant::now());
    lapsed.retain(|uri| !handler.interested(uri));
    for chunk in lapsed.chunks(READ_CHUNK) {
        let channels: Vec<String> = chunk.iter().map(|uri| redis.keys.channel(uri)).collect();
        within(sink.unsubscribe(&channels)).await?;
        redis.routing.unfollowed(chunk);
    }
    Ok(())
}

/// A subscription command, bounded in time like every other.
async fn within(command: impl std::future::Future<Output = ::redis::RedisResult<()>>) -> Result<(), BackplaneError> {
    tokio::time::timeout(RESPONSE_TIMEOUT, command)
        .await
        .map_err(|_| BackplaneError::Unreachable("a subscription timed out".into()))?
        .map_err(super::unreachable)
}

/// Applies messages, follows and releases presentities until the connection is lost or suspected
/// lost. Holds the backplane only while working, so it can go away while this waits.
async fn follow(backplane: &Weak<RedisBackplane>, handler: &dyn ChangeHandler, mut session: Subscription) -> BackplaneError {
    let Some((suspect, routing)) = backplane.upgrade().map(|redis| (redis.suspect.clone(), redis.routing.clone())) else {
        return stopped();
    };
    let mut release_ticks = tokio::time::interval(RELEASE_EVERY);
    release_ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        enum Next {
            Message(Option<::redis::Msg>),
            Reconcile,
            Release,
        }
        let next = tokio::select! {
            message = session.stream.next() => Next::Message(message),
            _ = routing.wake.notified() => Next::Reconcile,
            _ = release_ticks.tick() => Next::Release,
            _ = suspect.notified() => return BackplaneError::Unreachable("a command failed".into()),
        };
        let Some(redis) = backplane.upgrade() else { return stopped() };
        let outcome = match next {
            Next::Message(None) => return BackplaneError::Unreachable("the subscription ended".into()),
            Next::Message(Some(message)) => match parse_message(crate::telemetry::backplane_message(message.get_payload_bytes()))
            {
                Ok((version, published)) => receive(&redis, &routing, handler, version, published).await,
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring an unreadable backplane message");
                    Ok(())
                }
            },
            Next::Reconcile => reconcile(&redis, handler, &mut session.sink).await,
            Next::Release => release(&redis, handler, &mut session.sink).await,
        };
        if let Err(e) = outcome {
            return e;
        }
    }
}

fn stopped() -> BackplaneError {
    BackplaneError::Unreachable("stopped".into())
}

/// Applies one change in version order, or re-reads its presentity after a gap; skips changes of
/// presentities not followed (any still on their way after an unsubscribe).
async fn receive(
    redis: &RedisBackplane,
    routing: &Routing,
    handler: &dyn ChangeHandler,
    version: u64,
    published: Published,
) -> Result<(), BackplaneError> {
    if published.change.is_levels_change() {
        handler.apply(published).await;
        return Ok(());
    }
    match routing.receive(&published.uri, version) {
        Received::Skip => Ok(()),
        Received::Apply => {
            handler.apply(published).await;
            Ok(())
        }
        Received::Gap(known) => {
            tracing::debug!(uri = %published.uri, known, version, "gap in a presentity's changes; re-reading it");
            let uri = published.uri;
            let (read, inputs) = redis.read(std::slice::from_ref(&uri)).await?.pop().unwrap_or_default();
            routing.reread(&uri, read.max(version));
            handler.replace(&uri, inputs).await;
            Ok(())
        }
    }
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
    /// and manual states it holds (only where Redis has none, so nothing newer is overwritten)
    /// and the records of its JSON event streams (unless another node recorded one since).
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
            for stream in handler.held_streams() {
                let holder = self.claim_stream(stream.login, stream.sid, stream.lifetime).await?;
                if holder.sid != stream.sid {
                    tracing::debug!(login = stream.login, "another node recorded a stream for the sign-in meanwhile");
                }
            }
        }
        Ok(())
    }
}
