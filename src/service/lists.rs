//! Contact lists and subscribers. A list change is validated, stored, then applied; every session
//! of the owner receives the `contactGroup` delta, and sessions that auto-subscribe follow the
//! list's `subscribed` contacts. Whoever subscribes to a user becomes that user's subscriber
//! (durable, with an acknowledged flag) and the user's sessions hear about it.

use super::gates::OwnerGate;
use super::Gateway;
use crate::error::{GatewayError, Result};
use crate::hub::event::{Event, EventBody, SubscriberView, SubscriptionState};
use crate::hub::session::{Admission, Session};
use crate::model::contacts::{Change, ContactList, ListError};
use std::collections::BTreeSet;
use std::sync::Arc;

/// How many times a contact-list operation is applied to the list the store holds before giving
/// up, when other nodes keep changing the list between its read and its write.
const LIST_WRITE_ATTEMPTS: usize = 4;

/// How a contact-list write ended.
enum ListWrite {
    Done,
    /// The store held another list; it is live now, and the owner's gate is handed back.
    Stale(OwnerGate),
}

/// The contacts `after` subscribes to and `before` does not.
pub(crate) fn newly_subscribed(before: &ContactList, after: &ContactList) -> Vec<Arc<str>> {
    let before: BTreeSet<&str> = before.subscribed_uris().collect();
    let after: BTreeSet<&str> = after.subscribed_uris().collect();
    after.difference(&before).map(|uri| Arc::from(*uri)).collect()
}

fn list_error(error: ListError) -> GatewayError {
    match error {
        ListError::Invalid(detail) => GatewayError::InvalidRequest(detail),
        ListError::Limit(detail) => GatewayError::LimitExceeded(detail),
        ListError::NotAllowed(detail) => GatewayError::InvalidOperation(detail),
    }
}

impl Gateway {
    /// A copy of the user's contact list (the default list when they have none yet).
    pub fn contact_list(&self, owner: &str) -> ContactList {
        self.lists.contact_list(owner)
    }

    /// Applies one contact-list operation for `owner`, all or nothing. Once the operation is
    /// valid, storing and applying it run to their end even if the request is abandoned.
    ///
    /// The operation is applied to the list the store holds: this node's copy is tried first, and
    /// where another node changed the list since (its notice still on the way) the store refuses
    /// the write, the stored list is made live here, and the operation is applied to it again.
    pub async fn change_contact_list(
        &self,
        owner: &str,
        op: impl Fn(&mut ContactList) -> Result<Vec<Change>, ListError>,
    ) -> Result<()> {
        let mut gate = self.gates.owner(owner).await;
        for _ in 0..LIST_WRITE_ATTEMPTS {
            let read = self.contact_list(owner);
            let mut list = read.clone();
            let changes = op(&mut list).map_err(list_error)?;
            let owner = owner.to_string();
            match self.complete(move |gw| gw.store_contact_list(owner, read, list, changes, gate)).await? {
                ListWrite::Done => return Ok(()),
                ListWrite::Stale(held) => gate = held,
            }
        }
        tracing::warn!(owner, "a contact list kept changing elsewhere while a change was written");
        Err(GatewayError::StoreUnavailable)
    }

    /// Stores `list` (made from `read`) with the subscriber rows it implies and makes it live;
    /// when the store holds another list than `read`, makes that one live instead and hands the
    /// gate back for another attempt.
    async fn store_contact_list(
        self: Arc<Self>,
        owner: String,
        read: ContactList,
        list: ContactList,
        changes: Vec<Change>,
        gate: OwnerGate,
    ) -> Result<ListWrite> {
        let known: BTreeSet<&str> = read.subscribed_uris().collect();
        let subscribes_to: Vec<String> = list
            .subscribed_uris()
            .filter(|uri| !known.contains(*uri) && self.is_new_subscriber(uri, &owner))
            .map(str::to_string)
            .collect();
        // The list and the subscriber rows it implies are one transaction.
        let saved = self.store.save_contact_list(&owner, Some(&read), &list, &subscribes_to).await;
        if !saved.map_err(|e| GatewayError::store("saving a contact list", e))? {
            let applied = self.apply_stored_contact_list(&owner).await;
            applied.map_err(|e| GatewayError::store("reading a contact list", e))?;
            return Ok(ListWrite::Stale(gate));
        }
        let added = newly_subscribed(&read, &list);
        // After the write, so nothing it waited for lapses before the sessions watch.
        self.fresh_for_auto_subscribe(&owner, &added).await;
        self.apply_contact_list(&owner, list, &changes);
        drop(gate); // a subscriber is noted under the gate of the user subscribed to
        for uri in &subscribes_to {
            self.note_subscriber(uri, &owner).await;
        }
        self.record_contacts_learnt(&owner, &added).await;
        Ok(ListWrite::Done)
    }

    /// Records `owner` as a subscriber of the contacts among `added` that this node had not heard
    /// of when the list was stored but the store has (created on another node a moment ago): once
    /// learnt, as a subscription would. The list is stored already; a failure here is logged.
    async fn record_contacts_learnt(&self, owner: &str, added: &[Arc<str>]) {
        if let Ok(learnt) = self.learn_users(added).await {
            let _ = self.record_subscriptions(owner, &learnt).await;
        }
    }

    /// Before the owner's sessions that auto-subscribe start watching `added`, brings those
    /// contacts up to date ([`Gateway::fresh_or_later`]): their first snapshot shows their current
    /// state also when this node did not follow them yet (README "Several nodes").
    pub(crate) async fn fresh_for_auto_subscribe(&self, owner: &str, added: &[Arc<str>]) {
        if !added.is_empty() && self.hub.sessions_of(owner).iter().any(|s| s.auto_subscribe_contacts) {
            self.fresh_or_later(added).await;
        }
    }

    /// Makes a stored list live: every session of the owner receives the delta, and sessions that
    /// auto-subscribe follow its `subscribed` contacts.
    fn apply_contact_list(&self, owner: &str, list: ContactList, changes: &[Change]) {
        let current = self.contact_list(owner);
        let added = newly_subscribed(&current, &list);
        let removed = newly_subscribed(&list, &current);
        let delta = Event::new(EventBody::ContactListDelta { delta_num: list.delta_num, changes: changes.into() });
        self.lists.set_contact_list(owner, list);
        for session in self.hub.sessions_of(owner) {
            self.push(&session, delta.clone(), None);
            if session.auto_subscribe_contacts {
                self.unwatch_uris(&session, &removed, None);
                self.watch_uris(&session, &added, None);
            }
        }
    }

    /// Subscribes a session to presentities (up to its limit) and queues their snapshots. The
    /// subscription state is an answer of the command when `answers` is given.
    pub(crate) fn watch_uris(&self, session: &Arc<Session>, uris: &[Arc<str>], answers: Option<&mut Admission<'_>>) -> bool {
        let limit = self.config.limits.subscriptions_per_session;
        let uris = &self.hub.intern(uris);
        let Some(new) = session.subscribe(uris, limit) else { return false };
        self.hub.watch(session, &new);
        if !uris.is_empty() {
            let states = EventBody::SubscriptionStates { uris: uris.as_slice().into(), state: SubscriptionState::Subscribed };
            self.push_or_answer(session, answers, Event::new(states));
        }
        for uri in uris {
            self.queue_snapshot(session, uri);
        }
        true
    }

    pub(crate) fn unwatch_uris(&self, session: &Session, uris: &[Arc<str>], answers: Option<&mut Admission<'_>>) {
        let removed = session.unsubscribe(uris);
        self.hub.unwatch(session, &removed);
        if !uris.is_empty() {
            let states = EventBody::SubscriptionStates { uris: uris.into(), state: SubscriptionState::Terminated };
            self.push_or_answer(session, answers, Event::new(states));
        }
    }

    fn push_or_answer(&self, session: &Session, answers: Option<&mut Admission<'_>>, payload: Arc<Event>) {
        match answers {
            Some(answers) => self.answer(answers, payload),
            None => self.push(session, payload, None),
        }
    }

    /// The user's subscribers as the `subscribers` event shows them.
    pub(crate) fn subscriber_views(&self, owner: &str, only: Option<&[String]>) -> Vec<SubscriberView> {
        let list = self.lists.subscribers_of(owner);
        list.iter()
            .filter(|(watcher, _)| only.is_none_or(|o| o.contains(watcher)))
            .map(|(watcher, acknowledged)| SubscriberView {
                uri: watcher.clone(),
                display_name: self.directory.profile(watcher).map(|p| p.display_name.clone()).unwrap_or_default(),
                same_enterprise: self.directory.same_enterprise(owner, watcher),
                acknowledged: *acknowledged,
            })
            .collect()
    }

    pub(crate) fn queue_subscribers(&self, session: &Session) {
        self.push(session, self.subscribers_event(&session.user), None);
    }

    /// Every subscriber of `owner` as one subscribers event.
    pub(crate) fn subscribers_event(&self, owner: &str) -> Arc<Event> {
        Event::new(EventBody::Subscribers(self.subscriber_views(owner, None).into()))
    }

    /// Notes that `watcher` subscribes to each of `owners`: new subscribers are stored and
    /// announced, to the end even if the request is abandoned.
    pub(crate) async fn record_subscriptions<S: AsRef<str>>(&self, watcher: &str, owners: &[S]) -> Result<()> {
        let owners: Vec<String> =
            owners.iter().map(AsRef::as_ref).filter(|o| self.is_new_subscriber(o, watcher)).map(str::to_string).collect();
        if owners.is_empty() {
            return Ok(());
        }
        let watcher = watcher.to_string();
        self.complete(move |gw| async move { gw.record_subscribers(&owners, &watcher).await }).await
    }

    /// A user became known here (created, or heard of from the store): whoever has them on their
    /// contact list, subscribed, or watches them in a session already, becomes their subscriber,
    /// as on subscribing now — to the end even if the request that found the user is abandoned
    /// (nothing would find them new again). Failures are logged: the next subscription records
    /// them again.
    pub(crate) async fn subscribers_of_new_user(&self, uri: &str) {
        let mut watchers = self.lists.listing_subscribed(uri);
        watchers.extend(self.hub.watchers_of(uri).iter().map(|session| session.user.to_string()));
        watchers.retain(|watcher| self.is_new_subscriber(uri, watcher));
        if watchers.is_empty() {
            return;
        }
        watchers.sort_unstable();
        watchers.dedup();
        let owners = [uri.to_string()];
        let _ = self
            .complete(move |gw| async move {
                for watcher in watchers {
                    if let Err(e) = gw.record_subscribers(&owners, &watcher).await {
                        tracing::warn!(error = %e, user = owners[0], watcher, "recording a subscriber of a new user");
                    }
                }
                Ok(())
            })
            .await;
    }

    fn is_new_subscriber(&self, owner: &str, watcher: &str) -> bool {
        let known = self.directory.profile(owner).is_some() && self.directory.profile(watcher).is_some();
        known && !self.lists.is_subscriber(owner, watcher) && owner != watcher
    }

    /// Checks, stores and announces `watcher` as a subscriber of `owners` under their gates, so
    /// that concurrent subscribes record each once; those not yet recorded are stored in one
    /// transaction, all or none. Callers run it on a task that completes.
    async fn record_subscribers(&self, owners: &[String], watcher: &str) -> Result<()> {
        let names: Vec<&str> = owners.iter().map(String::as_str).collect();
        let _gates = self.gates.owners(&names).await;
        let new: Vec<(&str, &str)> =
            names.into_iter().filter(|o| self.is_new_subscriber(o, watcher)).map(|o| (o, watcher)).collect();
        if new.is_empty() {
            return Ok(());
        }
        self.store.save_subscribers(&new, false).await.map_err(|e| GatewayError::store("saving subscribers", e))?;
        for (owner, _) in new {
            self.lists.add_subscriber(owner, watcher);
            self.announce_subscribers(owner, &[watcher.to_string()]);
        }
        Ok(())
    }

    /// Makes a subscriber already stored (with a contact list) live, once, and announces it.
    async fn note_subscriber(&self, owner: &str, watcher: &str) {
        let _gate = self.gates.owner(owner).await;
        if self.is_new_subscriber(owner, watcher) {
            self.lists.add_subscriber(owner, watcher);
            self.announce_subscribers(owner, &[watcher.to_string()]);
        }
    }

    /// Tells every session of `owner` about these subscribers (new, or acknowledged).
    pub(super) fn announce_subscribers(&self, owner: &str, watchers: &[String]) {
        let event = Event::new(EventBody::Subscribers(self.subscriber_views(owner, Some(watchers)).into()));
        for session in self.hub.sessions_of(owner) {
            self.push(&session, event.clone(), None);
        }
    }

    /// Marks subscribers as acknowledged (all must be subscribers) and tells every session. One
    /// this node has not heard of is looked up in the store: another node may have recorded them
    /// a moment ago.
    pub async fn acknowledge_subscribers(&self, owner: &str, watchers: &[String]) -> Result<()> {
        let gate = self.gates.owner(owner).await;
        for watcher in watchers.iter().filter(|w| !self.lists.is_subscriber(owner, w)) {
            let stored = self.store.subscriber(owner, watcher).await;
            if stored.map_err(|e| GatewayError::store("reading subscribers", e))?.is_none() {
                return Err(GatewayError::InvalidRequest(format!("{watcher} is not a subscriber")));
            }
        }
        let (owner, watchers) = (owner.to_string(), watchers.to_vec());
        self.complete(move |gw| async move {
            let _gate = gate;
            let pairs: Vec<(&str, &str)> = watchers.iter().map(|w| (owner.as_str(), w.as_str())).collect();
            gw.store.save_subscribers(&pairs, true).await.map_err(|e| GatewayError::store("saving subscribers", e))?;
            for watcher in &watchers {
                gw.lists.set_subscriber(&owner, watcher, true);
            }
            gw.announce_subscribers(&owner, &watchers);
            Ok(())
        })
        .await
    }
}
