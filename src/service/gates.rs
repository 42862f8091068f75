//! Write gates for per-owner data (contact list, subscribers, rights): one owner's writes are
//! serialised — each is held across its store write — while different owners proceed at once.
//! Owners share a fixed set of stripes by hash, so memory stays bounded whatever the number of
//! users. A change that touches every owner (global rights, deleting a user) takes the gates of
//! everyone. Guards are owned, so a change can carry its gate onto the task that completes it.
//! A task holds one owner's gate or, through [`OwnerGates::owners`], several owners' at once, whose
//! stripes it takes in ascending order; no task takes a gate while holding another, so no two
//! can wait for each other.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// The number of stripes (concurrent owners, give or take hash collisions).
const STRIPES: usize = 64;

pub struct OwnerGates {
    everyone: Arc<RwLock<()>>,
    stripes: Box<[Arc<Mutex<()>>]>,
    hasher: RandomState,
}

/// The gate of one owner, held until dropped.
#[must_use = "the gate is held until this is dropped"]
pub struct OwnerGate {
    _stripe: OwnedMutexGuard<()>,
    _everyone: OwnedRwLockReadGuard<()>,
}

/// The gates of several owners, held until dropped.
#[must_use = "the gates are held until this is dropped"]
pub struct OwnersGate {
    _stripes: Vec<OwnedMutexGuard<()>>,
    _everyone: OwnedRwLockReadGuard<()>,
}

/// The gates of every owner at once, held until dropped.
#[must_use = "the gates are held until this is dropped"]
pub struct EveryoneGate {
    _everyone: OwnedRwLockWriteGuard<()>,
}

impl Default for OwnerGates {
    fn default() -> Self {
        OwnerGates {
            everyone: Arc::default(),
            stripes: (0..STRIPES).map(|_| Arc::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl OwnerGates {
    pub async fn owner(&self, owner: &str) -> OwnerGate {
        let everyone = self.everyone.clone().read_owned().await;
        let stripe = self.stripes[self.stripe(owner)].clone();
        OwnerGate { _stripe: stripe.lock_owned().await, _everyone: everyone }
    }

    /// The gates of all of `owners` (a batch of writes that touches each of them): their stripes,
    /// each once, in ascending order.
    pub async fn owners(&self, owners: &[&str]) -> OwnersGate {
        let everyone = self.everyone.clone().read_owned().await;
        let mut stripes: Vec<usize> = owners.iter().map(|owner| self.stripe(owner)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut held = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            held.push(self.stripes[stripe].clone().lock_owned().await);
        }
        OwnersGate { _stripes: held, _everyone: everyone }
    }

    fn stripe(&self, owner: &str) -> usize {
        self.hasher.hash_one(owner) as usize % STRIPES
    }

    pub async fn everyone(&self) -> EveryoneGate {
        EveryoneGate { _everyone: self.everyone.clone().write_owned().await }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stripe_of(gates: &OwnerGates, owner: &str) -> usize {
        gates.stripe(owner)
    }

    #[tokio::test]
    async fn different_owners_write_at_once_one_owner_waits() {
        let gates = OwnerGates::default();
        let a = "sip:a@x";
        let b = (0..).map(|i| format!("sip:b{i}@x")).find(|b| stripe_of(&gates, b) != stripe_of(&gates, a)).unwrap();
        let held = gates.owner(a).await;
        let other = tokio::time::timeout(Duration::from_secs(5), gates.owner(&b)).await;
        assert!(other.is_ok(), "another owner is not held up");
        let same = gates.owner(a);
        tokio::pin!(same);
        assert!(futures_poll_once(same.as_mut()).await.is_none(), "the same owner waits");
        drop(held);
        drop(other);
        let _gate = tokio::time::timeout(Duration::from_secs(5), same).await.expect("and proceeds when the gate is free");
    }

    #[tokio::test]
    async fn several_owners_wait_for_each_of_them_and_hold_each_of_them() {
        let gates = OwnerGates::default();
        let a = "sip:a@x";
        let b = (0..).map(|i| format!("sip:b{i}@x")).find(|b| stripe_of(&gates, b) != stripe_of(&gates, a)).unwrap();
        let c = (0..).map(|i| format!("sip:c{i}@x")).find(|c| stripe_of(&gates, c) == stripe_of(&gates, a)).unwrap();
        let held = gates.owner(&b).await;
        let owners = [a, b.as_str(), c.as_str()];
        let both = gates.owners(&owners);
        tokio::pin!(both);
        assert!(futures_poll_once(both.as_mut()).await.is_none(), "waits for b");
        drop(held);
        let both = tokio::time::timeout(Duration::from_secs(5), both).await.expect("then holds a, b and c's shared stripe");
        let single = gates.owner(a);
        tokio::pin!(single);
        assert!(futures_poll_once(single.as_mut()).await.is_none(), "a is held");
        drop(both);
        let _gate = tokio::time::timeout(Duration::from_secs(5), single).await.expect("and free again");
    }

    #[tokio::test]
    async fn a_change_for_everyone_waits_for_every_owner() {
        let gates = OwnerGates::default();
        let held = gates.owner("sip:a@x").await;
        let all = gates.everyone();
        tokio::pin!(all);
        assert!(futures_poll_once(all.as_mut()).await.is_none());
        drop(held);
        let _gate = tokio::time::timeout(Duration::from_secs(5), all).await.expect("proceeds when no owner is held");
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
