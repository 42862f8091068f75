//! The PostgreSQL store: a connection pool, the same rows as the SQLite store, and changes
//! announced with `NOTIFY` inside the writing transaction (so they are delivered on commit, in
//! commit order, and never for a rolled-back write). The channel is named after the schema the
//! URL's `search_path` selects, so several gateways sharing a database but not a schema do not
//! hear each other. When the listening connection is lost, notifications may have been missed:
//! the feed then says [`Change::Everything`].

use super::faults::Faults;
use super::rows::PresenceUpdateColumns;
use super::sql::{sql_store_impl, upsert_presence_sql};
use super::{Change, ChangeFeed, StoreResult};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Row, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// How long a pooled connection may sit idle before it is checked with a ping when taken. One
/// the server ended while it was in use or more recently fails its next statement with the
/// retryable error and is replaced.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

pub struct PostgresStore {
    pool: PgPool,
    description: String,
    /// The NOTIFY channel of this store's schema.
    channel: String,
    /// Marks this process's own notifications.
    origin: String,
    pub faults: Faults,
}

impl PostgresStore {
    /// Connects (the URL may select a schema with `?options=-c search_path=NAME`) and brings the
    /// schema up to date.
    pub async fn connect(url: &str) -> StoreResult<PostgresStore> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            // A connection in steady use is not pinged before each statement (a round trip per
            // write); one that sat idle for a while is, so that a restart meanwhile is noticed.
            .test_before_acquire(false)
            .before_acquire(|connection, taken| {
                Box::pin(async move {
                    if taken.idle_for >= PING_WHEN_IDLE_FOR {
                        connection.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await?;
        super::migrate::run(&MIGRATOR, &pool).await?;
        let schema: String = sqlx::query("SELECT current_schema() AS s").fetch_one(&pool).await?.try_get("s")?;
        Ok(PostgresStore {
            pool,
            description: super::StoreUrl::Postgres(url.to_string()).describe(),
            channel: format!("presence_gateway_{schema}"),
            origin: super::new_origin(),
            faults: Faults::default(),
        })
    }

    /// The presence upsert and its notice in one statement (one round trip, no explicit
    /// transaction: the statement is its own, and the notice is delivered on its commit).
    async fn update_presence_row(&self, uri: &str, columns: &PresenceUpdateColumns) -> StoreResult<PgRow> {
        self.faults.step()?;
        let row = sqlx::query(concat!(
            "WITH stands AS (",
            upsert_presence_sql!(),
            ") SELECT stands.uri, stands.manual, stands.note FROM stands CROSS JOIN (SELECT pg_notify($9, $10)) AS announced"
        ))
        .bind(uri)
        .bind(columns.set_manual)
        .bind(&columns.manual)
        .bind(columns.set_note)
        .bind(&columns.note)
        .bind(columns.conditional)
        .bind(&columns.expected_manual)
        .bind(&columns.expected_note)
        .bind(&self.channel)
        .bind(self.notice(&Change::Presence(uri.to_string())))
        .fetch_one(&self.pool)
        .await?;
        Ok(row)
    }

    /// A transaction holding the user's row locked (`FOR NO KEY UPDATE`): another such transaction
    /// for the same user waits until this one ends, so what it reads stays as read until it
    /// commits. Rows of others that refer to the user (a subscriber row written by another user's
    /// list) only take a key-share lock, which this one does not block: two users adding each
    /// other at once do not wait for each other.
    async fn begin_writing_user(&self, uri: &str) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM users WHERE uri = $1 FOR NO KEY UPDATE").bind(uri).execute(&mut *tx).await?;
        Ok(tx)
    }

    /// The end of every write: its last fault point, the change recorded, the commit.
    async fn finish(&self, mut tx: Transaction<'_, Postgres>, change: &Change) -> StoreResult<()> {
        self.faults.step()?;
        self.record(&mut tx, change).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The text of the notice announcing `change`: this process's origin, the kind, the key.
    fn notice(&self, change: &Change) -> String {
        let (kind, key) = change.encode();
        format!("{}\t{kind}\t{key}", self.origin)
    }

    async fn record(&self, tx: &mut Transaction<'_, Postgres>, change: &Change) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)").bind(&self.channel).bind(self.notice(change)).execute(&mut **tx).await?;
        Ok(())
    }

    async fn follow_changes(&self) -> StoreResult<ChangeFeed> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(&self.channel).await?;
        let (send, feed) = tokio::sync::mpsc::channel(1024);
        let origin = self.origin.clone();
        let pool = self.pool.clone();
        tokio::spawn(async move {
            loop {
                if pool.is_closed() || send.is_closed() {
                    return;
                }
                let changes: Vec<Change> = match listener.try_recv().await {
                    Ok(Some(note)) => match note.payload().split_once('\t') {
                        Some((from, _)) if from == origin => continue,
                        Some((from, rest)) => {
                            let (kind, key) = rest.split_once('\t').unwrap_or((rest, ""));
                            Change::decode(from, kind, key).collect()
                        }
                        None => continue,
                    },
                    // The connection was lost and is being re-established: anything may have been missed.
                    Ok(None) => vec![Change::Everything],
                    Err(_) if pool.is_closed() => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for the store's changes");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        vec![Change::Everything]
                    }
                };
                for change in changes {
                    if send.send(change).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(feed)
    }
}

sql_store_impl!(PostgresStore, Postgres);
