//! JSON subscribers (Presence V2 style): snapshots cut to the requested sections, and on every
//! change a delta event carrying only the sections that changed and were subscribed (rendered by
//! `pv2::events` as `asnUpdatePresenceV2` with `iChangedFlags`). They ride the same hub, queues,
//! eids and acks as CWA sessions.

use super::presence::{Live, ViewKey};
use super::Gateway;
use crate::hub::event::{Event, EventBody};
use crate::hub::session::{EventFilter, Session};
use crate::model::presentity::{view, Presentity};
use crate::model::sources::Timestamp;
use crate::pv2::events::{changed_sections, full_sections, json_presence, select, update, JsonView};
use foldhash::{HashMap, HashMapExt};
use serde_json::{json, Value};
use std::sync::Arc;

/// The full JSON presence of a presentity for a view key.
fn render_json(model: &Presentity, key: ViewKey, now: Timestamp) -> JsonView {
    json_presence(Arc::new(view(model, key.viewer, now)))
}

/// An `asnUpdatePresenceV2` event with every section `filter` subscribes to.
fn full_event(uri: &Arc<str>, json: &JsonView, filter: EventFilter) -> Arc<Event> {
    update(uri, None, json, full_sections(&json.json, filter.events))
}

/// An `asnRemovePresence` event.
fn removal_event(uri: &str) -> Arc<Event> {
    Event::new(EventBody::PresenceRemoved { uri: Arc::from(uri) })
}

impl Gateway {
    /// The current JSON rendering of `uri` for `viewer_uri`, remembered until the state changes.
    pub(crate) fn snapshot_json(&self, uri: &str, viewer_uri: &str) -> Option<JsonView> {
        self.with_json_snapshot(uri, viewer_uri, |json| json)
    }

    /// Runs `then` on the current JSON rendering of `uri` for `viewer_uri` while the presentity is
    /// still locked, so what `then` queues is queued before any later change's delta
    /// (docs/architecture.md §4, "Order per presentity"). `None`: no such user.
    fn with_json_snapshot<R>(&self, uri: &str, viewer_uri: &str, then: impl FnOnce(Option<JsonView>) -> R) -> R {
        let key = self.view_key(uri, viewer_uri);
        let Some(entry) = self.presence_entry(uri) else { return then(None) };
        let now = self.clock.now();
        let mut live = entry.live.lock();
        let json = match live.last_json.get(&key) {
            Some(json) => json.clone(),
            None => {
                let json = render_json(&live.model, key, now);
                live.last_json.insert(key, json.clone());
                json
            }
        };
        then(Some(json))
    }

    /// A snapshot for a JSON subscription, cut to the requested details.
    pub fn json_snapshot(&self, uri: &str, viewer_uri: &str, details: u32) -> Value {
        match self.snapshot_json(uri, viewer_uri) {
            Some(json) => Value::Object(select(&json.json, details)),
            None => json!({"u8sContactId": uri, "iPresenceState": 0}),
        }
    }

    /// Queues a full update (every subscribed section) for a JSON session after a rights change,
    /// under the presentity's lock.
    pub(crate) fn queue_json_full(&self, session: &Session, uri: &Arc<str>) {
        let Some(filter) = session.json.as_ref().and_then(|j| j.filter(uri)) else { return };
        self.with_json_snapshot(uri, &session.user, |json| {
            if let Some(json) = json {
                self.push(session, full_event(uri, &json, filter), None);
            }
        });
    }

    /// The resync burst of a JSON session: a full update of every subscription, or its removal
    /// when the user is gone; each queued under its presentity's lock.
    pub(crate) fn queue_json_resync(&self, session: &Session) {
        let push = |event| crate::telemetry::record_push(session.push_resync(event, None));
        for uri in session.subscriptions() {
            let Some(filter) = session.json.as_ref().and_then(|j| j.filter(&uri)) else {
                push(removal_event(&uri));
                continue;
            };
            self.with_json_snapshot(&uri, &session.user, |json| match json {
                Some(json) => push(full_event(&uri, &json, filter)),
                None => push(removal_event(&uri)),
            });
        }
    }

    /// Fan-out to JSON sessions: one delta per (view, subscribed sections).
    pub(crate) fn fan_out_json(&self, uri: &Arc<str>, live: &mut Live, sessions: &[(Arc<Session>, ViewKey)], now: Timestamp) {
        let mut rendered: HashMap<ViewKey, JsonView> = HashMap::new();
        let mut events: HashMap<(ViewKey, u32), Option<Arc<Event>>> = HashMap::new();
        for (session, key) in sessions {
            let Some(EventFilter { events: wanted, .. }) = session.json.as_ref().and_then(|j| j.filter(uri)) else { continue };
            let new = rendered.entry(*key).or_insert_with(|| render_json(&live.model, *key, now)).clone();
            let old = live.last_json.get(key).cloned();
            let event = events.entry((*key, wanted)).or_insert_with(|| {
                let changed = changed_sections(old.as_ref().map(|o| &o.json), &new.json) & wanted;
                (changed != 0).then(|| update(uri, old.as_deref(), &new, changed))
            });
            if let Some(event) = event {
                self.push(session, event.clone(), None);
            }
        }
        live.last_json = rendered;
    }

    /// Tells JSON watchers that a presentity is gone (`asnRemovePresence`).
    pub(crate) fn queue_json_removal(&self, session: &Session, uri: &str) {
        self.push(session, removal_event(uri), None);
    }
}

/// Where a sign-in's JSON event stream is (docs/architecture.md §5, "Several nodes").
pub enum StreamAt {
    /// On this node.
    Here(Arc<Session>),
    /// On another live node, reached at this address.
    Node(String),
    /// Nowhere: it was never started, it ended, or its node is gone.
    Nowhere,
}

/// Each sign-in's JSON event stream on this node: login id → the stream's sid. Only this module
/// reads or changes it (a stream is started under its write lock, so one sign-in gets one).
#[derive(Default)]
pub struct StreamIndex {
    by_login: parking_lot::RwLock<HashMap<u64, u64>>,
}

impl StreamIndex {
    fn sid_of(&self, login: u64) -> Option<u64> {
        self.by_login.read().get(&login).copied()
    }

    /// Forgets the sign-in's stream if it is still `sid`.
    fn forget(&self, login: u64, sid: u64) {
        let mut streams = self.by_login.write();
        if streams.get(&login) == Some(&sid) {
            streams.remove(&login);
        }
    }
}

impl Gateway {
    /// Every live JSON event stream of this node, as (sign-in, sid).
    pub(crate) fn held_json_streams(&self) -> Vec<(u64, u64)> {
        let streams: Vec<(u64, u64)> = self.json_streams.by_login.read().iter().map(|(l, s)| (*l, *s)).collect();
        streams.into_iter().filter(|(_, sid)| self.hub.get(*sid).is_some_and(|s| !s.is_ended())).collect()
    }

    /// This node's live JSON event stream of a sign-in.
    pub fn json_stream(&self, login: &crate::service::auth::Login) -> Option<Arc<Session>> {
        let sid = self.json_streams.sid_of(login.id)?;
        self.hub.get(sid).filter(|s| !s.is_ended())
    }

    /// Where the sign-in's stream is: here, on another live node (as recorded in the backplane),
    /// or nowhere. `passed`: the request was passed here by another node, which looked already.
    pub async fn find_json_stream(&self, login: &crate::service::auth::Login, passed: bool) -> crate::error::Result<StreamAt> {
        if let Some(stream) = self.json_stream(login) {
            return Ok(StreamAt::Here(stream));
        }
        if passed || !self.backplane.is_shared() {
            return Ok(StreamAt::Nowhere);
        }
        match self.backplane.json_stream_of(login.id).await {
            Ok(Some(holder)) if holder.node != *self.backplane.node() => Ok(StreamAt::Node(holder.address)),
            Ok(_) => Ok(StreamAt::Nowhere),
            Err(e) => Err(backplane_unavailable(e)),
        }
    }

    /// The sign-in's stream, wherever it is, started here when there is none (it counts as one
    /// of the user's sessions and expires like one when nobody polls it). In a cluster the new
    /// stream is recorded in the backplane; when another node recorded one first, this one ends
    /// and that one is the answer.
    pub async fn open_json_stream(&self, login: &crate::service::auth::Login, passed: bool) -> crate::error::Result<StreamAt> {
        match self.find_json_stream(login, passed).await? {
            StreamAt::Nowhere => {}
            found => return Ok(found),
        }
        let (session, started) = self.start_json_stream(login)?;
        if !self.backplane.is_shared() {
            return Ok(StreamAt::Here(session));
        }
        // Ended again unless the record is this stream's, also when the request goes away here.
        let mut unclaimed = StartedStream { gateway: self, session: started.then(|| session.clone()) };
        let lifetime = std::time::Duration::from_secs(self.config.ticket_lifetime_seconds);
        let holder = self.backplane.claim_json_stream(login.id, session.sid, lifetime).await.map_err(backplane_unavailable)?;
        if holder.sid == session.sid {
            unclaimed.session = None;
            return Ok(StreamAt::Here(session));
        }
        match passed {
            false => Ok(StreamAt::Node(holder.address)),
            // Passed here as the holder, yet another node's stream is recorded: a race; retryable.
            true => Err(crate::error::GatewayError::StoreUnavailable),
        }
    }

    /// This node's stream of the sign-in, started now if there is none (and whether it was).
    fn start_json_stream(&self, login: &crate::service::auth::Login) -> crate::error::Result<(Arc<Session>, bool)> {
        use crate::error::GatewayError;
        use crate::hub::session::SessionOptions;
        let mut streams = self.json_streams.by_login.write();
        let existing = streams.get(&login.id).and_then(|sid| self.hub.get(*sid)).filter(|s| !s.is_ended());
        if let Some(session) = existing {
            return Ok((session, false));
        }
        if self.sessions_everywhere(&login.user) >= self.config.limits.sessions_per_user {
            let limit = self.config.limits.sessions_per_user;
            return Err(GatewayError::LimitExceeded(format!("at most {limit} sessions per user")));
        }
        let queue_limit = self.config.limits.queue_length;
        let options = SessionOptions { json: true, auto_subscribe_contacts: false, queue_limit, ..SessionOptions::default() };
        let session = Arc::new(Session::new(self.hub.allocate_sid(), login.user.clone(), login.id, options, self.clock.now()));
        self.hub.insert(session.clone());
        streams.insert(login.id, session.sid);
        drop(streams);
        self.schedule_expiry(&session);
        self.refresh(&login.user);
        Ok((session, true))
    }

    /// Forgets an ended JSON stream as its sign-in's stream (a later subscribe starts a new one).
    pub(crate) fn forget_json_stream(&self, session: &Session) {
        if session.json.is_some() {
            self.json_streams.forget(session.login, session.sid);
        }
    }

    /// Subscribes a JSON stream to presentities; returns their snapshots (cut to `details`).
    pub async fn json_subscribe(
        &self,
        session: &Arc<Session>,
        uris: &[String],
        filter: EventFilter,
    ) -> crate::error::Result<Vec<Value>> {
        let json = session.json.as_ref().expect("a JSON session");
        let arcs: Vec<Arc<str>> = uris.iter().map(|u| Arc::from(u.as_str())).collect();
        let limit = self.config.limits.subscriptions_per_session;
        let new = session
            .subscribe(&arcs, limit)
            .ok_or_else(|| crate::error::GatewayError::LimitExceeded(format!("at most {limit} subscriptions per stream")))?;
        for uri in &arcs {
            json.set(uri.clone(), filter);
        }
        self.known_and_fresh_or_later(&arcs).await;
        self.hub.watch(session, &new);
        let snapshots = uris.iter().map(|uri| self.json_snapshot(uri, &session.user, filter.details)).collect();
        self.record_subscriptions(&session.user, uris).await?;
        Ok(snapshots)
    }

    pub fn json_unsubscribe(&self, session: &Session, uris: &[String]) {
        let arcs: Vec<Arc<str>> = uris.iter().map(|u| Arc::from(u.as_str())).collect();
        let removed = session.unsubscribe(&arcs);
        self.hub.unwatch(session, &removed);
        if let Some(json) = &session.json {
            uris.iter().for_each(|u| json.remove(u));
        }
    }
}

/// A stream started here whose record is not settled yet: ended when dropped while still set.
struct StartedStream<'a> {
    gateway: &'a Gateway,
    session: Option<Arc<Session>>,
}

impl Drop for StartedStream<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.gateway.terminate_session(&session);
        }
    }
}

/// The backplane did not answer: retryable, like a store that did not.
fn backplane_unavailable(error: crate::backplane::BackplaneError) -> crate::error::GatewayError {
    tracing::warn!(error = %error, "cannot find or record a JSON event stream in the backplane");
    crate::error::GatewayError::StoreUnavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_ended_stream_is_forgotten_by_its_sign_in() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config { data_dir: dir.path().into(), ..Default::default() };
        let gateway = crate::build(config, Arc::new(crate::service::clock::SystemClock)).await.unwrap();
        for id in 0..3 {
            let login = crate::service::tickets::Login { id, user: Arc::from("sip:alice@example.com") };
            let StreamAt::Here(stream) = gateway.open_json_stream(&login, false).await.unwrap() else { panic!("not here") };
            gateway.terminate_session(&stream);
        }
        assert!(gateway.json_streams.by_login.read().is_empty(), "ended streams stay remembered");
        gateway.shutdown().await;
    }
}
