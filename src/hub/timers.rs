//! One timer structure for every timed transition (a manual state's end, a note's expiry, an
//! appointment boundary, a client turning idle, a session expiring): an ordered set of deadlines
//! with at most one entry per key, and a wake-up for the single task that serves it.

use crate::model::sources::Timestamp;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use tokio::sync::Notify;

/// What a deadline is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    Presentity(std::sync::Arc<str>),
    Session(u64),
}

pub struct Timers<K: Ord + Hash + Clone> {
    inner: Mutex<Inner<K>>,
    changed: Notify,
}

struct Inner<K> {
    by_time: BTreeSet<(Timestamp, K)>,
    by_key: HashMap<K, Timestamp>,
}

impl<K: Ord + Hash + Clone> Default for Timers<K> {
    fn default() -> Self {
        Timers { inner: Mutex::new(Inner { by_time: BTreeSet::new(), by_key: HashMap::new() }), changed: Notify::new() }
    }
}

impl<K: Ord + Hash + Clone> Timers<K> {
    /// Sets (or moves) the deadline of `key`; `None` cancels it.
    pub fn schedule(&self, key: K, at: Option<Timestamp>) {
        let earliest_before = {
            let mut inner = self.inner.lock();
            let before = inner.by_time.first().map(|(t, _)| *t);
            if let Some(old) = inner.by_key.remove(&key) {
                inner.by_time.remove(&(old, key.clone()));
            }
            if let Some(at) = at {
                inner.by_time.insert((at, key.clone()));
                inner.by_key.insert(key, at);
            }
            before
        };
        if at.is_some_and(|at| earliest_before.is_none_or(|e| at < e)) {
            self.changed.notify_one();
        }
    }

    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.inner.lock().by_time.first().map(|(t, _)| *t)
    }

    /// Removes and returns every key due at `now`.
    pub fn pop_due(&self, now: Timestamp) -> Vec<K> {
        let mut inner = self.inner.lock();
        let mut due = Vec::new();
        while let Some((at, _)) = inner.by_time.first() {
            if *at > now {
                break;
            }
            let (_, key) = inner.by_time.pop_first().expect("non-empty");
            inner.by_key.remove(&key);
            due.push(key);
        }
        due
    }

    /// Completes when an earlier deadline was scheduled.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    pub fn len(&self) -> usize {
        self.inner.lock().by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};

    #[test]
    fn one_deadline_per_key_popped_in_order() {
        let t: Timers<u32> = Timers::default();
        let now = Utc::now();
        t.schedule(1, Some(now + Duration::seconds(10)));
        t.schedule(2, Some(now + Duration::seconds(5)));
        t.schedule(1, Some(now + Duration::seconds(3)));
        assert_eq!(t.len(), 2);
        assert_eq!(t.next_deadline(), Some(now + Duration::seconds(3)));
        assert_eq!(t.pop_due(now + Duration::seconds(4)), vec![1]);
        t.schedule(2, None);
        assert!(t.is_empty());
    }
}
