//! Durable data behind one trait: users and their password hashes, logins and their ticket values
//! (as hashes), manual states, notes, source reports with their expiry, rights entries (containers), contact lists and subscribers, images, raw categories. Two backends implement it — the
//! embedded SQLite file in `--data-dir` (the default) and PostgreSQL — chosen by the `store` URL
//! (README "Using PostgreSQL"). A write has returned only once it is durable; a change that spans
//! several rows is one transaction. Each backend's schema is managed by the migrations embedded
//! in the binary (`migrations/<backend>/`), run at open. Every write is also announced to the
//! other processes on the same store ([`Change`], [`Store::changes`]).

pub mod faults;
mod migrate;
pub mod postgres;
pub mod rows;
mod sql;
pub mod sqlite;

use crate::model::contact::Profile;
use crate::model::contacts::ContactList;
use crate::model::reports::SourceReport;
use crate::model::rights::{AccessLevel, Member, RightsEntry};
use crate::model::sources::{ManualState, Note, Timestamp};
use async_trait::async_trait;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub profile: Profile,
    /// PHC string (`$argon2id$…`); `None` = the user cannot sign in with a password.
    pub password_hash: Option<String>,
}

/// A contact image: its bytes, content type and hash (the `ETag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub hash: String,
}

/// The persisted inputs of one presentity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredPresence {
    pub manual: Option<ManualState>,
    pub note: Option<Note>,
}

/// A change to some parts of a user's stored presence: each part is either kept as stored
/// (`None`) or set (`Some`, with `Some(None)` clearing it). Applied in one step by the store, so
/// two processes changing different parts at once both keep theirs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PresenceUpdate {
    pub manual: Option<Option<ManualState>>,
    pub note: Option<Option<Note>>,
    /// When given, a part is set only where the store still holds the value this has for it (a
    /// compare-and-set in the same step): a part someone changed since it was read is kept.
    pub only_if: Option<StoredPresence>,
}

impl PresenceUpdate {
    /// Sets both parts to `presence`.
    pub fn whole(presence: &StoredPresence) -> PresenceUpdate {
        PresenceUpdate { manual: Some(presence.manual.clone()), note: Some(presence.note.clone()), only_if: None }
    }

    /// Clears the parts of `current` that are over at `now`: a manual state that has ended, a
    /// note that has expired; keeps the rest, and keeps a part that no longer stands as in
    /// `current` (another process set a new one since `current` was read).
    pub fn ended(current: &StoredPresence, now: Timestamp) -> PresenceUpdate {
        let manual = current.manual.as_ref().filter(|m| m.has_ended(now)).map(|_| None);
        let note = current.note.as_ref().filter(|n| !n.is_active(now)).map(|_| None);
        PresenceUpdate { manual, note, only_if: Some(current.clone()) }
    }
}

/// A ticket value as kept, found by the SHA-256 of the ticket (the ticket itself is never
/// stored), with what is kept of its login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTicket {
    pub login: u64,
    pub user: String,
    /// The end of the login (sign-in + absolute lifetime).
    pub expires: Timestamp,
    /// When the login's newest value was issued; rotation is measured from there.
    pub rotated: Timestamp,
    /// The last use recorded (coarse: uses are written in batches, see `service::tickets`).
    pub last_used: Timestamp,
}

/// One write to an owner's rights entries, applied with the others of its call all or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RightsWrite {
    /// Puts the member at the entry's level (a member has one level per owner).
    Set(RightsEntry),
    /// Removes the member's entry: with a level, only if the store has it at that level (taking
    /// the member out of one container); without, at whatever level it is.
    Remove { member: Member, level: Option<AccessLevel> },
}

/// What changed, as another process on the same store needs to know it to re-read that part.
///
/// A user's presence is announced by the part that changed, so that a process re-reads only that
/// part (docs/architecture.md §5, "The store feed"): [`Change::Presence`] for the live inputs,
/// [`Change::RawCategories`] for the raw categories.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// A user was added, changed (profile or password) or removed.
    User(String),
    /// A user's manual state, note or source reports (the inputs that also travel through a
    /// shared backplane).
    Presence(String),
    /// A user's raw categories.
    RawCategories(String),
    /// An owner's rights entries.
    Rights(String),
    GlobalRights,
    ContactList(String),
    /// An owner's subscribers (any of them; re-read whole).
    Subscribers(String),
    /// One subscriber of an owner (owner, watcher): stored, or acknowledged. Re-read alone, so
    /// that a user whom thousands subscribe to costs a node one row per new subscriber, not the
    /// whole list each time.
    Subscriber(String, String),
    Image(String),
    /// Changes may have been missed (the feed reconnected or fell behind): re-read everything.
    Everything,
}

/// The notice format this binary writes. Each notice travels with its writer's origin (the mark
/// that keeps a process from hearing its own writes), and the format follows the origin after a
/// `:` — the one field processes of every version only compare with their own, so they read these
/// notices as they always did. Format 1 (an origin without a suffix) had one `presence` notice for
/// every part of a user's presence; format 2 names the part (`presence`: manual state, note,
/// reports; `raw-categories`). A format-1 `presence` notice, from a process not yet upgraded during
/// a rolling upgrade, still means every part.
pub(crate) const NOTICE_FORMAT: u32 = 2;

/// A fresh origin for a process's notices, with [`NOTICE_FORMAT`].
pub(crate) fn new_origin() -> String {
    format!("{:016x}:{NOTICE_FORMAT}", rand::random::<u64>())
}

impl Change {
    /// The notice's kind and key (a subscriber's key is the owner and the watcher, split by a tab,
    /// which no URI holds).
    pub(crate) fn encode(&self) -> (&'static str, std::borrow::Cow<'_, str>) {
        let (kind, key) = match self {
            Change::User(k) => ("user", k.as_str()),
            Change::Presence(k) => ("presence", k.as_str()),
            Change::RawCategories(k) => ("raw-categories", k.as_str()),
            Change::Rights(k) => ("rights", k.as_str()),
            Change::GlobalRights => ("global-rights", ""),
            Change::ContactList(k) => ("contact-list", k.as_str()),
            Change::Subscribers(k) => ("subscribers", k.as_str()),
            Change::Subscriber(owner, watcher) => return ("subscriber", format!("{owner}\t{watcher}").into()),
            Change::Image(k) => ("image", k.as_str()),
            Change::Everything => ("everything", ""),
        };
        (kind, key.into())
    }

    /// The changes a notice written by `origin` announces: one, or for a format-1 `presence`
    /// notice both parts of the user's presence (see [`NOTICE_FORMAT`]). A kind this binary
    /// does not know (a newer process's) is [`Change::Everything`].
    pub(crate) fn decode(origin: &str, kind: &str, key: &str) -> impl Iterator<Item = Change> {
        let key = key.to_string();
        let names_the_part = origin.rsplit_once(':').and_then(|(_, format)| format.parse::<u32>().ok()).is_some_and(|f| f >= 2);
        let (change, also) = match kind {
            "user" => (Change::User(key), None),
            "presence" if !names_the_part => (Change::Presence(key.clone()), Some(Change::RawCategories(key))),
            "presence" => (Change::Presence(key), None),
            "raw-categories" => (Change::RawCategories(key), None),
            "rights" => (Change::Rights(key), None),
            "global-rights" => (Change::GlobalRights, None),
            "contact-list" => (Change::ContactList(key), None),
            "subscribers" => (Change::Subscribers(key), None),
            "subscriber" => match key.split_once('\t') {
                Some((owner, watcher)) => (Change::Subscriber(owner.to_string(), watcher.to_string()), None),
                None => (Change::Everything, None),
            },
            "image" => (Change::Image(key), None),
            _ => (Change::Everything, None),
        };
        std::iter::once(change).chain(also)
    }
}

/// Changes made by other processes, in the order they were committed.
pub type ChangeFeed = tokio::sync::mpsc::Receiver<Change>;

/// Why a store operation failed. Only [`StoreError::is_retryable`] matters to callers: the
/// message is for the log, never for a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or the operation was interrupted; nothing was written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The schema in the store is newer than this binary knows.
    #[error(
        "the store's schema is at version {found}, newer than this presence-gateway knows (up to {known}); \
         run a newer presence-gateway against it"
    )]
    SchemaTooNew { found: i64, known: i64 },
    /// Data in the store that cannot be read back.
    #[error("unreadable data in the store: {0}")]
    Corrupt(String),
    #[error("store failure: {0}")]
    Other(String),
}

impl StoreError {
    pub fn corrupt(detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt(detail.into())
    }

    /// Whether the same operation may succeed when retried (nothing was half-written).
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default().to_string();
                // SQLite busy/locked, PostgreSQL serialization/deadlock/connection/shutdown classes.
                let transient = ["5", "6", "261", "517", "40001", "40P01", "57P01", "57P02", "57P03"].contains(&code.as_str())
                    || code.starts_with("08");
                match transient {
                    true => StoreError::Unavailable(db.to_string()),
                    false => StoreError::Other(db.to_string()),
                }
            }
            sqlx::Error::Migrate(m) => StoreError::Other(m.to_string()),
            other => StoreError::Other(other.to_string()),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Where the data lives, from the `store` setting: `sqlite://PATH` or `postgres://…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl StoreUrl {
    /// The default: `gateway.db` in the data directory.
    pub fn default_in(data_dir: &Path) -> StoreUrl {
        StoreUrl::Sqlite(data_dir.join("gateway.db"))
    }

    /// Parses a `store` setting; the error names what is accepted.
    pub fn parse(text: &str) -> Result<StoreUrl, String> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("sqlite://").or_else(|| text.strip_prefix("sqlite:")) {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err("a sqlite:// store needs a file path, e.g. sqlite:///var/lib/presence-gateway/gateway.db".into());
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return match text.parse::<sqlx::postgres::PgConnectOptions>() {
                Ok(_) => Ok(StoreUrl::Postgres(text.to_string())),
                Err(e) => Err(format!("not a usable postgres:// URL: {}", e.to_string().replace(text, "…"))),
            };
        }
        Err("the store must be sqlite://PATH or postgres://USER@HOST[:PORT]/DATABASE".into())
    }

    /// The URL without any password, for logs and `/readyz`.
    pub fn describe(&self) -> String {
        match self {
            StoreUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            StoreUrl::Postgres(url) => match url.split_once("://").and_then(|(scheme, rest)| {
                let (auth, host) = rest.rsplit_once('@')?;
                let user = auth.split(':').next().unwrap_or_default();
                Some(format!("{scheme}://{user}@{host}"))
            }) {
                Some(safe) => safe.split('?').next().unwrap_or_default().to_string(),
                None => url.split('?').next().unwrap_or_default().to_string(),
            },
        }
    }

    /// `url` with its password (if any) replaced by `mask`.
    pub fn mask_password(url: &str, mask: &str) -> String {
        let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
        let Some((auth, host)) = rest.rsplit_once('@') else { return url.to_string() };
        match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:{mask}@{host}"),
            None => url.to_string(),
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            StoreUrl::Sqlite(_) => "sqlite",
            StoreUrl::Postgres(_) => "postgres",
        }
    }
}

/// Opens the store a URL names, running its migrations.
pub async fn open(url: &StoreUrl) -> StoreResult<Arc<dyn Store>> {
    Ok(match url {
        StoreUrl::Sqlite(path) => Arc::new(sqlite::SqliteStore::open_file(path).await?),
        StoreUrl::Postgres(url) => Arc::new(postgres::PostgresStore::connect(url).await?),
    })
}

#[async_trait]
pub trait Store: Send + Sync {
    /// `sqlite://…` or `postgres://user@host/db` (never a password), for `/readyz` and logs.
    fn describe(&self) -> String;

    /// Creates or updates a user; a `None` hash keeps the stored one.
    async fn upsert_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// Creates a user who does not exist yet; `false`, writing nothing, when one with that URI
    /// is stored (whether or not this process has heard of them).
    async fn create_user(&self, user: &UserRecord) -> StoreResult<bool>;
    async fn set_password(&self, uri: &str, hash: &str) -> StoreResult<bool>;
    /// Removes the user and everything they own (presence, rights, lists, images, subscribers) in
    /// one transaction; false when there was no such user.
    async fn remove_user(&self, uri: &str) -> StoreResult<bool>;
    async fn users(&self) -> StoreResult<Vec<UserRecord>>;
    async fn user(&self, uri: &str) -> StoreResult<Option<UserRecord>>;
    /// Those of `uris` that name a stored user (in no particular order), read in a few
    /// statements however many are asked for.
    async fn users_among(&self, uris: &[&str]) -> StoreResult<Vec<String>>;

    /// Changes the parts of the user's presence `update` sets and keeps the others as stored, in
    /// one step; returns the presence as it then stands.
    async fn update_presence(&self, uri: &str, update: &PresenceUpdate) -> StoreResult<StoredPresence>;
    async fn presence(&self, uri: &str) -> StoreResult<Option<StoredPresence>>;
    async fn presences(&self) -> StoreResult<Vec<(String, StoredPresence)>>;

    /// Applies writes to the owner's entries (a member has one level per owner), all or nothing,
    /// in a transaction no other writer of the owner's rows can interleave with; returns the
    /// owner's entries as they then stand (what every process will hold once it hears of it).
    async fn apply_rights(&self, owner: &str, writes: &[RightsWrite]) -> StoreResult<Vec<RightsEntry>>;
    async fn rights(&self) -> StoreResult<Vec<(String, RightsEntry)>>;
    async fn rights_of(&self, owner: &str) -> StoreResult<Vec<RightsEntry>>;
    /// Entries that apply to every owner (set by an admin), e.g. "group r-and-d sees all at Team".
    async fn set_global_right(&self, entry: &RightsEntry) -> StoreResult<()>;
    async fn remove_global_right(&self, member: &Member) -> StoreResult<bool>;
    async fn global_rights(&self) -> StoreResult<Vec<RightsEntry>>;

    /// Saves the owner's list and, in the same transaction, records the owner as a (not yet
    /// acknowledged) subscriber of each of `subscribes_to` that does not have them yet. With
    /// `expected`, only if the store still holds that list (none stored counts as the default
    /// list), checked in a transaction no other writer of the owner's rows can interleave with;
    /// `false`, writing nothing, when it holds another.
    async fn save_contact_list(
        &self,
        owner: &str,
        expected: Option<&ContactList>,
        list: &ContactList,
        subscribes_to: &[String],
    ) -> StoreResult<bool>;
    async fn contact_list(&self, owner: &str) -> StoreResult<Option<ContactList>>;
    async fn contact_lists(&self) -> StoreResult<Vec<(String, ContactList)>>;

    /// Records that each `(owner, watcher)` pair's watcher subscribes to its owner (and whether
    /// the owner acknowledged it), all or nothing, in one transaction: a session that subscribes
    /// to 50 users commits once, not 50 times. An acknowledgement is never taken back: recording
    /// a pair as not acknowledged keeps one the store holds (made on another process, perhaps,
    /// whose notice has not reached this one).
    async fn save_subscribers(&self, pairs: &[(&str, &str)], acknowledged: bool) -> StoreResult<()>;
    /// Every (owner, watcher, acknowledged).
    async fn subscribers(&self) -> StoreResult<Vec<(String, String, bool)>>;
    /// (watcher, acknowledged) of one owner.
    async fn subscribers_of(&self, owner: &str) -> StoreResult<Vec<(String, bool)>>;
    /// Whether `watcher` subscribes to `owner` (`None`: not), and whether it was acknowledged.
    async fn subscriber(&self, owner: &str, watcher: &str) -> StoreResult<Option<bool>>;

    /// Stores an image of a user (`large` = the high-resolution variant).
    async fn save_image(&self, uri: &str, large: bool, image: &StoredImage) -> StoreResult<()>;
    async fn image(&self, uri: &str, large: bool) -> StoreResult<Option<StoredImage>>;
    async fn remove_image(&self, uri: &str, large: bool) -> StoreResult<bool>;
    /// (uri, hash) of every small image, to know the hashes at start.
    async fn image_hashes(&self) -> StoreResult<Vec<(String, String)>>;

    /// Replaces a user's raw categories with `categories` (in this order) if the store still holds
    /// `expected` (in that order), in one transaction no other writer of the user's rows can
    /// interleave with; `false`, writing nothing, when it holds others (another process changed
    /// them since they were read).
    async fn save_raw_categories(
        &self,
        uri: &str,
        expected: &[crate::model::raw::RawCategory],
        categories: &[crate::model::raw::RawCategory],
    ) -> StoreResult<bool>;
    /// Every user's raw categories.
    async fn raw_categories(&self) -> StoreResult<Vec<(String, Vec<crate::model::raw::RawCategory>)>>;
    async fn raw_categories_of(&self, uri: &str) -> StoreResult<Vec<crate::model::raw::RawCategory>>;

    /// Starts a login of `user` with its first ticket value (by hash), in one transaction: the
    /// login's id (never reused).
    async fn create_login(&self, user: &str, first: &[u8; 32], now: Timestamp, expires: Timestamp) -> StoreResult<u64>;
    /// The ids of the user's logins.
    async fn login_ids(&self, user: &str) -> StoreResult<Vec<u64>>;
    /// The ticket value with this hash, with its login.
    async fn ticket(&self, hash: &[u8; 32]) -> StoreResult<Option<StoredTicket>>;
    /// Adds the value `fresh` to a login whose newest value was issued at `rotated`, and makes it
    /// the newest; false (nothing written) when the login is gone or was rotated since.
    async fn rotate_login(&self, login: u64, rotated: Timestamp, fresh: &[u8; 32], now: Timestamp) -> StoreResult<bool>;
    /// Records when values were last used (a recorded use only moves forward), in one transaction.
    async fn record_ticket_uses(&self, uses: &[([u8; 32], Timestamp)]) -> StoreResult<()>;
    /// Deletes logins ended by `now`, values not used since `unused_since`, and logins left
    /// without values: how many values went for being unused.
    async fn sweep_tickets(&self, now: Timestamp, unused_since: Timestamp) -> StoreResult<u64>;

    /// Stores what `source` reports about a user (replacing its previous report), with its expiry.
    async fn save_source_report(&self, uri: &str, source: &str, report: &SourceReport) -> StoreResult<()>;
    /// Withdraws a source's report; false when there was none.
    async fn remove_source_report(&self, uri: &str, source: &str) -> StoreResult<bool>;
    /// Every report not expired at `now`: (user, source, report).
    async fn source_reports(&self, now: Timestamp) -> StoreResult<Vec<(String, String, SourceReport)>>;
    /// One user's reports not expired at `now`: (source, report).
    async fn source_reports_of(&self, uri: &str, now: Timestamp) -> StoreResult<Vec<(String, SourceReport)>>;
    /// Deletes the reports expired at `now`; how many.
    async fn sweep_source_reports(&self, now: Timestamp) -> StoreResult<u64>;

    /// Starts following the changes other processes make to this store (see [`Change`]).
    async fn changes(&self) -> StoreResult<ChangeFeed>;

    /// Cheap reachability check for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;
    /// Flushes and closes (shutdown).
    async fn close(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(origin: &str, kind: &str, key: &str) -> Vec<Change> {
        Change::decode(origin, kind, key).collect()
    }

    #[test]
    fn each_part_of_a_presence_has_its_own_notice_and_the_old_one_means_both() {
        let uri = "sip:a@x.test".to_string();
        let origin = new_origin();
        for change in [Change::Presence(uri.clone()), Change::RawCategories(uri.clone()), Change::User(uri.clone())] {
            let (kind, key) = change.encode();
            assert_eq!(decoded(&origin, kind, &key), std::slice::from_ref(&change), "{change:?} round-trips");
        }
        // A process of the first format (an origin without a suffix) meant every part.
        let both = [Change::Presence(uri.clone()), Change::RawCategories(uri.clone())];
        assert_eq!(decoded("00000000deadbeef", "presence", &uri), both);
        assert_eq!(decoded("00000000deadbeef", "raw-categories", &uri), [Change::RawCategories(uri.clone())]);
        assert_eq!(decoded(&origin, "a-kind-of-a-later-version", &uri), [Change::Everything]);
    }

    #[test]
    fn store_urls_parse_and_never_show_a_password() {
        assert_eq!(StoreUrl::parse("sqlite:///var/x/gateway.db").unwrap(), StoreUrl::Sqlite("/var/x/gateway.db".into()));
        let pg = StoreUrl::parse("postgres://gw:secret@db.example:5432/presence?sslmode=require").unwrap();
        assert_eq!(pg.describe(), "postgres://gw@db.example:5432/presence");
        assert!(StoreUrl::parse("mysql://x/y").unwrap_err().contains("sqlite://PATH"));
        assert!(StoreUrl::parse("sqlite://").is_err());
        assert_eq!(StoreUrl::mask_password("postgres://gw:secret@db/x", "***"), "postgres://gw:***@db/x");
        assert!(!StoreUrl::parse("postgres://gw:secret@db:notaport/x").unwrap_err().contains("secret"));
    }
}
