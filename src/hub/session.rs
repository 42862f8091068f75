//! One live session: its bounded queue of pending events with per-session `eid`s, the acknowledged
//! and sent positions, coalescing of unsent presence snapshots, the overflow → resynchronise rule,
//! command admission against the bound, and the wake-up handle a held poll waits on. All state sits
//! behind one short, non-async lock.
//!
//! The queue policy (README, "Session queues"): every event counts against `queue_limit`.
//! *State* events (presence snapshots, contact-list, container and subscriber news) can always be
//! rebuilt, so at the bound the unsent ones are dropped and the session resynchronises: the next
//! poll queues a fresh full burst. *Answers* (query and search results, subscription states and
//! request outcomes of the session's own commands) cannot be rebuilt, so a command is admitted only
//! when its answers fit ([`Session::admit`]); otherwise it is refused (CWA 18101). An `AckId`
//! acknowledges at most the last eid sent.
//!
//! Ordering: the last event a client reads about a presentity carries its newest state. A newer
//! snapshot replaces an unsent one in place only while nothing queued after it carries the same
//! state: an answer that does (a query's `userPresence`) seals the unsent snapshots it covers, so
//! the next change is queued after the answer ([`Admission::push_covering`]).

use super::event::Event;
use crate::model::sources::Timestamp;
use foldhash::HashSet;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::Notify;

/// A drained queue with more room than this gives its buffer back.
const IDLE_QUEUE_CAPACITY: usize = 8;

/// The events of a resync burst besides the snapshots of the subscriptions (contact list, own
/// presence and raw categories, containers, subscribers, subscription states).
pub const RESYNC_FIXED_EVENTS: usize = 6;

/// The most events of a resync burst per subscription (its presence and its raw categories).
pub const RESYNC_EVENTS_PER_SUBSCRIPTION: usize = 2;

/// The most answers one command method queues on its own session.
pub const ANSWERS_PER_METHOD: usize = 3;

/// What kind of event a queue entry is, for the overflow rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Rebuilt by a resync burst: dropped (unsent) at overflow.
    State,
    /// An answer to one of the session's commands: never dropped unacknowledged.
    Answer,
}

/// An event waiting in a session's queue.
#[derive(Debug, Clone)]
struct Queued {
    eid: u64,
    kind: Kind,
    /// The presentity a presence snapshot is about (coalescing key); `None` for other events and
    /// for a snapshot sealed by a later answer covering the same state.
    presentity: Option<Arc<str>>,
    payload: Arc<Event>,
}

/// What happened to a pushed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Replaced an unsent snapshot of the same presentity.
    Coalesced,
    /// The queue was at its bound: unsent state events were dropped and a resync is pending.
    Resync,
    /// Not queued: a resync is already pending and its burst carries the current state.
    Covered,
    /// The session has ended.
    Ended,
}

/// A batch handed to one poll.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub events: Vec<(u64, Arc<Event>)>,
    /// `cwaEvents@ackId`: the last eid of the batch, or the acknowledged position when empty.
    pub ack_id: u64,
}

#[derive(Debug)]
struct SessionState {
    queue: VecDeque<Queued>,
    limit: usize,
    /// Queue places promised to admitted commands for their answers.
    reserved: usize,
    last_eid: u64,
    acked: u64,
    sent_upto: u64,
    poll_generation: u64,
    held_polls: u32,
    last_seen: Timestamp,
    last_active: Timestamp,
    machine_idle: Option<bool>,
    resync_pending: bool,
    ended: bool,
    /// Someone waits for the number of held polls to change ([`Session::until_held_polls`]): the
    /// start and end of every poll wake them. Otherwise only a poll superseding another wakes.
    held_polls_watched: bool,
    /// Sorted, without spare room (a held session keeps 50 of these).
    subscriptions: Vec<Arc<str>>,
}

/// The options a session keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    pub auto_publish_machine_state: bool,
    pub auto_subscribe_contacts: bool,
    /// A JSON API event stream instead of a CWA data channel.
    pub json: bool,
    /// The most events the queue holds (`limits.queue_length`).
    pub queue_limit: usize,
    /// The raw categories the session asked for (`None`: all).
    pub raw_categories: Option<Arc<[String]>>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            auto_publish_machine_state: true,
            auto_subscribe_contacts: true,
            json: false,
            queue_limit: 2000,
            raw_categories: None,
        }
    }
}

/// What a JSON subscriber asked for, per presentity (Presence V2 subscription flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFilter {
    /// `iEventFlagsToSubscribe`: the sections whose changes are sent.
    pub events: u32,
    /// `iContactDetailsReturnFilter`: the sections snapshots carry (0 = all).
    pub details: u32,
}

/// The per-presentity filters of a JSON event stream.
#[derive(Debug, Default)]
pub struct JsonSubscriber {
    filters: Mutex<std::collections::HashMap<Arc<str>, EventFilter>>,
}

impl JsonSubscriber {
    pub fn set(&self, uri: Arc<str>, filter: EventFilter) {
        self.filters.lock().insert(uri, filter);
    }

    pub fn remove(&self, uri: &str) {
        self.filters.lock().remove(uri);
    }

    pub fn filter(&self, uri: &str) -> Option<EventFilter> {
        self.filters.lock().get(uri).copied()
    }
}

/// A live session. Shared as `Arc<Session>` between the hub's maps and the handlers.
#[derive(Debug)]
pub struct Session {
    pub sid: u64,
    pub user: Arc<str>,
    /// The sign-in (ticket family) that owns this session.
    pub login: u64,
    pub auto_publish_machine_state: bool,
    /// Follows the owner's `subscribed` contacts (initiateSession option).
    pub auto_subscribe_contacts: bool,
    /// Present for JSON API event streams.
    pub json: Option<JsonSubscriber>,
    /// `categoryEventFilter rawCategories`: the raw categories this session receives (`None`: all).
    pub raw_categories: Option<Arc<[String]>>,
    /// When the session started.
    pub started: Timestamp,
    /// The client's address, as the request that started the session came from (for admins).
    client: std::sync::OnceLock<std::net::IpAddr>,
    state: Mutex<SessionState>,
    wake: Notify,
}

impl Session {
    pub fn new(sid: u64, user: Arc<str>, login: u64, options: SessionOptions, now: Timestamp) -> Self {
        Session {
            sid,
            user,
            login,
            auto_publish_machine_state: options.auto_publish_machine_state,
            auto_subscribe_contacts: options.auto_subscribe_contacts,
            json: options.json.then(JsonSubscriber::default),
            raw_categories: options.raw_categories,
            started: now,
            client: std::sync::OnceLock::new(),
            state: Mutex::new(SessionState {
                queue: VecDeque::new(),
                limit: options.queue_limit.max(1),
                reserved: 0,
                last_eid: 0,
                acked: 0,
                sent_upto: 0,
                poll_generation: 0,
                held_polls: 0,
                last_seen: now,
                last_active: now,
                machine_idle: None,
                resync_pending: false,
                held_polls_watched: false,
                ended: false,
                subscriptions: Vec::new(),
            }),
            wake: Notify::new(),
        }
    }

    /// Queues a state event (a snapshot of `presentity` when given, coalescing with an unsent one)
    /// and wakes a held poll. At the bound the session resynchronises instead.
    pub fn push(&self, payload: Arc<Event>, presentity: Option<&Arc<str>>) -> Pushed {
        self.locked_push(|s| s.push_state(payload, presentity))
    }

    /// Queues one event of a resync burst (the pending flag was taken; the poll asked for the
    /// burst because it fits).
    pub fn push_resync(&self, payload: Arc<Event>, presentity: Option<&Arc<str>>) -> Pushed {
        self.locked_push(|s| s.push_burst(payload, presentity))
    }

    fn locked_push(&self, push: impl FnOnce(&mut SessionState) -> Pushed) -> Pushed {
        let outcome = {
            let mut s = self.lock();
            if s.ended {
                return Pushed::Ended;
            }
            push(&mut s)
        };
        self.wake.notify_waiters();
        outcome
    }

    /// Admits a command whose answers take at most `answers` queue places, reserving them (unsent
    /// state events make way, with a resync). `None`: the queue is full of answers and sent events
    /// — the command must be refused until the client polls.
    pub fn admit(&self, answers: usize) -> Option<Admission<'_>> {
        let mut s = self.lock();
        if s.room() < answers {
            s.overflow();
        }
        if s.room() < answers {
            return None;
        }
        s.reserved += answers;
        Some(Admission { session: self, left: answers })
    }

    /// Takes the resync flag: the caller must queue a fresh full burst.
    pub fn take_resync(&self) -> bool {
        std::mem::take(&mut self.lock().resync_pending)
    }

    /// Starts a poll: acknowledges (at most up to the last eid sent), supersedes any older poll.
    /// The poll counts as held — keeping the session alive — until the lease is dropped, whether
    /// the poll is answered or abandoned; `now` tells the time at that moment (`started`: when the
    /// poll began).
    pub fn begin_poll<'a>(
        &'a self,
        ack: u64,
        started: Timestamp,
        now: &'a (dyn Fn() -> Timestamp + Send + Sync),
    ) -> PollLease<'a> {
        let (generation, wake) = {
            let mut s = self.lock();
            s.acknowledge(ack);
            s.poll_generation += 1;
            // An older poll still held is woken to find itself superseded.
            let wake = s.held_polls > 0 || s.held_polls_watched;
            s.held_polls += 1;
            s.last_seen = started;
            (s.poll_generation, wake)
        };
        if wake {
            self.wake.notify_waiters();
        }
        PollLease { session: self, generation, now }
    }

    fn end_poll(&self, now: Timestamp) {
        let watched = {
            let mut s = self.lock();
            s.held_polls = s.held_polls.saturating_sub(1);
            s.last_seen = now;
            s.held_polls_watched
        };
        if watched {
            self.wake.notify_waiters();
        }
    }

    /// What a poll of `generation` should do now.
    pub fn check_poll(&self, generation: u64) -> PollCheck {
        let mut s = self.lock();
        if s.ended {
            return PollCheck::Ended;
        }
        if s.poll_generation != generation {
            return PollCheck::Superseded(s.empty_batch());
        }
        if s.resync_pending && s.burst_fits() {
            return PollCheck::Resync;
        }
        match s.take_batch() {
            Some(batch) => PollCheck::Ready(batch),
            None => PollCheck::Wait,
        }
    }

    /// Whatever is pending now, possibly nothing (used when the hold time is over).
    pub fn batch_now(&self) -> Batch {
        let mut s = self.lock();
        s.take_batch().unwrap_or_else(|| s.empty_batch())
    }

    /// A future that completes on the next push, poll start or end, or end of the session; enable
    /// it before checking state.
    pub fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }

    /// Ends the session; its queue is dropped (nobody will poll it again).
    pub fn end(&self) {
        {
            let mut s = self.lock();
            s.ended = true;
            s.queue = VecDeque::new();
        }
        self.wake.notify_waiters();
    }

    pub fn is_ended(&self) -> bool {
        self.lock().ended
    }

    /// Wakes a held poll without adding anything (shutdown).
    pub fn nudge(&self) {
        self.wake.notify_waiters();
    }

    /// The number of polls held now (answered or abandoned ones no longer count).
    pub fn held_polls(&self) -> u32 {
        self.lock().held_polls
    }

    /// Completes once exactly `count` polls are held.
    pub async fn until_held_polls(&self, count: u32) {
        loop {
            let woken = self.woken();
            tokio::pin!(woken);
            woken.as_mut().enable();
            {
                let mut s = self.lock();
                s.held_polls_watched = true;
                if s.held_polls == count {
                    return;
                }
            }
            woken.await;
        }
    }

    /// When the session was last seen if no poll is held now (expiry counts from there).
    pub fn idle_since(&self) -> Option<Timestamp> {
        let s = self.lock();
        (s.held_polls == 0).then_some(s.last_seen)
    }

    /// Idle for presence purposes at `now` (after `idle_timeout` without user activity).
    pub fn is_idle(&self, now: Timestamp, idle_timeout: chrono::Duration) -> bool {
        let s = self.lock();
        match s.machine_idle {
            Some(idle) => idle,
            None if !self.auto_publish_machine_state => false,
            None => now - s.last_active >= idle_timeout,
        }
    }

    /// When this session turns idle if nothing happens (None when it already is, or never will).
    pub fn idle_deadline(&self, now: Timestamp, idle_timeout: chrono::Duration) -> Option<Timestamp> {
        let s = self.lock();
        let deadline = s.last_active + idle_timeout;
        (s.machine_idle.is_none() && self.auto_publish_machine_state && deadline > now).then_some(deadline)
    }

    /// The user was active on this client (README, "User activity").
    pub fn record_activity(&self, now: Timestamp) {
        let mut s = self.lock();
        s.last_active = now;
        if self.auto_publish_machine_state {
            s.machine_idle = None;
        }
    }

    pub fn set_machine_idle(&self, idle: bool, now: Timestamp) {
        let mut s = self.lock();
        s.machine_idle = Some(idle);
        if !idle {
            s.last_active = now;
        }
    }

    /// Adds subscriptions up to `limit`; returns the ones newly added, or None when over the limit.
    pub fn subscribe(&self, uris: &[Arc<str>], limit: usize) -> Option<Vec<Arc<str>>> {
        let mut s = self.lock();
        let mut new: Vec<Arc<str>> = uris.iter().filter(|u| s.subscriptions.binary_search(u).is_err()).cloned().collect();
        new.sort_unstable();
        new.dedup();
        if s.subscriptions.len() + new.len() > limit {
            return None;
        }
        s.subscriptions.extend(new.iter().cloned());
        s.subscriptions.sort_unstable();
        s.subscriptions.shrink_to_fit();
        Some(new)
    }

    pub fn unsubscribe(&self, uris: &[Arc<str>]) -> Vec<Arc<str>> {
        let mut s = self.lock();
        let removed: Vec<Arc<str>> = uris
            .iter()
            .filter(|u| match s.subscriptions.binary_search(u) {
                Ok(at) => {
                    s.subscriptions.remove(at);
                    true
                }
                Err(_) => false,
            })
            .cloned()
            .collect();
        s.subscriptions.shrink_to_fit();
        removed
    }

    pub fn is_subscribed(&self, uri: &str) -> bool {
        self.lock().subscriptions.binary_search_by(|s| (**s).cmp(uri)).is_ok()
    }

    pub fn subscriptions(&self) -> Vec<Arc<str>> {
        self.lock().subscriptions.clone()
    }

    /// The state, locked; what the holder does to the queue is counted in [`queue_totals`].
    fn lock(&self) -> Tracked<'_> {
        let guard = self.state.lock();
        let before = guard.queue.len();
        Tracked { guard, before }
    }

    pub fn queue_len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Records the client's address (the first one recorded stays).
    pub fn set_client(&self, address: std::net::IpAddr) {
        let _ = self.client.set(address);
    }

    pub fn client(&self) -> Option<std::net::IpAddr> {
        self.client.get().copied()
    }

    /// When a poll last began or ended, and whether one is held now.
    pub fn last_poll(&self) -> (Timestamp, bool) {
        let s = self.lock();
        (s.last_seen, s.held_polls > 0)
    }
}

/// A held poll of a session, counted until dropped: answered or abandoned by the client alike
/// (docs/architecture.md, "Cancellation safety").
#[must_use = "the poll is held while the lease lives"]
pub struct PollLease<'a> {
    session: &'a Session,
    generation: u64,
    now: &'a (dyn Fn() -> Timestamp + Send + Sync),
}

impl PollLease<'_> {
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl Drop for PollLease<'_> {
    fn drop(&mut self) {
        self.session.end_poll((self.now)());
    }
}

/// Queue places reserved for the answers of one admitted command; what is left unused is given
/// back when dropped (also when the command is abandoned half-way).
#[must_use = "the reservation is given back when dropped"]
pub struct Admission<'a> {
    session: &'a Session,
    left: usize,
}

impl Admission<'_> {
    /// Queues an answer in a reserved place.
    pub fn push(&mut self, payload: Arc<Event>) -> Pushed {
        self.push_covering::<&str>(payload, &[])
    }

    /// Queues an answer that carries the state the snapshots under `keys` carry (a query's
    /// answer): unsent snapshots under those keys are sealed first, so that a newer one is queued
    /// after the answer instead of replacing an older one in front of it.
    pub fn push_covering<K: AsRef<str>>(&mut self, payload: Arc<Event>, keys: &[K]) -> Pushed {
        let left = &mut self.left;
        self.session.locked_push(|s| {
            debug_assert!(*left > 0, "a command queued more answers than it reserved");
            s.seal(keys);
            if *left == 0 {
                return s.push_state(payload, None);
            }
            *left -= 1;
            s.reserved -= 1;
            s.append(Kind::Answer, None, payload);
            Pushed::Queued
        })
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        let mut s = self.session.state.lock();
        s.reserved = s.reserved.saturating_sub(self.left);
    }
}

/// Unacknowledged events over every session of the process, and the longest queue seen since the
/// last look: kept up to date as queues change, so that `/metrics` never walks the sessions.
struct QueueTotals {
    events: std::sync::atomic::AtomicI64,
    high_water: std::sync::atomic::AtomicUsize,
}

static QUEUE_TOTALS: QueueTotals =
    QueueTotals { events: std::sync::atomic::AtomicI64::new(0), high_water: std::sync::atomic::AtomicUsize::new(0) };

/// (unacknowledged events in all queues, the longest queue since the previous call).
pub fn queue_totals() -> (i64, usize) {
    use std::sync::atomic::Ordering::Relaxed;
    (QUEUE_TOTALS.events.load(Relaxed), QUEUE_TOTALS.high_water.swap(0, Relaxed))
}

/// A session's locked state; on unlock, the change of its queue's length goes into the totals.
struct Tracked<'a> {
    guard: parking_lot::MutexGuard<'a, SessionState>,
    before: usize,
}

impl std::ops::Deref for Tracked<'_> {
    type Target = SessionState;
    fn deref(&self) -> &SessionState {
        &self.guard
    }
}

impl std::ops::DerefMut for Tracked<'_> {
    fn deref_mut(&mut self) -> &mut SessionState {
        &mut self.guard
    }
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let after = self.guard.queue.len();
        if after != self.before {
            QUEUE_TOTALS.events.fetch_add(after as i64 - self.before as i64, Relaxed);
            QUEUE_TOTALS.high_water.fetch_max(after, Relaxed);
        }
    }
}

/// The outcome of checking a poll.
#[derive(Debug)]
pub enum PollCheck {
    Ready(Batch),
    Wait,
    Superseded(Batch),
    Resync,
    Ended,
}

impl SessionState {
    /// Free queue places, counting those reserved for admitted commands.
    fn room(&self) -> usize {
        self.limit.saturating_sub(self.queue.len() + self.reserved)
    }

    /// A resync burst waits until it fits, or — when it can never fit (more subscriptions than the
    /// bound allows for) — until the queue is empty: the queue then holds at most the burst.
    fn burst_fits(&self) -> bool {
        let size = self.subscriptions.len() * RESYNC_EVENTS_PER_SUBSCRIPTION + RESYNC_FIXED_EVENTS;
        self.room() >= size || (self.queue.is_empty() && self.reserved == 0)
    }

    /// An ack acknowledges at most what was sent: a larger one is clamped to the last eid sent.
    fn acknowledge(&mut self, ack: u64) {
        self.acked = self.acked.max(ack.min(self.sent_upto));
        while self.queue.front().is_some_and(|q| q.eid <= self.acked) {
            self.queue.pop_front();
        }
        // An idle session keeps no queue buffer (the initial burst would leave one behind).
        if self.queue.is_empty() && self.queue.capacity() > IDLE_QUEUE_CAPACITY {
            self.queue = VecDeque::new();
        }
    }

    fn coalesce(&mut self, payload: &Arc<Event>, presentity: Option<&Arc<str>>) -> bool {
        let Some(key) = presentity else { return false };
        let sent_upto = self.sent_upto;
        let mut unsent = self.queue.iter_mut().rev().take_while(|q| q.eid > sent_upto);
        match unsent.find(|q| q.presentity.as_ref() == Some(key)) {
            Some(older) => {
                older.payload = payload.clone();
                true
            }
            None => false,
        }
    }

    /// Unsent snapshots under `keys` stop coalescing: an event about to follow them carries the
    /// same state, and a newer snapshot must come after that event. One pass over the unsent part.
    fn seal<K: AsRef<str>>(&mut self, keys: &[K]) {
        if keys.is_empty() {
            return;
        }
        let keys: HashSet<&str> = keys.iter().map(AsRef::as_ref).collect();
        let sent_upto = self.sent_upto;
        for q in self.queue.iter_mut().rev().take_while(|q| q.eid > sent_upto) {
            if q.presentity.as_deref().is_some_and(|p| keys.contains(p)) {
                q.presentity = None;
            }
        }
    }

    fn push_state(&mut self, payload: Arc<Event>, presentity: Option<&Arc<str>>) -> Pushed {
        if self.resync_pending {
            return Pushed::Covered;
        }
        if self.coalesce(&payload, presentity) {
            return Pushed::Coalesced;
        }
        if self.room() == 0 {
            self.overflow();
            return Pushed::Resync;
        }
        self.append(Kind::State, presentity, payload);
        Pushed::Queued
    }

    /// A burst event: started only when the burst fits (or the queue was empty), so it is never
    /// dropped or bounced by the bound.
    fn push_burst(&mut self, payload: Arc<Event>, presentity: Option<&Arc<str>>) -> Pushed {
        if self.resync_pending {
            return Pushed::Covered;
        }
        self.append(Kind::State, presentity, payload);
        Pushed::Queued
    }

    fn append(&mut self, kind: Kind, presentity: Option<&Arc<str>>, payload: Arc<Event>) {
        self.last_eid += 1;
        self.queue.push_back(Queued { eid: self.last_eid, kind, presentity: presentity.cloned(), payload });
    }

    /// Overflow: unsent state events go (a resync burst will replace them); unsent answers are
    /// renumbered so the client still sees consecutive eids.
    fn overflow(&mut self) {
        let sent_upto = self.sent_upto;
        self.queue.retain(|q| q.eid <= sent_upto || q.kind == Kind::Answer);
        let mut eid = sent_upto;
        for q in self.queue.iter_mut().filter(|q| q.eid > sent_upto) {
            eid += 1;
            q.eid = eid;
        }
        self.last_eid = eid;
        self.resync_pending = true;
    }

    fn take_batch(&mut self) -> Option<Batch> {
        let acked = self.acked;
        let events: Vec<_> = self.queue.iter().filter(|q| q.eid > acked).map(|q| (q.eid, q.payload.clone())).collect();
        let last = events.last()?.0;
        self.sent_upto = self.sent_upto.max(last);
        Some(Batch { events, ack_id: last })
    }

    fn empty_batch(&self) -> Batch {
        Batch { events: Vec::new(), ack_id: self.acked }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn now() -> Timestamp {
        Utc::now()
    }

    fn payload(n: u32) -> Arc<Event> {
        Event::new(crate::hub::event::EventBody::Outcome { rid: n.to_string().into(), error: None })
    }

    /// The number a test event was made with.
    fn number(event: &Event) -> u32 {
        match &event.body {
            crate::hub::event::EventBody::Outcome { rid, .. } => rid.parse().expect("made by payload"),
            _ => unreachable!("test events are outcomes"),
        }
    }

    fn session_with(limit: usize) -> Session {
        let options = SessionOptions { queue_limit: limit, ..SessionOptions::default() };
        Session::new(1, "sip:a@x".into(), 1, options, Utc::now())
    }

    fn session() -> Session {
        session_with(10)
    }

    fn eids(b: &Batch) -> Vec<u64> {
        b.events.iter().map(|e| e.0).collect()
    }

    fn poll(s: &Session, ack: u64) -> PollCheck {
        let lease = s.begin_poll(ack, now(), &now);
        s.check_poll(lease.generation())
    }

    #[test]
    fn unacknowledged_events_are_sent_again_with_the_same_eids() {
        let s = session();
        s.push(payload(1), None);
        s.push(payload(2), None);
        let PollCheck::Ready(first) = poll(&s, 0) else { panic!() };
        assert_eq!((eids(&first), first.ack_id), (vec![1, 2], 2));
        // The response was lost: the client polls again with the old ack.
        let PollCheck::Ready(again) = poll(&s, 0) else { panic!() };
        assert_eq!(eids(&again), vec![1, 2]);
        assert!(matches!(poll(&s, 2), PollCheck::Wait));
        assert_eq!(s.queue_len(), 0);
    }

    #[test]
    fn unsent_snapshots_of_one_presentity_coalesce_in_place() {
        let s = session();
        let bob: Arc<str> = "sip:bob@x".into();
        assert_eq!(s.push(payload(1), Some(&bob)), Pushed::Queued);
        assert_eq!(s.push(payload(2), None), Pushed::Queued);
        assert_eq!(s.push(payload(3), Some(&bob)), Pushed::Coalesced);
        let PollCheck::Ready(b) = poll(&s, 0) else { panic!() };
        assert_eq!(eids(&b), vec![1, 2]);
        assert_eq!(number(&b.events[0].1), 3, "the newest snapshot replaced the older one");
        // Once sent, a newer snapshot is a new event.
        assert_eq!(s.push(payload(4), Some(&bob)), Pushed::Queued);
    }

    #[test]
    fn an_answer_covering_a_presentity_seals_its_unsent_snapshot() {
        let s = session();
        let (bob, carol): (Arc<str>, Arc<str>) = ("sip:bob@x".into(), "sip:carol@x".into());
        s.push(payload(1), Some(&bob));
        s.push(payload(2), Some(&carol));
        s.admit(1).unwrap().push_covering(payload(3), std::slice::from_ref(&bob));
        assert_eq!(s.push(payload(4), Some(&bob)), Pushed::Queued, "queued after the answer");
        assert_eq!(s.push(payload(5), Some(&carol)), Pushed::Coalesced, "nothing covers carol");
        assert_eq!(s.push(payload(6), Some(&bob)), Pushed::Coalesced, "the newer snapshot coalesces again");
        let PollCheck::Ready(b) = poll(&s, 0) else { panic!() };
        assert_eq!(eids(&b), vec![1, 2, 3, 4]);
        let numbers: Vec<_> = b.events.iter().map(|e| number(&e.1)).collect();
        assert_eq!(numbers, [1, 5, 3, 6], "bob's newest comes last");
    }

    #[test]
    fn overflow_drops_unsent_state_keeps_answers_and_asks_for_a_resync_without_eid_gaps() {
        let s = session_with(3);
        let users: Vec<Arc<str>> = (0..4).map(|i| Arc::from(format!("sip:u{i}@x"))).collect();
        s.push(payload(0), Some(&users[0]));
        let _ = poll(&s, 0); // eid 1 sent, not acknowledged
        s.push(payload(1), Some(&users[1]));
        s.admit(1).unwrap().push(payload(9));
        assert_eq!(s.push(payload(2), Some(&users[2])), Pushed::Resync);
        assert_eq!(s.push(payload(3), Some(&users[3])), Pushed::Covered, "the pending burst covers it");
        let PollCheck::Ready(b) = poll(&s, 0) else { panic!("the burst does not fit yet: what is queued goes first") };
        assert_eq!(eids(&b), vec![1, 2], "the sent snapshot stays; the answer is renumbered");
        assert_eq!(number(&b.events[1].1), 9);
        assert!(matches!(poll(&s, 2), PollCheck::Resync), "a burst of 5 never fits in 3: it comes once the queue is empty");
    }

    #[test]
    fn a_pending_resync_is_asked_for_once_the_burst_fits() {
        let s = session_with(6);
        for n in 0..6 {
            s.push(payload(n), None);
        }
        assert_eq!(s.push(payload(7), None), Pushed::Resync);
        assert_eq!(s.queue_len(), 0, "every unsent state event went");
        assert!(matches!(poll(&s, 0), PollCheck::Resync));
    }

    #[test]
    fn commands_are_admitted_while_their_answers_fit() {
        let s = session_with(4);
        let mut first = s.admit(3).expect("room for three answers");
        assert_eq!(s.push(payload(1), None), Pushed::Queued);
        assert_eq!(s.push(payload(2), None), Pushed::Resync, "the reserved places are not for state events");
        for n in 0..3 {
            assert_eq!(first.push(payload(10 + n)), Pushed::Queued);
        }
        drop(first);
        assert_eq!(s.queue_len(), 3);
        assert!(s.admit(3).is_none(), "answers are never dropped: the command is refused");
        let second = s.admit(1).expect("one place left");
        drop(second);
        let PollCheck::Ready(b) = poll(&s, 0) else { panic!() };
        assert_eq!(eids(&b), vec![1, 2, 3], "the answers, renumbered after the dropped state event");
        assert!(s.admit(3).is_none(), "sent, not yet acknowledged");
        assert!(matches!(poll(&s, b.ack_id), PollCheck::Resync), "emptied: the resync comes");
        assert!(s.admit(3).is_some(), "acknowledged answers free their places");
    }

    #[test]
    fn a_dropped_admission_gives_its_places_back() {
        let s = session_with(3);
        let admission = s.admit(3).unwrap();
        assert!(s.admit(1).is_none());
        drop(admission);
        assert!(s.admit(3).is_some());
    }

    #[test]
    fn a_newer_poll_supersedes_an_older_one() {
        let s = session();
        let old = s.begin_poll(0, now(), &now);
        let _new = s.begin_poll(0, now(), &now);
        assert!(matches!(s.check_poll(old.generation()), PollCheck::Superseded(b) if b.events.is_empty()));
    }

    #[test]
    fn a_poll_counts_as_held_until_its_lease_is_dropped() {
        let s = session();
        let late = Utc::now() + chrono::Duration::seconds(40);
        let at_end = move || late;
        let lease = s.begin_poll(0, Utc::now(), &at_end);
        assert_eq!((s.held_polls(), s.idle_since()), (1, None));
        drop(lease); // answered or abandoned alike
        assert_eq!((s.held_polls(), s.idle_since()), (0, Some(late)), "last seen when the poll ended");
    }

    #[test]
    fn an_ack_beyond_what_was_sent_acknowledges_only_what_was_sent() {
        let s = session();
        s.push(payload(1), None);
        let PollCheck::Ready(b) = poll(&s, 1_000_000_000_005) else { panic!("nothing was sent: nothing is acknowledged") };
        assert_eq!(eids(&b), vec![1]);
        s.push(payload(2), None);
        let PollCheck::Ready(b) = poll(&s, 1_000_000_000_005) else { panic!("eid 2 was never sent") };
        assert_eq!((eids(&b), b.ack_id), (vec![2], 2));
        assert!(matches!(poll(&s, u64::MAX), PollCheck::Wait));
        assert!(matches!(poll(&s, 0), PollCheck::Wait), "an older ack does not take anything back");
    }

    #[test]
    fn subscription_limit() {
        let s = session();
        let uris: Vec<Arc<str>> = (0..3).map(|i| Arc::from(format!("sip:u{i}@x"))).collect();
        assert_eq!(s.subscribe(&uris[..2], 2).map(|v| v.len()), Some(2));
        assert_eq!(s.subscribe(&uris[..2], 2).map(|v| v.len()), Some(0), "re-subscribing is free");
        assert!(s.subscribe(&uris[2..], 2).is_none());
    }
}

#[cfg(test)]
mod properties;
