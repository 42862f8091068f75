//! Write gates for per-owner data (contact list, subscribers, rights): one owner's writes are
//! serialised — each is held across its store write — while different owners proceed at once.
//! Owners share a fixed set of stripes by hash, so memory stays bounded whatever the number of
//! users. A change that touches every owner (global rights, deleting a user) takes the gates of
//! everyone. Guards are owned, so a change can carry its gate onto the task that completes it.
//! A task never holds two owner gates at once (two owners may share a stripe).

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
        let stripe = self.stripes[self.hasher.hash_one(owner) as usize % STRIPES].clone();
        OwnerGate { _stripe: stripe.lock_owned().await, _everyone: everyone }
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
        gates.hasher.hash_one(owner) as usize % STRIPES
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
