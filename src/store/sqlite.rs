//! The embedded default: one restop process with a local database file.

use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Sqlite};

use super::{ACQUIRE_TIMEOUT, MigrateError};

/// A writer waits this long for another writer's lock before the database counts as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, MigrateError> {
        let options: SqliteConnectOptions = url.parse()?;
        let options = options
            .create_if_missing(true)
            // WAL lets the API read while a delivery writes. FULL syncs the log at every
            // commit: a 2xx promises SNS that the message survives power loss too.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

pub(super) async fn schema_state(url: &str) -> Result<super::SchemaState, sqlx::Error> {
    let options: SqliteConnectOptions = url.parse()?;
    let mut conn = options
        .create_if_missing(false)
        .read_only(true)
        .connect()
        .await?;
    let migrated: bool = sqlx::query_scalar(
        "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_one(&mut conn)
    .await?;
    let applied: Vec<i64> = if migrated {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&mut conn)
            .await?
    } else {
        Vec::new()
    };
    conn.close().await.ok();
    Ok(super::SchemaState::compare(&MIGRATOR, &applied))
}

// One process owns a SQLite database, and its writes are serialised: no row locks needed.
// Every transaction here writes, so it takes the write lock when it begins (waiting up to
// BUSY_TIMEOUT for it): a deferred one that read first would fail at once with "database
// is locked" when another connection committed in between, instead of waiting.
super::sql::impl_store!(
    SqliteStore,
    Sqlite,
    claim_lock = "",
    begin_write = "BEGIN IMMEDIATE"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_commit_is_synced_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/restop.db", dir.path().display());
        let store = SqliteStore::connect(&url, 2).await.unwrap();
        // 2 is FULL: a 2xx to SNS means the message survives power loss.
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(synchronous, 2);
    }
}
