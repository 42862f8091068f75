//! Presence changes: a [`ChangeDriver`] applies one stamped change for a publisher (today through
//! `publishSelfPresence` on the publisher's own session; a driver for the JSON source API plugs in
//! beside it), and a [`Changer`] issues changes, one at a time per publisher so that their order
//! is known, either one by one or at a steady rate, and remembers the last accepted change of each.

use crate::cwa::{self, CommandPool, Login};
use crate::events::Stamp;
use crate::fleet::{Ctx, LiveSession};
use crate::stats::{now_us, Counters};
use anyhow::{anyhow, Result};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Applies one presence change that carries `note` (a stamp) for `publisher`.
#[async_trait]
pub trait ChangeDriver: Send + Sync {
    fn name(&self) -> &'static str;
    async fn change(&self, publisher: usize, note: &str) -> Result<()>;
}

/// `publishSelfPresence` of a personal note on the publisher's own session, sent to the node
/// that holds the session.
pub struct CwaPublish {
    sessions: HashMap<usize, (Arc<CommandPool>, Arc<Login>, u64)>,
    rid: AtomicU64,
}

impl CwaPublish {
    /// Uses the first session of each publisher found in `sessions`.
    pub fn new(ctx: &Ctx, sessions: &[LiveSession]) -> CwaPublish {
        let mut map = HashMap::new();
        for s in sessions {
            map.entry(s.user).or_insert_with(|| (ctx.nodes[s.node].pool.clone(), s.login.clone(), s.sid));
        }
        CwaPublish { sessions: map, rid: AtomicU64::new(1000) }
    }
}

#[async_trait]
impl ChangeDriver for CwaPublish {
    fn name(&self) -> &'static str {
        "cwa-publishSelfPresence"
    }

    async fn change(&self, publisher: usize, note: &str) -> Result<()> {
        let (pool, login, sid) = self.sessions.get(&publisher).ok_or_else(|| anyhow!("publisher {publisher} has no session"))?;
        let rid = self.rid.fetch_add(1, Ordering::Relaxed);
        cwa::command(pool, login, cwa::publish_note_body(*sid, rid, note), 1).await.map(|_| ())
    }
}

#[derive(Default)]
struct PublisherState {
    next_seq: AtomicU64,
    accepted: AtomicU64,
    busy: AtomicBool,
}

/// Issues stamped changes for a set of publishers.
pub struct Changer {
    driver: Arc<dyn ChangeDriver>,
    counters: Arc<Counters>,
    publishers: Vec<usize>,
    state: Vec<PublisherState>,
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub skipped: AtomicU64,
    /// Round trips of the accepted changes (microseconds), waiting for a pooled connection included.
    round_trips: parking_lot::Mutex<Vec<u32>>,
}

impl Changer {
    pub fn new(driver: Arc<dyn ChangeDriver>, counters: Arc<Counters>, publishers: Vec<usize>) -> Arc<Changer> {
        let state = publishers.iter().map(|_| PublisherState::default()).collect();
        Arc::new(Changer {
            driver,
            counters,
            publishers,
            state,
            sent: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            round_trips: parking_lot::Mutex::new(Vec::new()),
        })
    }

    pub fn driver_name(&self) -> &'static str {
        self.driver.name()
    }

    /// Publishes the next change of publisher number `i`; returns its change number, or None when
    /// that publisher's previous change is still in flight.
    pub async fn change(&self, i: usize) -> Result<Option<u64>> {
        let state = &self.state[i];
        if state.busy.swap(true, Ordering::AcqRel) {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let seq = state.next_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let started = Instant::now();
        let result = self.driver.change(self.publishers[i], &Stamp::note(seq, now_us())).await;
        Counters::add(&self.counters.requests, 1);
        match &result {
            Ok(()) => {
                state.accepted.fetch_max(seq, Ordering::AcqRel);
                self.round_trips.lock().push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                self.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                Counters::add(&self.counters.errors, 1);
            }
        }
        state.busy.store(false, Ordering::Release);
        result.map(|()| Some(seq))
    }

    /// Changes at `rate` per second, round-robin over the publishers, for `duration`.
    pub async fn steady(self: &Arc<Self>, rate: f64, duration: Duration) {
        let started = Instant::now();
        let mut issued: u64 = 0;
        let mut next = 0usize;
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        let mut inflight = tokio::task::JoinSet::new();
        while started.elapsed() < duration {
            tick.tick().await;
            let due = (started.elapsed().as_secs_f64() * rate) as u64;
            while issued < due {
                let (me, i) = (self.clone(), next);
                inflight.spawn(async move {
                    let _ = me.change(i).await;
                });
                issued += 1;
                next = (next + 1) % self.publishers.len();
            }
            while inflight.try_join_next().is_some() {}
        }
        while inflight.join_next().await.is_some() {}
    }

    /// The round trips of every accepted change so far.
    pub fn round_trips(&self) -> Vec<u32> {
        self.round_trips.lock().clone()
    }

    /// The last accepted change number of every publisher that changed (by user number).
    pub fn last_accepted(&self) -> HashMap<u32, u64> {
        self.publishers
            .iter()
            .zip(&self.state)
            .map(|(user, s)| (*user as u32, s.accepted.load(Ordering::Acquire)))
            .filter(|(_, seq)| *seq > 0)
            .collect()
    }
}
