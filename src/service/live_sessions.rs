//! Live sessions as administrators see them — who, from where, since when, last poll, idle or
//! active — and ending one session or all of a user's. Ending a session is what expiry does: the
//! session leaves the hub, a held poll is answered with session-not-found, and the user's presence
//! is recalculated. The user's sign-in (ticket) stays valid; the client may start a new session.

use super::mandates::{Duty, Mandate};
use super::Gateway;
use crate::hub::session::Session;
use crate::model::sources::Timestamp;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

/// One live session, for administrators.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub sid: u64,
    pub user: String,
    /// The gateway node the session lives on.
    pub node: String,
    /// In a cluster, that node's number (docs/architecture.md §5).
    pub node_id: Option<String>,
    pub client: Option<IpAddr>,
    /// A JSON event stream rather than a CWA data channel.
    pub json: bool,
    pub started: Timestamp,
    /// When a poll last began or ended.
    pub last_poll: Timestamp,
    /// A poll is held right now.
    pub polling: bool,
    /// Idle for presence (no user activity for `idle_timeout_seconds`).
    pub idle: bool,
    pub subscriptions: usize,
    /// Events not yet acknowledged.
    pub queued: usize,
}

/// This node's name: the host name (what operators see in `hostname`).
pub fn node_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
        let name = kernel.or_else(|| std::env::var("HOSTNAME").ok()).unwrap_or_default();
        match name.trim() {
            "" => "localhost".to_string(),
            name => name.to_string(),
        }
    })
}

impl Gateway {
    /// Every live session (or `user`'s), oldest first.
    pub fn session_summaries(&self, mandate: &Mandate, user: Option<&str>) -> crate::error::Result<Vec<SessionSummary>> {
        mandate.check(Duty::Sessions)?;
        let sessions = match user {
            Some(user) => self.hub.sessions_of(user),
            None => self.hub.all_sessions(),
        };
        let now = self.clock.now();
        let mut summaries: Vec<SessionSummary> = sessions.iter().map(|s| self.summary(s, now)).collect();
        summaries.sort_by_key(|s| (s.started, s.sid));
        Ok(summaries)
    }

    fn summary(&self, session: &Session, now: Timestamp) -> SessionSummary {
        let (last_poll, polling) = session.last_poll();
        SessionSummary {
            sid: session.sid,
            user: session.user.to_string(),
            node: node_name().to_string(),
            node_id: self.backplane.is_shared().then(|| self.backplane.node().to_string()),
            client: session.client(),
            json: session.json.is_some(),
            started: session.started,
            last_poll,
            polling,
            idle: session.is_idle(now, self.idle_timeout()),
            subscriptions: session.subscriptions().len(),
            queued: session.queue_len(),
        }
    }

    /// Ends one session; false when there is no such live session.
    pub fn end_session(&self, mandate: &Mandate, sid: u64) -> crate::error::Result<bool> {
        mandate.check(Duty::Sessions)?;
        let Some(session) = self.hub.get(sid) else { return Ok(false) };
        tracing::info!(sid, user = %session.user, "session ended by an administrator");
        self.terminate_session(&session);
        Ok(true)
    }

    /// Ends every session of `user`; returns how many there were.
    pub fn end_sessions_of(&self, mandate: &Mandate, user: &str) -> crate::error::Result<usize> {
        mandate.check(Duty::Sessions)?;
        let sessions: Vec<Arc<Session>> = self.hub.sessions_of(user);
        for session in &sessions {
            tracing::info!(sid = session.sid, user, "session ended by an administrator");
            self.terminate_session(session);
        }
        Ok(sessions.len())
    }
}
