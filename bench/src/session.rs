//! One virtual client session: it holds one data-channel poll at a time on a connection of its
//! own, acknowledges exactly what it has read (`AckId` = the last `ackId`), and checks every
//! delivered batch: consecutive `eid`s (gaps and duplicates are counted), `ackId` = the last eid,
//! and for every stamped change the latency and the publisher's change number.

use crate::cwa::{poll_path, Login};
use crate::events::{self, Batch};
use crate::fleet::NodeLink;
use crate::stats::{now_us, Counters, Waiter};
use anyhow::{bail, Result};
use hyper::Method;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What a session's checks found.
#[derive(Debug, Default)]
pub struct Tracker {
    pub sid: u64,
    /// The node the session is on (index into the run's nodes).
    pub node: usize,
    pub last_eid: u64,
    pub events: u64,
    pub responses: u64,
    pub nonempty_responses: u64,
    pub eid_gaps: u64,
    pub duplicates: u64,
    pub bad_acks: u64,
    pub errors: u64,
    pub ended: bool,
    /// Latency of each first sighting of a stamped change (microseconds).
    pub latencies_us: Vec<u32>,
    /// The same, for changes sent at or after the measurement window opened.
    pub window_latencies_us: Vec<u32>,
    /// The newest change number seen per publisher.
    pub seen: HashMap<u32, u64>,
    /// `userPresence` events answering a query (more than one user).
    pub query_answers: u64,
}

impl Tracker {
    /// Checks one batch; returns the number of new stamped deliveries.
    pub fn absorb(&mut self, batch: &Batch, waiters: &[Arc<Waiter>], measure_from_us: u64) -> u64 {
        self.responses += 1;
        let Some(last) = batch.events.last() else {
            if batch.ack_id > self.last_eid {
                self.bad_acks += 1;
            }
            return 0;
        };
        self.nonempty_responses += 1;
        if batch.ack_id != last.eid {
            self.bad_acks += 1;
        }
        let received = now_us();
        let mut deliveries = 0;
        for event in &batch.events {
            if event.eid <= self.last_eid {
                self.duplicates += 1;
                continue;
            }
            self.eid_gaps += event.eid - self.last_eid - 1;
            self.last_eid = event.eid;
            self.events += 1;
            if event.users > 1 {
                self.query_answers += 1;
            }
            for stamp in &event.stamps {
                let before = self.seen.get(&stamp.publisher).copied().unwrap_or(0);
                if stamp.seq <= before {
                    continue; // the same change again inside a later snapshot: not a new delivery
                }
                self.seen.insert(stamp.publisher, stamp.seq);
                let latency = received.saturating_sub(stamp.sent_us).min(u64::from(u32::MAX)) as u32;
                self.latencies_us.push(latency);
                if stamp.sent_us >= measure_from_us {
                    self.window_latencies_us.push(latency);
                }
                deliveries += 1;
                for waiter in waiters.iter().filter(|w| w.publisher == stamp.publisher) {
                    waiter.observe(before, stamp.seq);
                }
            }
        }
        deliveries
    }
}

/// Signals every session task listens to.
#[derive(Clone)]
pub struct Signals {
    /// `true` ends the poll loops.
    pub stop: watch::Receiver<bool>,
    /// Each change drops the current data-channel connection at once (reconnect storm).
    pub drop_connections: watch::Receiver<u64>,
}

/// What a session task needs.
pub struct PollTask {
    pub node: Arc<NodeLink>,
    pub node_index: usize,
    pub counters: Arc<Counters>,
    pub waiters: Arc<Vec<Arc<Waiter>>>,
    pub login: Arc<Login>,
    pub sid: u64,
    pub index: usize,
    pub signals: Signals,
}

impl PollTask {
    /// Polls until stopped; returns what the checks found.
    pub async fn run(mut self) -> Tracker {
        let mut tracker = Tracker { sid: self.sid, node: self.node_index, ..Tracker::default() };
        let mut conn = None;
        let mut backoff = Duration::from_millis(50);
        while !*self.signals.stop.borrow() {
            if conn.is_none() {
                match self.node.endpoint.connect(self.index).await {
                    Ok(c) => {
                        self.counters.connections.fetch_add(1, Ordering::Relaxed);
                        conn = Some(c);
                    }
                    Err(_) => {
                        self.error(&mut tracker);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue;
                    }
                }
            }
            let c = conn.as_mut().expect("connected");
            let path = poll_path(self.sid, tracker.last_eid);
            let ticket = self.login.ticket();
            tokio::select! {
                reply = c.send(Method::GET, &path, Some(&ticket), None) => match reply {
                    Ok(reply) => {
                        self.login.observe(&reply);
                        match self.handle(&mut tracker, reply.status, reply.text()) {
                            Ok(()) => backoff = Duration::from_millis(50),
                            Err(_) if tracker.ended => break,
                            Err(_) => {
                                self.error(&mut tracker);
                                tokio::time::sleep(backoff).await;
                                backoff = (backoff * 2).min(Duration::from_secs(2));
                            }
                        }
                    }
                    Err(_) => {
                        self.close(&mut conn);
                        self.error(&mut tracker);
                    }
                },
                _ = self.signals.drop_connections.changed() => {
                    self.close(&mut conn);
                    self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                _ = self.signals.stop.changed() => {}
            }
        }
        self.close(&mut conn);
        tracker
    }

    fn close(&self, conn: &mut Option<crate::client::Conn>) {
        if conn.take().is_some() {
            self.counters.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn error(&self, tracker: &mut Tracker) {
        tracker.errors += 1;
        Counters::add(&self.counters.errors, 1);
    }

    fn handle(&self, tracker: &mut Tracker, status: u16, body: &str) -> Result<()> {
        if status == 404 {
            tracker.ended = true;
            bail!("session {} ended", self.sid);
        }
        if status != 200 {
            bail!("poll failed: HTTP {status}");
        }
        let batch = events::parse(body)?;
        let measure_from = self.counters.measure_from_us.load(Ordering::Relaxed);
        let deliveries = tracker.absorb(&batch, &self.waiters, measure_from);
        Counters::add(&self.counters.responses, 1);
        Counters::add(&self.counters.nonempty_responses, u64::from(!batch.events.is_empty()));
        Counters::add(&self.counters.events, batch.events.len() as u64);
        Counters::add(&self.counters.deliveries, deliveries);
        Counters::add(&self.node.deliveries, deliveries);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventInfo, Stamp};

    fn event(eid: u64, stamp: Option<(u32, u64)>) -> EventInfo {
        let stamps = stamp.map(|(publisher, seq)| Stamp { publisher, seq, sent_us: 0 }).into_iter().collect();
        EventInfo { eid, users: 1, stamps }
    }

    #[test]
    fn gaps_duplicates_and_bad_acks_are_counted() {
        let mut t = Tracker::default();
        t.absorb(&Batch { ack_id: 2, events: vec![event(1, Some((5, 1))), event(2, None)] }, &[], 0);
        // eid 2 again (a duplicate), then 4 (eid 3 missing), and an ackId that is not the last eid.
        t.absorb(&Batch { ack_id: 3, events: vec![event(2, None), event(4, Some((5, 2)))] }, &[], 0);
        assert_eq!((t.duplicates, t.eid_gaps, t.bad_acks, t.last_eid), (1, 1, 1, 4));
        assert_eq!((t.latencies_us.len(), t.seen[&5]), (2, 2));
    }

    #[test]
    fn a_change_seen_again_in_a_later_snapshot_is_not_a_new_delivery() {
        let mut t = Tracker::default();
        let waiter = Waiter::new(5);
        waiter.arm(2);
        let w = [waiter.clone()];
        assert_eq!(t.absorb(&Batch { ack_id: 1, events: vec![event(1, Some((5, 2)))] }, &w, 0), 1);
        assert_eq!(t.absorb(&Batch { ack_id: 2, events: vec![event(2, Some((5, 2)))] }, &w, 0), 0);
        assert_eq!(waiter.reached(), 1);
    }
}
