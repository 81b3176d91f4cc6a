//! The embedded default: one restop process with a local database file.

use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

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
            // WAL lets the API read while a delivery writes; NORMAL is durable in WAL mode
            // except for the last transactions on power loss, not on a process crash.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

// One process owns a SQLite database, and its writes are serialised: no row locks needed.
super::sql::impl_store!(SqliteStore, Sqlite, claim_lock = "");
