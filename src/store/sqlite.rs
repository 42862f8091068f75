//! The embedded SQLite store (WAL mode, `synchronous=NORMAL`: durable across a process crash).
//! Several processes may open the same file (the gateway and `presence-gateway user …`): every
//! write appends a row to `changes` in its transaction, and each process polls that table for the
//! rows other processes wrote (a few times a second; entries older than an hour are pruned).

use super::faults::Faults;
use super::rows::PresenceUpdateColumns;
use super::sql::{sql_store_impl, upsert_presence_sql};
use super::{Change, ChangeFeed, StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, Sqlite, Transaction};
use std::path::Path;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// How often other processes' changes are looked for.
const POLL_EVERY: Duration = Duration::from_millis(200);
/// Change rows older than this are pruned; a process that fell further behind re-reads everything.
const KEEP_CHANGES_SECONDS: i64 = 3600;

pub struct SqliteStore {
    pool: SqlitePool,
    description: String,
    /// Marks this process's own rows in `changes`.
    origin: String,
    pub faults: Faults,
}

impl SqliteStore {
    /// Opens (creating if needed) `gateway.db` in `data_dir`.
    pub async fn open(data_dir: &Path) -> StoreResult<SqliteStore> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", data_dir.display())))?;
        SqliteStore::open_file(&data_dir.join("gateway.db")).await
    }

    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open_file(path: &Path) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        super::migrate::run(&MIGRATOR, &pool).await?;
        Ok(SqliteStore {
            pool,
            description: format!("sqlite://{}", path.display()),
            origin: super::new_origin(),
            faults: Faults::default(),
        })
    }

    /// The end of every write: its last fault point, the change recorded, the commit.
    /// The presence upsert and its change row, in one transaction.
    async fn update_presence_row(&self, uri: &str, columns: &PresenceUpdateColumns) -> StoreResult<SqliteRow> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(upsert_presence_sql!())
            .bind(uri)
            .bind(columns.set_manual)
            .bind(&columns.manual)
            .bind(columns.set_note)
            .bind(&columns.note)
            .bind(columns.conditional)
            .bind(&columns.expected_manual)
            .bind(&columns.expected_note)
            .fetch_one(&mut *tx)
            .await?;
        self.finish(tx, &Change::Presence(uri.to_string())).await?;
        Ok(row)
    }

    /// A transaction holding the database's write lock from its start (`BEGIN IMMEDIATE`): what it
    /// reads cannot change before it commits, and a deferred one could not write after reading
    /// once another connection had written.
    async fn begin_writing_user(&self, _uri: &str) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn finish(&self, mut tx: Transaction<'_, Sqlite>, change: &Change) -> StoreResult<()> {
        self.faults.step()?;
        self.record(&mut tx, change).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record(&self, tx: &mut Transaction<'_, Sqlite>, change: &Change) -> StoreResult<()> {
        let (kind, key) = change.encode();
        sqlx::query("INSERT INTO changes (kind, key, origin) VALUES ($1, $2, $3)")
            .bind(kind)
            .bind(key.as_ref())
            .bind(&self.origin)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn last_seq(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM changes").fetch_one(&self.pool).await?;
        Ok(row.try_get("seq")?)
    }

    async fn follow_changes(&self) -> StoreResult<ChangeFeed> {
        let (send, feed) = tokio::sync::mpsc::channel(1024);
        let mut seen = self.last_seq().await?;
        let pool = self.pool.clone();
        let origin = self.origin.clone();
        tokio::spawn(async move {
            let mut polls = 0u64;
            loop {
                tokio::time::sleep(POLL_EVERY).await;
                if pool.is_closed() || send.is_closed() {
                    return;
                }
                polls += 1;
                if polls % 3000 == 1 {
                    prune(&pool).await;
                }
                match read_changes(&pool, seen, &origin).await {
                    Ok((last, changes)) => {
                        seen = last;
                        for change in changes {
                            if send.send(change).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "reading the store's changes"),
                }
            }
        });
        Ok(feed)
    }
}

/// The changes after `seen` made by other processes, and the last sequence number read. A gap
/// (rows pruned before this process read them) becomes [`Change::Everything`].
async fn read_changes(pool: &SqlitePool, seen: i64, origin: &str) -> StoreResult<(i64, Vec<Change>)> {
    let rows = sqlx::query("SELECT seq, kind, key, origin FROM changes WHERE seq > $1 ORDER BY seq LIMIT 1000")
        .bind(seen)
        .fetch_all(pool)
        .await?;
    let mut last = seen;
    let mut changes = Vec::new();
    // Sequence numbers have no gaps (AUTOINCREMENT is transactional) unless rows were pruned.
    if let Some(first) = rows.first() {
        if first.try_get::<i64, _>("seq")? > seen + 1 {
            changes.push(Change::Everything);
        }
    }
    for row in rows {
        last = row.try_get("seq")?;
        let from: &str = row.try_get("origin")?;
        if from != origin {
            changes.extend(Change::decode(from, row.try_get("kind")?, row.try_get("key")?));
        }
    }
    Ok((last, changes))
}

async fn prune(pool: &SqlitePool) {
    let cutoff = chrono::Utc::now().timestamp() - KEEP_CHANGES_SECONDS;
    if let Err(e) = sqlx::query("DELETE FROM changes WHERE at_unix < $1").bind(cutoff).execute(pool).await {
        tracing::warn!(error = %e, "pruning the store's changes");
    }
}

sql_store_impl!(SqliteStore, Sqlite);
