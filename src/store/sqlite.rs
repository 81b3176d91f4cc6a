//! The embedded default: one restop process with a local database file.

use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqliteSynchronous,
};

use super::MigrateError;

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
        sql::open(options, max_connections).await
    }
}

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

// What the queries in `sql` need to know of this backend.
type Db = sqlx::Sqlite;
type SqlStore = SqliteStore;
// Every transaction here writes, so it takes the write lock when it begins (waiting up to
// BUSY_TIMEOUT for it): a deferred one that read first would fail at once with "database
// is locked" when another connection committed in between, instead of waiting.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
/// One process owns a SQLite database, and its writes are serialised: no row locks needed.
const CLAIM_LOCK: &str = "";
const MIGRATIONS_TABLE_EXISTS: &str =
    "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";

/// Opens the file read-only, and never creates it.
async fn connect_to_inspect(url: &str) -> Result<SqliteConnection, sqlx::Error> {
    let options: SqliteConnectOptions = url.parse()?;
    options
        .create_if_missing(false)
        .read_only(true)
        .connect()
        .await
}

#[expect(
    clippy::duplicate_mod,
    reason = "compiled once per backend on purpose: see sql/mod.rs"
)]
#[path = "sql/mod.rs"]
mod sql;

pub(super) use sql::schema_state;

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
