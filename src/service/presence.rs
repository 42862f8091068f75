//! Live presence: each user's presentity in memory, changed under a per-user write gate (durable
//! parts are stored before they take effect), recalculated, and fanned out. A change makes one
//! event per view (owner, or watcher level × source network), shared by every session that
//! watches and rendered by each transport once; a view that did not change — as the CWA
//! rendering shows it — is not sent again. Snapshots queued outside a fan-out (subscribe, rights
//! change, resync burst) are queued under the same lock, so they keep the presentity's change
//! order.

use super::directory::Watcher;
use super::Gateway;
use crate::backplane::LiveChange;
use crate::error::{GatewayError, Result};
use crate::hub::event::{Audience, Event, EventBody, SubscriptionState};
use crate::hub::session::Session;
use crate::hub::timers::TimerKey;
use crate::model::presentity::{view, PresenceView, Presentity, Viewer};
use crate::model::raw::RawCategory;
use crate::model::reports::SourceReport;
use crate::model::sources::{ClientActivity, Timestamp};
use crate::store::{PresenceUpdate, StoredPresence};
use foldhash::{HashMap, HashMapExt};
use parking_lot::Mutex;
use std::sync::{Arc, LazyLock};

/// How many times a raw-category publication is applied to what the store holds before giving up,
/// when other gateways keep changing the user's raw categories between its read and its write.
const RAW_WRITE_ATTEMPTS: usize = 4;

/// The coalescing key of `selfPresence` events (one per session).
static SELF_KEY: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("\u{0}self"));
/// The coalescing key of `selfRawCategories` events (one per session).
static SELF_RAW_KEY: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("\u{0}selfRaw"));

/// The coalescing key of the `userRawCategories` events about `uri` (its `userPresence` snapshots
/// coalesce under `uri` itself; no URI starts with U+0001).
fn raw_key(uri: &str) -> Arc<str> {
    Arc::from(format!("\u{1}{uri}"))
}

/// Which rendering a session receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ViewKey {
    pub viewer: Viewer,
    pub same_enterprise: bool,
}

/// Which raw-category rendering a session receives: its view and the raw categories it chose
/// (`categoryEventFilter`; `None`: all). Sessions with the same view and choice share it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawViewKey {
    pub view: ViewKey,
    pub only: Option<Arc<[String]>>,
}

pub struct Live {
    pub model: Presentity,
    /// The current presence event (`userPresence` / `selfPresence`) of each view in use.
    pub last_views: HashMap<ViewKey, Arc<Event>>,
    /// The current raw-category event (`userRawCategories` / `selfRawCategories`) of each raw
    /// view in use (kept across profile changes: raw categories show nothing of the profile).
    pub last_raw: HashMap<RawViewKey, Arc<Event>>,
    /// The same for JSON subscribers (the baseline their deltas are computed from).
    pub last_json: HashMap<ViewKey, crate::pv2::events::JsonView>,
    /// What other nodes hold of the user (sessions), and what this node told them.
    pub cluster: super::cluster::ClusterInputs,
    /// Counts the fan-outs (bumped under the lock): a rendering made at one version and queued
    /// after the lock was released is outdated if it moved (docs/architecture.md, "Order per
    /// presentity").
    pub version: u64,
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
        let live = Live {
            model,
            last_views: HashMap::new(),
            last_raw: HashMap::new(),
            last_json: HashMap::new(),
            cluster: Default::default(),
            version: 0,
        };
        Arc::new(PresenceEntry { gate: Arc::default(), live: Mutex::new(live) })
    }
}

/// Whom a view key's events show the presentity to.
fn audience(key: ViewKey) -> Audience {
    match key.viewer {
        Viewer::Owner => Audience::Owner,
        Viewer::Watcher(_) => Audience::Watcher { same_enterprise: key.same_enterprise },
    }
}

/// The presence event a view key receives: `selfPresence` for the owner, `userPresence` for
/// watchers (the well-known categories; raw categories travel in [`raw_event`]'s event).
fn presence_event(view: &Arc<PresenceView>, key: ViewKey) -> Arc<Event> {
    Event::new(EventBody::Presence { view: view.clone(), audience: audience(key) })
}

/// The raw-category event a raw view receives: `selfRawCategories` for the owner,
/// `userRawCategories` with one `user` for watchers — complete, and empty when there are none.
fn raw_event(view: &Arc<PresenceView>, key: &RawViewKey) -> Arc<Event> {
    Event::new(EventBody::RawCategories { view: view.clone(), audience: audience(key.view), only: key.only.clone() })
}

/// Whether a new event of a view differs from what its sessions last received, as the CWA
/// dialect shows it (rendered now; the rendering stays in the event and is what gets sent).
fn changed(last: Option<&Arc<Event>>, new: &Event) -> bool {
    last.is_none_or(|last| !crate::cwa::events::same_text(last, new))
}

/// Whether a session receives raw-category events at all: not when its `categoryEventFilter`
/// names none.
fn receives_raw(session: &Session) -> bool {
    session.raw_categories.as_deref().is_none_or(|names| !names.is_empty())
}

/// One view's events during a fan-out, and whether each differs from what its watchers last
/// received.
struct Rendered {
    view: Arc<PresenceView>,
    presence: Arc<Event>,
    presence_changed: bool,
}

/// A snapshot of one presentity for one session: its presence event and, unless the session
/// chose no raw categories, its raw-category event.
pub(crate) struct Snapshot {
    pub presence: Arc<Event>,
    pub raw: Option<Arc<Event>>,
    /// The presentity's [`Live::version`] the renderings show (0 for an unknown user).
    pub version: u64,
    /// The presentity they were read from (none for an unknown user), to see later whether it
    /// moved on without looking it up again.
    pub entry: Option<Arc<PresenceEntry>>,
}

impl Gateway {
    pub(crate) fn presence_entry(&self, uri: &str) -> Option<Arc<PresenceEntry>> {
        self.presences.get(uri)
    }

    /// What `watcher` may see of `uri` now (an unknown URI yields the offline "unknown" view).
    pub fn view_for(&self, uri: &str, watcher: &str) -> PresenceView {
        let Some(entry) = self.presence_entry(uri) else { return PresenceView::unknown(uri) };
        let viewer = if uri == watcher { Viewer::Owner } else { Viewer::Watcher(self.directory.level(uri, watcher)) };
        let live = entry.live.lock();
        view(&live.model, viewer, self.clock.now())
    }

    /// The rendering key of `viewer_uri` looking at `uri`.
    pub(crate) fn view_key(&self, uri: &str, viewer_uri: &str) -> ViewKey {
        self.view_key_of(uri, &self.directory.watcher(viewer_uri))
    }

    /// [`Gateway::view_key`] of a watcher already read from the directory.
    fn view_key_of(&self, uri: &str, watcher: &Watcher<'_>) -> ViewKey {
        if uri == watcher.uri() {
            return ViewKey { viewer: Viewer::Owner, same_enterprise: true };
        }
        let (level, same_enterprise) = self.directory.level_of(uri, watcher);
        ViewKey { viewer: Viewer::Watcher(level), same_enterprise }
    }

    /// Runs `then` on the current snapshot of `uri` for `session` while the presentity is still
    /// locked: what `then` queues is queued before any later change is fanned out. A snapshot is
    /// `selfPresence` / `selfRawCategories` for the owner, `userPresence` / `userRawCategories`
    /// otherwise; each is one event per view (and raw-category choice), remembered until the
    /// state changes.
    /// `watcher` is the session's user as the directory reads it.
    fn with_snapshot<R>(&self, uri: &str, session: &Session, watcher: &Watcher<'_>, then: impl FnOnce(Snapshot) -> R) -> R {
        let key = self.view_key_of(uri, watcher);
        let raw_key = receives_raw(session).then(|| RawViewKey { view: key, only: session.raw_categories.clone() });
        let Some(entry) = self.presence_entry(uri) else {
            let view = Arc::new(PresenceView::unknown(uri));
            let raw = raw_key.map(|k| raw_event(&view, &k));
            return then(Snapshot { presence: presence_event(&view, key), raw, version: 0, entry: None });
        };
        let mut live = entry.live.lock();
        let version = live.version;
        let presence = live.last_views.get(&key).cloned();
        let raw = raw_key.as_ref().and_then(|k| live.last_raw.get(k).cloned());
        if let (Some(presence), true) = (&presence, raw.is_some() == raw_key.is_some()) {
            return then(Snapshot { presence: presence.clone(), raw, version, entry: Some(entry.clone()) });
        }
        let view = Arc::new(view(&live.model, key.viewer, self.clock.now()));
        let presence = presence.unwrap_or_else(|| presence_event(&view, key));
        live.last_views.insert(key, presence.clone());
        let raw = raw_key.map(|k| {
            let payload = raw.unwrap_or_else(|| raw_event(&view, &k));
            live.last_raw.insert(k, payload.clone());
            payload
        });
        then(Snapshot { presence, raw, version, entry: Some(entry.clone()) })
    }

    /// `uri` as a `queryPresence` answer shows it to `session`: its `user` element and, when the
    /// session receives raw categories, its `user` element of raw categories. A user asking about
    /// themself gets their own view, in a fresh event. `watcher` is the session's user as the
    /// directory reads it (once for all the URIs of a query).
    pub(crate) fn query_snapshot(&self, uri: &str, session: &Session, watcher: &Watcher<'_>) -> Snapshot {
        if uri != &*session.user {
            return self.with_snapshot(uri, session, watcher, |snapshot| snapshot);
        }
        let entry = self.presence_entry(uri);
        let (view, version) = match &entry {
            Some(entry) => {
                let live = entry.live.lock();
                (view(&live.model, Viewer::Owner, self.clock.now()), live.version)
            }
            None => (PresenceView::unknown(uri), 0),
        };
        let view = Arc::new(view);
        let audience = Audience::Watcher { same_enterprise: true };
        let only = session.raw_categories.clone();
        let raw = receives_raw(session).then(|| Event::new(EventBody::RawCategories { view: view.clone(), audience, only }));
        Snapshot { presence: Event::new(EventBody::Presence { view, audience }), raw, version, entry }
    }

    /// Queues a snapshot of `uri` for `session` — its `userPresence`, then its
    /// `userRawCategories` (`selfPresence` / `selfRawCategories` under the `self…` keys for the
    /// session's own user), each coalescing with an unsent one (a full update for JSON). Queued
    /// under the presentity's lock, so it never lands after a newer fanned-out change.
    pub(crate) fn queue_snapshot(&self, session: &Session, uri: &Arc<str>) {
        if session.json.is_some() {
            return self.queue_json_full(session, uri);
        }
        self.queue_current(session, uri, |payload, key| self.push(session, payload, Some(key)));
    }

    /// Hands the current snapshot of `uri` with its coalescing keys to `push`, under the lock.
    fn queue_current(&self, session: &Session, uri: &str, push: impl Fn(Arc<Event>, &Arc<str>)) {
        let (key, raw_key) = Gateway::snapshot_keys(session, uri);
        self.with_snapshot(uri, session, &self.directory.watcher(&session.user), |snapshot| {
            push(snapshot.presence, &key);
            if let Some(raw) = snapshot.raw {
                push(raw, &raw_key);
            }
        });
    }

    /// After a query's answers are queued: a queried user whose changes `session` receives and who
    /// changed since the answer was rendered gets a fresh snapshot, queued after the answer.
    pub(crate) fn catch_up_after_answer(&self, session: &Session, uri: &str, shown: &Snapshot) {
        let moved = shown.entry.as_ref().is_some_and(|entry| entry.live.lock().version != shown.version);
        if moved && (uri == &*session.user || session.is_subscribed(uri)) {
            self.queue_current(session, uri, |payload, key| self.push(session, payload, Some(key)));
        }
    }

    /// Tells `session` that `uri` has no raw categories any more (a deleted user).
    pub(crate) fn push_no_raw_categories(&self, session: &Session, uri: &Arc<str>) {
        if receives_raw(session) {
            let view = Arc::new(PresenceView::unknown(uri));
            let audience = Audience::Watcher { same_enterprise: true };
            self.push(session, Event::new(EventBody::RawCategories { view, audience, only: None }), Some(&raw_key(uri)));
        }
    }

    /// The user's own `selfPresence`, then their `selfRawCategories`.
    pub(crate) fn queue_self(&self, session: &Session) {
        self.queue_current(session, &session.user, |payload, key| self.push(session, payload, Some(key)));
    }

    /// The full state after an overflow (README, "Session queues"): the contact list, own
    /// presence and raw categories, containers, subscribers, subscription states and a snapshot
    /// of every subscription. The poll asks for it only when it fits in the queue.
    pub(crate) fn queue_resync_burst(&self, session: &Session) {
        if session.json.is_some() {
            return self.queue_json_resync(session);
        }
        let user = &session.user;
        let subscriptions = session.subscriptions();
        let states = EventBody::SubscriptionStates { uris: subscriptions.clone().into(), state: SubscriptionState::Subscribed };
        let push = |event: Arc<Event>, key: Option<&Arc<str>>| {
            crate::telemetry::record_push(session.push_resync(event, key));
        };
        push(Event::new(EventBody::ContactList(Box::new(self.contact_list(user)))), None);
        self.queue_current(session, user, |event, key| push(event, Some(key)));
        push(self.containers_event(user), None);
        push(self.subscribers_event(user), None);
        push(Event::new(states), None);
        for uri in &subscriptions {
            self.queue_current(session, uri, |payload, key| push(payload, Some(key)));
        }
    }

    /// Queues a state event (README, "Session queues"); at the bound the session resynchronises.
    pub(crate) fn push(&self, session: &Session, payload: Arc<Event>, key: Option<&Arc<str>>) {
        use crate::hub::session::Pushed;
        if crate::telemetry::record_push(session.push(payload, key)) == Pushed::Resync {
            tracing::warn!(sid = session.sid, "session queue overflowed; a resync burst follows");
        }
    }

    /// Queues an answer of an admitted command in a place reserved for it.
    pub(crate) fn answer(&self, answers: &mut crate::hub::session::Admission<'_>, payload: Arc<Event>) {
        crate::telemetry::record_push(answers.push(payload));
    }

    /// Queues an answer that carries the state of presentities, under the keys their snapshots
    /// coalesce under ([`Gateway::snapshot_keys`]): a later change is then queued after it.
    pub(crate) fn answer_covering<K: AsRef<str>>(
        &self,
        answers: &mut crate::hub::session::Admission<'_>,
        payload: Arc<Event>,
        keys: &[K],
    ) {
        crate::telemetry::record_push(answers.push_covering(payload, keys));
    }

    /// The coalescing keys of the snapshots of `uri` that `session` receives: its presence
    /// snapshots and its raw-category snapshots (the `self…` keys for the session's own user).
    pub(crate) fn snapshot_keys(session: &Session, uri: &str) -> (Arc<str>, Arc<str>) {
        if uri == &*session.user {
            return (SELF_KEY.clone(), SELF_RAW_KEY.clone());
        }
        (Arc::from(uri), raw_key(uri))
    }

    /// The first of [`Gateway::snapshot_keys`], borrowed: no allocation (a query covers 20 at once).
    pub(crate) fn presence_snapshot_key<'a>(session: &Session, uri: &'a str) -> &'a str {
        if uri == &*session.user {
            &SELF_KEY
        } else {
            uri
        }
    }

    /// The second of [`Gateway::snapshot_keys`].
    pub(crate) fn raw_snapshot_key(session: &Session, uri: &str) -> Arc<str> {
        if uri == &*session.user {
            SELF_RAW_KEY.clone()
        } else {
            raw_key(uri)
        }
    }

    /// The presence entry of a known user (else the request is invalid).
    fn known_entry(&self, uri: &str) -> Result<Arc<PresenceEntry>> {
        self.presence_entry(uri).ok_or_else(|| GatewayError::InvalidRequest(format!("unknown user {uri}")))
    }

    /// The presence entry of a known user with its gate taken, held until the change is done
    /// (owned, so the rest of a change can complete on a task of its own).
    async fn gated_entry(&self, uri: &str) -> Result<(Arc<PresenceEntry>, tokio::sync::OwnedMutexGuard<()>)> {
        let entry = self.known_entry(uri)?;
        let gate = entry.gate.clone().lock_owned().await;
        Ok((entry, gate))
    }

    /// Changes the durable part (manual state, note) of a user's presence: the parts `update`
    /// sets are stored first, in one step that keeps the others as stored, and the presence as it
    /// then stands is applied, recalculated and fanned out. Nothing changes when the store write
    /// fails; once it is under way, the change runs to its end even if the request is abandoned.
    pub(crate) async fn change_presence(&self, uri: &str, update: PresenceUpdate) -> Result<StoredPresence> {
        let (entry, gate) = self.gated_entry(uri).await?;
        self.store_presence(uri, entry, gate, update).await
    }

    /// Clears the manual state and note of a user where they are over at `now` (a timed
    /// transition), starting from the durable stand; returns the presence as it then stands.
    pub(crate) async fn end_presence(&self, uri: &str, now: Timestamp) -> Result<StoredPresence> {
        let (entry, gate) = self.gated_entry(uri).await?;
        let current = self.durable_presence(uri, &entry).await?;
        self.store_presence(uri, entry, gate, PresenceUpdate::ended(&current, now)).await
    }

    /// The store write of a presence change under the user's gate, and what follows it.
    async fn store_presence(
        &self,
        uri: &str,
        entry: Arc<PresenceEntry>,
        gate: tokio::sync::OwnedMutexGuard<()>,
        update: PresenceUpdate,
    ) -> Result<StoredPresence> {
        let uri = uri.to_string();
        self.complete(move |gw| async move {
            let _gate = gate;
            let stands = gw.store.update_presence(&uri, &update).await.map_err(|e| GatewayError::store("saving presence", e))?;
            let mut live = entry.live.lock();
            let change = LiveChange::Manual { manual: stands.manual.clone(), note: stands.note.clone() };
            gw.live_change(&uri, &mut live, change);
            Ok(stands)
        })
        .await
    }

    /// The manual state and note a timed transition starts from: in memory standalone; in a
    /// cluster the store's, since in memory they change only when they come back from the
    /// backplane and the node's previous change may still be on its way.
    async fn durable_presence(&self, uri: &str, entry: &PresenceEntry) -> Result<StoredPresence> {
        if self.backplane.is_shared() {
            let stored = self.store.presence(uri).await.map_err(|e| GatewayError::store("reading presence", e))?;
            return Ok(stored.unwrap_or_default());
        }
        let live = entry.live.lock();
        Ok(StoredPresence { manual: live.model.manual.clone(), note: live.model.note.clone() })
    }

    /// Applies a `publishRawCategories` (README, "Raw categories"): stored first, then applied and
    /// fanned out like any presence change. Nothing changes when the limit or the store refuses.
    ///
    /// The publication is applied to the raw categories the store holds: the copy in memory is
    /// tried first, and where another gateway changed them since (its notice still on the way)
    /// the store refuses that write and the publication is applied again to what it holds. Runs to
    /// its end once started, like every change.
    pub async fn publish_raw_categories(&self, uri: &str, published: &[RawCategory]) -> Result<()> {
        let (entry, gate) = self.gated_entry(uri).await?;
        let (uri, published) = (uri.to_string(), published.to_vec());
        self.complete(move |gw| async move {
            let _gate = gate;
            let mut current = entry.live.lock().model.raw.clone();
            for _ in 0..RAW_WRITE_ATTEMPTS {
                let next = crate::model::raw::apply(&current, &published).ok_or_else(|| {
                    GatewayError::LimitExceeded(format!("at most {} raw categories per user", crate::model::raw::MAX_PER_USER))
                })?;
                let saved = gw.store.save_raw_categories(&uri, &current, &next).await;
                if saved.map_err(|e| GatewayError::store("saving raw categories", e))? {
                    let mut live = entry.live.lock();
                    live.model.raw = next;
                    gw.settle(&uri, &mut live);
                    return Ok(());
                }
                let stored = gw.store.raw_categories_of(&uri).await;
                current = stored.map_err(|e| GatewayError::store("reading raw categories", e))?;
            }
            tracing::warn!(uri, "raw categories kept changing elsewhere while a publication was written");
            Err(GatewayError::StoreUnavailable)
        })
        .await
    }

    /// Stores a source's report (replacing that source's previous one) with its expiry: in the
    /// store first, then applied and fanned out; withdrawn by itself at its expiry (and then
    /// swept from the store). Nothing changes when the store write fails.
    pub(crate) async fn set_source(&self, uri: &str, name: &str, report: SourceReport) -> Result<()> {
        let (entry, gate) = self.gated_entry(uri).await?;
        let (uri, name) = (uri.to_string(), name.to_string());
        self.complete(move |gw| async move {
            let _gate = gate;
            gw.store.save_source_report(&uri, &name, &report).await.map_err(|e| GatewayError::store("saving a report", e))?;
            let mut live = entry.live.lock();
            gw.live_change(&uri, &mut live, LiveChange::Report { source: name, report: Some(report) });
            Ok(())
        })
        .await
    }

    /// Withdraws a source's report, from the store and then live; false when there was none.
    pub(crate) async fn remove_source(&self, uri: &str, name: &str) -> Result<bool> {
        let (entry, gate) = self.gated_entry(uri).await?;
        let (uri, name) = (uri.to_string(), name.to_string());
        self.complete(move |gw| async move {
            let _gate = gate;
            let stored =
                gw.store.remove_source_report(&uri, &name).await.map_err(|e| GatewayError::store("withdrawing a report", e))?;
            let mut live = entry.live.lock();
            let live_one = live.model.reports.0.contains_key(&name);
            // In a cluster this node may not follow the user: the backplane ignores a withdrawal
            // of nothing.
            if live_one || gw.backplane.is_shared() {
                gw.live_change(&uri, &mut live, LiveChange::Report { source: name, report: None });
            }
            Ok(stored || live_one)
        })
        .await
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

    /// Expired manual state / note are removed from the store too (a timed transition); in a
    /// cluster by one node ([`super::transitions`]).
    pub(crate) async fn expire_presence(&self, uri: &str) {
        if self.backplane.is_shared() {
            return self.transition_in_cluster(uri);
        }
        let now = self.clock.now();
        let Some(entry) = self.presence_entry(uri) else { return };
        let expired = {
            let live = entry.live.lock();
            let mut probe = live.model.clone();
            probe.drop_expired(now)
        };
        if expired {
            if self.end_presence(uri, now).await.is_err() {
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

    /// Makes the change's event once per view in use and queues it on every session whose view
    /// changed: the presence event when the well-known categories changed, the raw-category event
    /// when the raw categories the session receives changed (README, "Raw categories"), each
    /// compared as rendered for CWA. `last_views` and `last_raw` then hold exactly the events of
    /// the current state that have watchers.
    fn fan_out(&self, uri: &Arc<str>, live: &mut Live, now: Timestamp) {
        let _timer = crate::telemetry::FanOutTimer::start();
        live.version += 1;
        let mut rendered: HashMap<ViewKey, Rendered> = HashMap::new();
        let mut raw_rendered: HashMap<RawViewKey, (Arc<Event>, bool)> = HashMap::new();
        let mut key_of_user: HashMap<Arc<str>, ViewKey> = HashMap::new();
        let mut json_sessions = Vec::new();
        let mut user_raw_key: Option<Arc<str>> = None;
        let own = self.hub.sessions_of(uri).into_iter().filter(|s| s.json.is_none());
        for session in own.chain(self.hub.watchers_of(uri)) {
            let key = *key_of_user.entry(session.user.clone()).or_insert_with(|| self.view_key(uri, &session.user));
            if session.json.is_some() {
                json_sessions.push((session, key));
                continue;
            }
            let rendering = rendered.entry(key).or_insert_with(|| {
                let view = Arc::new(view(&live.model, key.viewer, now));
                let presence = presence_event(&view, key);
                let presence_changed = changed(live.last_views.get(&key), &presence);
                Rendered { view, presence, presence_changed }
            });
            let owner = key.viewer == Viewer::Owner;
            if rendering.presence_changed {
                self.push(&session, rendering.presence.clone(), Some(if owner { &*SELF_KEY } else { uri }));
            }
            if !receives_raw(&session) {
                continue;
            }
            let raw_view = RawViewKey { view: key, only: session.raw_categories.clone() };
            let (raw, raw_changed) = raw_rendered.entry(raw_view).or_insert_with_key(|k| {
                let raw = raw_event(&rendering.view, k);
                let raw_changed = changed(live.last_raw.get(k), &raw);
                (raw, raw_changed)
            });
            if *raw_changed {
                let coalesce =
                    if owner { SELF_RAW_KEY.clone() } else { user_raw_key.get_or_insert_with(|| raw_key(uri)).clone() };
                self.push(&session, raw.clone(), Some(&coalesce));
            }
        }
        live.last_views = rendered.into_iter().map(|(key, r)| (key, r.presence)).collect();
        live.last_raw = raw_rendered.into_iter().map(|(key, (raw, _))| (key, raw)).collect();
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
