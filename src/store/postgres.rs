//! The production backend: several restop replicas may share one Postgres database.

use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};

use super::MessageEvent;
use super::MigrateError;
use super::changes::BatchRow;
use super::rows::message_columns;

pub struct PgStore {
    pool: PgPool,
    /// The connection the intake's batches use while batches follow one another.
    intake: tokio::sync::Mutex<Option<PoolConnection<sqlx::Postgres>>>,
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, MigrateError> {
        let options: PgConnectOptions = url.parse()?;
        sql::open(options.application_name("restop"), max_connections).await
    }
}

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

// What the queries in `sql` need to know of this backend.
type Db = sqlx::Postgres;
type SqlStore = PgStore;
const BEGIN_WRITE: &str = "BEGIN";
/// A claim skips the rows another replica's claim has locked instead of waiting for them.
const CLAIM_LOCK: &str = "FOR UPDATE SKIP LOCKED";
const MIGRATIONS_TABLE_EXISTS: &str = "SELECT to_regclass('_sqlx_migrations') IS NOT NULL";

/// A list of texts bound as one parameter, read as rows by [`TEXT_LIST_ROWS`].
type TextList = Vec<String>;

fn text_list(texts: Vec<String>) -> TextList {
    texts
}

/// The rows of the text list bound as `$1`.
const TEXT_LIST_ROWS: &str = "SELECT unnest($1::text[])";

/// Any number of messages in one statement of one shape (one array per column), so that
/// every batch uses the same prepared statement. A MessageId already stored, or met
/// earlier in the batch, is skipped.
const INSERT_BATCH: &str = concat!(
    "INSERT INTO sns_messages (",
    message_columns!(),
    ") SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[],
        $6::timestamptz[], $7::timestamptz[], $8::text[], $9::text[], $10::text[],
        $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
        $17::text[])
    ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
);

/// Inserts `rows` in one statement; returns the MessageIds it stored.
async fn insert_batch(
    conn: &mut PgConnection,
    rows: &[BatchRow<'_>],
) -> Result<Vec<String>, sqlx::Error> {
    let column = |f: for<'r> fn(&'r BatchRow<'r>) -> Option<&'r str>| -> Vec<Option<&str>> {
        rows.iter().map(f).collect()
    };
    fn event<'r>(r: &'r BatchRow<'r>) -> Option<&'r MessageEvent> {
        r.message.event.as_ref()
    }
    sqlx::query_scalar(INSERT_BATCH)
        .bind(column(|r| Some(r.message.message_id.as_str())))
        .bind(column(|r| Some(r.message.message_type.as_str())))
        .bind(column(|r| Some(r.message.topic_arn.as_str())))
        .bind(column(|r| r.message.subject.as_deref()))
        .bind(
            rows.iter()
                .map(|r| r.message.body.as_bytes())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.message.sent_at).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.message.received_at)
                .collect::<Vec<_>>(),
        )
        .bind(column(|r| Some(r.message.signature_version.as_str())))
        .bind(column(|r| Some(r.disposition.as_str())))
        .bind(column(|r| r.disposition_reason))
        .bind(column(|r| event(r).map(|e| e.event_id.as_str())))
        .bind(column(|r| event(r).map(|e| e.source_type.as_str())))
        .bind(column(|r| event(r).map(|e| e.source_id.as_str())))
        .bind(column(|r| event(r).and_then(|e| e.source_arn.as_deref())))
        .bind(column(|r| event(r).map(|e| e.region.as_str())))
        .bind(column(|r| event(r).map(|e| e.account_id.as_str())))
        .bind(column(|r| r.execution_id))
        .fetch_all(conn)
        .await
}

async fn connect_to_inspect(url: &str) -> Result<PgConnection, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    options.application_name("restop doctor").connect().await
}

#[path = "sql/mod.rs"]
mod sql;

pub(super) use sql::schema_state;
