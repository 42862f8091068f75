//! Logins and their tickets: the one place that knows which ticket values are valid.
//!
//! A *login* is one successful sign-in. It has an absolute lifetime (`ticket_lifetime_seconds`,
//! counted from the sign-in) and carries one or more ticket *values*: 256 random bits each, kept
//! here only as SHA-256 hashes. The first value is issued at sign-in; once the newest value is
//! older than `ticket_rotation_seconds`, the next use of any value of the login issues a fresh one,
//! which goes back to that client (so a login gains at most one value per rotation period). Other
//! uses are answered with the value presented. Earlier values are not withdrawn: every value stays
//! valid while it is used at least every `ticket_idle_seconds`, up to the login's absolute
//! lifetime, so a client that keeps the ticket from its sign-in reply and never reads a rotated
//! one keeps working (README, "Tickets").
//! The end of the login (lifetime reached, user removed, password changed) ends all of its values.
//!
//! The state is plain data ([`LoginRecord`], [`TicketRecord`]) behind [`Tickets`], so it can be
//! kept in the store as it is.

use crate::config::Config;
use crate::model::sources::Timestamp;
use base64::Engine;
use chrono::Duration;
use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A signed-in user: one sign-in, shared by every ticket value issued for it.
#[derive(Debug)]
pub struct Login {
    pub id: u64,
    pub user: Arc<str>,
}

/// The result of presenting a ticket.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub login: Arc<Login>,
    /// The ticket to send back: the presented one, or a fresh one after rotation.
    pub ticket: String,
}

impl Authenticated {
    /// Whether [`Authenticated::ticket`] is a value the client has not seen yet.
    pub fn rotated(&self, presented: &str) -> bool {
        self.ticket != presented
    }
}

/// SHA-256 of a ticket value: what is kept instead of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TicketHash(pub [u8; 32]);

impl TicketHash {
    pub fn of(ticket: &str) -> TicketHash {
        TicketHash(Sha256::digest(ticket.as_bytes()).into())
    }
}

/// One login as kept.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub login: Arc<Login>,
    /// Every value of this login ends at this moment (sign-in + absolute lifetime).
    pub expires: Timestamp,
    /// The newest value, and when it was issued (rotation is measured from there).
    pub newest: TicketHash,
    pub newest_issued: Timestamp,
}

/// One ticket value as kept.
#[derive(Debug, Clone)]
pub struct TicketRecord {
    pub login: u64,
    pub last_used: Timestamp,
}

/// The lifetimes of logins and their values.
#[derive(Debug, Clone, Copy)]
pub struct TicketPolicy {
    pub lifetime: Duration,
    pub idle: Duration,
    pub rotation: Duration,
}

impl TicketPolicy {
    pub fn from_config(config: &Config) -> TicketPolicy {
        let secs = |s: u64| Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
        TicketPolicy {
            lifetime: secs(config.ticket_lifetime_seconds),
            idle: secs(config.ticket_idle_seconds),
            rotation: secs(config.ticket_rotation_seconds),
        }
    }
}

#[derive(Default)]
struct Table {
    logins: HashMap<u64, LoginRecord>,
    values: HashMap<TicketHash, TicketRecord>,
}

impl Table {
    fn end_login(&mut self, id: u64) {
        self.logins.remove(&id);
        self.values.retain(|_, value| value.login != id);
    }

    fn add_value(&mut self, login: u64, now: Timestamp) -> (String, TicketHash) {
        let ticket = random_token(32);
        let hash = TicketHash::of(&ticket);
        self.values.insert(hash, TicketRecord { login, last_used: now });
        (ticket, hash)
    }
}

pub struct Tickets {
    table: Mutex<Table>,
    next_login: AtomicU64,
    policy: TicketPolicy,
}

impl Tickets {
    pub fn new(policy: TicketPolicy) -> Self {
        Tickets { table: Mutex::new(Table::default()), next_login: AtomicU64::new(1), policy }
    }

    /// Starts a login for `user` and issues its first ticket.
    pub fn issue(&self, user: Arc<str>, now: Timestamp) -> Authenticated {
        let login = Arc::new(Login { id: self.next_login.fetch_add(1, Ordering::Relaxed), user });
        let mut table = self.table.lock();
        let (ticket, hash) = table.add_value(login.id, now);
        let record = LoginRecord { login: login.clone(), expires: now + self.policy.lifetime, newest: hash, newest_issued: now };
        table.logins.insert(login.id, record);
        Authenticated { login, ticket }
    }

    /// Checks a ticket and records its use; issues a fresh value when the login's newest one is
    /// due for rotation. `None` = unknown, idle for too long, or its login has ended.
    pub fn authenticate(&self, ticket: &str, now: Timestamp) -> Option<Authenticated> {
        let hash = TicketHash::of(ticket);
        let mut table = self.table.lock();
        let value = table.values.get(&hash)?;
        let (id, last_used) = (value.login, value.last_used);
        let Some(record) = table.logins.get(&id) else {
            table.values.remove(&hash);
            return None;
        };
        if now >= record.expires {
            table.end_login(id);
            return None;
        }
        if now - last_used >= self.policy.idle {
            table.values.remove(&hash);
            return None;
        }
        let (login, due) = (record.login.clone(), now - record.newest_issued >= self.policy.rotation);
        table.values.get_mut(&hash)?.last_used = now;
        if !due {
            return Some(Authenticated { login, ticket: ticket.to_string() });
        }
        let (fresh, fresh_hash) = table.add_value(id, now);
        let record = table.logins.get_mut(&id)?;
        (record.newest, record.newest_issued) = (fresh_hash, now);
        Some(Authenticated { login, ticket: fresh })
    }

    /// Ends every login of a user (password change, user removed).
    pub fn revoke_user(&self, user: &str) {
        let mut table = self.table.lock();
        let ended: Vec<u64> = table.logins.values().filter(|r| &*r.login.user == user).map(|r| r.login.id).collect();
        for id in ended {
            table.end_login(id);
        }
    }

    /// Drops logins past their lifetime and values unused for the idle lifetime.
    pub fn sweep(&self, now: Timestamp) {
        let idle = self.policy.idle;
        let mut table = self.table.lock();
        table.logins.retain(|_, record| now < record.expires);
        let Table { logins, values } = &mut *table;
        values.retain(|_, value| logins.contains_key(&value.login) && now - value.last_used < idle);
        let used: std::collections::HashSet<u64> = values.values().map(|v| v.login).collect();
        logins.retain(|id, _| used.contains(id));
    }
}

/// `bytes` random bytes, URL-safe base64.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn policy() -> TicketPolicy {
        TicketPolicy { lifetime: Duration::hours(24), idle: Duration::seconds(600), rotation: Duration::seconds(60) }
    }

    #[test]
    fn rotation_issues_fresh_values_and_keeps_earlier_ones_valid_while_used() {
        let tickets = Tickets::new(policy());
        let t0 = Utc::now();
        let first = tickets.issue("sip:a@x".into(), t0);
        assert!(first.ticket.len() >= 43, "256 random bits");
        let same = tickets.authenticate(&first.ticket, t0 + Duration::seconds(30)).unwrap();
        assert_eq!(same.ticket, first.ticket);
        let rotated = tickets.authenticate(&first.ticket, t0 + Duration::seconds(61)).unwrap();
        assert!(rotated.rotated(&first.ticket));
        assert_eq!(rotated.login.id, first.login.id);
        let kept = tickets.authenticate(&first.ticket, t0 + Duration::seconds(90)).unwrap();
        assert_eq!(kept.ticket, first.ticket, "no new value before the next rotation is due");
        // The first value keeps working while it is used; each use past a rotation period brings
        // a fresh value, which this client ignores.
        for minutes in [5, 14, 23] {
            let again = tickets.authenticate(&first.ticket, t0 + Duration::minutes(minutes)).unwrap();
            assert!(again.rotated(&first.ticket));
        }
        assert!(tickets.authenticate(&rotated.ticket, t0 + Duration::minutes(23)).is_none(), "idle for over 10 minutes");
        assert!(tickets.authenticate(&first.ticket, t0 + Duration::minutes(34)).is_none(), "idle for 11 minutes");
        assert!(tickets.authenticate("forged", t0).is_none());
    }

    #[test]
    fn the_absolute_lifetime_ends_every_value_of_a_login() {
        let tickets = Tickets::new(policy());
        let t0 = Utc::now();
        let first = tickets.issue("sip:a@x".into(), t0);
        let mut newest = first.ticket.clone();
        let mut at = t0;
        while at < t0 + Duration::hours(24) - Duration::minutes(5) {
            at += Duration::minutes(5);
            assert!(tickets.authenticate(&first.ticket, at).is_some());
            newest = tickets.authenticate(&newest, at).unwrap().ticket;
        }
        let end = t0 + Duration::hours(24);
        assert!(tickets.authenticate(&newest, end).is_none());
        assert!(tickets.authenticate(&first.ticket, end - Duration::seconds(1)).is_none(), "ended with its login");
    }

    #[test]
    fn revocation_and_sweep_end_logins() {
        let tickets = Tickets::new(policy());
        let t0 = Utc::now();
        let a = tickets.issue("sip:a@x".into(), t0);
        let b = tickets.issue("sip:b@x".into(), t0);
        let rotated = tickets.authenticate(&a.ticket, t0 + Duration::seconds(90)).unwrap();
        tickets.revoke_user("sip:a@x");
        assert!(tickets.authenticate(&a.ticket, t0 + Duration::seconds(91)).is_none());
        assert!(tickets.authenticate(&rotated.ticket, t0 + Duration::seconds(91)).is_none());
        assert!(tickets.authenticate(&b.ticket, t0 + Duration::seconds(91)).is_some());
        tickets.sweep(t0 + Duration::seconds(91 + 600));
        let table = tickets.table.lock();
        assert!(table.logins.is_empty() && table.values.is_empty(), "idle values and their logins are swept");
    }
}
