//! This node's side of the backplane (docs/architecture.md, "Several nodes"): what it tells the
//! other nodes and what it does with what they tell it.
//!
//! Each node counts its own sessions of a user and publishes the counts when they change; the
//! user's presence counts every live node's sessions. A node receives the changes of the users it
//! follows: those its sessions watch or are (the hub says when that begins or ends), and for a
//! while those it was asked to read — a read of anyone else first brings them up to date
//! ([`Gateway::fresh`]). Manual states, notes and source reports
//! are published and, on a shared backplane, take effect on every node — this one included —
//! when they come back from it, so all nodes apply them in the same order. Standalone, they take
//! effect at once. Either way a change then settles as any other: recalculated, rendered per
//! view, fanned out to this node's own watchers.
//!
//! Changes wait in an [`Outbox`] keyed by presentity and part, so a newer change of the same part
//! replaces one not yet sent (it is bounded by users × parts) and nothing is lost while the
//! backplane is unreachable: one task sends them, in the order they were made, retrying with a
//! back-off.
//!
//! Rights travel through the store, but a change of them is also published, as a marker in the
//! presentity's order: a node that did not write them reads them from the store before it applies
//! anything that follows, and reads them when it starts following a presentity whose rights
//! changed since it last read them — so a note set after a block never reaches the blocked
//! watcher on a node whose store notices lag (docs/architecture.md §5, "Rights on several nodes").

use super::presence::Live;
use super::Gateway;
use crate::backplane::{Backplane, ChangeHandler, HeldStream, LiveChange, LiveInputs, NodeId, Published};
use crate::error::GatewayError;
use crate::model::reports::Reports;
use crate::model::sources::ClientActivity;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// What a presentity's state holds of the cluster.
#[derive(Debug, Default)]
pub struct ClusterInputs {
    /// Other live nodes' session counts (signed in, idle).
    remote: BTreeMap<NodeId, (u32, u32)>,
    /// This node's counts as last published.
    published: (u32, u32),
    /// The token of the last rights change of the presentity this node has read.
    rights: Option<u64>,
}

/// The most changes sent at once.
const BATCH: usize = 512;

/// Changes not yet sent, keyed by (presentity, part).
#[derive(Default)]
pub struct Outbox {
    pending: Mutex<Pending>,
    wake: tokio::sync::Notify,
}

type Part = (Arc<str>, String);

/// The changes not yet sent and the order they go out in (by the place each took in it).
#[derive(Default)]
struct Pending {
    changes: HashMap<Part, (u64, LiveChange)>,
    order: BTreeMap<u64, Part>,
    next: u64,
}

impl Pending {
    /// Queues `change` at `place`, over a change of the same part not yet sent. A change takes
    /// the later of the two places, so it never goes out ahead of a change made before it — but a
    /// rights marker keeps the earlier: the reads it asks for only get newer, and what was made
    /// after the first marker must not go out ahead of it.
    fn queue(&mut self, key: Part, change: LiveChange, place: u64) {
        let rights = is_rights_marker(&change);
        let place = match self.changes.get(&key) {
            Some((queued, _)) if rights => place.min(*queued),
            _ => place,
        };
        if let Some((queued, _)) = self.changes.insert(key.clone(), (place, change)) {
            self.order.remove(&queued);
        }
        self.order.insert(place, key);
    }
}

impl Outbox {
    fn push(&self, uri: &Arc<str>, change: LiveChange) {
        let mut pending = self.pending.lock();
        pending.next += 1;
        let place = pending.next;
        pending.queue((uri.clone(), part_of(&change)), change, place);
        drop(pending);
        self.wake.notify_one();
    }

    /// The first changes in order, with their places.
    fn take(&self) -> Vec<(u64, Published)> {
        let mut pending = self.pending.lock();
        let mut batch = Vec::new();
        while batch.len() < BATCH {
            let Some((place, key)) = pending.order.pop_first() else { break };
            if let Some((_, change)) = pending.changes.remove(&key) {
                batch.push((place, Published { uri: key.0, change }));
            }
        }
        batch
    }

    /// Puts back what could not be sent, in its place, unless a newer change of the same part
    /// came meanwhile (a rights marker then takes the earlier place of the two).
    fn put_back(&self, batch: Vec<(u64, Published)>) {
        let mut pending = self.pending.lock();
        for (place, Published { uri, change }) in batch {
            let key = (uri, part_of(&change));
            let newer = pending.changes.contains_key(&key);
            if !newer || is_rights_marker(&change) {
                let change = if newer { pending.changes[&key].1.clone() } else { change };
                pending.queue(key, change, place);
            }
        }
    }

    /// Sends changes until the gateway goes away.
    async fn run(self: Arc<Self>, backplane: Arc<dyn Backplane>) {
        let mut retry = Duration::from_millis(100);
        loop {
            let taken = self.take();
            if taken.is_empty() {
                self.wake.notified().await;
                continue;
            }
            let (places, batch): (Vec<u64>, Vec<Published>) = taken.into_iter().unzip();
            match backplane.publish(&batch).await {
                Ok(()) => retry = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, changes = batch.len(), "cannot publish presence changes; retrying");
                    self.put_back(places.into_iter().zip(batch).collect());
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

fn is_rights_marker(change: &LiveChange) -> bool {
    matches!(change, LiveChange::Rights { .. }) || change.is_levels_change()
}

/// Which part of a presentity a change sets.
fn part_of(change: &LiveChange) -> String {
    match change {
        LiveChange::Sessions { node, .. } => format!("s:{node}"),
        LiveChange::Manual { .. } => "m".into(),
        LiveChange::Report { source, .. } => format!("r:{source}"),
        LiveChange::Rights { .. } => "g".into(),
        LiveChange::GlobalRights { .. } => "G".into(),
        LiveChange::Profile { .. } => "P".into(),
    }
}

impl Gateway {
    /// Starts the outbox's sender and follows the backplane (only when it is shared).
    pub(super) async fn join_cluster(self: &Arc<Self>) -> Result<(), crate::backplane::BackplaneError> {
        if !self.backplane.is_shared() {
            return Ok(());
        }
        tokio::spawn(self.outbox.clone().run(self.backplane.clone()));
        let backplane = self.backplane.clone();
        self.hub.on_interest(Box::new(move |uris| backplane.interest_changed(uris)));
        let handler = Handler { gateway: Arc::downgrade(self), store: StoreHealth::default() };
        self.backplane.subscribe(Arc::new(handler)).await
    }

    /// Brings the live inputs of the users among `uris` up to date before they are read, and
    /// keeps them so for a while (docs/architecture.md §5): at once for users this node follows;
    /// others are followed first. Fails, rather than answer what may be stale, when the backplane
    /// cannot do it now.
    pub(crate) async fn fresh<S: AsRef<str>>(&self, uris: &[S]) -> Result<(), GatewayError> {
        if !self.backplane.is_shared() {
            return Ok(());
        }
        let known = self.presences.known(uris);
        if known.is_empty() {
            return Ok(());
        }
        self.backplane.refresh(&known).await.map_err(|e| {
            tracing::warn!(error = %e, users = known.len(), "cannot bring users' live presence up to date");
            GatewayError::LiveStateUnavailable
        })
    }

    /// [`Gateway::fresh`], after making live the users among `uris` that the store has and this
    /// node had not heard of yet ([`Gateway::learn_users`]): what a read or a subscription of a
    /// user created on another node a moment ago needs. Not under a gate.
    pub(crate) async fn known_and_fresh<S: AsRef<str>>(&self, uris: &[S]) -> Result<(), GatewayError> {
        self.learn_users(uris).await?;
        self.fresh(uris).await
    }

    /// [`Gateway::known_and_fresh`] before something that is corrected later anyway: goes on
    /// without what failed.
    pub(crate) async fn known_and_fresh_or_later<S: AsRef<str>>(&self, uris: &[S]) {
        let _ = self.learn_users(uris).await; // a store failure is logged where it happens
        self.fresh_or_later(uris).await;
    }

    /// [`Gateway::fresh`] before something that is corrected later anyway (a subscription: the
    /// node follows what it watches and pushes what changed once in step): goes on without.
    pub(crate) async fn fresh_or_later<S: AsRef<str>>(&self, uris: &[S]) {
        let _ = self.fresh(uris).await;
    }

    /// Makes a change to a user's live inputs: on a shared backplane published, and applied and
    /// settled when it comes back (until then nothing here has changed, so settling now would
    /// render and compare every view for nothing); standalone applied and settled at once.
    pub(super) fn live_change(&self, uri: &str, live: &mut Live, change: LiveChange) {
        if self.backplane.is_shared() {
            self.outbox.push(&Arc::from(uri), change);
        } else {
            apply(live, change, self.backplane.node());
            self.settle(uri, live);
        }
    }

    /// After this node wrote `owner`'s rights: on a shared backplane, the marker that makes every
    /// other node read them before it applies what the owner's presentity does next.
    pub(super) fn rights_written(&self, owner: &str) {
        if self.backplane.is_shared() {
            let change = LiveChange::Rights { node: self.backplane.node().clone(), token: rand::random() };
            self.outbox.push(&Arc::from(owner), change);
        }
    }

    /// After this node changed a user's stored profile: on a shared backplane, the marker that
    /// makes every other node read it before it applies what any presentity does next.
    pub(super) fn profile_written(&self, uri: &str) {
        if self.backplane.is_shared() {
            let change = LiveChange::Profile { node: self.backplane.node().clone(), token: rand::random() };
            self.outbox.push(&Arc::from(uri), change);
        }
    }

    /// After this node wrote a global entry: on a shared backplane, the marker that makes every
    /// other node read the global entries before it applies what any presentity does next.
    pub(super) fn global_rights_written(&self) {
        if self.backplane.is_shared() {
            let change = LiveChange::GlobalRights { node: self.backplane.node().clone(), token: rand::random() };
            self.outbox.push(&Arc::from(crate::backplane::EVERY_OWNER), change);
        }
    }

    /// All signed-in clients of the user: this node's `local` ones (published when they changed)
    /// and every other live node's.
    pub(super) fn cluster_clients(&self, uri: &str, live: &mut Live, local: ClientActivity) -> ClientActivity {
        let counts = (local.signed_in as u32, local.idle as u32);
        if self.backplane.is_shared() && counts != live.cluster.published {
            live.cluster.published = counts;
            let node = self.backplane.node().clone();
            self.outbox.push(&Arc::from(uri), LiveChange::Sessions { node, signed_in: counts.0, idle: counts.1 });
        }
        live.cluster.remote.values().fold(local, |sum, (signed_in, idle)| ClientActivity {
            signed_in: sum.signed_in + *signed_in as usize,
            idle: sum.idle + *idle as usize,
        })
    }
}

impl Gateway {
    /// The user's sessions on every node: this node's, and the other nodes' as last published
    /// (what `limits.sessions_per_user` counts).
    pub(crate) fn sessions_everywhere(&self, user: &str) -> usize {
        let local = self.hub.sessions_of(user).len();
        let remote = |entry: Arc<super::presence::PresenceEntry>| -> usize {
            entry.live.lock().cluster.remote.values().map(|(signed_in, _)| *signed_in as usize).sum()
        };
        local + self.presence_entry(user).map(remote).unwrap_or(0)
    }
}

/// Applies one change to a presentity's inputs; true if anything changed.
fn apply(live: &mut Live, change: LiveChange, me: &NodeId) -> bool {
    let model = &mut live.model;
    match change {
        LiveChange::Sessions { node, .. } if node == *me => false,
        LiveChange::Sessions { node, signed_in: 0, .. } => live.cluster.remote.remove(&node).is_some(),
        LiveChange::Sessions { node, signed_in, idle } => {
            live.cluster.remote.insert(node, (signed_in, idle)) != Some((signed_in, idle))
        }
        LiveChange::Manual { manual, note } if model.manual == manual && model.note == note => false,
        LiveChange::Manual { manual, note } => {
            (model.manual, model.note) = (manual, note);
            true
        }
        LiveChange::Report { source, report } if model.reports.0.get(&source) == report.as_ref() => false,
        LiveChange::Report { source, report: Some(report) } => {
            model.set_report(&source, report);
            true
        }
        LiveChange::Report { source, report: None } => model.remove_report(&source),
        LiveChange::Rights { .. } | LiveChange::GlobalRights { .. } | LiveChange::Profile { .. } => false,
    }
}

/// Replaces a presentity's inputs with the backplane's; true if anything changed.
fn replace(live: &mut Live, inputs: LiveInputs, me: &NodeId) -> bool {
    let mut remote = inputs.sessions;
    remote.remove(me);
    let mut changed = remote != live.cluster.remote;
    live.cluster.remote = remote;
    if let Some((manual, note)) = inputs.manual {
        changed |= apply(live, LiveChange::Manual { manual, note }, me);
    }
    if live.model.reports.0 != inputs.reports {
        live.model.reports = Reports(inputs.reports);
        live.model.sources = live.model.reports.merge();
        changed = true;
    }
    changed
}

/// What the backplane delivers, applied to the gateway.
struct Handler {
    gateway: Weak<Gateway>,
    store: StoreHealth,
}

impl Handler {
    fn with_live(&self, uri: &str, change: impl FnOnce(&mut Live, &NodeId) -> bool) {
        let Some(gateway) = self.gateway.upgrade() else { return };
        let Some(entry) = gateway.presence_entry(uri) else { return };
        let mut live = entry.live.lock();
        if change(&mut live, gateway.backplane.node()) {
            gateway.settle(uri, &mut live);
        }
    }
}

impl Handler {
    /// Reads the owner's rights from the store unless this node holds those of the rights change
    /// `token` names already: it wrote them (`written_here`) or read them since. What the
    /// backplane brings next waits meanwhile — at most [`RIGHTS_READ_LIMIT`]: should the store
    /// fail, it goes on with the rights this node holds.
    async fn read_rights_of(&self, owner: &str, token: u64, written_here: bool) {
        let Some(gateway) = self.gateway.upgrade() else { return };
        let Some(entry) = gateway.presence_entry(owner) else { return };
        if entry.live.lock().cluster.rights == Some(token) {
            return;
        }
        if !written_here && !self.read_within(owner, || gateway.read_rights(owner)).await {
            return;
        }
        entry.live.lock().cluster.rights = Some(token);
    }

    /// Reads a user's profile again (a change on another node may have moved their groups),
    /// as [`Handler::read_rights_of`] reads rights.
    async fn reread_profile(&self, uri: &str) {
        let Some(gateway) = self.gateway.upgrade() else { return };
        self.read_within(uri, || gateway.read_profile(uri)).await;
    }

    /// A read of rights (`whose`: an owner's, the global ones, a watcher's profile), made again
    /// after a failure until [`RIGHTS_READ_LIMIT`] has passed; whether it was made. Not tried at
    /// all for a while after one gave up ([`StoreHealth`]).
    async fn read_within<F, Fut>(&self, whose: &str, read: F) -> bool
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = crate::store::StoreResult<()>>,
    {
        if !self.store.may_try(tokio::time::Instant::now()) {
            tracing::debug!(whose, "the store failed a moment ago; going on with the rights held");
            return false;
        }
        let deadline = tokio::time::Instant::now() + RIGHTS_READ_LIMIT;
        let mut pause = Duration::from_millis(20);
        loop {
            let error = match tokio::time::timeout_at(deadline, read()).await {
                Ok(Ok(())) => return true,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "the store did not answer in time".to_string(),
            };
            let now = tokio::time::Instant::now();
            if now + pause >= deadline {
                tracing::warn!(%error, whose, "cannot read rights changed on another node; going on with those held");
                self.store.gave_up(now);
                return false;
            }
            tracing::debug!(%error, whose, "reading rights changed on another node; trying again");
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
}

/// After a read of rights gave up, how long the next ones are not tried: a backplane that brings
/// many presentities in (a reconnection) must not wait [`RIGHTS_READ_LIMIT`] for each in turn
/// while the store is failing.
const STORE_REST: Duration = Duration::from_secs(5);

/// Whether reads of rights are tried now.
#[derive(Default)]
struct StoreHealth {
    failing_until: Mutex<Option<tokio::time::Instant>>,
}

impl StoreHealth {
    fn may_try(&self, now: tokio::time::Instant) -> bool {
        self.failing_until.lock().is_none_or(|until| now >= until)
    }

    fn gave_up(&self, now: tokio::time::Instant) {
        *self.failing_until.lock() = Some(now + STORE_REST);
    }
}

/// How long the backplane's changes wait for a read of an owner's rights.
const RIGHTS_READ_LIMIT: Duration = Duration::from_secs(2);

#[async_trait::async_trait]
impl ChangeHandler for Handler {
    async fn apply(&self, published: Published) {
        let written_here = |node: &NodeId| self.gateway.upgrade().is_some_and(|gw| gw.backplane.node() == node);
        match &published.change {
            LiveChange::Rights { node, token } => return self.read_rights_of(&published.uri, *token, written_here(node)).await,
            LiveChange::GlobalRights { node, .. } | LiveChange::Profile { node, .. } if written_here(node) => return,
            LiveChange::GlobalRights { .. } => return self.reread_global_rights().await,
            LiveChange::Profile { .. } => return self.reread_profile(&published.uri).await,
            _ => {}
        }
        self.with_live(&published.uri, |live, me| apply(live, published.change, me));
    }

    async fn replace(&self, uri: &str, inputs: LiveInputs) {
        if let Some(token) = inputs.rights {
            self.read_rights_of(uri, token, false).await;
        }
        self.with_live(uri, |live, me| replace(live, inputs, me));
    }

    async fn reread_global_rights(&self) {
        let Some(gateway) = self.gateway.upgrade() else { return };
        self.read_within("global", || gateway.read_global_rights()).await;
    }

    fn interested(&self, uri: &str) -> bool {
        self.gateway.upgrade().is_some_and(|gw| gw.hub.is_interested(uri))
    }

    fn interests(&self) -> Vec<Arc<str>> {
        self.gateway.upgrade().map(|gw| gw.hub.interests()).unwrap_or_default()
    }

    fn contribution(&self) -> Vec<Published> {
        let Some(gateway) = self.gateway.upgrade() else { return Vec::new() };
        let node = gateway.backplane.node().clone();
        let entries = gateway.presences.entries();
        let mut out = Vec::new();
        for (uri, entry) in entries {
            let live = entry.live.lock();
            let published = |change| Published { uri: uri.clone(), change };
            let (signed_in, idle) = live.cluster.published;
            if signed_in > 0 {
                out.push(published(LiveChange::Sessions { node: node.clone(), signed_in, idle }));
            }
            if live.model.manual.is_some() || live.model.note.is_some() {
                out.push(published(LiveChange::Manual { manual: live.model.manual.clone(), note: live.model.note.clone() }));
            }
            for (source, report) in &live.model.reports.0 {
                out.push(published(LiveChange::Report { source: source.clone(), report: Some(report.clone()) }));
            }
        }
        out
    }

    fn held_streams(&self) -> Vec<HeldStream> {
        let Some(gateway) = self.gateway.upgrade() else { return Vec::new() };
        let lifetime = Duration::from_secs(gateway.config.ticket_lifetime_seconds);
        let held = gateway.held_json_streams().into_iter();
        held.map(|(login, sid)| HeldStream { login, sid, lifetime }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::contact::Profile;
    use crate::model::presentity::Presentity;
    use crate::model::sources::{ManualKind, ManualState};

    fn live() -> Live {
        let profile = Arc::new(Profile { uri: "sip:bob@x.org".into(), ..Profile::default() });
        let model = Presentity::new(profile);
        Live {
            model,
            last_views: Default::default(),
            last_raw: Default::default(),
            last_json: Default::default(),
            cluster: ClusterInputs::default(),
            version: 0,
        }
    }

    #[test]
    fn changes_apply_once_and_this_node_s_own_counts_are_left_to_it() {
        let (me, other): (NodeId, NodeId) = (Arc::from("me"), Arc::from("other"));
        let mut live = live();
        assert!(!apply(&mut live, LiveChange::Sessions { node: me.clone(), signed_in: 3, idle: 0 }, &me));
        let theirs = LiveChange::Sessions { node: other.clone(), signed_in: 2, idle: 1 };
        assert!(apply(&mut live, theirs.clone(), &me));
        assert!(!apply(&mut live, theirs, &me), "the same change again changes nothing");
        let busy = LiveChange::Manual { manual: Some(ManualState::simple(ManualKind::Busy)), note: None };
        assert!(apply(&mut live, busy.clone(), &me) && !apply(&mut live, busy, &me));
        assert!(apply(&mut live, LiveChange::Sessions { node: other.clone(), signed_in: 0, idle: 0 }, &me));
        assert!(live.cluster.remote.is_empty());

        let mut inputs = LiveInputs::default();
        inputs.sessions.insert(me.clone(), (5, 0));
        inputs.sessions.insert(other.clone(), (1, 0));
        assert!(replace(&mut live, inputs.clone(), &me));
        assert_eq!(live.cluster.remote.keys().collect::<Vec<_>>(), vec![&other], "own counts come from this node");
        assert!(live.model.manual.is_some(), "no manual state in the backplane keeps the store's");
        assert!(!replace(&mut live, inputs, &me));
    }

    #[test]
    fn the_outbox_keeps_the_newest_change_of_each_part() {
        let outbox = Outbox::default();
        let uri: Arc<str> = Arc::from("sip:bob@x.org");
        let manual = |kind| LiveChange::Manual { manual: Some(ManualState::simple(kind)), note: None };
        outbox.push(&uri, manual(ManualKind::Busy));
        outbox.push(&uri, manual(ManualKind::Away));
        outbox.push(&uri, LiveChange::Report { source: "phone".into(), report: None });
        let batch = outbox.take();
        assert_eq!(batch.len(), 2);
        assert!(batch.iter().any(|(_, p)| p.change == manual(ManualKind::Away)));
        outbox.push(&uri, manual(ManualKind::DoNotDisturb));
        outbox.put_back(batch);
        let again = outbox.take();
        assert_eq!(again.len(), 2, "what failed goes back");
        assert!(again.iter().any(|(_, p)| p.change == manual(ManualKind::DoNotDisturb)), "but never over a newer change");
    }

    #[test]
    fn reads_of_rights_rest_a_while_after_one_gave_up() {
        let health = StoreHealth::default();
        let now = tokio::time::Instant::now();
        assert!(health.may_try(now));
        health.gave_up(now);
        assert!(!health.may_try(now + STORE_REST / 2), "the next presentities go on at once");
        assert!(health.may_try(now + STORE_REST), "then the store is tried again");
    }

    #[test]
    fn nothing_made_after_a_rights_change_goes_out_ahead_of_it() {
        let outbox = Outbox::default();
        let uri: Arc<str> = Arc::from("sip:bob@x.org");
        let rights = |token| LiveChange::Rights { node: Arc::from("me"), token };
        let note = |text: &str| LiveChange::Manual {
            manual: None,
            note: Some(crate::model::sources::Note { text: text.into(), expires: None }),
        };
        let kinds = |batch: &[(u64, Published)]| -> Vec<LiveChange> { batch.iter().map(|(_, p)| p.change.clone()).collect() };
        outbox.push(&uri, note("before"));
        outbox.push(&uri, rights(1));
        outbox.push(&uri, note("after"));
        outbox.push(&uri, rights(2));
        assert_eq!(kinds(&outbox.take()), [rights(2), note("after")], "the newest marker, in the first one's place");

        outbox.push(&uri, rights(3));
        outbox.push(&uri, note("later"));
        let failed = outbox.take();
        outbox.push(&uri, rights(4));
        outbox.push(&uri, note("latest"));
        outbox.put_back(failed);
        assert_eq!(kinds(&outbox.take()), [rights(4), note("latest")], "put back: the marker keeps the earlier place");
    }
}
