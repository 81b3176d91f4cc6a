//! The production backend: several restop replicas may share one Postgres database.

use sqlx::ConnectOptions;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};

use super::MigrateError;

pub struct PgStore {
    pool: PgPool,
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

async fn connect_to_inspect(url: &str) -> Result<PgConnection, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    options.application_name("restop doctor").connect().await
}

#[path = "sql/mod.rs"]
mod sql;

pub(super) use sql::schema_state;
