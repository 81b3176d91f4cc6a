//! One fresh database per test, on either backend.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool, SqlitePool};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

pub struct TestDb {
    pub backend: Backend,
    /// What restop is given as DATABASE_URL.
    pub url: String,
    inspect: Inspect,
    cleanup: Cleanup,
}

enum Inspect {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

enum Cleanup {
    DropDatabase { admin_url: String, name: String },
    RemoveDir { _dir: tempfile::TempDir },
}

impl TestDb {
    /// A fresh database, or `None` when Postgres is not configured outside CI (the
    /// test command always configures it; in CI its absence is a failure).
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => Some(Self::sqlite().await),
            Backend::Postgres => match std::env::var("RESTOP_TEST_POSTGRES_URL") {
                Ok(admin_url) => Some(Self::postgres(admin_url).await),
                Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                    panic!("RESTOP_TEST_POSTGRES_URL is not set: run the tests with scripts/test")
                }
                Err(_) => {
                    eprintln!("SKIPPED: RESTOP_TEST_POSTGRES_URL is not set (run scripts/test)");
                    None
                }
            },
        }
    }

    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/restop.db", dir.path().display());
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_lazy_with(options);
        Self {
            backend: Backend::Sqlite,
            url,
            inspect: Inspect::Sqlite(pool),
            cleanup: Cleanup::RemoveDir { _dir: dir },
        }
    }

    async fn postgres(admin_url: String) -> Self {
        let name = format!("restop_test_{}", uuid::Uuid::new_v4().simple());
        let admin = PgConnectOptions::from_str(&admin_url).expect("RESTOP_TEST_POSTGRES_URL");
        let mut conn = admin
            .connect()
            .await
            .expect("connect to the test Postgres server");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        conn.close().await.ok();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        let url = url.to_string();
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect_lazy(&url)
            .unwrap();
        Self {
            backend: Backend::Postgres,
            url,
            inspect: Inspect::Postgres(pool),
            cleanup: Cleanup::DropDatabase { admin_url, name },
        }
    }

    /// Runs a statement (to put the database in a state restop itself would not).
    pub async fn execute(&self, sql: &str) {
        match &self.inspect {
            Inspect::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
            Inspect::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A scalar count query, e.g. `SELECT COUNT(*) FROM sns_messages`.
    pub async fn count(&self, sql: &str) -> i64 {
        match &self.inspect {
            Inspect::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Inspect::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// One optional text column of one row, the row picked by a single text parameter.
    pub async fn text(&self, sql: &str, param: &str) -> Option<String> {
        match &self.inspect {
            Inspect::Postgres(pool) => {
                sqlx::query_scalar(sql)
                    .bind(param)
                    .fetch_optional(pool)
                    .await
            }
            Inspect::Sqlite(pool) => {
                sqlx::query_scalar(sql)
                    .bind(param)
                    .fetch_optional(pool)
                    .await
            }
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .flatten()
    }

    pub async fn message_disposition(&self, message_id: &str) -> Option<String> {
        self.text(
            "SELECT disposition FROM sns_messages WHERE message_id = $1",
            message_id,
        )
        .await
    }

    pub async fn message_count(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM sns_messages").await
    }

    pub fn sqlite_pool(&self) -> &SqlitePool {
        match &self.inspect {
            Inspect::Sqlite(pool) => pool,
            Inspect::Postgres(_) => panic!("not a SQLite database"),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::DropDatabase { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside any async context we could borrow: use a thread of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    if let Ok(mut conn) = PgConnectOptions::from_str(&admin_url)
                        .unwrap()
                        .connect()
                        .await
                    {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Runs each listed `async fn(TestDb)` once on Postgres and once on SQLite.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(db) = $crate::support::db::TestDb::create($crate::support::db::Backend::Postgres).await {
                        super::$test(db).await;
                    }
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let db = $crate::support::db::TestDb::create($crate::support::db::Backend::Sqlite).await.unwrap();
                    super::$test(db).await;
                }
            )*
        }
    };
}
