//! The time source for timed transitions. Production uses the system clock; tests inject a
//! [`ManualClock`] and move it forward instead of sleeping.

use crate::model::sources::Timestamp;
use parking_lot::Mutex;
use std::sync::Arc;
use tokio::sync::Notify;

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    /// Completes when the clock jumps (never, for the system clock).
    fn jumped(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }

    fn jumped(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::pending())
    }
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
    jumped: Notify,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Arc<ManualClock> {
        Arc::new(ManualClock { now: Mutex::new(start), jumped: Notify::new() })
    }

    pub fn advance(&self, by: chrono::Duration) {
        *self.now.lock() += by;
        self.jumped.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock()
    }

    fn jumped(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(self.jumped.notified())
    }
}
