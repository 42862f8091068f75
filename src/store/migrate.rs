//! Runs a backend's embedded migrations at open, refusing a store whose schema is newer than this
//! binary knows (a downgrade would write rows the newer schema does not expect).

use super::{StoreError, StoreResult};
use sqlx::migrate::{Migrate, Migrator};

/// The newest version recorded in the store, if it was ever migrated.
async fn applied_version<C: Migrate + ?Sized>(conn: &mut C) -> StoreResult<Option<i64>> {
    let failed = |e: sqlx::migrate::MigrateError| StoreError::Other(format!("reading the store's schema version: {e}"));
    conn.ensure_migrations_table().await.map_err(failed)?;
    let applied = conn.list_applied_migrations().await.map_err(failed)?;
    Ok(applied.iter().map(|m| m.version).max())
}

pub async fn run<DB>(migrator: &Migrator, pool: &sqlx::Pool<DB>) -> StoreResult<()>
where
    DB: sqlx::Database,
    DB::Connection: Migrate,
{
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    let mut conn = pool.acquire().await?;
    if let Some(found) = applied_version(&mut *conn).await? {
        if found > known {
            return Err(StoreError::SchemaTooNew { found, known });
        }
    }
    drop(conn);
    migrator.run(pool).await.map_err(|e| StoreError::Other(format!("migrating the store: {e}")))?;
    Ok(())
}
