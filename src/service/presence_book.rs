//! Every known user's live presence entry, by URI: a private map behind a small API. An entry
//! exists from the moment a user is known (loaded, seeded, created, or learnt from another
//! process) until the user is removed; its key is the one interned URI the rest of the gateway
//! shares. The lock is short and never held across `.await`; an entry's own lock is taken by the
//! caller, after this one is released. The map's keys are known users (never a request's URI,
//! which is only looked up), hashed with a keyed hasher faster than SipHash: a query looks up
//! every URI it names.

use super::presence::PresenceEntry;
use crate::model::contact::Profile;
use crate::model::presentity::Presentity;
use foldhash::fast::RandomState;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Default)]
pub struct PresenceBook {
    entries: RwLock<HashMap<Arc<str>, Arc<PresenceEntry>, RandomState>>,
}

impl PresenceBook {
    pub fn get(&self, uri: &str) -> Option<Arc<PresenceEntry>> {
        self.entries.read().get(uri).cloned()
    }

    /// The interned URIs of those of `uris` that are known users.
    pub fn known<S: AsRef<str>>(&self, uris: &[S]) -> Vec<Arc<str>> {
        let entries = self.entries.read();
        uris.iter().filter_map(|uri| entries.get_key_value(uri.as_ref()).map(|(key, _)| key.clone())).collect()
    }

    /// Those of `uris` that are not known users (each once).
    pub fn unknown<'u, S: AsRef<str>>(&self, uris: &'u [S]) -> Vec<&'u str> {
        let entries = self.entries.read();
        let mut unknown: Vec<&str> = uris.iter().map(AsRef::as_ref).filter(|uri| !entries.contains_key(*uri)).collect();
        drop(entries);
        unknown.sort_unstable();
        unknown.dedup();
        unknown
    }

    /// Every known user's URI.
    pub fn uris(&self) -> Vec<Arc<str>> {
        self.entries.read().keys().cloned().collect()
    }

    /// Every entry with its URI (a copy of the pointers: the map is not held while they are used).
    pub fn entries(&self) -> Vec<(Arc<str>, Arc<PresenceEntry>)> {
        self.entries.read().iter().map(|(uri, entry)| (uri.clone(), entry.clone())).collect()
    }

    /// A new user gets an entry; a known one gets the new profile.
    pub fn put_profile(&self, profile: Arc<Profile>) {
        let uri: Arc<str> = Arc::from(profile.uri.as_str());
        let mut entries = self.entries.write();
        match entries.get(&uri) {
            Some(entry) => entry.live.lock().set_profile(profile),
            None => {
                entries.insert(uri, PresenceEntry::new(Presentity::new(profile)));
            }
        }
    }

    pub fn remove(&self, uri: &str) {
        self.entries.write().remove(uri);
    }
}
