//! Live presence: each user's presentity in memory, changed under a per-user write gate (durable
//! parts are stored before they take effect), recalculated, and fanned out. A change is rendered
//! once per view (owner, or watcher level × source network) and the shared bytes are queued on
//! every session that watches; a view that did not change is not sent again.

use super::Gateway;
use crate::backplane::LiveChange;
use crate::cwa::envelope::EventPayload;
use crate::cwa::wire::wire_user;
use crate::cwa::writer::Fragment;
use crate::error::{GatewayError, Result};
use crate::hub::session::Session;
use crate::hub::timers::TimerKey;
use crate::model::presentity::{view, PresenceView, Presentity, Viewer};
use crate::model::raw::RawCategory;
use crate::model::reports::SourceReport;
use crate::model::sources::{ClientActivity, Timestamp};
use crate::store::StoredPresence;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

/// The coalescing key of `selfPresence` events (one per session).
static SELF_KEY: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("\u{0}self"));

/// Which rendering a session receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ViewKey {
    pub viewer: Viewer,
    pub same_enterprise: bool,
}

pub struct Live {
    pub model: Presentity,
    /// The current rendering of each view in use; cleared whenever the state changes.
    pub last_views: HashMap<ViewKey, Arc<EventPayload>>,
    /// The same for JSON subscribers (the baseline their deltas are computed from).
    pub last_json: HashMap<ViewKey, super::json_events::JsonView>,
    /// What other nodes hold of the user (sessions), and what this node told them.
    pub cluster: super::cluster::ClusterInputs,
}

pub struct PresenceEntry {
    /// Serialises changes of one user's durable presence (held across the store write).
    pub(crate) gate: Arc<tokio::sync::Mutex<()>>,
    pub live: Mutex<Live>,
}

impl Live {
    /// A new profile: renderings made from the old one are no longer shared.
    pub(crate) fn set_profile(&mut self, profile: Arc<crate::model::contact::Profile>) {
        self.model.profile = profile;
        self.last_views.clear();
        self.last_json.clear();
    }
}

impl PresenceEntry {
    pub fn new(model: Presentity) -> Arc<Self> {
        Arc::new(PresenceEntry {
            gate: Arc::default(),
            live: Mutex::new(Live { model, last_views: HashMap::new(), last_json: HashMap::new(), cluster: Default::default() }),
        })
    }
}

/// `<user …>` XML for a view, laid out as a child of a `userPresence` event.
pub fn render_user(view: &PresenceView, same_enterprise: bool) -> Fragment {
    let network = if same_enterprise { "sameEnterprise" } else { "federated" };
    let mut w = EventPayload::content_writer();
    wire_user(view, Some(network)).render(&mut w);
    w.finish_fragment()
}

/// The event a view key receives: `selfPresence` for the owner, `userPresence` for watchers.
fn render_for_key(model: &Presentity, key: ViewKey, now: Timestamp) -> Arc<EventPayload> {
    render_filtered(model, key, now, None)
}

/// The same for a session that chose its raw categories (`categoryEventFilter`): a rendering of
/// its own, with only the raw categories it named (the gateway's `telephony` among them).
fn render_filtered(model: &Presentity, key: ViewKey, now: Timestamp, raw_categories: Option<&[String]>) -> Arc<EventPayload> {
    let mut v = view(model, key.viewer, now);
    if let Some(names) = raw_categories {
        let wanted = |name: &str| names.iter().any(|n| n == name);
        v.raw.retain(|c| wanted(&c.name));
        if !wanted("telephony") {
            (v.lines, v.calls, v.forwards, v.agent) = (Vec::new(), Vec::new(), Vec::new(), None);
        }
    }
    Arc::new(match key.viewer {
        Viewer::Owner => EventPayload::self_presence(render_self(&v)),
        Viewer::Watcher(_) => EventPayload::user_presence(render_user(&v, key.same_enterprise)),
    })
}

fn render_self(view: &PresenceView) -> Fragment {
    let mut w = EventPayload::content_writer();
    wire_user(view, None).render_categories(&mut w);
    w.finish_fragment()
}

impl Gateway {
    pub fn presence_entry(&self, uri: &str) -> Option<Arc<PresenceEntry>> {
        self.presences.read().get(uri).cloned()
    }

    /// What `watcher` may see of `uri` now (an unknown URI yields the offline "unknown" view).
    pub fn view_for(&self, uri: &str, watcher: &str) -> PresenceView {
        let Some(entry) = self.presence_entry(uri) else { return PresenceView::unknown(uri) };
        let viewer = if uri == watcher { Viewer::Owner } else { Viewer::Watcher(self.directory.level(uri, watcher)) };
        let live = entry.live.lock();
        view(&live.model, viewer, self.clock.now())
    }

    /// One `<user>` element as `watcher` may see it.
    pub fn user_xml_for(&self, uri: &str, watcher: &str) -> Fragment {
        render_user(&self.view_for(uri, watcher), self.directory.same_enterprise(uri, watcher))
    }

    /// The rendering key of `viewer_uri` looking at `uri`.
    pub(crate) fn view_key(&self, uri: &str, viewer_uri: &str) -> ViewKey {
        if uri == viewer_uri {
            return ViewKey { viewer: Viewer::Owner, same_enterprise: true };
        }
        ViewKey {
            viewer: Viewer::Watcher(self.directory.level(uri, viewer_uri)),
            same_enterprise: self.directory.same_enterprise(uri, viewer_uri),
        }
    }

    /// The current snapshot event of `uri` for `viewer_uri`: `selfPresence` for the owner,
    /// `userPresence` otherwise. Rendered once per view and remembered until the state changes.
    fn snapshot_payload(&self, uri: &str, viewer_uri: &str) -> Arc<EventPayload> {
        let key = self.view_key(uri, viewer_uri);
        let Some(entry) = self.presence_entry(uri) else {
            return Arc::new(EventPayload::user_presence(render_user(&PresenceView::unknown(uri), key.same_enterprise)));
        };
        let now = self.clock.now();
        let mut live = entry.live.lock();
        if let Some(payload) = live.last_views.get(&key) {
            return payload.clone();
        }
        let payload = render_for_key(&live.model, key, now);
        live.last_views.insert(key, payload.clone());
        payload
    }

    /// The snapshot of `uri` for `session`: the shared one of its view, or, when the session chose
    /// its raw categories, one rendered for it.
    fn session_payload(&self, uri: &str, session: &Session) -> Arc<EventPayload> {
        let (Some(names), Some(entry)) = (session.raw_categories.as_deref(), self.presence_entry(uri)) else {
            return self.snapshot_payload(uri, &session.user);
        };
        let key = self.view_key(uri, &session.user);
        let live = entry.live.lock();
        render_filtered(&live.model, key, self.clock.now(), Some(names))
    }

    /// The `userPresence` payload of `uri` as `session` may see it (shared by every watcher with
    /// the same view; a user asking about themself gets a fresh rendering).
    pub(crate) fn user_payload_for(&self, uri: &str, session: &Session) -> Arc<EventPayload> {
        if uri == &*session.user {
            return Arc::new(EventPayload::user_presence(self.user_xml_for(uri, uri)));
        }
        self.session_payload(uri, session)
    }

    /// A coalescable `userPresence` snapshot of `uri` for `session` (a full update for JSON).
    pub(crate) fn queue_snapshot(&self, session: &Session, uri: &Arc<str>) {
        if session.json.is_some() {
            return self.queue_json_full(session, uri);
        }
        self.push(session, self.session_payload(uri, session), Some(uri));
    }

    /// The user's own `selfPresence`.
    pub(crate) fn queue_self(&self, session: &Session) {
        self.push(session, self.session_payload(&session.user, session), Some(&SELF_KEY));
    }

    /// The full state after an overflow (README, "Session queues"): the contact list, own
    /// presence, containers, subscribers, subscription states and a snapshot of every
    /// subscription. The poll asks for it only when it fits in the queue.
    pub(crate) fn queue_resync_burst(&self, session: &Session) {
        if session.json.is_some() {
            return self.queue_json_resync(session);
        }
        let user = &session.user;
        let subscriptions = session.subscriptions();
        let states: Vec<(&str, &str)> = subscriptions.iter().map(|u| (&**u, "subscribed")).collect();
        let list = crate::cwa::lists::contact_group_full(&self.contact_list(user));
        let burst = [
            (Arc::new(list), None),
            (self.session_payload(user, session), Some(&*SELF_KEY)),
            (Arc::new(self.containers_event(user)), None),
            (Arc::new(self.subscribers_event(user)), None),
            (Arc::new(EventPayload::subscription_state(&states)), None),
        ];
        let snapshots = subscriptions.iter().map(|uri| (self.session_payload(uri, session), Some(uri)));
        for (payload, key) in burst.into_iter().chain(snapshots) {
            crate::telemetry::record_push(session.push_resync(payload, key));
        }
    }

    /// Queues a state event (README, "Session queues"); at the bound the session resynchronises.
    pub(crate) fn push(&self, session: &Session, payload: Arc<EventPayload>, key: Option<&Arc<str>>) {
        use crate::hub::session::Pushed;
        if crate::telemetry::record_push(session.push(payload, key)) == Pushed::Resync {
            tracing::warn!(sid = session.sid, "session queue overflowed; a resync burst follows");
        }
    }

    /// Queues an answer of an admitted command in a place reserved for it.
    pub(crate) fn answer(&self, answers: &mut crate::hub::session::Admission<'_>, payload: Arc<EventPayload>) {
        crate::telemetry::record_push(answers.push(payload));
    }

    /// Changes the durable part (manual state, note) of a user's presence: stored first, then
    /// applied, recalculated and fanned out. Nothing changes when the store write fails; once it is
    /// under way, the change runs to its end even if the request is abandoned.
    pub async fn change_presence(&self, uri: &str, change: impl FnOnce(&mut StoredPresence)) -> Result<()> {
        let entry = self.presence_entry(uri).ok_or_else(|| GatewayError::InvalidRequest(format!("unknown user {uri}")))?;
        let gate = entry.gate.clone().lock_owned().await;
        let mut next = {
            let live = entry.live.lock();
            StoredPresence { manual: live.model.manual.clone(), note: live.model.note.clone() }
        };
        change(&mut next);
        let uri = uri.to_string();
        self.complete(move |gw| async move {
            let _gate = gate;
            gw.store.save_presence(&uri, &next).await.map_err(|e| GatewayError::store("saving presence", e))?;
            let mut live = entry.live.lock();
            gw.live_change(&uri, &mut live, LiveChange::Manual { manual: next.manual, note: next.note });
            Ok(())
        })
        .await
    }

    /// Applies a `publishRawCategories` (README, "Raw categories"): stored first, then applied and
    /// fanned out like any presence change. Nothing changes when the limit or the store refuses.
    pub async fn publish_raw_categories(&self, uri: &str, published: &[RawCategory]) -> Result<()> {
        let entry = self.presence_entry(uri).ok_or_else(|| GatewayError::InvalidRequest(format!("unknown user {uri}")))?;
        let _gate = entry.gate.lock().await;
        let current = entry.live.lock().model.raw.clone();
        let next = crate::model::raw::apply(&current, published).ok_or_else(|| {
            GatewayError::LimitExceeded(format!("at most {} raw categories per user", crate::model::raw::MAX_PER_USER))
        })?;
        self.store.save_raw_categories(uri, &next).await.map_err(|e| GatewayError::store("saving raw categories", e))?;
        let mut live = entry.live.lock();
        live.model.raw = next;
        self.settle(uri, &mut live);
        Ok(())
    }

    /// Stores a source's report (replacing that source's previous one), live: not persisted,
    /// withdrawn automatically at its expiry.
    pub fn set_source(&self, uri: &str, name: &str, report: SourceReport) -> Result<()> {
        let entry = self.presence_entry(uri).ok_or_else(|| GatewayError::InvalidRequest(format!("unknown user {uri}")))?;
        let mut live = entry.live.lock();
        self.live_change(uri, &mut live, LiveChange::Report { source: name.to_string(), report: Some(report) });
        Ok(())
    }

    /// Withdraws a source's report; false when there was none.
    pub fn remove_source(&self, uri: &str, name: &str) -> Result<bool> {
        let entry = self.presence_entry(uri).ok_or_else(|| GatewayError::InvalidRequest(format!("unknown user {uri}")))?;
        let mut live = entry.live.lock();
        let removed = live.model.reports.0.contains_key(name);
        if removed {
            self.live_change(uri, &mut live, LiveChange::Report { source: name.to_string(), report: None });
        }
        Ok(removed)
    }

    /// Recalculates a user's presence after their sessions changed (sign-in, idle, sign-out).
    pub fn refresh(&self, uri: &str) {
        if let Some(entry) = self.presence_entry(uri) {
            let mut live = entry.live.lock();
            self.settle(uri, &mut live);
        }
    }

    /// Drops what has expired, recalculates, fans out and re-arms the user's timer.
    pub(super) fn settle(&self, uri: &str, live: &mut Live) {
        let now = self.clock.now();
        let (clients, next_idle) = self.client_activity(uri, now);
        live.model.clients = self.cluster_clients(uri, live, clients);
        live.model.drop_expired_reports(now);
        live.model.recompute(now);
        let uri: Arc<str> = Arc::from(uri);
        self.fan_out(&uri, live, now);
        let next = [live.model.next_transition(now), next_idle].into_iter().flatten().min();
        self.timers.schedule(TimerKey::Presentity(uri), next);
    }

    /// Expired manual state / note are removed from the store too (a timed transition).
    pub(crate) async fn expire_presence(&self, uri: &str) {
        let now = self.clock.now();
        let Some(entry) = self.presence_entry(uri) else { return };
        let expired = {
            let live = entry.live.lock();
            let mut probe = live.model.clone();
            probe.drop_expired(now)
        };
        if expired {
            let result = self.change_presence(uri, |p| {
                p.manual = p.manual.take().filter(|m| !m.has_ended(now));
                p.note = p.note.take().filter(|n| n.is_active(now));
            });
            if result.await.is_err() {
                tracing::warn!(uri, "could not store an expiry; retrying at the next transition");
            }
        } else {
            self.refresh(uri);
        }
    }

    fn client_activity(&self, uri: &str, now: Timestamp) -> (ClientActivity, Option<Timestamp>) {
        let sessions = self.hub.sessions_of(uri);
        let idle_timeout = self.idle_timeout();
        let idle = sessions.iter().filter(|s| s.is_idle(now, idle_timeout)).count();
        let next_idle = sessions.iter().filter_map(|s| s.idle_deadline(now, idle_timeout)).min();
        (ClientActivity { signed_in: sessions.len(), idle }, next_idle)
    }

    /// Renders the change once per view in use and queues it on every session whose view changed.
    /// `last_views` then holds exactly the views of the current state that have watchers.
    fn fan_out(&self, uri: &Arc<str>, live: &mut Live, now: Timestamp) {
        let _timer = crate::telemetry::FanOutTimer::start();
        let mut rendered: HashMap<ViewKey, Arc<EventPayload>> = HashMap::new();
        let mut key_of_user: HashMap<Arc<str>, ViewKey> = HashMap::new();
        let mut json_sessions = Vec::new();
        let own = self.hub.sessions_of(uri).into_iter().filter(|s| s.json.is_none());
        for session in own.chain(self.hub.watchers_of(uri)) {
            let key = *key_of_user.entry(session.user.clone()).or_insert_with(|| self.view_key(uri, &session.user));
            if session.json.is_some() {
                json_sessions.push((session, key));
                continue;
            }
            let payload = rendered.entry(key).or_insert_with(|| render_for_key(&live.model, key, now));
            if live.last_views.get(&key) == Some(payload) {
                continue;
            }
            let coalesce = if key.viewer == Viewer::Owner { &*SELF_KEY } else { uri };
            let payload = match session.raw_categories.as_deref() {
                None => payload.clone(),
                Some(names) => render_filtered(&live.model, key, now, Some(names)),
            };
            self.push(&session, payload, Some(coalesce));
        }
        live.last_views = rendered;
        self.fan_out_json(uri, live, &json_sessions, now);
    }

    /// Sends fresh snapshots of `owner` to every session of `watcher` that watches them (after a
    /// rights change, so a new level takes effect at once).
    pub fn resend_to_watcher(&self, owner: &str, watcher: &str) {
        let owner: Arc<str> = Arc::from(owner);
        for session in self.hub.watchers_of(&owner).into_iter().filter(|s| &*s.user == watcher) {
            self.queue_snapshot(&session, &owner);
        }
    }
}
