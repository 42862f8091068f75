//! The embedded SQLite store (WAL mode, `synchronous=NORMAL`: durable across a process crash).
//! Structured fields that only the gateway reads are kept as JSON columns.

use super::{Store, StoreResult, StoredImage, StoredPresence, UserRecord};
use crate::model::contact::Profile;
use crate::model::contacts::ContactList;
use crate::model::rights::{Member, RightsEntry};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Row;
use std::path::Path;
use std::str::FromStr;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS users (
    uri TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    password_hash TEXT
);
CREATE TABLE IF NOT EXISTS presence (
    uri TEXT PRIMARY KEY REFERENCES users(uri) ON DELETE CASCADE,
    manual TEXT,
    note TEXT
);
CREATE TABLE IF NOT EXISTS rights (
    owner TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    member TEXT NOT NULL,
    level TEXT NOT NULL,
    PRIMARY KEY (owner, member)
);
CREATE TABLE IF NOT EXISTS global_rights (
    member TEXT PRIMARY KEY,
    level TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS contact_lists (
    owner TEXT PRIMARY KEY REFERENCES users(uri) ON DELETE CASCADE,
    list TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    uri TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    large INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    bytes BLOB NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (uri, large)
);
CREATE TABLE IF NOT EXISTS raw_categories (
    owner TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    name TEXT NOT NULL,
    instance INTEGER NOT NULL,
    category TEXT NOT NULL,
    PRIMARY KEY (owner, name, instance)
);
CREATE TABLE IF NOT EXISTS subscribers (
    owner TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    watcher TEXT NOT NULL REFERENCES users(uri) ON DELETE CASCADE,
    acknowledged INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, watcher)
);
"#;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `gateway.db` in `data_dir`.
    pub async fn open(data_dir: &Path) -> StoreResult<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| super::StoreError(format!("cannot create {}: {e}", data_dir.display())))?;
        let url = format!("sqlite://{}", data_dir.join("gateway.db").display());
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(SqliteStore { pool })
    }
}

fn member_key(member: &Member) -> StoreResult<String> {
    Ok(serde_json::to_string(member)?)
}

fn json_opt<T: serde::de::DeserializeOwned>(text: Option<String>) -> StoreResult<Option<T>> {
    Ok(match text {
        Some(t) => Some(serde_json::from_str(&t)?),
        None => None,
    })
}

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<UserRecord> {
    let profile: Profile = serde_json::from_str(row.try_get::<&str, _>("profile")?)?;
    Ok(UserRecord { profile, password_hash: row.try_get("password_hash")? })
}

#[async_trait]
impl Store for SqliteStore {
    async fn upsert_user(&self, user: &UserRecord) -> StoreResult<()> {
        let profile = serde_json::to_string(&user.profile)?;
        sqlx::query(
            "INSERT INTO users (uri, profile, password_hash) VALUES (?1, ?2, ?3)
             ON CONFLICT(uri) DO UPDATE SET profile = ?2, password_hash = COALESCE(?3, users.password_hash)",
        )
        .bind(&user.profile.uri)
        .bind(profile)
        .bind(&user.password_hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_password(&self, uri: &str, hash: &str) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE users SET password_hash = ?2 WHERE uri = ?1").bind(uri).bind(hash).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn remove_user(&self, uri: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM users WHERE uri = ?1").bind(uri).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        let rows = sqlx::query("SELECT profile, password_hash FROM users ORDER BY uri").fetch_all(&self.pool).await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn user(&self, uri: &str) -> StoreResult<Option<UserRecord>> {
        let row =
            sqlx::query("SELECT profile, password_hash FROM users WHERE uri = ?1").bind(uri).fetch_optional(&self.pool).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn save_presence(&self, uri: &str, presence: &StoredPresence) -> StoreResult<()> {
        let manual = presence.manual.as_ref().map(serde_json::to_string).transpose()?;
        let note = presence.note.as_ref().map(serde_json::to_string).transpose()?;
        sqlx::query(
            "INSERT INTO presence (uri, manual, note) VALUES (?1, ?2, ?3)
             ON CONFLICT(uri) DO UPDATE SET manual = ?2, note = ?3",
        )
        .bind(uri)
        .bind(manual)
        .bind(note)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn presences(&self) -> StoreResult<Vec<(String, StoredPresence)>> {
        let rows = sqlx::query("SELECT uri, manual, note FROM presence").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let presence =
                    StoredPresence { manual: json_opt(row.try_get("manual")?)?, note: json_opt(row.try_get("note")?)? };
                Ok((row.try_get("uri")?, presence))
            })
            .collect()
    }

    async fn set_right(&self, owner: &str, entry: &RightsEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO rights (owner, member, level) VALUES (?1, ?2, ?3)
             ON CONFLICT(owner, member) DO UPDATE SET level = ?3",
        )
        .bind(owner)
        .bind(member_key(&entry.member)?)
        .bind(entry.level.name())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remove_right(&self, owner: &str, member: &Member) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM rights WHERE owner = ?1 AND member = ?2")
            .bind(owner)
            .bind(member_key(member)?)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn rights(&self) -> StoreResult<Vec<(String, RightsEntry)>> {
        let rows = sqlx::query("SELECT owner, member, level FROM rights ORDER BY owner").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let member: Member = serde_json::from_str(row.try_get::<&str, _>("member")?)?;
                let level_name: &str = row.try_get("level")?;
                let level = crate::model::rights::AccessLevel::from_name(level_name)
                    .ok_or_else(|| super::StoreError(format!("unknown level {level_name}")))?;
                Ok((row.try_get("owner")?, RightsEntry { member, level }))
            })
            .collect()
    }

    async fn set_global_right(&self, entry: &RightsEntry) -> StoreResult<()> {
        sqlx::query("INSERT INTO global_rights (member, level) VALUES (?1, ?2) ON CONFLICT(member) DO UPDATE SET level = ?2")
            .bind(member_key(&entry.member)?)
            .bind(entry.level.name())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn remove_global_right(&self, member: &Member) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM global_rights WHERE member = ?1").bind(member_key(member)?).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn global_rights(&self) -> StoreResult<Vec<RightsEntry>> {
        let rows = sqlx::query("SELECT member, level FROM global_rights").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let member: Member = serde_json::from_str(row.try_get::<&str, _>("member")?)?;
                let name: &str = row.try_get("level")?;
                let level = crate::model::rights::AccessLevel::from_name(name)
                    .ok_or_else(|| super::StoreError(format!("unknown level {name}")))?;
                Ok(RightsEntry { member, level })
            })
            .collect()
    }

    async fn save_contact_list(&self, owner: &str, list: &ContactList) -> StoreResult<()> {
        sqlx::query("INSERT INTO contact_lists (owner, list) VALUES (?1, ?2) ON CONFLICT(owner) DO UPDATE SET list = ?2")
            .bind(owner)
            .bind(serde_json::to_string(list)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn contact_lists(&self) -> StoreResult<Vec<(String, ContactList)>> {
        let rows = sqlx::query("SELECT owner, list FROM contact_lists").fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok((row.try_get("owner")?, serde_json::from_str(row.try_get::<&str, _>("list")?)?))).collect()
    }

    async fn save_subscriber(&self, owner: &str, watcher: &str, acknowledged: bool) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO subscribers (owner, watcher, acknowledged) VALUES (?1, ?2, ?3)
             ON CONFLICT(owner, watcher) DO UPDATE SET acknowledged = ?3",
        )
        .bind(owner)
        .bind(watcher)
        .bind(acknowledged)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn subscribers(&self) -> StoreResult<Vec<(String, String, bool)>> {
        let rows = sqlx::query("SELECT owner, watcher, acknowledged FROM subscribers ORDER BY owner, watcher")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok((row.try_get("owner")?, row.try_get("watcher")?, row.try_get("acknowledged")?))).collect()
    }

    async fn save_image(&self, uri: &str, large: bool, image: &StoredImage) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO images (uri, large, content_type, bytes, hash) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(uri, large) DO UPDATE SET content_type = ?3, bytes = ?4, hash = ?5",
        )
        .bind(uri)
        .bind(large)
        .bind(&image.content_type)
        .bind(&image.bytes)
        .bind(&image.hash)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn image(&self, uri: &str, large: bool) -> StoreResult<Option<StoredImage>> {
        let row = sqlx::query("SELECT content_type, bytes, hash FROM images WHERE uri = ?1 AND large = ?2")
            .bind(uri)
            .bind(large)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(StoredImage { content_type: r.try_get("content_type")?, bytes: r.try_get("bytes")?, hash: r.try_get("hash")? })
        })
        .transpose()
    }

    async fn remove_image(&self, uri: &str, large: bool) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM images WHERE uri = ?1 AND large = ?2").bind(uri).bind(large).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    async fn image_hashes(&self) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT uri, hash FROM images WHERE large = 0").fetch_all(&self.pool).await?;
        rows.iter().map(|r| Ok((r.try_get("uri")?, r.try_get("hash")?))).collect()
    }

    async fn save_raw_categories(&self, uri: &str, categories: &[crate::model::raw::RawCategory]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM raw_categories WHERE owner = ?").bind(uri).execute(&mut *tx).await?;
        for category in categories {
            sqlx::query("INSERT INTO raw_categories (owner, name, instance, category) VALUES (?, ?, ?, ?)")
                .bind(uri)
                .bind(&category.name)
                .bind(i64::from(category.instance))
                .bind(serde_json::to_string(category)?)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn raw_categories(&self) -> StoreResult<Vec<(String, Vec<crate::model::raw::RawCategory>)>> {
        let rows = sqlx::query("SELECT owner, category FROM raw_categories ORDER BY owner, rowid").fetch_all(&self.pool).await?;
        let mut out: Vec<(String, Vec<crate::model::raw::RawCategory>)> = Vec::new();
        for row in rows {
            let owner: String = row.try_get("owner")?;
            let category = serde_json::from_str(&row.try_get::<String, _>("category")?)?;
            match out.last_mut() {
                Some((last, list)) if *last == owner => list.push(category),
                _ => out.push((owner, vec![category])),
            }
        }
        Ok(out)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
