//! Which presentities this node follows (docs/architecture.md §5). Every presentity has a channel
//! of its own; a node subscribes to it while it is interested — a session here watches the
//! presentity or belongs to its user — or while a read asked for it in the last linger, and
//! unsubscribes a linger after both ended, so a watcher that comes and goes costs no churn.
//!
//! The state is shared between the follow task (`follow.rs`), which alone subscribes, reads and
//! applies, and everyone else: hints that interest began or ended ([`Routing::hint`]) and reads
//! that wait until what they read is in step ([`Routing::want`]). Everything in it is bounded by
//! the presentities that exist or are watched here: each appears at most once in each map.

use super::super::BackplaneError;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

pub(super) struct Routing {
    state: Mutex<State>,
    /// Wakes the follow task: hints or reads wait for it.
    pub(super) wake: Notify,
    /// Bumped whenever presentities come in step or the connection is lost (for waiting reads).
    progress: watch::Sender<u64>,
    /// How long a presentity stays followed after the last interest or read.
    linger: Duration,
}

#[derive(Default)]
struct State {
    /// Connected and in step: the presentities in `versions` are current.
    connected: bool,
    /// To look at: interest may have begun or ended, or a read wants them.
    pending: HashSet<Arc<str>>,
    /// Followed (subscribed on the current connection, and read): the version applied last.
    versions: HashMap<Arc<str>, u64>,
    /// Being subscribed and read (they join `versions` once read).
    starting: HashSet<Arc<str>>,
    /// Followed, or to be followed, at least until then whatever the interest.
    keep: HashMap<Arc<str>, Instant>,
}

/// What one received change is to this node.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Received {
    /// Not followed, or a version already applied.
    Skip,
    /// The next version: apply it.
    Apply,
    /// A version after a gap: re-read the presentity (the version applied last).
    Gap(u64),
}

/// The presentities to follow and to stop following, as the follow task decided them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    pub follow: Vec<Arc<str>>,
}

impl Routing {
    pub(super) fn new(linger: Duration) -> Routing {
        Routing { state: Mutex::default(), wake: Notify::new(), progress: watch::channel(0).0, linger }
    }

    /// Interest in `uris` may have begun or ended.
    pub(super) fn hint(&self, uris: &[Arc<str>]) {
        self.state.lock().pending.extend(uris.iter().cloned());
        self.wake.notify_one();
    }

    /// A read needs `uris` current: keeps them followed for a linger, and waits (at most
    /// `limit`) until those not followed yet are. Fails at once while the node is not in step.
    pub(super) async fn want(&self, uris: &[Arc<str>], limit: Duration) -> Result<(), BackplaneError> {
        let mut progress = self.progress.subscribe();
        let missing: Vec<Arc<str>> = {
            let mut state = self.state.lock();
            let until = Instant::now() + self.linger;
            for uri in uris {
                let kept = state.keep.entry(uri.clone()).or_insert(until);
                *kept = (*kept).max(until);
            }
            let missing: Vec<Arc<str>> = uris.iter().filter(|u| !state.versions.contains_key(*u)).cloned().collect();
            if missing.is_empty() {
                return Ok(());
            }
            if !state.connected {
                return Err(not_in_step());
            }
            state.pending.extend(missing.iter().cloned());
            missing
        };
        self.wake.notify_one();
        let deadline = Instant::now() + limit;
        loop {
            {
                let state = self.state.lock();
                if !state.connected {
                    return Err(not_in_step());
                }
                if missing.iter().all(|u| state.versions.contains_key(u)) {
                    return Ok(());
                }
            }
            match tokio::time::timeout_at(deadline, progress.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(BackplaneError::Unreachable("following a presentity timed out".into())),
            }
        }
    }

    /// Takes the pending presentities and decides, with `interested` (asked outside the lock),
    /// which to start following; those whose interest ended linger.
    pub(super) fn plan(&self, interested: impl Fn(&str) -> bool) -> Plan {
        let pending: Vec<Arc<str>> = std::mem::take(&mut self.state.lock().pending).into_iter().collect();
        let interest: Vec<bool> = pending.iter().map(|u| interested(u)).collect();
        let now = Instant::now();
        let mut state = self.state.lock();
        let mut plan = Plan::default();
        for (uri, interested) in pending.into_iter().zip(interest) {
            let followed = state.versions.contains_key(&uri);
            let kept = state.keep.get(&uri).is_some_and(|until| *until > now);
            if !followed && (interested || kept) {
                plan.follow.push(uri);
            } else if followed && !interested {
                let until = now + self.linger;
                let kept = state.keep.entry(uri).or_insert(until);
                *kept = (*kept).max(until);
            }
        }
        plan
    }

    /// Presentities about to be subscribed and read: from now on they count as followed for
    /// [`Routing::follows`].
    pub(super) fn starting(&self, uris: &[Arc<str>]) {
        self.state.lock().starting.extend(uris.iter().cloned());
    }

    /// Whether `uri` is followed or about to be.
    pub(super) fn follows(&self, uri: &str) -> bool {
        let state = self.state.lock();
        state.versions.contains_key(uri) || state.starting.contains(uri)
    }

    /// Records presentities as followed from `version` on, and tells waiting reads.
    pub(super) fn followed(&self, read: impl IntoIterator<Item = (Arc<str>, u64)>) {
        let mut state = self.state.lock();
        for (uri, version) in read {
            state.starting.remove(&uri);
            state.versions.insert(uri, version);
        }
        crate::telemetry::backplane_followed(state.versions.len());
        drop(state);
        self.progress.send_modify(|n| *n += 1);
    }

    /// The presentities whose keeping ended by `now`; of those, the caller stops following the
    /// ones it is not interested in ([`Routing::unfollowed`]).
    pub(super) fn lapsed(&self, now: Instant) -> Vec<Arc<str>> {
        let mut state = self.state.lock();
        let mut lapsed: Vec<Arc<str>> = state.keep.iter().filter(|(_, until)| **until <= now).map(|(u, _)| u.clone()).collect();
        for uri in &lapsed {
            state.keep.remove(uri);
        }
        lapsed.retain(|u| state.versions.contains_key(u));
        lapsed
    }

    /// Forgets presentities no longer subscribed; a later change of theirs is skipped.
    pub(super) fn unfollowed(&self, uris: &[Arc<str>]) {
        let mut state = self.state.lock();
        for uri in uris {
            state.versions.remove(uri);
        }
        crate::telemetry::backplane_followed(state.versions.len());
    }

    /// What a change of `uri` at `version` is to this node; records it when it is the next one.
    pub(super) fn receive(&self, uri: &str, version: u64) -> Received {
        let mut state = self.state.lock();
        match state.versions.get_mut(uri) {
            None => Received::Skip,
            Some(known) if version <= *known => Received::Skip,
            Some(known) if version == *known + 1 => {
                *known = version;
                Received::Apply
            }
            Some(known) => Received::Gap(*known),
        }
    }

    /// Records the version a re-read after a gap found (never going back).
    pub(super) fn reread(&self, uri: &Arc<str>, version: u64) {
        if let Some(known) = self.state.lock().versions.get_mut(uri) {
            *known = (*known).max(version);
        }
    }

    /// In step again (after a connection's presentities were followed).
    pub(super) fn connected(&self) {
        self.state.lock().connected = true;
        self.progress.send_modify(|n| *n += 1);
    }

    /// The connection is lost: nothing is followed any more, and what was is to be followed again
    /// (with `interests`, everything a session here needs) on the next connection.
    pub(super) fn lost(&self, interests: Vec<Arc<str>>) {
        let mut state = self.state.lock();
        state.connected = false;
        let versions = std::mem::take(&mut state.versions);
        let starting = std::mem::take(&mut state.starting);
        state.pending.extend(versions.into_keys().chain(starting).chain(interests));
        crate::telemetry::backplane_followed(0);
        drop(state);
        self.progress.send_modify(|n| *n += 1);
    }
}

fn not_in_step() -> BackplaneError {
    BackplaneError::Unreachable("the backplane is not in step".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uris(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|n| Arc::from(*n)).collect()
    }

    #[test]
    fn interest_follows_and_lingers_after_it_ends() {
        let routing = Routing::new(Duration::from_secs(30));
        routing.lost(uris(&["a"]));
        let plan = routing.plan(|u| u == "a");
        assert_eq!(plan.follow, uris(&["a"]), "interest at connection");
        routing.starting(&plan.follow);
        assert!(routing.follows("a") && !routing.follows("b"), "followed from the subscription on");
        routing.followed([(Arc::from("a"), 4)]);
        routing.connected();
        assert_eq!(routing.receive("a", 4), Received::Skip, "what the read showed");
        assert_eq!(routing.receive("a", 5), Received::Apply);
        assert_eq!(routing.receive("a", 7), Received::Gap(5));
        routing.reread(&Arc::from("a"), 8);
        assert_eq!(routing.receive("a", 8), Received::Skip);
        assert_eq!(routing.receive("b", 1), Received::Skip, "not followed");

        routing.hint(&uris(&["a"]));
        assert_eq!(routing.plan(|_| false), Plan::default(), "interest ended: it lingers");
        let now = Instant::now();
        assert!(routing.lapsed(now + Duration::from_secs(29)).is_empty());
        assert_eq!(routing.lapsed(now + Duration::from_secs(31)), uris(&["a"]));
        routing.unfollowed(&uris(&["a"]));
        assert_eq!(routing.receive("a", 9), Received::Skip, "no longer followed");
        assert!(!routing.follows("a"));
    }

    #[tokio::test]
    async fn a_read_waits_until_followed_and_keeps_it_for_a_linger() {
        let routing = Arc::new(Routing::new(Duration::from_secs(30)));
        let wanted = uris(&["b"]);
        assert!(routing.want(&wanted, Duration::from_secs(2)).await.is_err(), "not in step: fails at once");
        routing.connected();
        let reader = {
            let routing = routing.clone();
            tokio::spawn(async move { routing.want(&uris(&["b"]), Duration::from_secs(2)).await })
        };
        tokio::task::yield_now().await;
        let plan = routing.plan(|_| false);
        assert_eq!(plan.follow, uris(&["b"]), "wanted by a read, though nobody watches");
        routing.followed([(Arc::from("b"), 1)]);
        reader.await.unwrap().expect("in step");
        assert!(routing.want(&wanted, Duration::ZERO).await.is_ok(), "followed: no wait");
        assert_eq!(routing.lapsed(Instant::now() + Duration::from_secs(31)), wanted);

        let slow = uris(&["c"]);
        assert!(routing.want(&slow, Duration::from_millis(20)).await.is_err(), "never followed: times out");
        routing.lost(Vec::new());
        assert!(routing.want(&slow, Duration::from_secs(60)).await.is_err(), "not in step: fails at once");
    }
}
