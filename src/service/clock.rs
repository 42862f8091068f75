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
        system_now()
    }

    fn jumped(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::pending())
    }
}

/// `Utc::now()`, the same instant, with the calendar date worked out once per day and thread
/// instead of at every reading (a poll reads the clock several times).
fn system_now() -> Timestamp {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.ok().and_then(since_epoch).unwrap_or_else(chrono::Utc::now)
}

/// The instant `since` the epoch, as `DateTime::from_timestamp` makes it; the date of the day
/// comes from the thread's last reading when it was the same day.
fn since_epoch(since: std::time::Duration) -> Option<Timestamp> {
    use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
    use std::cell::Cell;
    thread_local! {
        /// The last day (since the epoch) read on this thread, and its date.
        static DAY: Cell<Option<(u64, NaiveDate)>> = const { Cell::new(None) };
    }
    let (secs, nanos) = (since.as_secs(), since.subsec_nanos());
    let (day, of_day) = (secs / 86_400, (secs % 86_400) as u32);
    let date = DAY.with(|cached| match cached.get() {
        Some((known, date)) if known == day => Some(date),
        _ => {
            let date = chrono::DateTime::from_timestamp(i64::try_from(secs).ok()?, 0)?.date_naive();
            cached.set(Some((day, date)));
            Some(date)
        }
    })?;
    let time = NaiveTime::from_num_seconds_from_midnight_opt(of_day, nanos)?;
    Some(NaiveDateTime::new(date, time).and_utc())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_system_clock_reads_as_chrono_reads_it() {
        let before = chrono::Utc::now();
        let now = SystemClock.now();
        assert!(before <= now && now <= chrono::Utc::now());
        // Across days, back and forth, at their edges: the cached date never outlives its day.
        for secs in [0, 86_399, 86_400, 1_764_374_399, 1_764_374_400, 86_400, 4_102_444_800, 1_764_374_401] {
            for nanos in [0, 1, 999_999_999] {
                let expected = chrono::DateTime::from_timestamp(secs as i64, nanos).unwrap();
                assert_eq!(since_epoch(Duration::new(secs, nanos)), Some(expected), "{secs}.{nanos}");
            }
        }
    }
}
