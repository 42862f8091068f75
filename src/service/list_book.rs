//! The contact lists and subscriber lists the gateway holds in memory, behind a small API: who
//! is on whose list, who subscribes to whom and whether the owner acknowledged it. Private maps,
//! short locks, never held across `.await`. Storing, gating and announcing changes is the
//! business of `service::lists` and `service::sync`, which call this.

use crate::model::contacts::ContactList;
use parking_lot::RwLock;
use std::collections::HashMap;

/// A subscriber of an owner: the watcher's URI and whether the owner acknowledged them.
pub type Subscriber = (String, bool);

#[derive(Default)]
pub struct ListBook {
    contact_lists: RwLock<HashMap<String, ContactList>>,
    /// owner → (watcher, acknowledged)
    subscribers: RwLock<HashMap<String, Vec<Subscriber>>>,
}

impl ListBook {
    /// Replaces everything (at start, from the store).
    pub fn load(&self, lists: HashMap<String, ContactList>, subscribers: HashMap<String, Vec<Subscriber>>) {
        *self.contact_lists.write() = lists;
        *self.subscribers.write() = subscribers;
    }

    /// A copy of the user's contact list (the default list when they have none yet).
    pub fn contact_list(&self, owner: &str) -> ContactList {
        self.contact_lists.read().get(owner).cloned().unwrap_or_default()
    }

    pub fn set_contact_list(&self, owner: &str, list: ContactList) {
        self.contact_lists.write().insert(owner.to_string(), list);
    }

    /// The owners whose contact list has `uri` as a subscribed entry.
    pub fn listing_subscribed(&self, uri: &str) -> Vec<String> {
        let lists = self.contact_lists.read();
        lists.iter().filter(|(_, list)| list.subscribed_uris().any(|u| u == uri)).map(|(owner, _)| owner.clone()).collect()
    }

    /// The owner's subscribers, in the order they subscribed.
    pub fn subscribers_of(&self, owner: &str) -> Vec<Subscriber> {
        self.subscribers.read().get(owner).cloned().unwrap_or_default()
    }

    pub fn is_subscriber(&self, owner: &str, watcher: &str) -> bool {
        self.subscribers.read().get(owner).is_some_and(|l| l.iter().any(|(w, _)| w == watcher))
    }

    /// Adds a subscriber, not yet acknowledged (the caller checked it is new).
    pub fn add_subscriber(&self, owner: &str, watcher: &str) {
        self.subscribers.write().entry(owner.to_string()).or_default().push((watcher.to_string(), false));
    }

    /// Puts one subscriber as stored (added, or its acknowledgement set); true if that changed
    /// anything.
    pub fn set_subscriber(&self, owner: &str, watcher: &str, acknowledged: bool) -> bool {
        let mut subscribers = self.subscribers.write();
        let list = subscribers.entry(owner.to_string()).or_default();
        match list.iter_mut().find(|(w, _)| w == watcher) {
            Some((_, ack)) if *ack == acknowledged => false,
            Some((_, ack)) => {
                *ack = acknowledged;
                true
            }
            None => {
                list.push((watcher.to_string(), acknowledged));
                true
            }
        }
    }

    /// Puts the owner's subscribers as stored; returns the watchers that are new or changed.
    pub fn replace_subscribers(&self, owner: &str, stored: Vec<Subscriber>) -> Vec<String> {
        let mut subscribers = self.subscribers.write();
        let current = subscribers.get(owner).map(Vec::as_slice).unwrap_or(&[]);
        let changed = stored.iter().filter(|s| !current.contains(s)).map(|(w, _)| w.clone()).collect();
        subscribers.insert(owner.to_string(), stored);
        changed
    }

    /// Forgets a deleted user: their list, their subscribers, and them as anyone's subscriber.
    pub fn remove_user(&self, uri: &str) {
        self.contact_lists.write().remove(uri);
        let mut subscribers = self.subscribers.write();
        subscribers.remove(uri);
        subscribers.values_mut().for_each(|list| list.retain(|(watcher, _)| watcher != uri));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_are_added_acknowledged_replaced_and_forgotten() {
        let book = ListBook::default();
        book.add_subscriber("sip:bob@x", "sip:alice@x");
        assert!(book.is_subscriber("sip:bob@x", "sip:alice@x"));
        assert!(book.set_subscriber("sip:bob@x", "sip:alice@x", true));
        assert_eq!(book.subscribers_of("sip:bob@x"), [("sip:alice@x".to_string(), true)]);
        let changed = book.replace_subscribers("sip:bob@x", vec![("sip:alice@x".into(), true), ("sip:carol@x".into(), false)]);
        assert_eq!(changed, ["sip:carol@x"]);
        book.remove_user("sip:carol@x");
        assert_eq!(book.subscribers_of("sip:bob@x"), [("sip:alice@x".to_string(), true)]);
        book.remove_user("sip:bob@x");
        assert!(book.subscribers_of("sip:bob@x").is_empty());
    }

    #[test]
    fn one_subscriber_is_set_as_stored_and_says_whether_that_changed_anything() {
        let book = ListBook::default();
        assert!(book.set_subscriber("sip:bob@x", "sip:alice@x", false), "new");
        assert!(!book.set_subscriber("sip:bob@x", "sip:alice@x", false), "the same again");
        assert!(book.set_subscriber("sip:bob@x", "sip:alice@x", true), "acknowledged");
        assert!(book.set_subscriber("sip:bob@x", "sip:carol@x", false));
        assert_eq!(book.subscribers_of("sip:bob@x"), [("sip:alice@x".to_string(), true), ("sip:carol@x".to_string(), false)]);
    }
}
