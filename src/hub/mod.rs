//! The hub owns live sessions and the watcher index (presentity → watching sessions), and runs the
//! long poll. Fan-out appends shared [`event::Event`]s — model-level data, rendered by each
//! transport once per event — to each watching session's queue and wakes it: no
//! task or timer per session. Locks are short and never held across `.await`. The hub also says
//! when the node's interest in a presentity may have begun or ended (its first or last watcher or
//! session of its user), so a cluster node follows exactly what it needs (docs/architecture.md §5).

pub mod event;
pub mod session;
pub mod timers;

use crate::model::sources::Timestamp;
use foldhash::{HashMap, HashSet};
use parking_lot::RwLock;
use session::{Batch, PollCheck, Session};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How a poll ended.
#[derive(Debug)]
pub enum PollOutcome {
    Batch(Batch),
    /// The queue overflowed: queue a fresh burst and poll again.
    Resync,
    Ended,
}

/// Told the presentities whose first watcher or session arrived or whose last one left (called
/// after the change, outside the hub's locks).
pub type InterestHook = Box<dyn Fn(&[Arc<str>]) + Send + Sync>;

/// Presentity → the sessions watching it (a set keyed by sid).
type WatcherIndex = HashMap<Arc<str>, HashSet<BySid>>;

/// A session in a watcher set: hashed and compared by its sid, and found by it, at one pointer a
/// member (a held session appears in one set per subscription).
#[derive(Clone)]
struct BySid(Arc<Session>);

impl PartialEq for BySid {
    fn eq(&self, other: &Self) -> bool {
        self.0.sid == other.0.sid
    }
}

impl Eq for BySid {}

impl std::hash::Hash for BySid {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.sid.hash(state);
    }
}

impl std::borrow::Borrow<u64> for BySid {
    fn borrow(&self) -> &u64 {
        &self.0.sid
    }
}

pub struct Hub {
    sessions: RwLock<HashMap<u64, Arc<Session>>>,
    by_user: RwLock<HashMap<Arc<str>, Vec<Arc<Session>>>>,
    watchers: RwLock<WatcherIndex>,
    next_sid: AtomicU64,
    /// Set once graceful shutdown begins.
    shutting_down: AtomicBool,
    interest: std::sync::OnceLock<InterestHook>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Hub::starting_at(0)
    }

    /// A hub whose session ids are `base` plus a counter (a cluster node's number is in `base`).
    pub fn starting_at(base: u64) -> Self {
        // Session ids start at a random offset so that ids from before a restart are not reused.
        let start = base + u64::from(rand::random::<u32>() >> 4) + 1;
        Hub {
            sessions: RwLock::default(),
            by_user: RwLock::default(),
            watchers: RwLock::default(),
            next_sid: AtomicU64::new(start),
            shutting_down: AtomicBool::new(false),
            interest: std::sync::OnceLock::new(),
        }
    }

    pub fn allocate_sid(&self) -> u64 {
        self.next_sid.fetch_add(1, Ordering::Relaxed)
    }

    /// Sets what is told of interest that begins or ends (once; later calls are ignored).
    pub fn on_interest(&self, hook: InterestHook) {
        let _ = self.interest.set(hook);
    }

    fn tell_interest(&self, uris: &[Arc<str>]) {
        if let (Some(hook), false) = (self.interest.get(), uris.is_empty()) {
            hook(uris);
        }
    }

    /// Whether a session here watches `uri` or belongs to its user.
    pub fn is_interested(&self, uri: &str) -> bool {
        self.by_user.read().contains_key(uri) || self.watchers.read().contains_key(uri)
    }

    /// Every presentity a session here watches or belongs to.
    pub fn interests(&self) -> Vec<Arc<str>> {
        let mut uris: Vec<Arc<str>> = self.by_user.read().keys().cloned().collect();
        uris.extend(self.watchers.read().keys().cloned());
        uris.sort_unstable();
        uris.dedup();
        uris
    }

    pub fn insert(&self, session: Arc<Session>) {
        self.sessions.write().insert(session.sid, session.clone());
        let user = session.user.clone();
        let first = {
            let mut by_user = self.by_user.write();
            let list = by_user.entry(user.clone()).or_default();
            list.push(session);
            list.len() == 1
        };
        if first {
            self.tell_interest(&[user]);
        }
    }

    pub fn get(&self, sid: u64) -> Option<Arc<Session>> {
        self.sessions.read().get(&sid).cloned()
    }

    pub fn sessions_of(&self, user: &str) -> Vec<Arc<Session>> {
        self.by_user.read().get(user).cloned().unwrap_or_default()
    }

    pub fn session_count(&self) -> usize {
        self.sessions.read().len()
    }

    pub fn all_sessions(&self) -> Vec<Arc<Session>> {
        self.sessions.read().values().cloned().collect()
    }

    /// Removes a session everywhere and wakes its poll; returns it if it was live.
    pub fn remove(&self, sid: u64) -> Option<Arc<Session>> {
        let session = self.sessions.write().remove(&sid)?;
        session.end();
        let mut by_user = self.by_user.write();
        let mut last = false;
        if let Some(list) = by_user.get_mut(&session.user) {
            list.retain(|s| s.sid != sid);
            if list.is_empty() {
                by_user.remove(&session.user);
                last = true;
            }
        }
        drop(by_user);
        self.unwatch(&session, &session.subscriptions());
        if last {
            self.tell_interest(std::slice::from_ref(&session.user));
        }
        Some(session)
    }

    /// The same URIs, each as the one shared copy the watcher index already holds when someone
    /// watches it (a session's subscriptions then cost no string of their own).
    pub fn intern(&self, uris: &[Arc<str>]) -> Vec<Arc<str>> {
        let index = self.watchers.read();
        uris.iter().map(|uri| index.get_key_value(uri).map_or_else(|| uri.clone(), |(key, _)| key.clone())).collect()
    }

    pub fn watch(&self, session: &Arc<Session>, presentities: &[Arc<str>]) {
        let mut first = Vec::new();
        let mut index = self.watchers.write();
        for uri in presentities {
            // Empty sets are removed, so a presentity not in the index has no watcher yet.
            if !index.contains_key(uri) {
                first.push(uri.clone());
            }
            index.entry(uri.clone()).or_default().insert(BySid(session.clone()));
        }
        drop(index);
        self.tell_interest(&first);
    }

    pub fn unwatch(&self, session: &Session, presentities: &[Arc<str>]) {
        let mut last = Vec::new();
        let mut index = self.watchers.write();
        for uri in presentities {
            if let Some(set) = index.get_mut(uri) {
                set.remove(&session.sid);
                if set.is_empty() {
                    index.remove(uri);
                    last.push(uri.clone());
                }
            }
        }
        drop(index);
        self.tell_interest(&last);
    }

    /// Every distinct (presentity, watching user) pair (for rights changes that touch everyone).
    pub fn watch_pairs(&self) -> Vec<(Arc<str>, Arc<str>)> {
        let index = self.watchers.read();
        let mut pairs: Vec<(Arc<str>, Arc<str>)> =
            index.iter().flat_map(|(uri, sessions)| sessions.iter().map(move |s| (uri.clone(), s.0.user.clone()))).collect();
        pairs.sort();
        pairs.dedup();
        pairs
    }

    /// The sessions watching a presentity (a snapshot of the index).
    pub fn watchers_of(&self, uri: &str) -> Vec<Arc<Session>> {
        self.watchers.read().get(uri).map(|m| m.iter().map(|s| s.0.clone()).collect()).unwrap_or_default()
    }

    /// Long poll: acknowledge `ack`, then return pending events at once or hold until an event
    /// arrives, the hold time passes, a newer poll supersedes this one, or shutdown begins.
    /// Cancellation-safe: the poll stops counting as held when this future completes or is
    /// dropped (the client hung up), so an abandoned session still expires.
    pub async fn poll(
        &self,
        session: &Session,
        ack: u64,
        hold: Duration,
        started: Timestamp,
        now: &(dyn Fn() -> Timestamp + Send + Sync),
    ) -> PollOutcome {
        let lease = session.begin_poll(ack, started, now);
        self.wait_for_events(session, lease.generation(), hold).await
    }

    /// Shutdown needs no watch of its own per poll: [`Hub::begin_shutdown`] sets its flag before it
    /// wakes every session, and a poll enables its wake-up before it reads the flag, so a poll
    /// either sees the flag or is woken after it was set. The hold's timer is made once per poll.
    async fn wait_for_events(&self, session: &Session, generation: u64, hold: Duration) -> PollOutcome {
        let held = tokio::time::sleep(hold);
        tokio::pin!(held);
        loop {
            let woken = session.woken();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match session.check_poll(generation) {
                PollCheck::Ready(batch) | PollCheck::Superseded(batch) => return PollOutcome::Batch(batch),
                PollCheck::Resync => return PollOutcome::Resync,
                PollCheck::Ended => return PollOutcome::Ended,
                PollCheck::Wait if self.shutting_down.load(Ordering::SeqCst) => return PollOutcome::Batch(session.batch_now()),
                PollCheck::Wait => {}
            }
            tokio::select! {
                _ = &mut woken => {}
                _ = &mut held => return PollOutcome::Batch(session.batch_now()),
            }
        }
    }

    /// Answers every held poll at once (graceful shutdown): the flag first, then every session is
    /// woken (see [`Hub::wait_for_events`]).
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        for session in self.all_sessions() {
            session.nudge();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use session::SessionOptions;

    fn hub_with_session() -> (Arc<Hub>, Arc<Session>) {
        let hub = Arc::new(Hub::new());
        let session =
            Arc::new(Session::new(hub.allocate_sid(), "sip:a@x".into(), 1, SessionOptions::default(), chrono::Utc::now()));
        hub.insert(session.clone());
        (hub, session)
    }

    fn held(hub: &Arc<Hub>, session: &Arc<Session>, hold: Duration) -> tokio::task::JoinHandle<PollOutcome> {
        let (hub, session) = (hub.clone(), session.clone());
        tokio::spawn(async move { hub.poll(&session, 0, hold, chrono::Utc::now(), &chrono::Utc::now).await })
    }

    /// Yields until the poll is held.
    async fn until_held(session: &Session) {
        while session.held_polls() == 0 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_held_poll_ends_when_its_hold_does_though_woken_meanwhile() {
        let (hub, session) = hub_with_session();
        let started = std::time::Instant::now();
        let poll = held(&hub, &session, Duration::from_millis(300));
        until_held(&session).await;
        session.nudge();
        let outcome = poll.await.unwrap();
        assert!(matches!(outcome, PollOutcome::Batch(ref b) if b.events.is_empty()), "{outcome:?}");
        assert!(started.elapsed() >= Duration::from_millis(300), "a wake-up without events does not end the hold");
    }

    #[tokio::test]
    async fn shutdown_answers_held_polls_and_later_ones_at_once() {
        let (hub, session) = hub_with_session();
        let started = std::time::Instant::now();
        let poll = held(&hub, &session, Duration::from_secs(60));
        until_held(&session).await;
        hub.begin_shutdown();
        assert!(matches!(poll.await.unwrap(), PollOutcome::Batch(_)));
        assert!(matches!(held(&hub, &session, Duration::from_secs(60)).await.unwrap(), PollOutcome::Batch(_)));
        assert!(started.elapsed() < Duration::from_secs(30), "answered at shutdown, not at the end of the hold");
    }
}
