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

    /// The current instant (same as [`Clock::now`], without importing the trait).
    pub fn now_for_tests(&self) -> Timestamp {
        *self.now.lock()
    }

    pub fn advance(&self, by: chrono::Duration) {
        *self.now.lock() += by;
        // notify_one keeps a permit if the timer task is busy, so a jump is never missed.
        self.jumped.notify_one();
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
