//! The production backend: several restop replicas may share one Postgres database.

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

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
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

super::sql::impl_store!(PgStore, Postgres, claim_lock = "FOR UPDATE SKIP LOCKED");
