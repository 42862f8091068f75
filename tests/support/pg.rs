//! A fresh PostgreSQL schema per test on the machine's server (127.0.0.1:5432, trust auth,
//! database `test`; `scripts/test` starts one when none answers), so tests run in parallel and
//! leave nothing behind: the schema is dropped when the guard goes, even after a failure.
#![allow(dead_code)]

use sqlx::{Connection, PgConnection};

const BASES: [&str; 2] = ["postgres://postgres@127.0.0.1:5432/test", "postgres://root@127.0.0.1:5432/test"];

pub struct PgSchema {
    base: String,
    pub name: String,
}

impl PgSchema {
    pub async fn create() -> PgSchema {
        let mut last_error = String::new();
        for base in BASES {
            match PgConnection::connect(base).await {
                Ok(mut conn) => {
                    let name = format!("t_{:016x}", rand::random::<u64>());
                    sqlx::query(&format!("CREATE SCHEMA {name}")).execute(&mut conn).await.expect("create a schema");
                    let _ = conn.close().await;
                    return PgSchema { base: base.to_string(), name };
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        panic!("PostgreSQL at 127.0.0.1:5432 (database test) is needed; scripts/test starts it: {last_error}");
    }

    /// The store URL that selects this schema.
    pub fn url(&self) -> String {
        format!("{}?options=-c%20search_path%3D{}", self.base, self.name)
    }

    /// The server's URL as its superuser (no schema selected).
    pub fn admin_url(&self) -> &str {
        &self.base
    }

    /// The store URL that selects this schema, signed in as `role`.
    pub fn url_as(&self, role: &str) -> String {
        let (scheme, rest) = self.base.split_once("://").unwrap();
        let host = rest.split_once('@').map_or(rest, |(_, host)| host);
        format!("{scheme}://{role}@{host}?options=-c%20search_path%3D{}", self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&base).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA {name} CASCADE")).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
