//! The production backend: several restop replicas may share one Postgres database.

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Postgres};

use super::{ACQUIRE_TIMEOUT, MigrateError};

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, MigrateError> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.application_name("restop"))
            .await?;
        // Takes an advisory lock: replicas starting together migrate once.
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

pub(super) async fn schema_state(url: &str) -> Result<super::SchemaState, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let mut conn = options.application_name("restop doctor").connect().await?;
    let migrated: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
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

super::sql::impl_store!(
    PgStore,
    Postgres,
    claim_lock = "FOR UPDATE SKIP LOCKED",
    begin_write = "BEGIN"
);
