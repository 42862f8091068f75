//! Contact lists and subscribers. A list change is validated, stored, then applied; every session
//! of the owner receives the `contactGroup` delta, and sessions that auto-subscribe follow the
//! list's `subscribed` contacts. Whoever subscribes to a user becomes that user's subscriber
//! (durable, with an acknowledged flag) and the user's sessions hear about it.

use super::Gateway;
use crate::cwa::envelope::EventPayload;
use crate::cwa::lists::{self, SubscriberView};
use crate::error::{GatewayError, Result};
use crate::hub::session::Session;
use crate::model::contacts::{Change, ContactList, ListError};
use std::collections::BTreeSet;
use std::sync::Arc;

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
        self.contact_lists.read().get(owner).cloned().unwrap_or_default()
    }

    /// Applies one contact-list operation for `owner`, all or nothing.
    pub async fn change_contact_list(
        &self,
        owner: &str,
        op: impl FnOnce(&mut ContactList) -> Result<Vec<Change>, ListError>,
    ) -> Result<()> {
        let _gate = self.lists_gate.lock().await;
        let mut list = self.contact_list(owner);
        let before: BTreeSet<String> = list.subscribed_uris().map(str::to_string).collect();
        let changes = op(&mut list).map_err(list_error)?;
        let after: BTreeSet<String> = list.subscribed_uris().map(str::to_string).collect();
        let subscribes_to: Vec<String> =
            after.difference(&before).filter(|uri| self.is_new_subscriber(uri, owner)).cloned().collect();
        // The list and the subscriber rows it implies are one transaction.
        self.store
            .save_contact_list(owner, &list, &subscribes_to)
            .await
            .map_err(|e| GatewayError::store("saving a contact list", e))?;
        self.contact_lists.write().insert(owner.to_string(), list.clone());
        let delta = Arc::new(lists::contact_group_delta(list.delta_num, &changes));
        let added: Vec<Arc<str>> = after.difference(&before).map(|u| Arc::from(u.as_str())).collect();
        let removed: Vec<Arc<str>> = before.difference(&after).map(|u| Arc::from(u.as_str())).collect();
        for session in self.hub.sessions_of(owner) {
            self.push(&session, delta.clone(), None);
            if session.auto_subscribe_contacts {
                self.unwatch_uris(&session, &removed);
                self.watch_uris(&session, &added);
            }
        }
        for uri in &subscribes_to {
            self.note_subscriber(uri, owner);
        }
        Ok(())
    }

    /// Subscribes a session to presentities (up to its limit) and queues their snapshots.
    pub(crate) fn watch_uris(&self, session: &Arc<Session>, uris: &[Arc<str>]) -> bool {
        let limit = self.config.limits.subscriptions_per_session;
        let Some(new) = session.subscribe(uris, limit) else { return false };
        self.hub.watch(session, &new);
        if !uris.is_empty() {
            let states: Vec<(&str, &str)> = uris.iter().map(|u| (&**u, "subscribed")).collect();
            self.push(session, Arc::new(EventPayload::subscription_state(&states)), None);
        }
        for uri in uris {
            self.queue_snapshot(session, uri);
        }
        true
    }

    pub(crate) fn unwatch_uris(&self, session: &Session, uris: &[Arc<str>]) {
        let removed = session.unsubscribe(uris);
        self.hub.unwatch(session, &removed);
        if !uris.is_empty() {
            let states: Vec<(&str, &str)> = uris.iter().map(|u| (&**u, "terminated")).collect();
            self.push(session, Arc::new(EventPayload::subscription_state(&states)), None);
        }
    }

    /// The user's subscribers as the `subscribers` event shows them.
    pub(crate) fn subscriber_views(&self, owner: &str, only: Option<&[String]>) -> Vec<SubscriberView> {
        let subscribers = self.subscribers.read();
        let list = subscribers.get(owner).map(Vec::as_slice).unwrap_or(&[]);
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
        let views = self.subscriber_views(&session.user, None);
        self.push(session, Arc::new(lists::subscribers(&views)), None);
    }

    /// Notes that `watcher` subscribes to `owner`; new subscribers are stored and announced.
    pub(crate) async fn record_subscriber(&self, owner: &str, watcher: &str) -> Result<()> {
        if !self.is_new_subscriber(owner, watcher) {
            return Ok(());
        }
        self.store.save_subscriber(owner, watcher, false).await.map_err(|e| GatewayError::store("saving a subscriber", e))?;
        self.note_subscriber(owner, watcher);
        Ok(())
    }

    /// Whether `watcher` would be a new subscriber of `owner` (both exist and differ).
    fn is_new_subscriber(&self, owner: &str, watcher: &str) -> bool {
        let known = self.directory.profile(owner).is_some() && self.directory.profile(watcher).is_some();
        let already = self.subscribers.read().get(owner).is_some_and(|l| l.iter().any(|(w, _)| w == watcher));
        known && !already && owner != watcher
    }

    /// Adds a stored subscriber to memory and tells the owner's sessions.
    fn note_subscriber(&self, owner: &str, watcher: &str) {
        let mut subscribers = self.subscribers.write();
        let list = subscribers.entry(owner.to_string()).or_default();
        if list.iter().any(|(w, _)| w == watcher) {
            return;
        }
        list.push((watcher.to_string(), false));
        drop(subscribers);
        let event = Arc::new(lists::subscribers(&self.subscriber_views(owner, Some(&[watcher.to_string()]))));
        for session in self.hub.sessions_of(owner) {
            self.push(&session, event.clone(), None);
        }
    }

    /// Marks subscribers as acknowledged (all must be subscribers) and tells every session.
    pub async fn acknowledge_subscribers(&self, owner: &str, watchers: &[String]) -> Result<()> {
        let _gate = self.lists_gate.lock().await;
        let current = self.subscribers.read().get(owner).cloned().unwrap_or_default();
        if let Some(unknown) = watchers.iter().find(|w| !current.iter().any(|(c, _)| c == *w)) {
            return Err(GatewayError::InvalidRequest(format!("{unknown} is not a subscriber")));
        }
        for watcher in watchers {
            self.store.save_subscriber(owner, watcher, true).await.map_err(|e| GatewayError::store("saving a subscriber", e))?;
        }
        if let Some(list) = self.subscribers.write().get_mut(owner) {
            list.iter_mut().filter(|(w, _)| watchers.contains(w)).for_each(|(_, ack)| *ack = true);
        }
        let event = Arc::new(lists::subscribers(&self.subscriber_views(owner, Some(watchers))));
        for session in self.hub.sessions_of(owner) {
            self.push(&session, event.clone(), None);
        }
        Ok(())
    }
}
