//! Durable data behind one trait: users and their password hashes, manual states, notes, rights
//! entries (containers), contact lists, subscribers and raw categories. The embedded default is SQLite in `--data-dir`; other backends implement the
//! same trait. A write has returned only once it is durable against a process crash.

pub mod sqlite;

use crate::model::contact::Profile;
use crate::model::contacts::ContactList;
use crate::model::rights::RightsEntry;
use crate::model::sources::{ManualState, Note};
use async_trait::async_trait;

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

#[derive(Debug, thiserror::Error)]
#[error("store failure: {0}")]
pub struct StoreError(pub String);

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait Store: Send + Sync {
    /// Creates or updates a user; a `None` hash keeps the stored one.
    async fn upsert_user(&self, user: &UserRecord) -> StoreResult<()>;
    async fn set_password(&self, uri: &str, hash: &str) -> StoreResult<bool>;
    /// Removes the user and everything stored about them; false when there was no such user.
    async fn remove_user(&self, uri: &str) -> StoreResult<bool>;
    async fn users(&self) -> StoreResult<Vec<UserRecord>>;
    async fn user(&self, uri: &str) -> StoreResult<Option<UserRecord>>;

    async fn save_presence(&self, uri: &str, presence: &StoredPresence) -> StoreResult<()>;
    async fn presences(&self) -> StoreResult<Vec<(String, StoredPresence)>>;

    /// Sets the owner's entry for a member (replacing the previous level of that member).
    async fn set_right(&self, owner: &str, entry: &RightsEntry) -> StoreResult<()>;
    async fn remove_right(&self, owner: &str, member: &crate::model::rights::Member) -> StoreResult<bool>;
    async fn rights(&self) -> StoreResult<Vec<(String, RightsEntry)>>;
    /// Entries that apply to every owner (set by an admin), e.g. "group r-and-d sees all at Team".
    async fn set_global_right(&self, entry: &RightsEntry) -> StoreResult<()>;
    async fn remove_global_right(&self, member: &crate::model::rights::Member) -> StoreResult<bool>;
    async fn global_rights(&self) -> StoreResult<Vec<RightsEntry>>;

    async fn save_contact_list(&self, owner: &str, list: &ContactList) -> StoreResult<()>;
    async fn contact_lists(&self) -> StoreResult<Vec<(String, ContactList)>>;

    /// Records that `watcher` subscribes to `owner` (and whether the owner acknowledged it).
    async fn save_subscriber(&self, owner: &str, watcher: &str, acknowledged: bool) -> StoreResult<()>;
    /// Every (owner, watcher, acknowledged).
    async fn subscribers(&self) -> StoreResult<Vec<(String, String, bool)>>;

    /// Stores an image of a user (`large` = the high-resolution variant).
    async fn save_image(&self, uri: &str, large: bool, image: &StoredImage) -> StoreResult<()>;
    async fn image(&self, uri: &str, large: bool) -> StoreResult<Option<StoredImage>>;
    async fn remove_image(&self, uri: &str, large: bool) -> StoreResult<bool>;
    /// (uri, hash) of every small image, to know the hashes at start.
    async fn image_hashes(&self) -> StoreResult<Vec<(String, String)>>;

    /// Replaces a user's raw categories with `categories`.
    async fn save_raw_categories(&self, uri: &str, categories: &[crate::model::raw::RawCategory]) -> StoreResult<()>;
    /// Every user's raw categories.
    async fn raw_categories(&self) -> StoreResult<Vec<(String, Vec<crate::model::raw::RawCategory>)>>;

    /// Cheap reachability check for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;
    /// Flushes and closes (shutdown).
    async fn close(&self);
}
