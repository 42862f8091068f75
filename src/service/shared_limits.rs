//! Which counts limit a sign-in (README "Sign-in limits"): on a shared backplane the cluster's
//! counts in Redis, so the limits hold for the cluster as if it were one node; standalone, or
//! whenever Redis does not answer in time, this node's own
//! [`super::logon_limit::LogonLimiter`] — the sign-in still
//! gets its answer, limited per node meanwhile, and an outage of Redis locks no one out.
//!
//! The shared counts see the user and the address only as digests ([`digest`]).

use super::logon_limit::{limit_address, Attempt, Throttled};
use super::Gateway;
use crate::backplane::LogonCount;
use crate::model::sources::Timestamp;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The longest a sign-in waits for the shared counts before this node counts on its own.
const SHARED_TIMEOUT: Duration = Duration::from_millis(750);

/// An attempt that passed the limits and was counted, where it was counted.
#[derive(Debug)]
pub enum CountedAttempt {
    /// By this node alone.
    Local(Attempt),
    /// In the cluster's shared counts (digests of the user and of the address).
    Shared { user: String, address: String },
}

/// A user name or client address as the shared counts know it: the first 128 bits of SHA-256
/// over a label and the value, in hex. It keeps names and addresses out of Redis's keys (which
/// anyone with access to Redis lists); it is no secret — an IPv4 address can be found again by
/// trying them all.
pub fn digest(label: &str, value: &str) -> String {
    let hash = Sha256::new().chain_update(label).chain_update([0]).chain_update(value).finalize();
    hash[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the last attempt fell back to this node's counts (to log the switch once each way).
static FELL_BACK: AtomicBool = AtomicBool::new(false);

impl Gateway {
    /// Checks every limit for an attempt on `user` from `address` and counts it when it may go
    /// ahead: cluster-wide when the backplane is shared and answers, else on this node.
    pub(crate) async fn begin_logon(&self, user: &str, address: IpAddr, now: Timestamp) -> Result<CountedAttempt, Throttled> {
        if self.backplane.is_shared() {
            let (user_digest, address_digest) = (digest("user", user), digest("address", &limit_address(address).to_string()));
            let counted = if self.backplane.is_ready() {
                let count = self.backplane.count_logon(&user_digest, &address_digest, &self.config.logon);
                tokio::time::timeout(SHARED_TIMEOUT, count).await.map_err(|_| "timed out".to_string())
            } else {
                Err("not in step with Redis".to_string())
            };
            match counted {
                Ok(Ok(Some(LogonCount::Counted))) => {
                    note_fallback(false, "");
                    return Ok(CountedAttempt::Shared { user: user_digest, address: address_digest });
                }
                Ok(Ok(Some(LogonCount::Refused(wait)))) => {
                    note_fallback(false, "");
                    return Err(Throttled { retry_after: whole_seconds(wait) });
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => note_fallback(true, &e.to_string()),
                Err(why) => note_fallback(true, &why),
            }
        }
        self.limiter.begin(user, address, now).map(CountedAttempt::Local)
    }

    /// The attempt had the right password: its count is taken back where it was counted. The
    /// shared counts are told on a task of its own, so neither a slow Redis nor a client that
    /// hangs up keeps the sign-in from being taken back.
    pub(crate) fn logon_succeeded(&self, attempt: CountedAttempt, user: &str, address: IpAddr, now: Timestamp) {
        match attempt {
            CountedAttempt::Local(attempt) => self.limiter.succeeded(attempt, now),
            CountedAttempt::Shared { user: user_digest, address: address_digest } => {
                self.limiter.signed_in_from(user, address, now);
                let backplane = self.backplane.clone();
                tokio::spawn(async move {
                    if let Err(e) = backplane.logon_succeeded(&user_digest, &address_digest).await {
                        tracing::warn!(error = %e, "could not take a successful sign-in out of the shared counts");
                    }
                });
            }
        }
    }
}

/// Logs when sign-ins start and stop being counted on this node alone.
fn note_fallback(fell_back: bool, why: &str) {
    if FELL_BACK.swap(fell_back, Ordering::Relaxed) != fell_back {
        if fell_back {
            tracing::warn!(error = why, "the shared sign-in counts do not answer; this node limits sign-ins on its own");
        } else {
            tracing::info!("sign-ins are limited by the shared counts again");
        }
    }
}

/// A wait as whole seconds, rounded up, at least one (what `Retry-After` says).
fn whole_seconds(wait: Duration) -> Duration {
    Duration::from_secs(wait.as_millis().div_ceil(1000).max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_fixed_labelled_and_hide_the_value() {
        let bob = digest("user", "sip:bob@example.com");
        assert_eq!(bob, digest("user", "sip:bob@example.com"));
        assert_eq!(bob.len(), 32);
        assert!(!bob.contains("bob"));
        assert_ne!(bob, digest("address", "sip:bob@example.com"), "users and addresses never share a key");
        assert_ne!(digest("user", "a"), digest("user", "b"));
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), Duration::from_secs(1));
        assert_eq!(whole_seconds(Duration::from_millis(1000)), Duration::from_secs(1));
        assert_eq!(whole_seconds(Duration::from_millis(289_001)), Duration::from_secs(290));
    }
}
