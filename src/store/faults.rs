//! Fault injection for tests of "the store fails half-way": a backend checks [`Faults::step`]
//! after each statement of a write (and [`Faults::read`] before reading a ticket), so a test can make the n-th statement fail inside the
//! transaction and see that nothing of it was kept. Off (and free) unless a test arms it.

use super::{StoreError, StoreResult};
use std::sync::atomic::{AtomicI64, Ordering};

#[derive(Debug)]
pub struct Faults {
    /// Statements still allowed before the injected failure; negative = never fail.
    remaining: AtomicI64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults { remaining: AtomicI64::new(-1) }
    }
}

impl Faults {
    /// The write statement after the next `statements` ones fails (once), as a lost connection would.
    pub fn fail_after(&self, statements: u32) {
        self.remaining.store(statements as i64, Ordering::SeqCst);
    }

    /// Every write fails until [`Faults::heal`] (a store that is down).
    pub fn fail_always(&self) {
        self.remaining.store(i64::MIN / 2, Ordering::SeqCst);
    }

    pub fn heal(&self) {
        self.remaining.store(-1, Ordering::SeqCst);
    }

    /// For the reads a request may need before it can be answered (a ticket not yet cached):
    /// they fail only while the store is down ([`Faults::fail_always`]).
    pub(crate) fn read(&self) -> StoreResult<()> {
        match self.remaining.load(Ordering::SeqCst) < -1 {
            true => Err(StoreError::Unavailable("injected fault: the store is down".into())),
            false => Ok(()),
        }
    }

    pub(crate) fn step(&self) -> StoreResult<()> {
        let before = self.remaining.load(Ordering::SeqCst);
        if before == -1 {
            return Ok(());
        }
        if before < -1 {
            return Err(StoreError::Unavailable("injected fault: the store is down".into()));
        }
        if before == 0 {
            self.remaining.store(-1, Ordering::SeqCst);
            return Err(StoreError::Unavailable("injected fault: the connection was lost".into()));
        }
        self.remaining.store(before - 1, Ordering::SeqCst);
        Ok(())
    }
}
