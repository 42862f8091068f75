//! One live session: its queue of pending events with per-session `eid`s, the acknowledged and
//! sent positions, coalescing of unsent presence snapshots, the overflow → resynchronise rule, and
//! the wake-up handle a held poll waits on. All state sits behind one short, non-async lock.

use crate::cwa::envelope::EventPayload;
use crate::model::sources::Timestamp;
use parking_lot::Mutex;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::Notify;

/// A drained queue with more room than this gives its buffer back.
const IDLE_QUEUE_CAPACITY: usize = 8;

/// An event waiting in a session's queue.
#[derive(Debug, Clone)]
struct Queued {
    eid: u64,
    /// The presentity a presence snapshot is about (coalescing key); `None` for other events.
    presentity: Option<Arc<str>>,
    payload: Arc<EventPayload>,
}

/// What happened to a pushed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Replaced an unsent snapshot of the same presentity.
    Coalesced,
    /// The queue was over its bound: unsent snapshots were dropped and a resync is pending.
    Resync,
    /// The session has ended.
    Ended,
}

/// A batch handed to one poll.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub events: Vec<(u64, Arc<EventPayload>)>,
    /// `cwaEvents@ackId`: the last eid of the batch, or the acknowledged position when empty.
    pub ack_id: u64,
}

#[derive(Debug)]
struct SessionState {
    queue: VecDeque<Queued>,
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
    subscriptions: HashSet<Arc<str>>,
}

/// The options a session keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    pub auto_publish_machine_state: bool,
    pub auto_subscribe_contacts: bool,
    /// A JSON API event stream instead of a CWA data channel.
    pub json: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions { auto_publish_machine_state: true, auto_subscribe_contacts: true, json: false }
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
            state: Mutex::new(SessionState {
                queue: VecDeque::new(),
                last_eid: 0,
                acked: 0,
                sent_upto: 0,
                poll_generation: 0,
                held_polls: 0,
                last_seen: now,
                last_active: now,
                machine_idle: None,
                resync_pending: false,
                ended: false,
                subscriptions: HashSet::new(),
            }),
            wake: Notify::new(),
        }
    }

    /// Appends an event (coalescing unsent snapshots of the same presentity) and wakes a held poll.
    pub fn push(&self, payload: Arc<EventPayload>, presentity: Option<&Arc<str>>, max_queue: usize) -> Pushed {
        let outcome = {
            let mut s = self.state.lock();
            if s.ended {
                return Pushed::Ended;
            }
            s.push(payload, presentity, max_queue)
        };
        self.wake.notify_waiters();
        outcome
    }

    /// Takes the resync flag: the caller must queue a fresh full burst.
    pub fn take_resync(&self) -> bool {
        std::mem::take(&mut self.state.lock().resync_pending)
    }

    /// Starts a poll: acknowledges, supersedes any older poll, returns this poll's generation.
    pub fn begin_poll(&self, ack: u64, now: Timestamp) -> u64 {
        let generation = {
            let mut s = self.state.lock();
            s.acknowledge(ack);
            s.poll_generation += 1;
            s.held_polls += 1;
            s.last_seen = now;
            s.poll_generation
        };
        self.wake.notify_waiters();
        generation
    }

    pub fn end_poll(&self, now: Timestamp) {
        let mut s = self.state.lock();
        s.held_polls = s.held_polls.saturating_sub(1);
        s.last_seen = now;
    }

    /// What a poll of `generation` should do now.
    pub fn check_poll(&self, generation: u64) -> PollCheck {
        let mut s = self.state.lock();
        if s.ended {
            return PollCheck::Ended;
        }
        if s.poll_generation != generation {
            return PollCheck::Superseded(s.empty_batch());
        }
        if s.resync_pending {
            return PollCheck::Resync;
        }
        match s.take_batch() {
            Some(batch) => PollCheck::Ready(batch),
            None => PollCheck::Wait,
        }
    }

    /// Whatever is pending now, possibly nothing (used when the hold time is over).
    pub fn batch_now(&self) -> Batch {
        let mut s = self.state.lock();
        s.take_batch().unwrap_or_else(|| s.empty_batch())
    }

    /// A future that completes on the next push, poll or end; enable it before checking state.
    pub fn woken(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }

    pub fn end(&self) {
        self.state.lock().ended = true;
        self.wake.notify_waiters();
    }

    pub fn is_ended(&self) -> bool {
        self.state.lock().ended
    }

    /// Wakes a held poll without adding anything (shutdown).
    pub fn nudge(&self) {
        self.wake.notify_waiters();
    }

    /// Expired: no poll held and none seen since `deadline_from`.
    pub fn idle_since(&self) -> Option<Timestamp> {
        let s = self.state.lock();
        (s.held_polls == 0).then_some(s.last_seen)
    }

    /// Idle for presence purposes at `now` (after `idle_timeout` without user activity).
    pub fn is_idle(&self, now: Timestamp, idle_timeout: chrono::Duration) -> bool {
        let s = self.state.lock();
        match s.machine_idle {
            Some(idle) => idle,
            None if !self.auto_publish_machine_state => false,
            None => now - s.last_active >= idle_timeout,
        }
    }

    /// When this session turns idle if nothing happens (None when it already is, or never will).
    pub fn idle_deadline(&self, now: Timestamp, idle_timeout: chrono::Duration) -> Option<Timestamp> {
        let s = self.state.lock();
        let deadline = s.last_active + idle_timeout;
        (s.machine_idle.is_none() && self.auto_publish_machine_state && deadline > now).then_some(deadline)
    }

    /// The user was active on this client (`UA=true`).
    pub fn record_activity(&self, now: Timestamp) {
        let mut s = self.state.lock();
        s.last_active = now;
        if self.auto_publish_machine_state {
            s.machine_idle = None;
        }
    }

    pub fn set_machine_idle(&self, idle: bool, now: Timestamp) {
        let mut s = self.state.lock();
        s.machine_idle = Some(idle);
        if !idle {
            s.last_active = now;
        }
    }

    /// Adds subscriptions up to `limit`; returns the ones newly added, or None when over the limit.
    pub fn subscribe(&self, uris: &[Arc<str>], limit: usize) -> Option<Vec<Arc<str>>> {
        let mut s = self.state.lock();
        let new: Vec<Arc<str>> = uris.iter().filter(|u| !s.subscriptions.contains(*u)).cloned().collect();
        if s.subscriptions.len() + new.len() > limit {
            return None;
        }
        s.subscriptions.extend(new.iter().cloned());
        Some(new)
    }

    pub fn unsubscribe(&self, uris: &[Arc<str>]) -> Vec<Arc<str>> {
        let mut s = self.state.lock();
        uris.iter().filter(|u| s.subscriptions.remove(*u)).cloned().collect()
    }

    pub fn subscriptions(&self) -> Vec<Arc<str>> {
        self.state.lock().subscriptions.iter().cloned().collect()
    }

    pub fn queue_len(&self) -> usize {
        self.state.lock().queue.len()
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
    fn acknowledge(&mut self, ack: u64) {
        self.acked = self.acked.max(ack);
        while self.queue.front().is_some_and(|q| q.eid <= self.acked) {
            self.queue.pop_front();
        }
        // An idle session keeps no queue buffer (the initial burst would leave one behind).
        if self.queue.is_empty() && self.queue.capacity() > IDLE_QUEUE_CAPACITY {
            self.queue = VecDeque::new();
        }
        self.sent_upto = self.sent_upto.max(self.acked.min(self.last_eid));
    }

    fn push(&mut self, payload: Arc<EventPayload>, presentity: Option<&Arc<str>>, max_queue: usize) -> Pushed {
        if let Some(key) = presentity {
            let sent_upto = self.sent_upto;
            let unsent = self.queue.iter_mut().rev().take_while(|q| q.eid > sent_upto);
            if let Some(older) = unsent.into_iter().find(|q| q.presentity.as_ref() == Some(key)) {
                older.payload = payload;
                return Pushed::Coalesced;
            }
        }
        if self.queue.len() >= max_queue {
            self.drop_unsent_snapshots();
            if presentity.is_some() {
                return Pushed::Resync;
            }
        }
        self.last_eid += 1;
        self.queue.push_back(Queued { eid: self.last_eid, presentity: presentity.cloned(), payload });
        Pushed::Queued
    }

    /// Overflow: unsent presence snapshots go (a resync burst will replace them); the other unsent
    /// events are renumbered so the client still sees consecutive eids.
    fn drop_unsent_snapshots(&mut self) {
        let sent_upto = self.sent_upto;
        self.queue.retain(|q| q.eid <= sent_upto || q.presentity.is_none());
        let mut eid = sent_upto;
        for q in self.queue.iter_mut().filter(|q| q.eid > sent_upto) {
            eid += 1;
            q.eid = eid;
        }
        self.last_eid = eid.max(sent_upto);
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
        Batch { events: Vec::new(), ack_id: self.acked.min(self.last_eid) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn payload(n: u32) -> Arc<EventPayload> {
        let mut users = EventPayload::content_writer();
        users.empty("user", &[("n", Some(&n.to_string()))]);
        Arc::new(EventPayload::user_presence(users.finish_fragment()))
    }

    fn session() -> Session {
        Session::new(1, "sip:a@x".into(), 1, SessionOptions::default(), Utc::now())
    }

    fn eids(b: &Batch) -> Vec<u64> {
        b.events.iter().map(|e| e.0).collect()
    }

    #[test]
    fn unacknowledged_events_are_sent_again_with_the_same_eids() {
        let s = session();
        s.push(payload(1), None, 10);
        s.push(payload(2), None, 10);
        let g = s.begin_poll(0, Utc::now());
        let PollCheck::Ready(first) = s.check_poll(g) else { panic!() };
        assert_eq!((eids(&first), first.ack_id), (vec![1, 2], 2));
        // The response was lost: the client polls again with the old ack.
        let g = s.begin_poll(0, Utc::now());
        let PollCheck::Ready(again) = s.check_poll(g) else { panic!() };
        assert_eq!(eids(&again), vec![1, 2]);
        let g = s.begin_poll(2, Utc::now());
        assert!(matches!(s.check_poll(g), PollCheck::Wait));
        assert_eq!(s.queue_len(), 0);
    }

    #[test]
    fn unsent_snapshots_of_one_presentity_coalesce_in_place() {
        let s = session();
        let bob: Arc<str> = "sip:bob@x".into();
        assert_eq!(s.push(payload(1), Some(&bob), 10), Pushed::Queued);
        assert_eq!(s.push(payload(2), None, 10), Pushed::Queued);
        assert_eq!(s.push(payload(3), Some(&bob), 10), Pushed::Coalesced);
        let g = s.begin_poll(0, Utc::now());
        let PollCheck::Ready(b) = s.check_poll(g) else { panic!() };
        assert_eq!(eids(&b), vec![1, 2]);
        assert_eq!(b.events[0].1, payload(3), "the newest snapshot replaced the older one");
        // Once sent, a newer snapshot is a new event.
        assert_eq!(s.push(payload(4), Some(&bob), 10), Pushed::Queued);
    }

    #[test]
    fn overflow_drops_unsent_snapshots_and_asks_for_a_resync_without_eid_gaps() {
        let s = session();
        let users: Vec<Arc<str>> = (0..4).map(|i| Arc::from(format!("sip:u{i}@x"))).collect();
        s.push(payload(0), Some(&users[0]), 3);
        let g = s.begin_poll(0, Utc::now());
        let _ = s.check_poll(g); // eid 1 sent, not acknowledged
        s.push(payload(1), Some(&users[1]), 3);
        s.push(payload(9), None, 3);
        assert_eq!(s.push(payload(2), Some(&users[2]), 3), Pushed::Resync);
        assert!(s.take_resync());
        let g = s.begin_poll(0, Utc::now());
        let PollCheck::Ready(b) = s.check_poll(g) else { panic!() };
        assert_eq!(eids(&b), vec![1, 2], "the sent snapshot stays; the other event is renumbered");
        assert_eq!(b.events[1].1, payload(9));
    }

    #[test]
    fn a_newer_poll_supersedes_an_older_one() {
        let s = session();
        let old = s.begin_poll(0, Utc::now());
        let _new = s.begin_poll(0, Utc::now());
        assert!(matches!(s.check_poll(old), PollCheck::Superseded(b) if b.events.is_empty()));
    }

    #[test]
    fn ack_beyond_the_counter_returns_nothing_new() {
        let s = session();
        s.push(payload(1), None, 10);
        let g = s.begin_poll(5, Utc::now());
        assert!(matches!(s.check_poll(g), PollCheck::Wait));
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
