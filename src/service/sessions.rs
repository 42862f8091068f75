//! Sign-in and sessions: logon (argon2id, rate limit, ticket), initiateSession with its initial
//! burst, terminateSession, the data-channel poll with idle tracking and resync, and expiry of
//! sessions that stopped polling.

use super::auth::{Authenticated, Login};
use super::tickets::TicketHash;
use super::Gateway;
use crate::cwa::envelope::SessionStarted;
use crate::cwa::requests::InitiateSession;
use crate::error::{GatewayError, Result};
use crate::hub::event::{ClientConfiguration, Event, EventBody};
use crate::hub::session::{Batch, Session, SessionOptions};
use crate::hub::timers::TimerKey;
use crate::hub::PollOutcome;
use crate::model::sources::{ManualKind, ManualState};
use crate::store::PresenceUpdate;
use std::net::IpAddr;
use std::sync::Arc;

/// What a successful logon returns.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub auth: Authenticated,
    pub uri: String,
}

/// Why a logon was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogonRefused {
    /// Too many failures (README, "Sign-in limits"): try again after this long.
    Throttled { retry_after: std::time::Duration },
    /// Unknown user or wrong password.
    Credentials,
    /// The store failed (the error to answer with).
    Internal(GatewayError),
}

impl LogonRefused {
    fn store_failed(cause: crate::store::StoreError) -> LogonRefused {
        LogonRefused::Internal(GatewayError::store("signing in", cause))
    }

    pub fn error(&self) -> GatewayError {
        match self {
            LogonRefused::Throttled { .. } => GatewayError::LimitExceeded("too many failed sign-ins; try again later".into()),
            LogonRefused::Credentials => GatewayError::InvalidRequest("sign-in failed: unknown user or wrong password".into()),
            LogonRefused::Internal(error) => error.clone(),
        }
    }
}

/// A session whose sid has not reached the client yet: ended again when dropped, unless kept
/// (docs/architecture.md, "Cancellation safety").
#[must_use = "the session ends when this is dropped without keep()"]
pub struct StartingSession<'a> {
    gateway: &'a Gateway,
    session: Option<Arc<Session>>,
}

impl StartingSession<'_> {
    pub fn session(&self) -> &Arc<Session> {
        self.session.as_ref().expect("present until kept or dropped")
    }

    /// The sid is on its way to the client: the session stays.
    pub fn keep(mut self) -> Arc<Session> {
        self.session.take().expect("present until kept or dropped")
    }
}

impl Drop for StartingSession<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.gateway.terminate_session(&session);
        }
    }
}

impl Gateway {
    /// Checks credentials: the user is a logon name (`sip:` URI, `user@domain`, `DOMAIN\user`).
    /// The attempt is counted against the limits before the password is checked, and every
    /// spelling of a user counts as that user.
    pub async fn logon(
        &self,
        user: &str,
        password: &str,
        uri_hint: Option<&str>,
        address: IpAddr,
    ) -> Result<SignedIn, LogonRefused> {
        let name = if user.trim().is_empty() { uri_hint.unwrap_or("") } else { user };
        let uri = self.directory.resolve_logon_name(name);
        let limited_as = uri.clone().unwrap_or_else(|| format!("unknown:{}", name.trim().to_lowercase()));
        let attempt = self
            .begin_logon(&limited_as, address, self.clock.now())
            .await
            .map_err(|throttled| LogonRefused::Throttled { retry_after: throttled.retry_after })?;
        let hash = match &uri {
            Some(uri) => self.store.user(uri).await.map_err(LogonRefused::store_failed)?.and_then(|u| u.password_hash),
            None => None,
        };
        let checked = hash.clone().unwrap_or_else(|| self.decoy_hash().to_string());
        let verified = self.password_checks.verify(password.to_string(), checked).await;
        match uri {
            Some(uri) if verified && hash.is_some() => {
                let now = self.clock.now();
                self.logon_succeeded(attempt, &limited_as, address, now);
                let auth = self.tickets.issue(Arc::from(uri.as_str()), now).await.map_err(LogonRefused::store_failed)?;
                tracing::info!(user = %uri, "signed in");
                Ok(SignedIn { auth, uri })
            }
            _ => {
                tracing::info!(%address, "failed sign-in");
                Err(LogonRefused::Credentials)
            }
        }
    }

    /// The login a ticket belongs to (`Ok(None)`: not a valid ticket); fails only when the store
    /// had to be asked and could not answer.
    pub async fn authenticate(&self, ticket: String) -> Result<Option<Authenticated>> {
        self.tickets.authenticate(ticket, self.clock.now()).await.map_err(|e| GatewayError::store("checking a ticket", e))
    }

    /// [`Gateway::authenticate`] of a ticket whose hash is known: answered from the ticket cache
    /// without an `.await` when it can be, else as [`Gateway::authenticate`] (boxed, so that a
    /// caller's future keeps no room for a store read).
    pub async fn authenticate_hashed(&self, ticket: String, hash: TicketHash) -> Result<Option<Authenticated>> {
        let now = self.clock.now();
        let ticket = match self.tickets.authenticate_cached(ticket, hash, now) {
            Ok(answer) => return Ok(answer),
            Err(ticket) => ticket,
        };
        let checked = Box::pin(self.tickets.authenticate_hashed(ticket, hash, now)).await;
        checked.map_err(|e| GatewayError::store("checking a ticket", e))
    }

    /// Starts a session for a login: limit check, initial state, the initial event burst.
    pub async fn initiate_session<'a>(
        &'a self,
        login: &Login,
        request: &InitiateSession,
    ) -> Result<(StartingSession<'a>, SessionStarted)> {
        // The user's sessions on other nodes, and the first snapshots, as they are now.
        let mut current = vec![login.user.clone()];
        if request.auto_subscribe_contacts {
            let limit = self.config.limits.subscriptions_per_session;
            current.extend(self.contact_list(&login.user).subscribed_uris().take(limit).map(Arc::from));
        }
        self.known_and_fresh_or_later(&current).await;
        if self.sessions_everywhere(&login.user) >= self.config.limits.sessions_per_user {
            let limit = self.config.limits.sessions_per_user;
            return Err(GatewayError::LimitExceeded(format!("at most {limit} sessions per user")));
        }
        if request.availability == Some(ManualKind::AppearOffline) && !self.config.enable_appear_offline {
            return Err(GatewayError::InvalidOperation("appear offline is disabled".into()));
        }
        let now = self.clock.now();
        let options = SessionOptions {
            auto_publish_machine_state: request.auto_publish_machine_state,
            auto_subscribe_contacts: request.auto_subscribe_contacts,
            json: false,
            queue_limit: self.config.limits.queue_length,
            raw_categories: request.raw_categories.clone().map(Into::into),
        };
        let session = Arc::new(Session::new(self.hub.allocate_sid(), login.user.clone(), login.id, options, now));
        self.hub.insert(session.clone());
        // Until the client has the sid, the session ends again if the request fails or is dropped.
        let starting = StartingSession { gateway: self, session: Some(session.clone()) };
        self.schedule_expiry(&session);
        self.queue_initial_burst(&session);
        match request.availability {
            // "Online" at start means automatic presence; any other choice is a manual state.
            Some(kind) if kind != ManualKind::Available => {
                let update = PresenceUpdate { manual: Some(Some(ManualState::simple(kind))), note: None, only_if: None };
                self.change_presence(&login.user, update).await?;
            }
            _ => self.refresh(&login.user),
        }
        tracing::info!(sid = session.sid, user = %login.user, "session started");
        let started = SessionStarted { sid: session.sid, poll_wait_ms: self.config.poll_wait_ms, uri: login.user.to_string() };
        Ok((starting, started))
    }

    /// After initiateSession: the contact list, own presence, containers, subscribers, the client
    /// configuration, then the presence of every subscribed contact.
    fn queue_initial_burst(&self, session: &Arc<Session>) {
        let list = self.contact_list(&session.user);
        self.push(session, Event::new(EventBody::ContactList(Box::new(list.clone()))), None);
        self.queue_self(session);
        self.queue_containers(session);
        self.queue_subscribers(session);
        let configuration = ClientConfiguration {
            enable_appear_offline: self.config.enable_appear_offline,
            default_search_field: self.config.search_default_field.clone(),
            default_search_function: self.config.search_default_function.clone(),
            max_search_results: self.config.search_max_results,
        };
        self.push(session, Event::new(EventBody::Configuration(Box::new(configuration))), None);
        if session.auto_subscribe_contacts {
            let limit = self.config.limits.subscriptions_per_session;
            let contacts: Vec<Arc<str>> = list.subscribed_uris().take(limit).map(Arc::from).collect();
            self.watch_uris(session, &contacts, None);
        }
    }

    /// The session `sid` if it exists and belongs to this login.
    pub fn session_for(&self, login: &Login, sid: u64) -> Result<Arc<Session>> {
        let usable = |s: &Arc<Session>| s.login == login.id && !s.is_ended() && s.json.is_none();
        self.hub.get(sid).filter(usable).ok_or(GatewayError::SessionNotFound)
    }

    pub fn terminate_session(&self, session: &Session) {
        if self.hub.remove(session.sid).is_some() {
            self.forget_json_stream(session);
            tracing::info!(sid = session.sid, "session ended");
            self.refresh(&session.user);
        }
    }

    /// One data-channel poll (docs/architecture.md §1.2 items 5 and 6). Dropping the future (the
    /// client hung up) ends the poll as answering it would: the session then expires unless polled again.
    pub async fn poll(&self, session: &Arc<Session>, ack: u64, user_active: bool) -> Result<Batch> {
        let _held = crate::telemetry::HeldPoll::start();
        let started = self.clock.now();
        if user_active {
            self.note_activity_at(session, started);
        }
        let now = || self.clock.now();
        loop {
            match self.hub.poll(session, ack, self.config.hold(), started, &now).await {
                PollOutcome::Batch(batch) => return Ok(crate::telemetry::delivered(batch)),
                PollOutcome::Ended => return Err(GatewayError::SessionNotFound),
                PollOutcome::Resync => self.queue_burst(session),
            }
        }
    }

    /// The user did something at this client (README, "User activity"): the session is active
    /// again at once if it was idle.
    pub(crate) fn note_activity(&self, session: &Session) {
        self.note_activity_at(session, self.clock.now());
    }

    fn note_activity_at(&self, session: &Session, now: crate::model::sources::Timestamp) {
        let was_idle = session.is_idle(now, self.idle_timeout());
        session.record_activity(now);
        if was_idle {
            self.refresh(&session.user);
        }
    }

    fn queue_burst(&self, session: &Arc<Session>) {
        if session.take_resync() {
            self.queue_resync_burst(session);
        }
    }

    pub(crate) fn schedule_expiry(&self, session: &Session) {
        let at = self.clock.now() + self.session_timeout();
        self.timers.schedule(TimerKey::Session(session.sid), Some(at));
    }

    /// Timer callback: ends the session if it has not polled within the timeout, else re-arms.
    pub(crate) fn check_session_expiry(&self, sid: u64) {
        let Some(session) = self.hub.get(sid) else { return };
        let now = self.clock.now();
        let deadline = session.idle_since().map(|seen| seen + self.session_timeout());
        match deadline {
            Some(at) if at <= now => {
                tracing::info!(sid, "session expired");
                self.terminate_session(&session);
            }
            Some(at) => self.timers.schedule(TimerKey::Session(sid), Some(at)),
            None => self.schedule_expiry(&session),
        }
    }
}
