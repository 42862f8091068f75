//! Gateways on a shared store for the durability tests: [`Backend`] is an SQLite file or a fresh
//! PostgreSQL schema (`support/pg.rs`), read directly as an operator would; [`Node`] is a real
//! gateway on 127.0.0.1:0 on such a store, with its own manual clock, stopped gracefully.
#![allow(dead_code)]

use crate::common::*;
use crate::pg;
use presence_gateway::config::Config;
use presence_gateway::model::sources::Timestamp;
use presence_gateway::service::clock::ManualClock;
use presence_gateway::service::seed::UsersFile;
use presence_gateway::service::Gateway;
use presence_gateway::store::{Store, StoreUrl};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Runs each named `async fn(Backend)` of the including test file as two tests, `sqlite::NAME`
/// and `postgres::NAME`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::sqlite().await).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(super::Backend::postgres().await).await })*
        }
    };
}

/// The store under test.
pub enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(pg::PgSchema),
}

impl Backend {
    pub async fn sqlite() -> Backend {
        Backend::Sqlite(tempfile::tempdir().unwrap())
    }

    pub async fn postgres() -> Backend {
        Backend::Postgres(pg::PgSchema::create().await)
    }

    pub fn url(&self) -> String {
        match self {
            Backend::Sqlite(dir) => format!("sqlite://{}", dir.path().join("gateway.db").display()),
            Backend::Postgres(schema) => schema.url(),
        }
    }

    pub async fn open(&self) -> Arc<dyn Store> {
        presence_gateway::store::open(&StoreUrl::parse(&self.url()).unwrap()).await.unwrap()
    }

    /// One number from the store's tables, read as an operator would.
    pub async fn number(&self, sql: &str, bind: Option<&str>) -> i64 {
        use sqlx::Row;
        match self {
            Backend::Sqlite(dir) => {
                let pool =
                    sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("gateway.db").display())).await.unwrap();
                let query = match bind {
                    Some(value) => sqlx::query(sql).bind(value),
                    None => sqlx::query(sql),
                };
                let row = query.fetch_one(&pool).await.unwrap();
                pool.close().await;
                row.try_get(0).unwrap()
            }
            Backend::Postgres(schema) => {
                let pool = sqlx::PgPool::connect(&schema.url()).await.unwrap();
                let query = match bind {
                    Some(value) => sqlx::query(sql).bind(value),
                    None => sqlx::query(sql),
                };
                let row = query.fetch_one(&pool).await.unwrap();
                pool.close().await;
                row.try_get(0).unwrap()
            }
        }
    }

    pub async fn logins_of(&self, uri: &str) -> i64 {
        self.number("SELECT COUNT(*) FROM logins WHERE uri = $1", Some(uri)).await
    }

    pub async fn rows(&self, table: &str) -> i64 {
        self.number(&format!("SELECT COUNT(*) FROM {table}"), None).await
    }

    /// The store holds the SHA-256 of the ticket and nowhere the ticket itself.
    pub async fn holds_only_the_hash_of(&self, ticket: &str) {
        use sqlx::Row;
        let hash = Sha256::digest(ticket.as_bytes()).to_vec();
        let hashes: Vec<Vec<u8>> = match self {
            Backend::Sqlite(dir) => {
                let pool =
                    sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("gateway.db").display())).await.unwrap();
                let rows = sqlx::query("SELECT hash FROM tickets").fetch_all(&pool).await.unwrap();
                pool.close().await;
                // Not in any table, index, journal or log either.
                for file in std::fs::read_dir(dir.path()).unwrap() {
                    let bytes = std::fs::read(file.unwrap().path()).unwrap();
                    assert!(!bytes.windows(ticket.len()).any(|w| w == ticket.as_bytes()), "the ticket is in a store file");
                }
                rows.iter().map(|r| r.try_get("hash").unwrap()).collect()
            }
            Backend::Postgres(schema) => {
                let pool = sqlx::PgPool::connect(&schema.url()).await.unwrap();
                let rows = sqlx::query("SELECT hash FROM tickets").fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows.iter().map(|r| r.try_get("hash").unwrap()).collect()
            }
        };
        assert!(hashes.contains(&hash), "the hash is kept");
        assert!(hashes.iter().all(|h| h.len() == 32 && h.as_slice() != ticket.as_bytes()));
    }
}

/// A running gateway on a store.
pub struct Node {
    pub base: String,
    pub clock: Arc<ManualClock>,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Node {
    /// Starts a gateway on `store` (the users file applied first, as `serve --users` does at
    /// every start).
    pub async fn start(store: Arc<dyn Store>, config: Config) -> Node {
        Node::start_at(store, config, chrono::Utc::now()).await
    }

    /// A gateway whose clock starts at `now`.
    pub async fn start_at(store: Arc<dyn Store>, config: Config, now: Timestamp) -> Node {
        UsersFile::parse(USERS).unwrap().apply(&*store).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = Config { data_dir: dir.path().to_path_buf(), ..config };
        let clock = ManualClock::new(now);
        let gateway = Gateway::start(config, store, clock.clone()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(presence_gateway::serve_with(listener, None, gateway, async move {
            let _ = stopped.await;
        }));
        Node { base, clock, _dir: dir, stop: Some(stop), task: Some(task) }
    }

    pub async fn on(backend: &Backend, config: Config) -> Node {
        Node::start(backend.open().await, config).await
    }

    /// Stops gracefully (the store is closed).
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }

    /// A JSON API read with exactly this ticket: (status, the ticket of the reply).
    pub async fn read(&self, ticket: &str) -> (u16, Option<String>) {
        let url = format!("{}/api/v1/users/sip:bob@example.com/presence", self.base);
        let reply = send(reqwest::Client::new().get(url).header("CWA-Ticket", ticket)).await;
        (reply.status, reply.ticket)
    }

    /// Polls (bounded) until the ticket is refused here.
    pub async fn until_refused(&self, ticket: &str, what: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match self.read(ticket).await.0 {
                401 => return,
                200 if std::time::Instant::now() < deadline => tokio::time::sleep(std::time::Duration::from_millis(25)).await,
                status => panic!("{what}: still {status} at {}", self.base),
            }
        }
    }
}
