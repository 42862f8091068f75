//! Sign-in credentials: argon2id password hashes and their verification, bounded to as many at a
//! time as there are cores (each check holds about 19 MiB and a core for a while). Tickets live in
//! [`super::tickets`], the limit on failed sign-ins in [`super::logon_limit`].

pub use super::tickets::{random_token, Authenticated, Login};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Constant-time verification against a PHC string; a malformed hash never verifies.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A PHC string of a random password: verifying against it costs as much as a real check, so an
/// unknown user name takes as long to refuse as a wrong password.
pub fn decoy_hash() -> String {
    hash_password(&random_token(16)).unwrap_or_default()
}

/// Runs password checks on the blocking pool, at most `capacity` at once; the others wait their
/// turn without holding memory or a thread.
pub struct PasswordChecks {
    permits: Arc<Semaphore>,
    capacity: usize,
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    /// Checks handed to a blocking thread since start (they may not have begun yet).
    admitted: Arc<AtomicUsize>,
}

impl PasswordChecks {
    /// One check at a time per core.
    pub fn per_core() -> Self {
        PasswordChecks::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let admitted = Arc::new(AtomicUsize::new(0));
        PasswordChecks { permits: Arc::new(Semaphore::new(capacity)), capacity, running, peak, admitted }
    }

    /// Verifies `password` against `hash`. The permit moves into the blocking task, so a caller
    /// that goes away mid-check frees it only when the check has really finished.
    pub async fn verify(&self, password: String, hash: String) -> bool {
        let Ok(permit) = self.permits.clone().acquire_owned().await else { return false };
        let (running, peak) = (self.running.clone(), self.peak.clone());
        let check = move || {
            let _permit = permit;
            peak.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            let verified = verify_password(&password, &hash);
            running.fetch_sub(1, Ordering::SeqCst);
            verified
        };
        let handle = tokio::task::spawn_blocking(check);
        self.admitted.fetch_add(1, Ordering::SeqCst);
        handle.await.unwrap_or(false)
    }

    /// Checks handed to a blocking thread since start: it has grown by the time the caller first
    /// waits for its check, however fast the check is.
    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::SeqCst)
    }

    /// How many checks may run at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Checks running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// The most checks that ever ran at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// Waits until no check runs: every permit is free again (none was lost to a caller that
    /// went away).
    pub async fn all_finished(&self) {
        let all = u32::try_from(self.capacity).unwrap_or(u32::MAX);
        drop(self.permits.acquire_many(all).await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify() {
        let hash = hash_password("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("s3cret", "not a hash"));
    }
}
