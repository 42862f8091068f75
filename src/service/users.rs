//! Creating, updating and deleting users while the gateway runs.

use super::directory::Stamp;
use super::mandates::{Duty, Mandate};
use super::Gateway;
use crate::error::{GatewayError, Result};
use crate::hub::event::{Audience, Event, EventBody};
use crate::model::contact::Profile;
use crate::model::presentity::PresenceView;
use crate::store::UserRecord;
use std::sync::Arc;

/// What [`Gateway::show_stored_profile`] found.
pub(crate) enum StoredProfile {
    /// No such user in the store.
    Absent,
    /// Nothing to show: the profile held is the store's (or the user is not held and was not
    /// to be made so), or reads kept being overtaken and the next notice brings it.
    Held,
    /// Shown; `new` when the user was not held before.
    Shown { new: bool },
}

impl Gateway {
    /// Stores a user (a `None` hash keeps the password) and makes the profile live; watchers see
    /// the new contact card at once. Runs to its end even if the request is abandoned.
    pub async fn upsert_user(&self, mandate: &Mandate, record: &UserRecord) -> Result<()> {
        mandate.check(Duty::Users)?;
        let record = record.clone();
        self.complete(move |gw| async move {
            gw.store.upsert_user(&record).await.map_err(|e| GatewayError::store("saving a user", e))?;
            let new = gw.directory.profile(&record.profile.uri).is_none();
            if !new {
                gw.profile_written(&record.profile.uri);
            }
            gw.make_user_live(&record);
            if new {
                gw.subscribers_of_new_user(&record.profile.uri).await;
            }
            Ok(())
        })
        .await
    }

    /// Stores a new user and makes them live, as [`Gateway::upsert_user`]; `false`, changing
    /// nothing, when the store holds a user with that URI (created on another node, perhaps, whose
    /// notice has not reached this one).
    pub async fn create_user(&self, mandate: &Mandate, record: &UserRecord) -> Result<bool> {
        mandate.check(Duty::Users)?;
        let record = record.clone();
        self.complete(move |gw| async move {
            if !gw.store.create_user(&record).await.map_err(|e| GatewayError::store("saving a user", e))? {
                return Ok(false);
            }
            gw.make_user_live(&record);
            gw.subscribers_of_new_user(&record.profile.uri).await;
            Ok(true)
        })
        .await
    }

    /// Whether a user has this URI: this node's copy says so, or else the store does (the user may
    /// have been created on another node a moment ago, its notice still on its way), and then the
    /// user is made live here at once, with everything the store holds of them, as the user's
    /// notices would (docs/architecture.md §5). The user's rights are in place before the user can
    /// be seen: a request that finds the user live meanwhile (another request reading the same user
    /// in) never shows them at a watcher's default level to one they blocked. The profile is read
    /// under the user's gate: the feed takes every gate before it forgets a removed user, so a
    /// removal cannot be applied between this read and the user being made live.
    pub async fn user_known(&self, uri: &str) -> Result<bool> {
        if self.user_exists(uri) {
            return Ok(true);
        }
        let seen = self.directory.rights_stamp(uri);
        let rights = self.store.rights_of(uri).await.map_err(|e| GatewayError::store("reading a user's rights", e))?;
        let gate = self.gates.owner(uri).await;
        let stored = self.store.user(uri).await.map_err(|e| GatewayError::store("reading a user", e))?;
        let Some(record) = stored else { return Ok(false) };
        if self.user_exists(uri) {
            return Ok(true);
        }
        // Rights installed here meanwhile may be newer than the ones read above: those stand.
        let _ = self.directory.replace_rights_if(uri, seen, rights);
        self.show_profile(record.profile);
        drop(gate); // the rest is read under the gates its parts are written under
        self.load_rest_of_user(uri).await.map_err(|e| GatewayError::store("reading a user's data", e))?;
        self.subscribers_of_new_user(uri).await;
        Ok(true)
    }

    /// Makes live here those of `uris` this node's copy lacks but the store has (created on
    /// another node a moment ago), as [`Gateway::user_known`] does for one: a URI no user has
    /// costs one statement for all of them, a stored user one more read under their gate.
    /// Callers hold no gate. Returns the users the store had (now live here).
    pub(crate) async fn learn_users<S: AsRef<str>>(&self, uris: &[S]) -> Result<Vec<String>> {
        let unknown = self.presences.unknown(uris);
        if unknown.is_empty() {
            return Ok(Vec::new());
        }
        let stored = self.store.users_among(&unknown).await.map_err(|e| GatewayError::store("reading users", e))?;
        for uri in &stored {
            self.user_known(uri).await?;
        }
        Ok(stored)
    }

    fn make_user_live(&self, record: &UserRecord) {
        if record.password_hash.is_some() {
            self.tickets.evict_user(&record.profile.uri);
        }
        self.show_profile(record.profile.clone());
    }

    /// Makes a stored profile (new or changed) this node's, and shows it to every watcher. When
    /// the user's groups changed, so may the user's level wherever the global or an owner's
    /// entries name a group: the user's sessions get fresh snapshots of every presentity they
    /// watch whose level for them changed, as after any change of rights.
    pub(crate) fn show_profile(&self, profile: Profile) {
        self.show_profile_by(profile, |gateway, profile| {
            gateway.add_user(profile);
            true
        });
    }

    /// [`show_profile`](Self::show_profile) of a profile read from the store, if nothing was
    /// installed since `seen`, the stamp taken before the read; `false` when something was (the
    /// read may be older than what is held: read again).
    pub(crate) fn show_read_profile(&self, seen: Stamp, profile: Profile) -> bool {
        self.show_profile_by(profile, |gateway, profile| gateway.add_user_if(seen, profile))
    }

    /// Shows `profile` if `install` makes it live: everyone watching the user gets it, and when
    /// the user's groups changed, the user gets fresh snapshots wherever their level moved.
    fn show_profile_by(&self, profile: Profile, install: impl FnOnce(&Gateway, Arc<Profile>) -> bool) -> bool {
        let uri = profile.uri.clone();
        let regrouped = self.directory.profile(&uri).is_some_and(|old| old.groups != profile.groups);
        let before = if regrouped { self.pair_levels(self.watched_by(&uri)) } else { Vec::new() };
        if !install(self, Arc::new(profile)) {
            return false;
        }
        self.refresh(&uri);
        self.resend_where_levels_moved(before);
        true
    }

    /// Reads a known user's profile from the store again and shows it if it changed (a removed
    /// or new user is the store feed's to apply).
    pub(crate) async fn read_profile(&self, uri: &str) -> crate::store::StoreResult<()> {
        self.show_stored_profile(uri, false).await.map(drop)
    }

    /// Reads `uri`'s profile from the store and shows it if it differs from the one held (a user
    /// not held only when `new_users`). A read that began before another install of the profile
    /// is made again, so an older read never puts back what a later one replaced
    /// (docs/architecture.md §5, "Rights on several nodes").
    pub(crate) async fn show_stored_profile(&self, uri: &str, new_users: bool) -> crate::store::StoreResult<StoredProfile> {
        for _ in 0..super::sync::READ_ATTEMPTS {
            let seen = self.directory.profile_stamp(uri);
            let Some(record) = self.store.user(uri).await? else { return Ok(StoredProfile::Absent) };
            let known = self.directory.profile(uri);
            if known.as_deref() == Some(&record.profile) || (known.is_none() && !new_users) {
                return Ok(StoredProfile::Held);
            }
            if self.show_read_profile(seen, record.profile) {
                return Ok(StoredProfile::Shown { new: known.is_none() });
            }
        }
        tracing::warn!(uri, "a user's profile kept changing while it was read; the next notice brings it");
        Ok(StoredProfile::Held)
    }

    /// Each presentity `watcher`'s sessions watch, paired with the watcher.
    fn watched_by(&self, watcher: &str) -> Vec<(Arc<str>, Arc<str>)> {
        let mut watched: Vec<Arc<str>> = self.hub.sessions_of(watcher).iter().flat_map(|s| s.subscriptions()).collect();
        watched.sort_unstable();
        watched.dedup();
        let watcher: Arc<str> = Arc::from(watcher);
        watched.into_iter().map(|owner| (owner, watcher.clone())).collect()
    }

    /// Removes a user: their sessions and tickets end, every watcher gets a final offline
    /// snapshot, and their data goes. False when the store had no such user (this node's copy
    /// does not decide: the user may have been created on another node a moment ago).
    pub async fn delete_user(&self, mandate: &Mandate, uri: &str) -> Result<bool> {
        mandate.check(Duty::Users)?;
        let gate = self.gates.everyone().await;
        let uri = uri.to_string();
        self.complete(move |gw| async move {
            let _gate = gate;
            if !gw.store.remove_user(&uri).await.map_err(|e| GatewayError::store("removing a user", e))? {
                return Ok(false);
            }
            gw.forget_user(&uri);
            Ok(true)
        })
        .await
    }

    /// Ends everything live of a removed user.
    pub(crate) fn forget_user(&self, uri: &str) {
        self.tickets.evict_user(uri);
        for session in self.hub.sessions_of(uri) {
            self.hub.remove(session.sid);
            self.forget_json_stream(&session);
        }
        let gone: Arc<str> = Arc::from(uri);
        // The final offline snapshot, one event per source network.
        let offline = Arc::new(PresenceView::unknown(uri));
        let offline = [false, true].map(|same_enterprise| {
            Event::new(EventBody::Presence { view: offline.clone(), audience: Audience::Watcher { same_enterprise } })
        });
        for session in self.hub.watchers_of(uri) {
            if session.json.is_some() {
                self.queue_json_removal(&session, uri);
                continue;
            }
            let same_enterprise = self.directory.same_enterprise(uri, &session.user);
            self.push(&session, offline[usize::from(same_enterprise)].clone(), Some(&gone));
            self.push_no_raw_categories(&session, &gone);
        }
        self.directory.remove(uri);
        self.presences.remove(uri);
        self.lists.remove_user(uri);
        tracing::info!(user = uri, "user deleted");
    }
}
