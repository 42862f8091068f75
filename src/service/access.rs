//! Access levels as containers: adding and removing members, the `containers` event, and making a
//! change take effect at once — every watcher whose level changed gets a fresh snapshot in the
//! same poll, and later fan-out uses the new level.

use super::sync::changed_levels;
use super::Gateway;
use crate::error::{GatewayError, Result};
use crate::hub::event::{Event, EventBody};
use crate::model::rights::{AccessLevel, Member, RightsEntry};
use crate::store::RightsWrite;
use std::collections::BTreeSet;
use std::sync::Arc;

/// One change to an owner's entries: set `member` to `level`, or remove it from `level` (from
/// whatever level it is at, without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RightsChange {
    Set(RightsEntry),
    Remove { member: Member, level: Option<AccessLevel> },
}

impl Gateway {
    /// Applies rights changes for `owner`; returns the containers (levels) whose membership changed.
    /// Runs to its end even if the request is abandoned: every watcher whose level changed gets a
    /// fresh snapshot.
    pub(crate) async fn change_rights(&self, owner: &str, changes: &[RightsChange]) -> Result<Vec<AccessLevel>> {
        let gate = self.gates.owner(owner).await;
        let (owner, changes) = (owner.to_string(), changes.to_vec());
        self.complete(move |gw| async move {
            let _gate = gate;
            gw.apply_rights(&owner, &changes).await
        })
        .await
    }

    /// All of the changes or none: the writes they amount to are one store transaction, decided
    /// by what the store holds (a removal takes the member out of the level only if the store has
    /// them there, whatever this node's copy says: another node's change may not have reached it
    /// yet); the owner's entries as the store then holds them become this node's, and are
    /// announced. Returns the levels whose membership the changes named or that moved here.
    async fn apply_rights(&self, owner: &str, changes: &[RightsChange]) -> Result<Vec<AccessLevel>> {
        let before = self.watcher_levels(owner);
        let current = self.directory.rights_of(owner);
        let mut touched = BTreeSet::new();
        let writes: Vec<RightsWrite> = changes
            .iter()
            .map(|change| match change {
                RightsChange::Set(entry) => {
                    touched.extend(current.iter().find(|e| e.member == entry.member).map(|old| old.level));
                    touched.insert(entry.level);
                    RightsWrite::Set(entry.clone())
                }
                RightsChange::Remove { member, level } => RightsWrite::Remove { member: member.clone(), level: *level },
            })
            .collect();
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let seen = self.directory.rights_stamp(owner);
        let stored = self.store.apply_rights(owner, &writes).await.map_err(|e| GatewayError::store("saving rights", e))?;
        self.rights_written(owner);
        touched.extend(changed_levels(&current, &stored));
        let touched: Vec<AccessLevel> = touched.into_iter().collect();
        if self.directory.replace_rights_if(owner, seen, stored).is_ok() {
            self.announce_rights(owner, before, &touched);
        } else {
            // A read of the store's entries was installed during the write: read them again.
            let reread = self.read_rights(owner).await;
            reread.map_err(|e| GatewayError::store("reading rights", e))?;
        }
        Ok(touched)
    }

    /// Sets or removes an entry that applies to every owner (admin); every watcher whose level on
    /// anyone changed gets fresh snapshots at once.
    pub async fn change_global_rights(&self, mandate: &super::mandates::Mandate, change: &RightsChange) -> Result<()> {
        mandate.check(super::mandates::Duty::GlobalRights)?;
        let gate = self.gates.everyone().await;
        let change = change.clone();
        self.complete(move |gw| async move {
            let _gate = gate;
            let before = gw.pair_levels(gw.hub.watch_pairs());
            match &change {
                RightsChange::Set(entry) => {
                    gw.store.set_global_right(entry).await.map_err(|e| GatewayError::store("saving a global right", e))?;
                    gw.global_rights_written();
                    gw.directory.set_global_right(entry.clone());
                }
                RightsChange::Remove { member, .. } => {
                    let removed = gw.store.remove_global_right(member).await;
                    removed.map_err(|e| GatewayError::store("removing a global right", e))?;
                    gw.global_rights_written();
                    gw.directory.remove_global_right(member);
                }
            }
            gw.resend_where_levels_moved(before);
            Ok(())
        })
        .await
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
                false => RightsChange::Remove { member: c.member.clone(), level: Some(level) },
            })
            .collect();
        self.change_rights(owner, &changes).await.map(|_| ())
    }

    pub(crate) fn queue_containers(&self, session: &crate::hub::session::Session) {
        self.push(session, self.containers_event(&session.user), None);
    }

    /// Every container of `owner` with its members.
    pub(crate) fn containers_event(&self, owner: &str) -> Arc<Event> {
        let entries = self.directory.rights_of(owner).into();
        Event::new(EventBody::Containers { entries, levels: AccessLevel::ALL.into() })
    }
}
