//! The embedded default: one restop process with a local database file.

use std::sync::LazyLock;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqliteSynchronous,
};

use super::MigrateError;
use super::changes::BatchRow;
use super::rows::message_columns;

/// A writer waits this long for another writer's lock before the database counts as busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(2);

pub struct SqliteStore {
    pool: SqlitePool,
    /// The connection the intake's batches use while batches follow one another.
    intake: tokio::sync::Mutex<Option<PoolConnection<sqlx::Sqlite>>>,
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

/// A list of texts bound as one parameter (a JSON array), read as rows by
/// [`TEXT_LIST_ROWS`].
type TextList = String;

fn text_list(texts: Vec<String>) -> TextList {
    serde_json::Value::from(texts).to_string()
}

/// The rows of the text list bound as `$1`.
const TEXT_LIST_ROWS: &str = "SELECT value FROM json_each($1)";

/// Rows per INSERT of a batch: every statement has this many, so that every batch uses
/// the same prepared statement. A shorter rest repeats its last row, which the conflict
/// clause then skips.
const BATCH_ROWS: usize = 16;
const BATCH_COLUMNS: usize = 17;

static INSERT_BATCH: LazyLock<String> = LazyLock::new(|| {
    let row = format!("({})", vec!["?"; BATCH_COLUMNS].join(", "));
    format!(
        "INSERT INTO sns_messages ({}) VALUES {} \
         ON CONFLICT (message_id) DO NOTHING RETURNING message_id",
        message_columns!(),
        vec![row; BATCH_ROWS].join(", ")
    )
});

/// Inserts `rows`, [`BATCH_ROWS`] at a time; returns the MessageIds it stored.
async fn insert_batch(
    conn: &mut SqliteConnection,
    rows: &[BatchRow<'_>],
) -> Result<Vec<String>, sqlx::Error> {
    let mut inserted = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(BATCH_ROWS) {
        let last = &chunk[chunk.len() - 1];
        let padded = chunk
            .iter()
            .chain(std::iter::repeat_n(last, BATCH_ROWS - chunk.len()));
        let mut query = sqlx::query_scalar(INSERT_BATCH.as_str());
        for r in padded {
            let m = r.message;
            let event = m.event.as_ref();
            query = query
                .bind(&m.message_id)
                .bind(m.message_type.as_str())
                .bind(&m.topic_arn)
                .bind(&m.subject)
                .bind(m.body.as_bytes())
                .bind(m.sent_at)
                .bind(m.received_at)
                .bind(&m.signature_version)
                .bind(r.disposition.as_str())
                .bind(r.disposition_reason)
                .bind(event.map(|e| &e.event_id))
                .bind(event.map(|e| &e.source_type))
                .bind(event.map(|e| &e.source_id))
                .bind(event.and_then(|e| e.source_arn.as_ref()))
                .bind(event.map(|e| &e.region))
                .bind(event.map(|e| &e.account_id))
                .bind(r.execution_id);
        }
        inserted.extend(query.fetch_all(&mut *conn).await?);
    }
    Ok(inserted)
}

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
