//! Logins and their tickets: the one place that knows which ticket values are valid.
//!
//! A *login* is one successful sign-in. It has an absolute lifetime (`ticket_lifetime_seconds`,
//! counted from the sign-in) and carries one or more ticket *values*: 256 random bits each, kept
//! only as SHA-256 hashes. The first value is issued at sign-in; once the newest value is older
//! than `ticket_rotation_seconds`, the next use of any value of the login issues a fresh one,
//! which goes back to that client (so a login gains at most one value per rotation period). Other
//! uses are answered with the value presented. Earlier values are not withdrawn: every value stays
//! valid while it is used at least every `ticket_idle_seconds`, up to the login's absolute
//! lifetime, so a client that keeps the ticket from its sign-in reply and never reads a rotated
//! one keeps working (README, "Tickets").
//! The end of the login (lifetime reached, user removed, password changed) ends all of its values.
//!
//! The store is the authority (docs/architecture.md, "Tickets"): a login and each of its values
//! are written when issued, so a restart signs nobody out and every process on the same store
//! accepts them. In front of it sits a cache, so the hot path (every command and poll) does not
//! read the store: a value is read once per process, and answered from memory after that. What
//! ends a login elsewhere (a password change or a removal by another process) arrives as a change
//! of the user, after which the user's cached logins that the store no longer has are forgotten
//! ([`Tickets::keep_logins`]). Uses are recorded
//! coarsely: a value's last use is written at most once per [`TicketPolicy::recorded_every`], in
//! one batch per second ([`upkeep`]), never once per request; so a process that did not see a
//! value's latest uses (after a restart, or another process) allows it [`TicketPolicy::grace`]
//! beyond the idle lifetime. The same task sweeps ended logins and unused values from the store.

use super::clock::Clock;
use crate::config::Config;
use crate::model::sources::Timestamp;
use crate::store::{Store, StoreResult};
use base64::Engine;
use chrono::Duration;
use foldhash::{HashMap, HashSet};
use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Weak};

/// How often recorded uses are written to the store.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// How often ended logins and unused values are swept (by the gateway's clock).
const SWEEP_EVERY_SECONDS: i64 = 60;
/// Values remembered as unusable, so a client retrying with a dead ticket does not reach the
/// store each time; forgotten all at once when full.
const DEAD_CAPACITY: usize = 10_000;

/// A signed-in user: one sign-in, shared by every ticket value issued for it.
#[derive(Debug)]
pub struct Login {
    /// The store's id of the login, the same in every process.
    pub id: u64,
    pub user: Arc<str>,
}

/// The result of presenting a ticket.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub login: Arc<Login>,
    /// The ticket to send back: the presented one (moved here, not copied), or a fresh one.
    pub ticket: String,
    /// Whether [`Authenticated::ticket`] is a value the client has not seen yet (sign-in,
    /// rotation).
    pub rotated: bool,
}

/// SHA-256 of a ticket value: what is kept instead of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketHash(pub [u8; 32]);

/// The cache's maps hash only the first 8 bytes of the digest, with the maps' own hasher seeded at
/// random per map (`foldhash`): as unpredictable a choice of bucket as all 32 bytes give (tickets
/// are the client's, but a digest's bytes are not theirs to choose: finding two whose digests
/// share 8 bytes takes 2^32 hashes, and flooding a bucket whose seed they do not know far more),
/// hashing 8 bytes per lookup instead of 40. Equality still compares all 32.
impl std::hash::Hash for TicketHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

impl TicketHash {
    pub fn of(ticket: &str) -> TicketHash {
        TicketHash(Sha256::digest(ticket.as_bytes()).into())
    }
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

    /// A value's last use is written once it is this much newer than the recorded one: an
    /// eighth of the idle lifetime, at most a minute.
    pub fn recorded_every(&self) -> Duration {
        (self.idle / 8).min(Duration::seconds(60))
    }

    /// How far a recorded last use may lag behind the real one, and so how long past the idle
    /// lifetime a process that read the value from the store still accepts it.
    pub fn grace(&self) -> Duration {
        self.recorded_every() + Duration::from_std(FLUSH_EVERY).unwrap_or_default()
    }
}

/// A login as cached.
struct CachedLogin {
    login: Arc<Login>,
    expires: Timestamp,
    rotated: Timestamp,
}

/// A value as cached.
struct CachedValue {
    login: u64,
    /// The last use this process saw.
    last_used: Timestamp,
    /// The last use written (or being written) to the store.
    recorded: Timestamp,
}

impl CachedValue {
    /// Notes a use of the value (`hash`) at `now`, and queues it for the store in `uses` when the
    /// last one recorded is `every` old.
    fn used(&mut self, hash: TicketHash, now: Timestamp, every: Duration, uses: &mut HashMap<TicketHash, Timestamp>) {
        self.last_used = self.last_used.max(now);
        if now - self.recorded >= every {
            self.recorded = now;
            uses.insert(hash, now);
        }
    }
}

#[derive(Default)]
struct Cache {
    logins: HashMap<u64, CachedLogin>,
    values: HashMap<TicketHash, CachedValue>,
    /// Values known to be unusable (unknown, idle or ended); such a value never becomes usable.
    dead: HashSet<TicketHash>,
    /// Last uses still to be written to the store.
    uses: HashMap<TicketHash, Timestamp>,
    /// Bumped by every eviction: what a store read that started before one found is not cached.
    generation: u64,
}

impl Cache {
    fn mark_dead(&mut self, hash: TicketHash) {
        if self.dead.len() >= DEAD_CAPACITY {
            self.dead.clear();
        }
        self.dead.insert(hash);
        self.values.remove(&hash);
    }

    fn end_login(&mut self, id: u64) {
        self.logins.remove(&id);
        self.values.retain(|_, value| value.login != id);
    }

    /// Records a use; queues it for the store when the recorded one is old enough.
    fn used(&mut self, hash: TicketHash, now: Timestamp, every: Duration) {
        if let Some(value) = self.values.get_mut(&hash) {
            value.used(hash, now, every, &mut self.uses);
        }
    }
}

/// What the cache alone says about a value.
enum Cached {
    Dead,
    Valid {
        login: Arc<Login>,
        rotated: Timestamp,
    },
    /// The store has to be asked (the read is cached only if the generation is unchanged).
    Ask {
        generation: u64,
    },
}

pub struct Tickets {
    store: Arc<dyn Store>,
    policy: TicketPolicy,
    cache: Mutex<Cache>,
}

impl Tickets {
    pub fn new(store: Arc<dyn Store>, policy: TicketPolicy) -> Self {
        Tickets { store, policy, cache: Mutex::new(Cache::default()) }
    }

    /// Starts a login for `user` and issues its first ticket (written to the store before it is
    /// handed out).
    pub async fn issue(&self, user: Arc<str>, now: Timestamp) -> StoreResult<Authenticated> {
        let ticket = random_token(32);
        let hash = TicketHash::of(&ticket);
        let generation = self.cache.lock().generation;
        let expires = now + self.policy.lifetime;
        let id = self.store.create_login(&user, &hash.0, now, expires).await?;
        let login = Arc::new(Login { id, user });
        let mut cache = self.cache.lock();
        if cache.generation == generation {
            cache.logins.insert(id, CachedLogin { login: login.clone(), expires, rotated: now });
            cache.values.insert(hash, CachedValue { login: id, last_used: now, recorded: now });
        }
        Ok(Authenticated { login, ticket, rotated: true })
    }

    /// Checks a ticket and records its use; issues a fresh value when the login's newest one is
    /// due for rotation. `Ok(None)` = unknown, idle for too long, or its login has ended; an error
    /// only when the store had to be read and could not be.
    pub async fn authenticate(&self, ticket: String, now: Timestamp) -> StoreResult<Option<Authenticated>> {
        let hash = TicketHash::of(&ticket);
        self.authenticate_hashed(ticket, hash, now).await
    }

    /// [`Tickets::authenticate`] of a ticket whose hash the caller already has (`hash` must be
    /// `TicketHash::of(ticket)`).
    pub async fn authenticate_hashed(
        &self,
        ticket: String,
        hash: TicketHash,
        now: Timestamp,
    ) -> StoreResult<Option<Authenticated>> {
        let (login, rotated) = match self.cached(hash, now) {
            Cached::Dead => return Ok(None),
            Cached::Valid { login, rotated } => (login, rotated),
            Cached::Ask { generation } => match self.read(hash, now, generation).await? {
                Some(found) => found,
                None => return Ok(None),
            },
        };
        if now - rotated < self.policy.rotation {
            return Ok(Some(Authenticated { login, ticket, rotated: false }));
        }
        Ok(Some(self.rotate(login, rotated, ticket, now).await))
    }

    /// The answer of [`Tickets::authenticate_hashed`] when the cache alone gives it (a known
    /// value not due for rotation, or a dead one), without an `.await`; `Err` gives the ticket
    /// back when the store has to be asked or a fresh value issued.
    pub fn authenticate_cached(&self, ticket: String, hash: TicketHash, now: Timestamp) -> Result<Option<Authenticated>, String> {
        match self.cached(hash, now) {
            Cached::Dead => Ok(None),
            Cached::Valid { login, rotated } if now - rotated < self.policy.rotation => {
                Ok(Some(Authenticated { login, ticket, rotated: false }))
            }
            Cached::Valid { .. } | Cached::Ask { .. } => Err(ticket),
        }
    }

    fn cached(&self, hash: TicketHash, now: Timestamp) -> Cached {
        let mut guard = self.cache.lock();
        let cache = &mut *guard;
        if cache.dead.contains(&hash) {
            return Cached::Dead;
        }
        let generation = cache.generation;
        let Some(value) = cache.values.get_mut(&hash) else { return Cached::Ask { generation } };
        let (id, last_used) = (value.login, value.last_used);
        let Some(login) = cache.logins.get(&id) else {
            cache.values.remove(&hash);
            return Cached::Ask { generation };
        };
        if now >= login.expires {
            cache.end_login(id);
            cache.mark_dead(hash);
            return Cached::Dead;
        }
        if now - last_used >= self.policy.idle {
            // Idle here, but another process may have seen it used since: the store decides.
            cache.values.remove(&hash);
            return Cached::Ask { generation };
        }
        // The value found is the one whose use is noted: no second lookup.
        value.used(hash, now, self.policy.recorded_every(), &mut cache.uses);
        Cached::Valid { login: login.login.clone(), rotated: login.rotated }
    }

    /// Reads a value from the store and caches it.
    async fn read(&self, hash: TicketHash, now: Timestamp, generation: u64) -> StoreResult<Option<(Arc<Login>, Timestamp)>> {
        let stored = self.store.ticket(&hash.0).await?;
        let mut cache = self.cache.lock();
        let Some(stored) = stored.filter(|s| now < s.expires && now - s.last_used < self.policy.idle + self.policy.grace())
        else {
            cache.mark_dead(hash);
            return Ok(None);
        };
        let login = match cache.logins.get(&stored.login) {
            Some(cached) => cached.login.clone(),
            None => Arc::new(Login { id: stored.login, user: Arc::from(stored.user.as_str()) }),
        };
        let mut rotated = stored.rotated;
        if cache.generation == generation {
            let entry = cache.logins.entry(stored.login).or_insert_with(|| CachedLogin {
                login: login.clone(),
                expires: stored.expires,
                rotated: stored.rotated,
            });
            entry.rotated = entry.rotated.max(stored.rotated);
            rotated = entry.rotated;
            cache.values.insert(hash, CachedValue { login: stored.login, last_used: now, recorded: stored.last_used });
            cache.used(hash, now, self.policy.recorded_every());
        } else if now - stored.last_used >= self.policy.recorded_every() {
            cache.uses.insert(hash, now);
        }
        Ok(Some((login, rotated)))
    }

    /// Issues a fresh value for a login due for rotation. Should another process have rotated it
    /// first, or the store fail, the presented ticket is answered (it is valid) and the client
    /// gets a fresh one on a later use.
    async fn rotate(&self, login: Arc<Login>, rotated: Timestamp, presented: String, now: Timestamp) -> Authenticated {
        let fresh = random_token(32);
        let hash = TicketHash::of(&fresh);
        let outcome = self.store.rotate_login(login.id, rotated, &hash.0, now).await;
        let mut cache = self.cache.lock();
        let known = cache.logins.get_mut(&login.id).filter(|l| l.rotated == rotated);
        match outcome {
            Ok(true) => {
                if let Some(cached) = known {
                    cached.rotated = now;
                    cache.values.insert(hash, CachedValue { login: login.id, last_used: now, recorded: now });
                }
                Authenticated { login, ticket: fresh, rotated: true }
            }
            Ok(false) => {
                // Rotated elsewhere (or ended): no second value this period from here.
                if let Some(cached) = known {
                    cached.rotated = now;
                }
                Authenticated { login, ticket: presented, rotated: false }
            }
            Err(e) => {
                tracing::warn!(error = %e, "rotating a ticket; the presented one is answered");
                Authenticated { login, ticket: presented, rotated: false }
            }
        }
    }

    /// Forgets the cached logins of a user (their password changed or they were removed, here or
    /// by another process): their tickets are checked against the store again on their next use.
    pub fn evict_user(&self, user: &str) {
        let mut cache = self.cache.lock();
        cache.generation += 1;
        let ended: Vec<u64> = cache.logins.values().filter(|l| &*l.login.user == user).map(|l| l.login.id).collect();
        for id in ended {
            cache.end_login(id);
        }
    }

    /// After another process changed the user: forgets the user's cached logins that are no
    /// longer in the store (`live`, their ids there), so their tickets stop working here too.
    pub fn keep_logins(&self, user: &str, live: &[u64]) {
        let mut cache = self.cache.lock();
        cache.generation += 1;
        let ended: Vec<u64> =
            cache.logins.values().filter(|l| &*l.login.user == user && !live.contains(&l.login.id)).map(|l| l.login.id).collect();
        for id in ended {
            cache.end_login(id);
        }
    }

    /// Forgets every cached login (changes by other processes may have been missed).
    pub fn evict_all(&self) {
        let mut cache = self.cache.lock();
        cache.generation += 1;
        cache.logins.clear();
        cache.values.clear();
    }

    /// Writes the recorded uses to the store in one batch. An entry leaves the queue only once
    /// written, so a failed or abandoned write is retried by the next flush.
    pub async fn flush(&self) -> StoreResult<()> {
        let batch: Vec<([u8; 32], Timestamp)> = self.cache.lock().uses.iter().map(|(hash, at)| (hash.0, *at)).collect();
        if batch.is_empty() {
            return Ok(());
        }
        self.store.record_ticket_uses(&batch).await?;
        let mut cache = self.cache.lock();
        for (hash, at) in batch {
            if cache.uses.get(&TicketHash(hash)) == Some(&at) {
                cache.uses.remove(&TicketHash(hash));
            }
        }
        Ok(())
    }

    /// Drops ended logins and unused values, from the cache and from the store.
    pub async fn sweep(&self, now: Timestamp) -> StoreResult<u64> {
        {
            let idle = self.policy.idle;
            let mut cache = self.cache.lock();
            cache.logins.retain(|_, login| now < login.expires);
            let Cache { logins, values, .. } = &mut *cache;
            values.retain(|_, value| logins.contains_key(&value.login) && now - value.last_used < idle);
        }
        self.store.sweep_tickets(now, now - self.policy.idle - self.policy.grace()).await
    }
}

/// Writes recorded uses every second and sweeps every minute (by `clock`), until the tickets go.
pub async fn upkeep(tickets: Weak<Tickets>, clock: Arc<dyn Clock>) {
    let mut last_sweep = chrono::DateTime::<chrono::Utc>::MIN_UTC;
    loop {
        tokio::time::sleep(FLUSH_EVERY).await;
        let Some(tickets) = tickets.upgrade() else { return };
        if let Err(e) = tickets.flush().await {
            tracing::warn!(error = %e, "recording ticket uses; retried in a second");
        }
        let now = clock.now();
        if now - last_sweep >= Duration::seconds(SWEEP_EVERY_SECONDS) {
            match tickets.sweep(now).await {
                Ok(_) => last_sweep = now,
                Err(e) => tracing::warn!(error = %e, "sweeping tickets"),
            }
        }
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
    use crate::store::sqlite::SqliteStore;
    use crate::store::UserRecord;
    use chrono::Utc;

    fn policy() -> TicketPolicy {
        TicketPolicy { lifetime: Duration::hours(24), idle: Duration::seconds(600), rotation: Duration::seconds(60) }
    }

    /// Tickets on a fresh SQLite store with users a and b (and the directory that holds it).
    async fn tickets() -> (Tickets, Arc<SqliteStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        for uri in ["sip:a@x", "sip:b@x"] {
            let profile = crate::model::contact::Profile { uri: uri.into(), ..Default::default() };
            store.upsert_user(&UserRecord { profile, password_hash: Some("h".into()) }).await.unwrap();
        }
        (Tickets::new(store.clone(), policy()), store, dir)
    }

    async fn check(tickets: &Tickets, ticket: &str, at: Timestamp) -> Option<Authenticated> {
        tickets.authenticate(ticket.to_string(), at).await.unwrap()
    }

    #[tokio::test]
    async fn rotation_issues_fresh_values_and_keeps_earlier_ones_valid_while_used() {
        let (tickets, _store, _dir) = tickets().await;
        let t0 = Utc::now();
        let first = tickets.issue("sip:a@x".into(), t0).await.unwrap();
        assert!(first.ticket.len() >= 43, "256 random bits");
        let same = check(&tickets, &first.ticket, t0 + Duration::seconds(30)).await.unwrap();
        assert_eq!(same.ticket, first.ticket);
        let rotated = check(&tickets, &first.ticket, t0 + Duration::seconds(61)).await.unwrap();
        assert!(rotated.rotated);
        assert_eq!(rotated.login.id, first.login.id);
        let kept = check(&tickets, &first.ticket, t0 + Duration::seconds(90)).await.unwrap();
        assert_eq!(kept.ticket, first.ticket, "no new value before the next rotation is due");
        // The first value keeps working while it is used; each use past a rotation period brings
        // a fresh value, which this client ignores.
        for minutes in [5, 14, 23] {
            let again = check(&tickets, &first.ticket, t0 + Duration::minutes(minutes)).await.unwrap();
            assert!(again.rotated);
        }
        let idle_past_grace = t0 + Duration::minutes(23);
        assert!(check(&tickets, &rotated.ticket, idle_past_grace).await.is_none(), "idle for over 10 minutes");
        assert!(check(&tickets, &first.ticket, t0 + Duration::minutes(35)).await.is_none(), "idle for 12 minutes");
        assert!(check(&tickets, "forged", t0).await.is_none());
    }

    #[tokio::test]
    async fn the_absolute_lifetime_ends_every_value_of_a_login() {
        let (tickets, _store, _dir) = tickets().await;
        let t0 = Utc::now();
        let first = tickets.issue("sip:a@x".into(), t0).await.unwrap();
        let mut newest = first.ticket.clone();
        let mut at = t0;
        while at < t0 + Duration::hours(24) - Duration::minutes(5) {
            at += Duration::minutes(5);
            assert!(check(&tickets, &first.ticket, at).await.is_some());
            newest = check(&tickets, &newest, at).await.unwrap().ticket;
        }
        tickets.flush().await.unwrap();
        let end = t0 + Duration::hours(24);
        assert!(check(&tickets, &newest, end).await.is_none());
        assert!(check(&tickets, &first.ticket, end).await.is_none(), "ended with its login");
        let elsewhere = Tickets::new(tickets.store.clone(), policy());
        assert!(check(&elsewhere, &first.ticket, end).await.is_none(), "for every process");
    }

    #[tokio::test]
    async fn another_process_accepts_the_values_and_sees_the_recorded_uses() {
        let (here, store, _dir) = tickets().await;
        let there = Tickets::new(store.clone(), policy());
        let t0 = Utc::now();
        let issued = here.issue("sip:a@x".into(), t0).await.unwrap();
        let seen = check(&there, &issued.ticket, t0 + Duration::seconds(5)).await.expect("read from the store");
        assert_eq!((seen.login.id, &*seen.login.user), (issued.login.id, "sip:a@x"));
        // Used here for 15 minutes, never there: there it would be idle, but the store knows better.
        for minutes in 1..=15 {
            let at = t0 + Duration::minutes(minutes) + Duration::seconds(5);
            assert!(check(&here, &issued.ticket, at).await.is_some());
            here.flush().await.unwrap();
        }
        assert!(check(&there, &issued.ticket, t0 + Duration::minutes(16)).await.is_some(), "its uses elsewhere count");
        assert!(check(&there, &issued.ticket, t0 + Duration::minutes(40)).await.is_none(), "idle everywhere");
    }

    #[tokio::test]
    async fn revocation_in_the_store_ends_cached_values_once_evicted_and_sweep_empties_the_tables() {
        let (tickets, store, _dir) = tickets().await;
        let t0 = Utc::now();
        let a = tickets.issue("sip:a@x".into(), t0).await.unwrap();
        let b = tickets.issue("sip:b@x".into(), t0).await.unwrap();
        let rotated = check(&tickets, &a.ticket, t0 + Duration::seconds(90)).await.unwrap();
        assert!(store.set_password("sip:a@x", "new").await.unwrap());
        tickets.evict_user("sip:a@x");
        assert!(check(&tickets, &a.ticket, t0 + Duration::seconds(91)).await.is_none());
        assert!(check(&tickets, &rotated.ticket, t0 + Duration::seconds(91)).await.is_none());
        assert!(check(&tickets, &b.ticket, t0 + Duration::seconds(91)).await.is_some());
        tickets.flush().await.unwrap();
        assert_eq!(tickets.sweep(t0 + Duration::hours(25)).await.unwrap(), 0, "ended with their login");
        assert!(store.ticket(&TicketHash::of(&b.ticket).0).await.unwrap().is_none());
        let cache = tickets.cache.lock();
        assert!(cache.logins.is_empty() && cache.values.is_empty(), "swept from the cache too");
    }
}
