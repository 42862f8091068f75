//! Live presence: each user's presentity in memory, changed under a per-user write gate (durable
//! parts are stored before they take effect), recalculated, and fanned out. A change is rendered
//! once per view (owner, or watcher level × source network) and the shared bytes are queued on
//! every session that watches; a view that did not change is not sent again.

use super::Gateway;
use crate::backplane::PresenceChange;
use crate::cwa::envelope::EventPayload;
use crate::cwa::wire::wire_user;
use crate::cwa::writer::XmlWriter;
use crate::error::{GatewayError, Result};
use crate::hub::session::Session;
use crate::hub::timers::TimerKey;
use crate::model::presentity::{view, PresenceView, Presentity, Viewer};
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

pub(crate) struct Live {
    pub model: Presentity,
    last_views: HashMap<ViewKey, Arc<EventPayload>>,
}

pub(crate) struct PresenceEntry {
    /// Serialises changes of one user's durable presence (held across the store write).
    gate: tokio::sync::Mutex<()>,
    pub live: Mutex<Live>,
}

impl Live {
    /// A new profile: renderings made from the old one are no longer shared.
    pub(crate) fn set_profile(&mut self, profile: Arc<crate::model::contact::Profile>) {
        self.model.profile = profile;
        self.last_views.clear();
    }
}

impl PresenceEntry {
    pub fn new(model: Presentity) -> Arc<Self> {
        Arc::new(PresenceEntry {
            gate: tokio::sync::Mutex::new(()),
            live: Mutex::new(Live { model, last_views: HashMap::new() }),
        })
    }
}

/// `<user …>` XML for a view.
pub fn render_user(view: &PresenceView, same_enterprise: bool) -> String {
    let network = if same_enterprise { "sameEnterprise" } else { "federated" };
    let mut w = XmlWriter::new();
    wire_user(view, Some(network)).render(&mut w);
    w.finish()
}

fn render_self(view: &PresenceView) -> String {
    let mut w = XmlWriter::new();
    wire_user(view, None).render_categories(&mut w);
    w.finish()
}

impl Gateway {
    pub(crate) fn presence_entry(&self, uri: &str) -> Option<Arc<PresenceEntry>> {
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
    pub fn user_xml_for(&self, uri: &str, watcher: &str) -> String {
        render_user(&self.view_for(uri, watcher), self.directory.same_enterprise(uri, watcher))
    }

    /// The `userPresence` payload of `uri` as `watcher` may see it, shared by every watcher with
    /// the same view: the rendering of the last fan-out for that view, or rendered now and kept
    /// (each change replaces the kept renderings, so a kept one is always the current view).
    pub(crate) fn user_payload_for(&self, uri: &str, watcher: &str) -> Arc<EventPayload> {
        let entry = self.presence_entry(uri).filter(|_| uri != watcher);
        let Some(entry) = entry else { return Arc::new(EventPayload::user_presence(self.user_xml_for(uri, watcher))) };
        let key = ViewKey {
            viewer: Viewer::Watcher(self.directory.level(uri, watcher)),
            same_enterprise: self.directory.same_enterprise(uri, watcher),
        };
        let mut live = entry.live.lock();
        if let Some(payload) = live.last_views.get(&key) {
            return payload.clone();
        }
        let rendered = render_user(&view(&live.model, key.viewer, self.clock.now()), key.same_enterprise);
        let payload = Arc::new(EventPayload::user_presence(rendered));
        live.last_views.insert(key, payload.clone());
        payload
    }

    /// A coalescable `userPresence` snapshot of `uri` for `session`.
    pub(crate) fn queue_snapshot(&self, session: &Session, uri: &Arc<str>) {
        let payload = self.user_payload_for(uri, &session.user);
        self.push(session, payload, Some(uri));
    }

    /// The user's own `selfPresence`.
    pub(crate) fn queue_self(&self, session: &Session) {
        let xml = render_self(&self.view_for(&session.user, &session.user));
        self.push(session, Arc::new(EventPayload::self_presence(xml)), Some(&SELF_KEY));
    }

    /// The full state after an overflow: own presence and every subscription, queued even past the
    /// bound (the burst replaces what was dropped, so it must not trigger another resync).
    pub(crate) fn queue_resync_burst(&self, session: &Session) {
        let own = render_self(&self.view_for(&session.user, &session.user));
        session.push(Arc::new(EventPayload::self_presence(own)), Some(&SELF_KEY), usize::MAX);
        for uri in session.subscriptions() {
            let payload = self.user_payload_for(&uri, &session.user);
            session.push(payload, Some(&uri), usize::MAX);
        }
    }

    pub(crate) fn push(&self, session: &Session, payload: Arc<EventPayload>, key: Option<&Arc<str>>) {
        use crate::hub::session::Pushed;
        if session.push(payload, key, self.config.limits.queue_length) == Pushed::Resync {
            tracing::warn!(sid = session.sid, "session queue overflowed; a resync burst follows");
        }
    }

    /// Changes the durable part (manual state, note) of a user's presence: stored first, then
    /// applied, recalculated and fanned out. Nothing changes when the store write fails.
    pub async fn change_presence(&self, uri: &str, change: impl FnOnce(&mut StoredPresence)) -> Result<()> {
        let entry = self.presence_entry(uri).ok_or_else(|| GatewayError::InvalidRequest(format!("unknown user {uri}")))?;
        let _gate = entry.gate.lock().await;
        let mut next = {
            let live = entry.live.lock();
            StoredPresence { manual: live.model.manual.clone(), note: live.model.note.clone() }
        };
        change(&mut next);
        self.store.save_presence(uri, &next).await.map_err(|e| GatewayError::internal("saving presence", e))?;
        let mut live = entry.live.lock();
        live.model.manual = next.manual;
        live.model.note = next.note;
        self.settle(uri, &mut live);
        Ok(())
    }

    /// Changes what integrations report (calls, calendar, agent state): live data, not stored.
    pub fn change_sources(&self, uri: &str, change: impl FnOnce(&mut crate::model::sources::SourceReports)) -> Result<()> {
        let entry = self.presence_entry(uri).ok_or_else(|| GatewayError::InvalidRequest(format!("unknown user {uri}")))?;
        let mut live = entry.live.lock();
        change(&mut live.model.sources);
        self.settle(uri, &mut live);
        Ok(())
    }

    /// Recalculates a user's presence after their sessions changed (sign-in, idle, sign-out).
    pub fn refresh(&self, uri: &str) {
        if let Some(entry) = self.presence_entry(uri) {
            let mut live = entry.live.lock();
            self.settle(uri, &mut live);
        }
    }

    /// Drops what has expired, recalculates, fans out and re-arms the user's timer.
    fn settle(&self, uri: &str, live: &mut Live) {
        let now = self.clock.now();
        let (clients, next_idle) = self.client_activity(uri, now);
        live.model.clients = clients;
        live.model.recompute(now);
        let uri: Arc<str> = Arc::from(uri);
        self.fan_out(&uri, live, now);
        let next = [live.model.next_transition(now), next_idle].into_iter().flatten().min();
        self.timers.schedule(TimerKey::Presentity(uri.clone()), next);
        self.backplane.publish(&PresenceChange { uri, presentity: live.model.clone() });
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

    fn fan_out(&self, uri: &Arc<str>, live: &mut Live, now: Timestamp) {
        let mut rendered: HashMap<ViewKey, Arc<EventPayload>> = HashMap::new();
        let mut key_of_user: HashMap<Arc<str>, ViewKey> = HashMap::new();
        let owner_key = ViewKey { viewer: Viewer::Owner, same_enterprise: true };
        let targets = self.hub.sessions_of(uri).into_iter().map(|s| (s, true));
        let targets = targets.chain(self.hub.watchers_of(uri).into_iter().map(|s| (s, false)));
        for (session, own) in targets {
            let key = if own {
                owner_key
            } else {
                *key_of_user.entry(session.user.clone()).or_insert_with(|| ViewKey {
                    viewer: Viewer::Watcher(self.directory.level(uri, &session.user)),
                    same_enterprise: self.directory.same_enterprise(uri, &session.user),
                })
            };
            let payload = rendered.entry(key).or_insert_with(|| {
                let v = view(&live.model, key.viewer, now);
                Arc::new(if own {
                    EventPayload::self_presence(render_self(&v))
                } else {
                    EventPayload::user_presence(render_user(&v, key.same_enterprise))
                })
            });
            if live.last_views.get(&key) == Some(payload) {
                continue;
            }
            let coalesce = if own { &*SELF_KEY } else { uri };
            self.push(&session, payload.clone(), Some(coalesce));
        }
        live.last_views = rendered;
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
