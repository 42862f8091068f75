//! The limit on failed sign-ins (README, "Sign-in limits"). It slows password guessing without
//! giving anyone a button that locks a user out:
//!
//! - **per user and address**: `failures_per_user_and_address` failures of one user from one
//!   client address within `window_seconds` make that address wait (for that user) until the
//!   window has passed;
//! - **per address**: `failures_per_address` failures from one address, whatever the users;
//! - **per user, from anywhere**: after `user_slowdown_after` failures of a user, each further
//!   attempt waits 1 s after the previous one, doubling with every failure up to
//!   `user_slowdown_max_seconds`. Addresses the user has signed in from during the last
//!   [`KNOWN_FOR_DAYS`] days are exempt, so guessing from elsewhere cannot keep the user out.
//!
//! Limits are keyed on the resolved user (every spelling of a name counts as one) and on the
//! address, IPv6 by its /64 network. An attempt counts *before* its password is checked, in the
//! same step as the limit check, so a parallel burst cannot pass the check together and a client
//! that hangs up mid-check has still used its attempt; a success takes its count back.

use crate::config::LogonPolicy;
use crate::model::sources::Timestamp;
use chrono::Duration;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

/// How long an address counts as one the user signs in from.
pub const KNOWN_FOR_DAYS: i64 = 30;
/// Known addresses remembered per user (the most recent ones).
pub const KNOWN_PER_USER: usize = 16;
/// Entries per table; past it the least recently touched entry makes room.
const MAX_ENTRIES: usize = 100_000;

/// An attempt that passed the limits and was counted; [`LogonLimiter::succeeded`] takes it back.
#[derive(Debug)]
pub struct Attempt {
    user: Arc<str>,
    address: IpAddr,
}

/// An attempt refused by the limits, with how long to wait before the next one can pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after: std::time::Duration,
}

/// Failures counted in a fixed window that opens with the first of them.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Timestamp,
    count: u32,
}

impl Window {
    /// The count of the window that is open at `now` (0 when it has passed).
    fn count(&self, now: Timestamp, length: Duration) -> u32 {
        if now - self.start < length {
            self.count
        } else {
            0
        }
    }

    fn bump(slot: &mut Window, now: Timestamp, length: Duration) {
        if now - slot.start >= length {
            *slot = Window { start: now, count: 0 };
        }
        slot.count += 1;
    }
}

/// A user's failures from anywhere: how many in a row, and when the last was counted.
#[derive(Debug, Clone, Copy)]
struct UserFailures {
    count: u32,
    last: Timestamp,
}

#[derive(Default)]
struct Tables {
    pairs: HashMap<(Arc<str>, IpAddr), Window>,
    addresses: HashMap<IpAddr, Window>,
    users: HashMap<Arc<str>, UserFailures>,
    /// user → addresses they signed in from, with the time of the last sign-in.
    known: HashMap<Arc<str>, Vec<(IpAddr, Timestamp)>>,
}

pub struct LogonLimiter {
    tables: Mutex<Tables>,
    policy: LogonPolicy,
}

impl LogonLimiter {
    pub fn new(policy: LogonPolicy) -> Self {
        LogonLimiter { tables: Mutex::new(Tables::default()), policy }
    }

    fn window(&self) -> Duration {
        seconds(self.policy.window_seconds)
    }

    /// A user's failures are forgotten this long after the last one.
    fn user_memory(&self) -> Duration {
        self.window().max(seconds(self.policy.user_slowdown_max_seconds))
    }

    /// The wait after a user's `failures`-th failure before the next attempt from elsewhere.
    fn user_delay(&self, failures: u32) -> Duration {
        let Some(over) = failures.checked_sub(self.policy.user_slowdown_after) else { return Duration::zero() };
        let secs = 1u64.checked_shl(over).unwrap_or(u64::MAX).min(self.policy.user_slowdown_max_seconds);
        seconds(secs)
    }

    /// Checks every limit for an attempt on `user` (the resolved user, or the spelling of an
    /// unknown name) from `address`, and counts it when it may go ahead.
    pub fn begin(&self, user: &str, address: IpAddr, now: Timestamp) -> Result<Attempt, Throttled> {
        let (address, window, policy) = (limit_address(address), self.window(), &self.policy);
        let mut tables = self.tables.lock();
        let user: Arc<str> = tables.users.get_key_value(user).map_or_else(|| Arc::from(user), |(k, _)| k.clone());
        let pair_key = (user.clone(), address);
        let mut wait = Duration::zero();
        let mut over = |slot: Option<&Window>, limit: u32| {
            if let Some(slot) = slot.filter(|w| w.count(now, window) >= limit) {
                wait = wait.max(slot.start + window - now);
            }
        };
        over(tables.pairs.get(&pair_key), policy.failures_per_user_and_address);
        over(tables.addresses.get(&address), policy.failures_per_address);
        let known = tables.known.get(&user).is_some_and(|list| list.iter().any(|(a, _)| *a == address));
        if let Some(failures) = tables.users.get(&user).filter(|f| !known && now - f.last < self.user_memory()) {
            wait = wait.max(failures.last + self.user_delay(failures.count) - now);
        }
        if wait > Duration::zero() {
            let secs = u64::try_from((wait.num_milliseconds() + 999) / 1000).unwrap_or(1).max(1);
            return Err(Throttled { retry_after: std::time::Duration::from_secs(secs) });
        }
        self.count(&mut tables, pair_key, now);
        Ok(Attempt { user, address })
    }

    fn count(&self, tables: &mut Tables, pair_key: (Arc<str>, IpAddr), now: Timestamp) {
        let (window, memory) = (self.window(), self.user_memory());
        let (user, address) = (pair_key.0.clone(), pair_key.1);
        make_room(&mut tables.pairs, &pair_key, |w| w.start);
        Window::bump(tables.pairs.entry(pair_key).or_insert(Window { start: now, count: 0 }), now, window);
        make_room(&mut tables.addresses, &address, |w| w.start);
        Window::bump(tables.addresses.entry(address).or_insert(Window { start: now, count: 0 }), now, window);
        make_room(&mut tables.users, &user, |f| f.last);
        let failures = tables.users.entry(user).or_insert(UserFailures { count: 0, last: now });
        if now - failures.last >= memory {
            failures.count = 0;
        }
        *failures = UserFailures { count: failures.count + 1, last: now };
    }

    /// The password was right: the attempt was no failure, and the address becomes known.
    pub fn succeeded(&self, attempt: Attempt, now: Timestamp) {
        let mut tables = self.tables.lock();
        tables.pairs.remove(&(attempt.user.clone(), attempt.address));
        if let Some(slot) = tables.addresses.get_mut(&attempt.address) {
            slot.count = slot.count.saturating_sub(1);
        }
        if let Some(failures) = tables.users.get_mut(&attempt.user) {
            failures.count = failures.count.saturating_sub(1);
        }
        remember(&mut tables, attempt.user, attempt.address, now);
    }

    /// The user signed in from `address` (counted elsewhere: the cluster's shared counts), so it
    /// is known here too should this node have to count on its own.
    pub fn signed_in_from(&self, user: &str, address: IpAddr, now: Timestamp) {
        let mut tables = self.tables.lock();
        let user: Arc<str> = tables.known.get_key_value(user).map_or_else(|| Arc::from(user), |(k, _)| k.clone());
        remember(&mut tables, user, limit_address(address), now);
    }

    /// Forgets windows that have passed, failures long ago and addresses no longer known.
    pub fn sweep(&self, now: Timestamp) {
        let (window, memory, known_for) = (self.window(), self.user_memory(), Duration::days(KNOWN_FOR_DAYS));
        let mut tables = self.tables.lock();
        tables.pairs.retain(|_, w| now - w.start < window);
        tables.addresses.retain(|_, w| now - w.start < window);
        tables.users.retain(|_, f| now - f.last < memory);
        tables.known.retain(|_, list| {
            list.retain(|(_, at)| now - *at < known_for);
            !list.is_empty()
        });
    }
}

/// Makes `address` one the user signs in from (the most recent [`KNOWN_PER_USER`] are kept).
fn remember(tables: &mut Tables, user: Arc<str>, address: IpAddr, now: Timestamp) {
    make_room(&mut tables.known, &user, |list| list.iter().map(|(_, at)| *at).max().unwrap_or(now));
    let list = tables.known.entry(user).or_default();
    list.retain(|(known, _)| *known != address);
    list.push((address, now));
    if list.len() > KNOWN_PER_USER {
        list.remove(0);
    }
}

fn seconds(secs: u64) -> Duration {
    Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 1000))
}

/// The address an attempt is limited under: IPv4 as it is, IPv6 by its /64 network (one host
/// usually holds a whole /64).
pub fn limit_address(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::V6(Ipv6Addr::from(octets))
        }
    }
}

/// Keeps a table within [`MAX_ENTRIES`]: before a new key goes in, the least recently touched
/// entry leaves.
fn make_room<K: Eq + Hash + Clone, V>(table: &mut HashMap<K, V>, key: &K, touched: impl Fn(&V) -> Timestamp) {
    if table.len() < MAX_ENTRIES || table.contains_key(key) {
        return;
    }
    if let Some(oldest) = table.iter().min_by_key(|(_, v)| touched(v)).map(|(k, _)| k.clone()) {
        table.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn policy() -> LogonPolicy {
        LogonPolicy {
            failures_per_user_and_address: 3,
            failures_per_address: 5,
            window_seconds: 300,
            user_slowdown_after: 4,
            user_slowdown_max_seconds: 60,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn one_address_is_limited_per_user_and_in_total() {
        let limiter = LogonLimiter::new(policy());
        let now = Utc::now();
        for _ in 0..3 {
            limiter.begin("sip:bob@x", ip("10.0.0.1"), now).unwrap();
        }
        let refused = limiter.begin("sip:bob@x", ip("10.0.0.1"), now + Duration::seconds(10)).unwrap_err();
        assert_eq!(refused.retry_after, std::time::Duration::from_secs(290));
        limiter.begin("sip:carol@x", ip("10.0.0.1"), now).unwrap();
        limiter.begin("sip:dave@x", ip("10.0.0.1"), now).unwrap();
        assert!(limiter.begin("sip:erin@x", ip("10.0.0.1"), now).is_err(), "the address is over its limit");
        assert!(limiter.begin("sip:bob@x", ip("10.0.0.1"), now + Duration::seconds(300)).is_ok(), "the window passed");
    }

    #[test]
    fn a_user_is_slowed_down_exponentially_except_from_known_addresses() {
        let limiter = LogonLimiter::new(policy());
        let t0 = Utc::now();
        let good = limiter.begin("sip:bob@x", ip("192.0.2.7"), t0).unwrap();
        limiter.succeeded(good, t0);
        for n in 0..4 {
            limiter.begin("sip:bob@x", ip(&format!("198.51.100.{n}")), t0).unwrap();
        }
        let mut at = t0;
        for (n, delay) in [1, 2, 4, 8, 16, 32, 60, 60].into_iter().enumerate() {
            let from = ip(&format!("203.0.113.{n}"));
            let refused = limiter.begin("sip:bob@x", from, at).unwrap_err();
            assert_eq!(refused.retry_after, std::time::Duration::from_secs(delay));
            let own = limiter.begin("sip:bob@x", ip("192.0.2.7"), at).expect("the user's own address passes");
            limiter.succeeded(own, at);
            at += Duration::seconds(delay as i64);
            limiter.begin("sip:bob@x", from, at).unwrap();
        }
    }

    #[test]
    fn a_success_takes_its_count_back_and_ipv6_counts_per_network() {
        let limiter = LogonLimiter::new(policy());
        let now = Utc::now();
        for n in 0..10 {
            let attempt = limiter.begin("sip:bob@x", ip("10.0.0.1"), now).unwrap();
            if n % 2 == 0 {
                limiter.succeeded(attempt, now);
            }
        }
        for n in 0..3 {
            limiter.begin("sip:carol@x", ip(&format!("2001:db8:0:1::{n}")), now).unwrap();
        }
        assert!(limiter.begin("sip:carol@x", ip("2001:db8:0:1:ffff::9"), now).is_err(), "same /64");
        assert!(limiter.begin("sip:carol@x", ip("2001:db8:0:2::1"), now).is_ok(), "another /64");
    }

    #[test]
    fn the_tables_stay_bounded() {
        let limiter = LogonLimiter::new(LogonPolicy { failures_per_address: u32::MAX, ..policy() });
        let now = Utc::now();
        for n in 0..(MAX_ENTRIES + 10) {
            let _ = limiter.begin(&format!("user{n}"), ip("10.0.0.1"), now + Duration::milliseconds(n as i64));
        }
        let tables = limiter.tables.lock();
        assert_eq!((tables.pairs.len(), tables.users.len()), (MAX_ENTRIES, MAX_ENTRIES));
    }
}
