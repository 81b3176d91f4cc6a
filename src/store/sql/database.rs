//! The database as a whole: whether it answers, and how its schema compares with this
//! build's migrations.

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::pool::PoolOptions;

use super::{Db, MIGRATIONS_TABLE_EXISTS, MIGRATOR, SqlStore, connect_to_inspect};
use crate::store::{ACQUIRE_TIMEOUT, MigrateError, SchemaState, Store, StoreError};

const PING: &str = "SELECT 1";

const APPLIED_MIGRATIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success";

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(PING).execute(&self.pool).await?;
        Ok(())
    }
}

/// Opens a pool of up to `max_connections` and applies the pending migrations (on Postgres
/// under an advisory lock: replicas starting together migrate once).
pub(in crate::store) async fn open(
    options: <<Db as sqlx::Database>::Connection as Connection>::Options,
    max_connections: u32,
) -> Result<SqlStore, MigrateError> {
    // No ping before each use (sqlx's default): it costs a round trip per statement. A
    // connection that died while idle fails the one statement given it; the delivery
    // that ran it answers 503 and SNS delivers it again, and sqlx closes the connection.
    let pool = PoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(SqlStore {
        pool,
        intake: Default::default(),
    })
}

/// Reads the schema state of the database at `url` without changing anything.
pub(in crate::store) async fn schema_state(url: &str) -> Result<SchemaState, sqlx::Error> {
    let mut conn = connect_to_inspect(url).await?;
    let migrated: bool = sqlx::query_scalar(MIGRATIONS_TABLE_EXISTS)
        .fetch_one(&mut conn)
        .await?;
    let applied: Vec<i64> = if migrated {
        sqlx::query_scalar(APPLIED_MIGRATIONS)
            .fetch_all(&mut conn)
            .await?
    } else {
        Vec::new()
    };
    conn.close().await.ok();
    Ok(SchemaState::compare(&MIGRATOR, &applied))
}
