//! Executes the methods of a `cwaRequests` batch for a signed-in user: the synchronous answers
//! (`requestAccepted` / `requestFailed` / `requestInvalid`) and the events each method queues on
//! the session (`userPresence`, `presenceSubscriptionState`, `requestSucceeded`…).

use super::auth::Login;
use super::Gateway;
use crate::cwa::envelope::Response;
use crate::cwa::requests::{Parsed, Publication, Request, RequestBatch};
use crate::error::{GatewayError, Result};
use crate::hub::event::{Event, EventBody};
use crate::hub::session::{Admission, Session, ANSWERS_PER_METHOD};
use crate::model::sources::{ManualKind, ManualState, Note};
use crate::store::PresenceUpdate;
use std::sync::Arc;

/// The longest personal note accepted (characters).
pub const MAX_NOTE_CHARS: usize = 1024;
/// The longest status text ("In the lab") accepted with a manual state (characters).
pub const MAX_STATE_TEXT_CHARS: usize = 256;

/// What a command batch produced.
#[derive(Debug)]
pub struct Executed {
    pub sid: Option<u64>,
    pub responses: Vec<Response>,
}

impl Gateway {
    /// Runs a batch. `Err(SessionNotFound)` when a method needs a session the caller does not own.
    /// A session started by the batch ends again if the batch is abandoned before it answers.
    pub async fn execute(&self, login: &Login, batch: RequestBatch) -> Result<Executed> {
        let needs_session = batch.requests.iter().any(|p| match p {
            Parsed::Ok { request, .. } => !matches!(request, Request::InitiateSession(_)),
            _ => false,
        });
        // A batch that starts a session needs no (possibly stale) sid of an older one.
        let mut session = match batch.sid.filter(|sid| *sid != 0 && !starts_session(&batch)) {
            Some(sid) => Some(self.session_for(login, sid)?),
            None if needs_session && !starts_session(&batch) => return Err(GatewayError::SessionNotFound),
            None => None,
        };
        let mut started = Vec::new();
        let mut responses = Vec::with_capacity(batch.requests.len());
        for parsed in batch.requests {
            let _timer = crate::telemetry::CommandTimer::start(&parsed);
            let response = match parsed {
                Parsed::Invalid { rid, error } => Response::Invalid { rid, error },
                Parsed::Failed { rid, error } => Response::Failed { rid, error },
                Parsed::Ok { rid, request: Request::InitiateSession(init) } => match self.initiate_session(login, &init).await {
                    Ok((new, accepted)) => {
                        session = Some(new.session().clone());
                        started.push(new);
                        Response::Accepted { rid, session: Some(accepted) }
                    }
                    Err(error) => Response::Failed { rid, error },
                },
                Parsed::Ok { rid, request } => match &session {
                    Some(s) => self.admit_and_run(s, rid, request).await,
                    None => Response::Failed { rid, error: GatewayError::SessionNotFound },
                },
            };
            responses.push(response);
        }
        started.into_iter().for_each(|s| drop(s.keep()));
        Ok(Executed { sid: session.map(|s| s.sid), responses })
    }

    /// Runs one method if the session's queue has room for its answers (README, "Session
    /// queues"); counts it as user activity (README, "User activity").
    async fn admit_and_run(&self, session: &Arc<Session>, rid: String, request: Request) -> Response {
        let Some(mut admission) = session.admit(ANSWERS_PER_METHOD) else {
            let error = GatewayError::LimitExceeded("the session's event queue is full: poll the data channel first".into());
            return Response::Failed { rid, error };
        };
        if counts_as_activity(&request) {
            self.note_activity(session);
        }
        self.run(session, &mut admission, &rid, request).await
    }

    async fn run(&self, session: &Arc<Session>, answers: &mut Admission<'_>, rid: &str, request: Request) -> Response {
        let outcome = match request {
            Request::InitiateSession(_) => unreachable!("handled by execute"),
            Request::TerminateSession => {
                self.terminate_session(session);
                Ok(())
            }
            // Users no session here watches are brought up to date first (README "Several nodes").
            Request::QueryPresence(uris) => {
                let uris = uris.to_strs();
                self.known_and_fresh(&uris).await.map(|()| self.query(session, answers, &uris))
            }
            Request::SubscribePresence(uris) => self.subscribe(session, answers, &uris.to_strs()).await,
            Request::UnsubscribePresence(uris) => {
                self.unsubscribe(session, answers, &uris.to_strs());
                Ok(())
            }
            Request::PublishSelfPresence(publications) => self.publish(session, publications).await,
            Request::AddGroup { name } => self.change_contact_list(&session.user, |l| l.add_group(&name)).await,
            Request::UpdateGroup { id, name } => self.change_contact_list(&session.user, |l| l.rename_group(id, &name)).await,
            Request::DeleteGroup { id } => self.change_contact_list(&session.user, |l| l.delete_group(id)).await,
            Request::AddContact(spec) => {
                let max = self.config.limits.contacts_per_user;
                self.change_contact_list(&session.user, |l| l.add_contact(&spec, max)).await
            }
            Request::UpdateContact(spec) => self.change_contact_list(&session.user, |l| l.update_contact(&spec)).await,
            Request::DeleteContact(uri) => self.change_contact_list(&session.user, |l| l.delete_contact(&uri)).await,
            Request::UpdateContainer { id, changes } => self.update_container(&session.user, id, &changes).await,
            Request::AcknowledgeSubscriber(uris) => self.acknowledge_subscribers(&session.user, &uris).await,
            Request::Search(query) => {
                let (entries, more_available) = self.search_directory(&session.user, &query);
                let body = EventBody::SearchResult { rid: rid.into(), entries: entries.into(), more_available };
                self.answer(answers, Event::new(body));
                Ok(())
            }
            Request::PublishRawCategories(categories) => self.publish_raw_categories(&session.user, &categories).await,
            Request::Unsupported(method) => {
                Err(GatewayError::InvalidOperation(format!("{method} is not available on this gateway")))
            }
        };
        match outcome {
            Ok(()) => {
                self.answer(answers, Event::new(EventBody::Outcome { rid: rid.into(), error: None }));
                Response::Accepted { rid: rid.to_string(), session: None }
            }
            Err(error) => Response::Failed { rid: rid.to_string(), error },
        }
    }

    /// One `userPresence` holding every queried user, cut to the caller's level; then, when any
    /// of them has raw categories the session receives, one `userRawCategories` holding those.
    /// Each answer covers the unsent snapshots of what it shows (README, "Session queues"): a
    /// later change of a queried user is queued after it, never in front of it — also one fanned
    /// out between making and queuing the answer, which is queued again after it. Each answer
    /// holds the users' shared snapshot events: a transport copies their renderings into it.
    fn query(&self, session: &Session, answers: &mut Admission<'_>, uris: &[&str]) {
        let watcher = self.directory.watcher(&session.user);
        let snapshots: Vec<_> = uris.iter().map(|uri| self.query_snapshot(uri, session, &watcher)).collect();
        let (mut keys, mut raw_keys, mut raw) = (Vec::with_capacity(uris.len()), Vec::new(), Vec::new());
        for (uri, snapshot) in uris.iter().zip(&snapshots) {
            keys.push(Gateway::presence_snapshot_key(session, uri));
            if let Some(event) = snapshot.raw.as_ref().filter(|raw| crate::cwa::events::holds_raw_categories(raw)) {
                raw.push(event.clone());
                raw_keys.push(Gateway::raw_snapshot_key(session, uri));
            }
        }
        let presence = snapshots.iter().map(|s| s.presence.clone()).collect();
        self.answer_covering(answers, Event::new(EventBody::QueryPresence(presence)), &keys);
        if !raw_keys.is_empty() {
            self.answer_covering(answers, Event::new(EventBody::QueryRawCategories(raw.into())), &raw_keys);
        }
        for (uri, snapshot) in uris.iter().zip(&snapshots) {
            self.catch_up_after_answer(session, uri, snapshot);
        }
    }

    async fn subscribe(&self, session: &Arc<Session>, answers: &mut Admission<'_>, uris: &[&str]) -> Result<()> {
        let arcs: Vec<Arc<str>> = uris.iter().map(|u| Arc::from(*u)).collect();
        // The first snapshot shows the current state, also of users this node did not follow.
        self.known_and_fresh_or_later(&arcs).await;
        if !self.watch_uris(session, &arcs, Some(answers)) {
            let limit = self.config.limits.subscriptions_per_session;
            return Err(GatewayError::LimitExceeded(format!("at most {limit} subscriptions per session")));
        }
        self.record_subscriptions(&session.user, uris).await
    }

    fn unsubscribe(&self, session: &Arc<Session>, answers: &mut Admission<'_>, uris: &[&str]) {
        let uris: Vec<Arc<str>> = uris.iter().map(|u| Arc::from(*u)).collect();
        self.unwatch_uris(session, &uris, Some(answers));
    }

    /// All categories or none: everything is checked before anything is applied.
    async fn publish(&self, session: &Session, publications: Vec<Publication>) -> Result<()> {
        let mut manual: Option<ManualState> = None;
        let mut note: Option<String> = None;
        let mut machine_idle: Option<bool> = None;
        for publication in publications {
            match publication {
                Publication::UserState(ManualKind::AppearOffline, _) if !self.config.enable_appear_offline => {
                    return Err(GatewayError::InvalidOperation("appear offline is disabled".into()));
                }
                Publication::UserState(_, Some(text)) if text.chars().count() > MAX_STATE_TEXT_CHARS => {
                    return Err(GatewayError::LimitExceeded(format!(
                        "a status text holds at most {MAX_STATE_TEXT_CHARS} characters"
                    )));
                }
                Publication::UserState(kind, text) => manual = Some(ManualState { text, ..ManualState::simple(kind) }),
                Publication::Note(text) if text.chars().count() > MAX_NOTE_CHARS => {
                    return Err(GatewayError::LimitExceeded(format!("a note holds at most {MAX_NOTE_CHARS} characters")));
                }
                Publication::Note(text) => note = Some(text),
                Publication::MachineState { idle } => machine_idle = Some(idle),
            }
        }
        if manual.is_some() || note.is_some() {
            let note = note.map(|text| (!text.is_empty()).then_some(Note { text, expires: None }));
            self.change_presence(&session.user, PresenceUpdate { manual: manual.map(Some), note, only_if: None }).await?;
        }
        if let Some(idle) = machine_idle {
            session.set_machine_idle(idle, self.clock.now());
            self.refresh(&session.user);
        }
        Ok(())
    }
}

/// Every method is the user acting at this client, except ending the session and a publication
/// that only reports the machine state (which says by itself whether the user is idle).
fn counts_as_activity(request: &Request) -> bool {
    match request {
        Request::TerminateSession => false,
        Request::PublishSelfPresence(publications) => publications.iter().any(|p| !matches!(p, Publication::MachineState { .. })),
        _ => true,
    }
}

fn starts_session(batch: &RequestBatch) -> bool {
    matches!(batch.requests.first(), Some(Parsed::Ok { request: Request::InitiateSession(_), .. }))
}
