//! Authorisation of what is done to one user — changes to their presence, rights, picture and
//! source reports, and reading their whole record — decided in the service: it needs a [`Permit`]
//! for that user and that kind of thing, and only [`Gateway::permit`] grants one — to the user
//! themself, an administrator, a source token (for source reports only), or (for the absent
//! state) a watcher the user gave Team level or above. The methods that do these things take the
//! permit, so no handler can forget the check. (A CWA session never names the user it changes:
//! its commands act on the session's own user.) Administration of every user is
//! `super::mandates`; reads cut by the reader's level are `super::reads`.

use super::Gateway;
use crate::error::{GatewayError, Result};
use crate::model::contact::Profile;
use crate::model::reports::SourceReport;
use crate::model::rights::{visibility, AccessLevel};
use crate::model::sources::{ManualState, Note};
use crate::service::access::RightsChange;
use crate::store::PresenceUpdate;
use std::sync::Arc;

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor<'a> {
    /// An administrator's token.
    Admin,
    /// An integration's token: it reports sources, it changes nobody's presence directly.
    Source,
    /// A signed-in user.
    User(&'a str),
}

/// What kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The manual (absent) state: the user, an admin, or a watcher at Team level or above.
    AbsentState,
    /// The personal note: the user or an admin.
    Note,
    /// The user's rights entries: the user or an admin.
    Rights,
    /// The user's picture: the user or an admin.
    Image,
    /// Reading the user's whole record (e-mail, phones, groups): the user or an admin.
    Record,
    /// The user's entries for organisational groups: an admin.
    GroupRights,
    /// Reports of integrations (telephony, calendar) about the user: a source or admin token.
    Sources,
}

/// Leave to make one kind of change to one user. Built only by [`Gateway::permit`].
#[derive(Debug)]
pub struct Permit {
    uri: String,
    action: Action,
}

impl Permit {
    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn check(&self, action: Action) -> Result<&str> {
        self.check_any(&[action])
    }

    fn check_any(&self, actions: &[Action]) -> Result<&str> {
        match actions.contains(&self.action) {
            true => Ok(&self.uri),
            false => Err(GatewayError::internal("using a permit", format!("{:?} for {:?}", self.action, actions))),
        }
    }
}

impl Gateway {
    /// Leave for `actor` to make `action` on `uri`, or `PermissionDenied` saying who may.
    pub fn permit(&self, actor: &Actor<'_>, action: Action, uri: &str) -> Result<Permit> {
        let allowed = match (actor, action) {
            (Actor::Admin, _) => true,
            (Actor::Source, Action::Sources) => true,
            (Actor::Source, _) => false,
            (Actor::User(_), Action::GroupRights | Action::Sources) => false,
            (Actor::User(me), _) if *me == uri => true,
            (Actor::User(me), Action::AbsentState) => visibility(self.directory.level(uri, me)).may_set_absent_state,
            (Actor::User(_), _) => false,
        };
        match allowed {
            true => Ok(Permit { uri: uri.to_string(), action }),
            false => Err(refusal(action)),
        }
    }

    /// Sets (or with `None` resets) the user's manual state.
    pub async fn set_manual_state(&self, permit: &Permit, manual: Option<ManualState>) -> Result<()> {
        let uri = permit.check(Action::AbsentState)?;
        self.change_presence(uri, PresenceUpdate { manual: Some(manual), note: None, only_if: None }).await.map(drop)
    }

    /// Sets (or with `None` clears) the user's personal note.
    pub async fn set_note(&self, permit: &Permit, note: Option<Note>) -> Result<()> {
        let uri = permit.check(Action::Note)?;
        self.change_presence(uri, PresenceUpdate { manual: None, note: Some(note), only_if: None }).await.map(drop)
    }

    /// Changes the user's rights entries for other users; returns the levels whose membership
    /// changed.
    pub async fn set_rights(&self, permit: &Permit, changes: &[RightsChange]) -> Result<Vec<AccessLevel>> {
        let uri = permit.check(Action::Rights)?;
        self.change_rights(uri, changes).await
    }

    /// Changes the user's entries for organisational groups.
    pub async fn set_group_rights(&self, permit: &Permit, changes: &[RightsChange]) -> Result<Vec<AccessLevel>> {
        let uri = permit.check(Action::GroupRights)?;
        self.change_rights(uri, changes).await
    }

    /// The user's whole record; `None` when there is no such user.
    pub fn record(&self, permit: &Permit) -> Result<Option<Arc<Profile>>> {
        Ok(self.directory.profile(permit.check(Action::Record)?))
    }

    /// Stores what the source `name` reports about the user, replacing its last report.
    pub async fn report_source(&self, permit: &Permit, name: &str, report: SourceReport) -> Result<()> {
        self.set_source(permit.check(Action::Sources)?, name, report).await
    }

    /// Withdraws the source's report; whether there was one.
    pub async fn withdraw_source(&self, permit: &Permit, name: &str) -> Result<bool> {
        self.remove_source(permit.check(Action::Sources)?, name).await
    }

    /// What the source `name` reports about the user now (not expired), after catching up with
    /// the cluster.
    pub async fn source_report(&self, permit: &Permit, name: &str) -> Result<Option<SourceReport>> {
        let uri = permit.check(Action::Sources)?;
        let Some(entry) = self.presence_entry(uri) else { return Ok(None) };
        self.fresh(&[uri]).await?;
        let now = self.now();
        let stored = entry.live.lock().model.reports.0.get(name).cloned();
        Ok(stored.filter(|r| r.expires.is_none_or(|at| now < at)))
    }

    /// Stores the user's picture (normal or large) and returns its hash.
    pub async fn put_image(&self, permit: &Permit, large: bool, content_type: &str, bytes: Vec<u8>) -> Result<String> {
        let uri = permit.check(Action::Image)?;
        self.set_image(uri, large, content_type, bytes).await
    }

    /// Removes the user's picture; whether there was one.
    pub async fn delete_image(&self, permit: &Permit, large: bool) -> Result<bool> {
        let uri = permit.check(Action::Image)?;
        self.remove_image(uri, large).await
    }
}

/// Someone else's data is `PermissionDenied`; what the caller's role may not do at all (and the
/// whole record, which only its user and admins read) is `RoleRequired`.
fn refusal(action: Action) -> GatewayError {
    let denied = |why: &str| GatewayError::PermissionDenied(why.into());
    let role = |why: &str| GatewayError::RoleRequired(why.into());
    match action {
        Action::AbsentState => denied("only the user, an admin or a watcher at team level or above may change this absent state"),
        Action::Note => denied("only the user or an admin may change the note"),
        Action::Rights => denied("only the owner or an admin may change this list"),
        Action::Image => denied("only the user or an admin may change the image"),
        Action::Record => role("only the user or an admin may read the whole record; use /presence"),
        Action::GroupRights => role("group and global rights need an admin token"),
        Action::Sources => role("reporting sources needs a source or admin token"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permits_follow_who_asks_and_what_for() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config { data_dir: dir.path().into(), ..Default::default() };
        let gateway = crate::build(config, std::sync::Arc::new(crate::service::clock::SystemClock)).await.unwrap();
        let bob = "sip:bob@example.com";
        for action in [Action::AbsentState, Action::Note, Action::Rights, Action::Image] {
            assert!(gateway.permit(&Actor::Admin, action, bob).is_ok());
            assert!(gateway.permit(&Actor::User(bob), action, bob).is_ok());
            let source = gateway.permit(&Actor::Source, action, bob).unwrap_err();
            assert_eq!(source.json_code(), "permission_denied");
        }
        // Nobody gave Alice Team level on Bob: she may not set his absent state either.
        let alice = Actor::User("sip:alice@example.com");
        assert!(gateway.permit(&alice, Action::AbsentState, bob).is_err());
        assert!(gateway.permit(&alice, Action::Note, bob).is_err());
        // A permit is for one kind of change only.
        let note = gateway.permit(&Actor::Admin, Action::Note, bob).unwrap();
        assert!(gateway.set_manual_state(&note, None).await.is_err());
        gateway.shutdown().await;
    }
}
