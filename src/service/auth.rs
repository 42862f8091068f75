//! Sign-in: argon2id password hashes, tickets (≥128 random bits, rotated, expiring, with a grace
//! period for the replaced one) and the per-user / per-address limit on failed logons.

use crate::config::{Config, LogonPolicy};
use crate::model::sources::Timestamp;
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use chrono::Duration;
use parking_lot::Mutex;
use rand::RngCore;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// `bytes` random bytes, URL-safe base64.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// A signed-in user: the family of tickets that succeed one another.
#[derive(Debug)]
pub struct Login {
    pub id: u64,
    pub user: Arc<str>,
}

#[derive(Debug)]
struct TicketEntry {
    login: Arc<Login>,
    issued: Timestamp,
    last_used: Timestamp,
    /// Set when replaced: accepted until then.
    retired_until: Option<Timestamp>,
}

/// The result of presenting a ticket.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub login: Arc<Login>,
    /// The ticket to send back (a new one after rotation).
    pub ticket: String,
}

pub struct Tickets {
    entries: Mutex<HashMap<String, TicketEntry>>,
    next_login: AtomicU64,
    idle: Duration,
    rotation: Duration,
    grace: Duration,
}

impl Tickets {
    pub fn new(config: &Config) -> Self {
        let secs = |s: u64| Duration::seconds(s as i64);
        Tickets {
            entries: Mutex::new(HashMap::new()),
            next_login: AtomicU64::new(1),
            idle: secs(config.ticket_idle_seconds),
            rotation: secs(config.ticket_rotation_seconds),
            grace: secs(config.ticket_grace_seconds),
        }
    }

    /// Issues the first ticket of a new login.
    pub fn issue(&self, user: Arc<str>, now: Timestamp) -> Authenticated {
        let login = Arc::new(Login { id: self.next_login.fetch_add(1, Ordering::Relaxed), user });
        let ticket = random_token(32);
        let entry = TicketEntry { login: login.clone(), issued: now, last_used: now, retired_until: None };
        self.entries.lock().insert(ticket.clone(), entry);
        Authenticated { login, ticket }
    }

    /// Checks a ticket; rotates it when it is old. `None` = unknown or expired.
    pub fn authenticate(&self, ticket: &str, now: Timestamp) -> Option<Authenticated> {
        let mut entries = self.entries.lock();
        let entry = entries.get_mut(ticket)?;
        let expired = match entry.retired_until {
            Some(until) => now >= until,
            None => now - entry.last_used >= self.idle,
        };
        if expired {
            entries.remove(ticket);
            return None;
        }
        let login = entry.login.clone();
        if entry.retired_until.is_some() {
            // Within the grace period: accepted, and the caller gets the current ticket.
            let current =
                entries.iter().find(|(_, e)| e.login.id == login.id && e.retired_until.is_none()).map(|(t, _)| t.clone());
            return Some(Authenticated { login, ticket: current.unwrap_or_else(|| ticket.to_string()) });
        }
        entry.last_used = now;
        if now - entry.issued < self.rotation {
            return Some(Authenticated { login, ticket: ticket.to_string() });
        }
        entry.retired_until = Some(now + self.grace);
        let fresh = random_token(32);
        entries.insert(fresh.clone(), TicketEntry { login: login.clone(), issued: now, last_used: now, retired_until: None });
        Some(Authenticated { login, ticket: fresh })
    }

    /// Ends every ticket of a user (password change, user removed).
    pub fn revoke_user(&self, user: &str) {
        self.entries.lock().retain(|_, e| &*e.login.user != user);
    }

    /// Drops expired tickets (called from the periodic sweep).
    pub fn sweep(&self, now: Timestamp) {
        let idle = self.idle;
        self.entries.lock().retain(|_, e| match e.retired_until {
            Some(until) => now < until,
            None => now - e.last_used < idle,
        });
    }
}

/// Counts failed logons per key within a window and refuses further attempts past the limit.
pub struct LogonLimiter {
    failures: Mutex<HashMap<String, (Timestamp, u32)>>,
    policy: LogonPolicy,
}

impl LogonLimiter {
    pub fn new(policy: LogonPolicy) -> Self {
        LogonLimiter { failures: Mutex::new(HashMap::new()), policy }
    }

    fn window(&self) -> Duration {
        Duration::seconds(self.policy.window_seconds as i64)
    }

    /// True when this user or address may try again.
    pub fn allows(&self, user: &str, address: &str, now: Timestamp) -> bool {
        let failures = self.failures.lock();
        let count = |key: &str| failures.get(key).filter(|(start, _)| now - *start < self.window()).map_or(0, |(_, n)| *n);
        count(&user_key(user)) < self.policy.failures_per_user && count(&address_key(address)) < self.policy.failures_per_address
    }

    pub fn record_failure(&self, user: &str, address: &str, now: Timestamp) {
        let window = self.window();
        let mut failures = self.failures.lock();
        for key in [user_key(user), address_key(address)] {
            let slot = failures.entry(key).or_insert((now, 0));
            if now - slot.0 >= window {
                *slot = (now, 0);
            }
            slot.1 += 1;
        }
    }

    pub fn record_success(&self, user: &str) {
        self.failures.lock().remove(&user_key(user));
    }

    pub fn sweep(&self, now: Timestamp) {
        let window = self.window();
        self.failures.lock().retain(|_, (start, _)| now - *start < window);
    }
}

fn user_key(user: &str) -> String {
    format!("u:{}", user.to_ascii_lowercase())
}

fn address_key(address: &str) -> String {
    format!("a:{address}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn argon2id_hashes_verify() {
        let hash = hash_password("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("s3cret", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("s3cret", "not a hash"));
    }

    #[test]
    fn tickets_rotate_with_a_grace_period_and_expire() {
        let config =
            Config { ticket_rotation_seconds: 60, ticket_grace_seconds: 10, ticket_idle_seconds: 600, ..Config::default() };
        let tickets = Tickets::new(&config);
        let t0 = Utc::now();
        let first = tickets.issue("sip:a@x".into(), t0);
        assert!(first.ticket.len() >= 43, "256 random bits");
        let same = tickets.authenticate(&first.ticket, t0 + Duration::seconds(30)).unwrap();
        assert_eq!(same.ticket, first.ticket);
        let rotated = tickets.authenticate(&first.ticket, t0 + Duration::seconds(61)).unwrap();
        assert_ne!(rotated.ticket, first.ticket);
        assert_eq!(rotated.login.id, first.login.id);
        let grace = tickets.authenticate(&first.ticket, t0 + Duration::seconds(65)).unwrap();
        assert_eq!(grace.ticket, rotated.ticket, "the old ticket is answered with the new one");
        assert!(tickets.authenticate(&first.ticket, t0 + Duration::seconds(72)).is_none());
        assert!(tickets.authenticate(&rotated.ticket, t0 + Duration::seconds(72)).is_some());
        assert!(tickets.authenticate(&rotated.ticket, t0 + Duration::seconds(72 + 601)).is_none(), "idle expiry");
        assert!(tickets.authenticate("forged", t0).is_none());
    }

    #[test]
    fn failed_logons_are_limited_per_user_and_address() {
        let limiter = LogonLimiter::new(LogonPolicy { failures_per_user: 2, failures_per_address: 3, window_seconds: 60 });
        let now = Utc::now();
        limiter.record_failure("bob", "1.2.3.4", now);
        limiter.record_failure("bob", "1.2.3.4", now);
        assert!(!limiter.allows("bob", "5.6.7.8", now));
        assert!(limiter.allows("carol", "1.2.3.4", now));
        limiter.record_failure("carol", "1.2.3.4", now);
        assert!(!limiter.allows("dave", "1.2.3.4", now), "the address is over its limit");
        assert!(limiter.allows("bob", "5.6.7.8", now + Duration::seconds(61)), "the window passes");
    }
}
