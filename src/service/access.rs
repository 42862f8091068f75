//! Access levels as containers: adding and removing members, the `containers` event, and making a
//! change take effect at once — every watcher whose level changed gets a fresh snapshot in the
//! same poll, and later fan-out uses the new level.

use super::Gateway;
use crate::cwa::lists;
use crate::error::{GatewayError, Result};
use crate::model::rights::{AccessLevel, Member, RightsEntry};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// One change to an owner's entries: set `member` to `level`, or remove it from `level`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RightsChange {
    Set(RightsEntry),
    Remove { member: Member, level: AccessLevel },
}

impl Gateway {
    /// Applies rights changes for `owner`; returns the containers (levels) whose membership changed.
    pub async fn change_rights(&self, owner: &str, changes: &[RightsChange]) -> Result<Vec<AccessLevel>> {
        let _gate = self.lists_gate.lock().await;
        let watchers: BTreeSet<Arc<str>> = self.hub.watchers_of(owner).iter().map(|s| s.user.clone()).collect();
        let before: HashMap<Arc<str>, AccessLevel> =
            watchers.iter().map(|w| (w.clone(), self.directory.level(owner, w))).collect();
        let mut touched = BTreeSet::new();
        for change in changes {
            let current = self.directory.rights_of(owner);
            match change {
                RightsChange::Set(entry) => {
                    if let Some(old) = current.iter().find(|e| e.member == entry.member) {
                        touched.insert(old.level);
                    }
                    self.store.set_right(owner, entry).await.map_err(|e| GatewayError::internal("saving a right", e))?;
                    self.directory.set_right(owner, entry.clone());
                    touched.insert(entry.level);
                }
                RightsChange::Remove { member, level } => {
                    if !current.iter().any(|e| &e.member == member && e.level == *level) {
                        continue;
                    }
                    self.store.remove_right(owner, member).await.map_err(|e| GatewayError::internal("removing a right", e))?;
                    self.directory.remove_right(owner, member);
                    touched.insert(*level);
                }
            }
        }
        let touched: Vec<AccessLevel> = touched.into_iter().collect();
        if !touched.is_empty() {
            let event = Arc::new(lists::containers(&self.directory.rights_of(owner), &touched));
            for session in self.hub.sessions_of(owner) {
                self.push(&session, event.clone(), None);
            }
        }
        for (watcher, level) in before {
            if self.directory.level(owner, &watcher) != level {
                self.resend_to_watcher(owner, &watcher);
            }
        }
        Ok(touched)
    }

    /// Sets or removes an entry that applies to every owner (admin); every watcher whose level on
    /// anyone changed gets fresh snapshots at once.
    pub async fn change_global_rights(&self, change: &RightsChange) -> Result<()> {
        let _gate = self.lists_gate.lock().await;
        let pairs = self.hub.watch_pairs();
        let before: Vec<AccessLevel> = pairs.iter().map(|(owner, watcher)| self.directory.level(owner, watcher)).collect();
        match change {
            RightsChange::Set(entry) => {
                self.store.set_global_right(entry).await.map_err(|e| GatewayError::internal("saving a global right", e))?;
                self.directory.set_global_right(entry.clone());
            }
            RightsChange::Remove { member, .. } => {
                self.store.remove_global_right(member).await.map_err(|e| GatewayError::internal("removing a global right", e))?;
                self.directory.remove_global_right(member);
            }
        }
        for ((owner, watcher), level) in pairs.iter().zip(before) {
            if self.directory.level(owner, watcher) != level {
                self.resend_to_watcher(owner, watcher);
            }
        }
        Ok(())
    }

    /// CWA `updateContainer`: only the five level containers exist.
    pub async fn update_container(&self, owner: &str, id: u32, changes: &[crate::cwa::requests::MemberChange]) -> Result<()> {
        let level = AccessLevel::from_container_id(id).ok_or_else(|| {
            GatewayError::InvalidRequest(format!("container {id} does not exist; use 100, 200, 300, 400 or 32000"))
        })?;
        let changes: Vec<RightsChange> = changes
            .iter()
            .map(|c| match c.add {
                true => RightsChange::Set(RightsEntry { member: c.member.clone(), level }),
                false => RightsChange::Remove { member: c.member.clone(), level },
            })
            .collect();
        self.change_rights(owner, &changes).await.map(|_| ())
    }

    pub(crate) fn queue_containers(&self, session: &crate::hub::session::Session) {
        let event = lists::containers(&self.directory.rights_of(&session.user), &AccessLevel::ALL);
        self.push(session, Arc::new(event), None);
    }
}
