//! Changes made by other processes on the same store (another gateway, `presence-gateway user …`,
//! an admin call served elsewhere) reach this one: the store's change feed names what changed,
//! and each change is re-read from the store and applied exactly as a local change would be —
//! users appear, change or go (their sessions end), rights and group rights re-filter what every
//! watcher sees, a user's logins that ended in the store (a new password elsewhere) end here,
//! contact lists and subscribers reach the owner's sessions, images and durable
//! presence (manual state, note, raw categories, source reports) are recalculated and fanned out
//! — on a shared backplane the manual state, note and reports only through it, in its one order.
//! A presence notice names the part that changed, and only that part is re-read: raw categories,
//! or the live inputs — which need no read at all for a presentity followed on the backplane.
//! README "Using PostgreSQL" describes the guarantee.

use super::lists::newly_subscribed;
use super::users::StoredProfile;
use super::Gateway;
use crate::hub::event::{Event, EventBody};
use crate::model::reports::Reports;
use crate::model::rights::{AccessLevel, RightsEntry};
use crate::store::{Change, ChangeFeed, StoreResult};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Weak};

/// A presentity, a user watching it, and the level the user has on it.
pub(crate) type PairLevel = (Arc<str>, Arc<str>, AccessLevel);

/// The most notices taken from the feed at once.
const FEED_BATCH: usize = 1024;
/// How often a read of an owner's rights or a user's profile is made again when other installs
/// overtake it.
pub(super) const READ_ATTEMPTS: usize = 4;

/// Applies the feed's changes until the gateway or the feed goes away. Notices that queued up
/// meanwhile are taken together and each distinct one is applied once: applying re-reads the
/// current state, so a repeat adds nothing — and after a mass sign-in, where every new subscriber
/// of a user is one notice, re-reading that user's whole list once per notice grew with the
/// square of their subscribers.
pub(crate) async fn follow(gateway: Weak<Gateway>, mut feed: ChangeFeed) {
    let mut batch = Vec::with_capacity(FEED_BATCH);
    while feed.recv_many(&mut batch, FEED_BATCH).await > 0 {
        let Some(gw) = gateway.upgrade() else { return };
        for change in distinct(std::mem::take(&mut batch)) {
            if let Err(e) = gw.apply_change(&change).await {
                tracing::warn!(error = %e, ?change, "applying a change made by another process; re-reading everything");
                if let Err(e) = gw.apply_change(&Change::Everything).await {
                    tracing::error!(error = %e, "re-reading the store");
                }
            }
        }
    }
}

/// The distinct changes of `batch` in the order they first appear; only `Everything` when it
/// is among them (it re-reads all the rest).
fn distinct(batch: Vec<Change>) -> Vec<Change> {
    if batch.contains(&Change::Everything) {
        return vec![Change::Everything];
    }
    let mut seen = HashSet::with_capacity(batch.len());
    batch.into_iter().filter(|change| seen.insert(change.clone())).collect()
}

impl Gateway {
    /// Re-reads what `change` names and applies it.
    pub async fn apply_change(&self, change: &Change) -> StoreResult<()> {
        match change {
            Change::User(uri) => self.reload_user(uri).await,
            Change::Presence(uri) => self.reload_live_inputs(uri).await,
            Change::RawCategories(uri) => self.reload_raw_categories(uri).await,
            Change::Rights(owner) => self.reload_rights(owner).await,
            Change::GlobalRights => self.reload_global_rights().await,
            Change::ContactList(owner) => self.reload_contact_list(owner).await,
            Change::Subscribers(owner) => self.reload_subscribers(owner).await,
            Change::Subscriber(owner, watcher) => self.reload_subscriber(owner, watcher).await,
            Change::Image(uri) => self.reload_image(uri).await,
            Change::Everything => self.reload_everything().await,
        }
    }

    /// Reads what the store holds of a user beyond the profile (live inputs, raw categories,
    /// rights, contact list, subscribers, picture), as the notices that follow a new user's would:
    /// for a user made live before those notices arrive ([`Gateway::user_known`]). Applying the
    /// notices later changes nothing more.
    pub(super) async fn load_rest_of_user(&self, uri: &str) -> StoreResult<()> {
        self.reload_live_inputs(uri).await?;
        self.reload_raw_categories(uri).await?;
        self.reload_rights(uri).await?;
        self.reload_contact_list(uri).await?;
        self.reload_subscribers(uri).await?;
        self.reload_image(uri).await
    }

    async fn reload_user(&self, uri: &str) -> StoreResult<()> {
        // A new password or the removal ended the user's logins in the store: here too.
        let live = self.store.login_ids(uri).await?;
        self.tickets.keep_logins(uri, &live);
        match self.show_stored_profile(uri, true).await? {
            StoredProfile::Absent => {
                // Checked under every gate: `Gateway::user_known` may be making the user live.
                let _gate = self.gates.everyone().await;
                if self.directory.profile(uri).is_some() {
                    self.forget_user(uri);
                }
            }
            StoredProfile::Shown { new: true } => self.subscribers_of_new_user(uri).await,
            StoredProfile::Shown { new: false } | StoredProfile::Held => {}
        }
        Ok(())
    }

    /// Re-reads a user's live inputs (manual state, note, reports) after another process wrote
    /// one of them. Those of a presentity this node follows on a shared backplane are left to it,
    /// with no store read at all: they arrive there in one order on every node, while this read
    /// may be older than a change the backplane already brought (docs/architecture.md §5). Those
    /// of a presentity it does not follow come from the store, so they are current when the node
    /// publishes them again to a Redis that lost its data.
    async fn reload_live_inputs(&self, uri: &str) -> StoreResult<()> {
        if self.backplane.follows(uri) {
            return Ok(());
        }
        let stored = self.store.presence(uri).await?.unwrap_or_default();
        let reports = Reports(self.store.source_reports_of(uri, self.clock.now()).await?.into_iter().collect());
        let Some(entry) = self.presence_entry(uri) else { return Ok(()) };
        let _gate = entry.gate.lock().await;
        {
            let mut live = entry.live.lock();
            // Asked again under the lock: a follow that began meanwhile applies after this.
            if self.backplane.follows(uri) {
                return Ok(());
            }
            let model = &live.model;
            if model.manual == stored.manual && model.note == stored.note && model.reports == reports {
                return Ok(());
            }
            live.model.manual = stored.manual;
            live.model.note = stored.note;
            live.model.set_reports(reports);
        }
        self.refresh(uri);
        Ok(())
    }

    /// Re-reads a user's raw categories (on every node: no backplane carries them).
    async fn reload_raw_categories(&self, uri: &str) -> StoreResult<()> {
        let raw = self.store.raw_categories_of(uri).await?;
        let Some(entry) = self.presence_entry(uri) else { return Ok(()) };
        let _gate = entry.gate.lock().await;
        {
            let mut live = entry.live.lock();
            if live.model.raw == raw {
                return Ok(());
            }
            live.model.raw = raw;
        }
        self.refresh(uri);
        Ok(())
    }

    async fn reload_rights(&self, owner: &str) -> StoreResult<()> {
        let _gate = self.gates.owner(owner).await;
        self.read_rights(owner).await
    }

    /// Reads the owner's entries from the store and makes them this node's, announcing what
    /// changed. Needs no gate: a read overtaken by another install of the owner's entries (a read
    /// of its own, begun later, or this node's write) may be older than what that install holds,
    /// so it is not installed but made again — the entries this node holds only ever move forward
    /// in the store's history (docs/architecture.md §5, "Rights on several nodes").
    pub(crate) async fn read_rights(&self, owner: &str) -> StoreResult<()> {
        for _ in 0..READ_ATTEMPTS {
            let seen = self.directory.rights_stamp(owner);
            let stored = self.store.rights_of(owner).await?;
            let touched = changed_levels(&self.directory.rights_of(owner), &stored);
            if touched.is_empty() {
                return Ok(());
            }
            // The levels as they stand at `seen` (if anything was installed since, nothing is now).
            let before = self.watcher_levels(owner);
            if self.directory.replace_rights_if(owner, seen, stored).is_ok() {
                self.announce_rights(owner, before, &touched);
                return Ok(());
            }
        }
        tracing::warn!(owner, "an owner's rights kept changing while they were read; the next notice brings them");
        Ok(())
    }

    async fn reload_global_rights(&self) -> StoreResult<()> {
        let _gate = self.gates.everyone().await;
        self.read_global_rights().await
    }

    /// Reads the global entries from the store and makes them this node's in one step; every
    /// watcher whose level on anyone changed gets fresh snapshots. Needs no gate, as
    /// [`Gateway::read_rights`].
    pub(crate) async fn read_global_rights(&self) -> StoreResult<()> {
        for _ in 0..READ_ATTEMPTS {
            let seen = self.directory.global_stamp();
            let stored = self.store.global_rights().await?;
            if changed_levels(&self.directory.global_rights(), &stored).is_empty() {
                return Ok(());
            }
            // Every watcher's levels as they stand at `seen`, only when something changed.
            let before = self.pair_levels(self.hub.watch_pairs());
            if self.directory.replace_global_rights_if(seen, stored).is_ok() {
                self.resend_where_levels_moved(before);
                return Ok(());
            }
        }
        tracing::warn!("the global rights kept changing while they were read; the next notice brings them");
        Ok(())
    }

    async fn reload_contact_list(&self, owner: &str) -> StoreResult<()> {
        let _gate = self.gates.owner(owner).await;
        self.apply_stored_contact_list(owner).await
    }

    /// Reads the owner's list from the store and makes it live where it differs from this node's:
    /// the owner's sessions receive it whole. The caller holds the owner's gate.
    pub(super) async fn apply_stored_contact_list(&self, owner: &str) -> StoreResult<()> {
        let stored = self.store.contact_list(owner).await?.unwrap_or_default();
        let current = self.contact_list(owner);
        if stored == current {
            return Ok(());
        }
        let added = newly_subscribed(&current, &stored);
        let removed = newly_subscribed(&stored, &current);
        // The first snapshots of the new contacts show them as they are (README "Several nodes").
        self.fresh_for_auto_subscribe(owner, &added).await;
        let full = Event::new(EventBody::ContactList(Box::new(stored.clone())));
        self.lists.set_contact_list(owner, stored.clone());
        for session in self.hub.sessions_of(owner) {
            self.push(&session, full.clone(), None);
            if session.auto_subscribe_contacts {
                self.unwatch_uris(&session, &removed, None);
                self.watch_uris(&session, &added, None);
            }
        }
        Ok(())
    }

    async fn reload_subscribers(&self, owner: &str) -> StoreResult<()> {
        let _gate = self.gates.owner(owner).await;
        let stored = self.store.subscribers_of(owner).await?;
        let changed = self.lists.replace_subscribers(owner, stored);
        if !changed.is_empty() {
            self.announce_subscribers(owner, &changed);
        }
        Ok(())
    }

    /// Re-reads one subscriber of `owner` (one row, however many subscribe to them).
    async fn reload_subscriber(&self, owner: &str, watcher: &str) -> StoreResult<()> {
        let _gate = self.gates.owner(owner).await;
        let Some(acknowledged) = self.store.subscriber(owner, watcher).await? else { return Ok(()) };
        if self.lists.set_subscriber(owner, watcher, acknowledged) {
            self.announce_subscribers(owner, &[watcher.to_string()]);
        }
        Ok(())
    }

    async fn reload_image(&self, uri: &str) -> StoreResult<()> {
        let hash = self.store.image(uri, false).await?.map(|image| image.hash);
        let Some(entry) = self.presence_entry(uri) else { return Ok(()) };
        let same = entry.live.lock().model.image_hash == hash;
        if !same {
            self.set_image_hash(uri, hash);
        }
        Ok(())
    }

    /// Re-reads every part of the store (after the feed may have missed changes).
    async fn reload_everything(&self) -> StoreResult<()> {
        self.tickets.evict_all();
        let stored: HashSet<String> = self.store.users().await?.into_iter().map(|u| u.profile.uri).collect();
        for profile in self.directory.all_profiles() {
            if !stored.contains(&profile.uri) {
                self.reload_user(&profile.uri).await?;
            }
        }
        // Who may see what first: presence read below is then never shown at a level that was
        // given up meanwhile (a note set after a block, both missed, never reaches the blocked).
        let mut owners: HashSet<String> = self.store.rights().await?.into_iter().map(|(owner, _)| owner).collect();
        owners.extend(stored.iter().cloned());
        for owner in owners {
            self.reload_rights(&owner).await?;
        }
        self.reload_global_rights().await?;
        for uri in &stored {
            self.reload_user(uri).await?;
            self.reload_raw_categories(uri).await?;
            self.reload_live_inputs(uri).await?;
            self.reload_image(uri).await?;
            self.reload_contact_list(uri).await?;
            self.reload_subscribers(uri).await?;
        }
        Ok(())
    }
}

/// The levels whose membership differs between two sets of entries.
pub(crate) fn changed_levels(current: &[RightsEntry], stored: &[RightsEntry]) -> Vec<AccessLevel> {
    let mut touched = BTreeSet::new();
    for entry in current.iter().filter(|e| !stored.contains(e)) {
        touched.insert(entry.level);
    }
    for entry in stored.iter().filter(|e| !current.contains(e)) {
        touched.insert(entry.level);
    }
    touched.into_iter().collect()
}

impl Gateway {
    /// The current level of every user watching `owner`.
    pub(crate) fn watcher_levels(&self, owner: &str) -> HashMap<Arc<str>, AccessLevel> {
        let watchers: BTreeSet<Arc<str>> = self.hub.watchers_of(owner).iter().map(|s| s.user.clone()).collect();
        watchers.into_iter().map(|w| (w.clone(), self.directory.level(owner, &w))).collect()
    }

    /// The level each (presentity, watching user) pair has now, to compare with after a change
    /// that may move many of them ([`Gateway::resend_where_levels_moved`]).
    pub(crate) fn pair_levels(&self, pairs: Vec<(Arc<str>, Arc<str>)>) -> Vec<PairLevel> {
        pairs
            .into_iter()
            .map(|(owner, watcher)| {
                let level = self.directory.level(&owner, &watcher);
                (owner, watcher, level)
            })
            .collect()
    }

    /// Fresh snapshots to every watcher whose level on a presentity is no longer the one noted.
    pub(crate) fn resend_where_levels_moved(&self, before: Vec<PairLevel>) {
        for (owner, watcher, level) in before {
            if self.directory.level(&owner, &watcher) != level {
                self.resend_to_watcher(&owner, &watcher);
            }
        }
    }

    /// After the owner's entries changed: the `containers` event to the owner's sessions, fresh
    /// snapshots to every watcher whose level changed.
    pub(crate) fn announce_rights(&self, owner: &str, before: HashMap<Arc<str>, AccessLevel>, touched: &[AccessLevel]) {
        if !touched.is_empty() {
            let (entries, levels) = (self.directory.rights_of(owner).into(), touched.into());
            let event = Event::new(EventBody::Containers { entries, levels });
            for session in self.hub.sessions_of(owner) {
                self.push(&session, event.clone(), None);
            }
        }
        for (watcher, level) in before {
            if self.directory.level(owner, &watcher) != level {
                self.resend_to_watcher(owner, &watcher);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_notices_are_applied_once_each_in_first_order() {
        let subscribers = |owner: &str| Change::Subscribers(owner.to_string());
        let batch = vec![subscribers("a"), subscribers("a"), Change::Rights("b".into()), subscribers("a"), subscribers("c")];
        assert_eq!(distinct(batch), [subscribers("a"), Change::Rights("b".into()), subscribers("c")]);
        assert_eq!(distinct(vec![subscribers("a"), Change::Everything, subscribers("c")]), [Change::Everything]);
        // The two parts of a presence are two notices, each applied once.
        let (inputs, raw) = (Change::Presence("a".into()), Change::RawCategories("a".into()));
        assert_eq!(distinct(vec![inputs.clone(), raw.clone(), inputs.clone(), raw.clone()]), [inputs, raw]);
    }
}
