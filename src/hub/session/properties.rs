//! Property tests of the session queue: any interleaving of state events, snapshots, admitted
//! commands, acks (stale, exact, beyond what was sent), lost responses, concurrent polls, overflow
//! and resync keeps the queue within its bound, hands out consecutive eids, never re-sends what was
//! acknowledged, re-sends an eid only with the same event, and drops nothing unsent without a
//! resync burst following. The queue holds at most its bound, or a whole resync burst when the
//! subscriptions alone exceed the bound. Of the events queued about a presentity (its snapshots
//! and the query answers showing it), the last one always carries its newest state.

use super::*;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

const KEYS: u8 = 4;

#[derive(Debug, Clone)]
enum Ack {
    /// The client's real position (the last batch it received).
    Current,
    /// An older position (a retried request).
    Stale(u8),
    /// Beyond anything sent.
    Beyond(u32),
    Huge,
}

#[derive(Debug, Clone)]
enum Op {
    /// The presentity changed: a snapshot of its newest state.
    Snapshot(u8),
    State,
    /// A query: an admitted command whose answer shows the presentity's current state.
    Query(u8),
    /// A query of a watched presentity that changes between rendering the answer and queuing it:
    /// the change's snapshot is queued first, then the answer showing the older state, then — as
    /// the gateway does when the presentity's version moved — a fresh snapshot.
    RacedQuery(u8),
    Command(u8),
    Subscribe(u8),
    /// A poll; `lost` = its response never reaches the client.
    Poll {
        ack: Ack,
        lost: bool,
    },
    /// Two polls at once: the older is answered empty, the newer gets the events.
    ConcurrentPolls,
}

fn op() -> impl Strategy<Value = Op> {
    let ack = prop_oneof![
        4 => Just(Ack::Current),
        1 => any::<u8>().prop_map(Ack::Stale),
        1 => any::<u32>().prop_map(Ack::Beyond),
        1 => Just(Ack::Huge),
    ];
    prop_oneof![
        4 => (0..KEYS).prop_map(Op::Snapshot),
        2 => Just(Op::State),
        2 => (1..=ANSWERS_PER_METHOD as u8).prop_map(Op::Command),
        2 => (0..KEYS).prop_map(Op::Query),
        1 => (0..KEYS).prop_map(Op::RacedQuery),
        1 => (0..KEYS).prop_map(Op::Subscribe),
        3 => (ack, proptest::bool::weighted(0.2)).prop_map(|(ack, lost)| Op::Poll { ack, lost }),
        1 => Just(Op::ConcurrentPolls),
    ]
}

fn key_uri(key: u8) -> Arc<str> {
    Arc::from(format!("sip:{key}@x"))
}

fn key_of(uri: &str) -> u8 {
    uri[4..5].parse().expect("made by key_uri")
}

fn now() -> Timestamp {
    chrono::Utc::now()
}

/// The test's view: what was pushed, what was handed out, what the client saw.
#[derive(Default)]
struct Model {
    next_id: u64,
    /// Every event whose push returned Queued or Coalesced: id → (op index, key).
    tracked: HashMap<u64, (usize, Option<u8>)>,
    answers: HashSet<u64>,
    /// Ids replaced in place by a newer snapshot of the same key.
    replaced: HashSet<u64>,
    /// The newest tracked id of each key.
    newest_of_key: HashMap<u8, u64>,
    /// Op indexes at which a resync burst was queued.
    bursts: Vec<usize>,
    /// eid → id of everything ever handed to a poll.
    handed_out: HashMap<u64, u64>,
    /// The state version of each presentity (bumped by every change).
    version: HashMap<u8, u64>,
    /// id → (presentity, state version) of every event showing a presentity's state.
    shows: HashMap<u64, (u8, u64)>,
    /// The largest eid handed out.
    sent_upto: u64,
    /// The client's position: the ackId of the last batch it received.
    client_ack: u64,
    /// What the server has acknowledged (the model of the clamp).
    acked: u64,
}

fn id_of(payload: &Event) -> u64 {
    match &payload.body {
        crate::hub::event::EventBody::Outcome { rid, .. } => rid.parse().expect("test payloads carry their id"),
        _ => unreachable!("test payloads are outcomes"),
    }
}

impl Model {
    fn payload(&mut self) -> (u64, Arc<Event>) {
        self.next_id += 1;
        let body = crate::hub::event::EventBody::Outcome { rid: self.next_id.to_string().into(), error: None };
        (self.next_id, Event::new(body))
    }

    fn track(&mut self, pushed: Pushed, id: u64, step: usize, key: Option<u8>) {
        if pushed == Pushed::Coalesced {
            let older = self.newest_of_key[&key.expect("only snapshots coalesce")];
            self.replaced.insert(older);
        }
        if matches!(pushed, Pushed::Queued | Pushed::Coalesced) {
            self.tracked.insert(id, (step, key));
            if let Some(key) = key {
                self.newest_of_key.insert(key, id);
            }
        }
    }

    /// Records that event `id` shows the current state of presentity `key`.
    fn shows_current(&mut self, id: u64, key: u8) {
        let version = self.version.get(&key).copied().unwrap_or(0);
        self.shows.insert(id, (key, version));
    }

    /// Of the events queued about each presentity, the last carries its newest queued state.
    fn check_order(&self, s: &Session) -> Result<(), TestCaseError> {
        let mut last: HashMap<u8, (u64, u64)> = HashMap::new();
        let mut newest: HashMap<u8, u64> = HashMap::new();
        for q in &s.state.lock().queue {
            if let Some(&(key, version)) = self.shows.get(&id_of(&q.payload)) {
                last.insert(key, (q.eid, version));
                let top = newest.entry(key).or_insert(version);
                *top = (*top).max(version);
            }
        }
        for (key, (eid, version)) in last {
            prop_assert_eq!(version, newest[&key], "eid {} is the last about {} but not its newest state", eid, key);
        }
        Ok(())
    }

    fn ack_value(&self, ack: &Ack) -> u64 {
        match ack {
            Ack::Current => self.client_ack,
            Ack::Stale(back) => self.client_ack.saturating_sub(u64::from(*back)),
            Ack::Beyond(ahead) => self.sent_upto + 1 + u64::from(*ahead),
            Ack::Huge => u64::MAX,
        }
    }

    /// Checks one batch against everything handed out before.
    fn receive(&mut self, batch: &Batch, ack: u64) -> Result<(), TestCaseError> {
        self.acked = self.acked.max(ack.min(self.sent_upto));
        let eids: Vec<u64> = batch.events.iter().map(|e| e.0).collect();
        let expected: Vec<u64> = (self.acked + 1..=self.acked + eids.len() as u64).collect();
        prop_assert_eq!(&eids, &expected, "consecutive, right after the acknowledged position");
        prop_assert_eq!(batch.ack_id, eids.last().copied().unwrap_or(self.acked));
        for (eid, payload) in &batch.events {
            let id = id_of(payload);
            if let Some(before) = self.handed_out.insert(*eid, id) {
                prop_assert_eq!(before, id, "an eid is re-sent only with the same event");
            }
            self.sent_upto = self.sent_upto.max(*eid);
        }
        Ok(())
    }
}

/// A poll as the gateway runs it: resync bursts are queued when asked for.
fn run_poll(s: &Session, model: &mut Model, step: usize, subscriptions: &[Arc<str>], ack: u64) -> Batch {
    let lease = s.begin_poll(ack, now(), &now);
    loop {
        match s.check_poll(lease.generation()) {
            PollCheck::Ready(batch) | PollCheck::Superseded(batch) => return batch,
            PollCheck::Wait => return s.batch_now(),
            PollCheck::Ended => unreachable!("the session never ends here"),
            PollCheck::Resync => {
                assert!(s.take_resync());
                model.bursts.push(step);
                let fixed = (0..RESYNC_FIXED_EVENTS).map(|_| None);
                // Each subscription's presence snapshot (keyed) and its raw categories.
                let snapshots = subscriptions.iter().flat_map(|uri| [Some(uri), None]);
                for key in fixed.chain(snapshots) {
                    let (id, payload) = model.payload();
                    let pushed = s.push_resync(payload, key);
                    let key = key.map(|uri| key_of(uri));
                    if let Some(key) = key {
                        model.shows_current(id, key);
                    }
                    model.track(pushed, id, step, key);
                }
            }
        }
    }
}

/// The presentity `key` changed: a snapshot of its newest state.
fn snapshot(s: &Session, model: &mut Model, step: usize, key: u8) {
    *model.version.entry(key).or_default() += 1;
    let (id, payload) = model.payload();
    model.shows_current(id, key);
    let pushed = s.push(payload, Some(&key_uri(key)));
    model.track(pushed, id, step, Some(key));
}

fn check(limit: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let options = SessionOptions { queue_limit: limit, ..SessionOptions::default() };
    let s = Session::new(1, "sip:a@x".into(), 1, options, now());
    let mut model = Model::default();
    let mut subscriptions: Vec<Arc<str>> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Snapshot(k) => snapshot(&s, &mut model, step, *k),
            Op::Query(k) => {
                if let Some(mut admission) = s.admit(ANSWERS_PER_METHOD) {
                    let (id, payload) = model.payload();
                    model.shows_current(id, *k);
                    prop_assert_eq!(admission.push_covering(payload, &[key_uri(*k)]), Pushed::Queued);
                    model.track(Pushed::Queued, id, step, None);
                    model.answers.insert(id);
                }
            }
            Op::RacedQuery(k) => {
                if let Some(mut admission) = s.admit(ANSWERS_PER_METHOD) {
                    let shown = model.version.get(k).copied().unwrap_or(0);
                    snapshot(&s, &mut model, step, *k);
                    let (id, payload) = model.payload();
                    model.shows.insert(id, (*k, shown));
                    prop_assert_eq!(admission.push_covering(payload, &[key_uri(*k)]), Pushed::Queued);
                    model.track(Pushed::Queued, id, step, None);
                    model.answers.insert(id);
                    drop(admission);
                    let (id, payload) = model.payload();
                    model.shows_current(id, *k);
                    let pushed = s.push(payload, Some(&key_uri(*k)));
                    model.track(pushed, id, step, Some(*k));
                }
            }
            Op::State => {
                let (id, payload) = model.payload();
                let pushed = s.push(payload, None);
                model.track(pushed, id, step, None);
            }
            Op::Command(n) => {
                if let Some(mut admission) = s.admit(ANSWERS_PER_METHOD) {
                    for _ in 0..*n {
                        let (id, payload) = model.payload();
                        prop_assert_eq!(admission.push(payload), Pushed::Queued, "an admitted answer is queued");
                        model.track(Pushed::Queued, id, step, None);
                        model.answers.insert(id);
                    }
                }
            }
            Op::Subscribe(k) => {
                if s.subscribe(&[key_uri(*k)], KEYS.into()).is_some_and(|new| !new.is_empty()) {
                    subscriptions.push(key_uri(*k));
                }
            }
            Op::Poll { ack, lost } => {
                let ack = model.ack_value(ack);
                let batch = run_poll(&s, &mut model, step, &subscriptions, ack);
                model.receive(&batch, ack)?;
                if !lost {
                    model.client_ack = batch.ack_id;
                }
            }
            Op::ConcurrentPolls => {
                let ack = model.client_ack;
                let older = s.begin_poll(ack, now(), &now);
                let batch = run_poll(&s, &mut model, step, &subscriptions, ack);
                let PollCheck::Superseded(empty) = s.check_poll(older.generation()) else {
                    return Err(TestCaseError::fail("the older poll is superseded"));
                };
                prop_assert!(empty.events.is_empty());
                drop(older);
                model.receive(&batch, ack)?;
                model.client_ack = batch.ack_id;
            }
        }
        let burst = subscriptions.len() * RESYNC_EVENTS_PER_SUBSCRIPTION + RESYNC_FIXED_EVENTS;
        prop_assert!(s.queue_len() <= limit.max(burst), "the bound holds for every kind of event");
        model.check_order(&s)?;
    }
    prop_assert_eq!(s.held_polls(), 0, "every poll lease was given back");
    // The client catches up: poll with its real position until nothing is left.
    let end = ops.len();
    for _ in 0..(4 + 2 * (model.tracked.len() / limit.max(1))) {
        let ack = model.client_ack;
        let batch = run_poll(&s, &mut model, end, &subscriptions, ack);
        model.receive(&batch, ack)?;
        model.client_ack = batch.ack_id;
    }
    prop_assert!(!s.take_resync(), "a pending resync was carried out");
    let delivered: HashSet<u64> = model.handed_out.values().copied().collect();
    let last_burst = model.bursts.last().copied();
    for (id, (step, _)) in &model.tracked {
        let excused = model.replaced.contains(id) || last_burst.is_some_and(|b| b >= *step);
        if model.answers.contains(id) {
            prop_assert!(delivered.contains(id), "answer {} was never delivered", id);
        } else {
            prop_assert!(delivered.contains(id) || excused, "state event {} dropped without a resync", id);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_session_queue_keeps_its_promises(limit in 1usize..24, ops in proptest::collection::vec(op(), 0..80)) {
        check(limit, ops)?;
    }
}
