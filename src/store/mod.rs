//! Durable storage behind one small interface, with a Postgres and a SQLite implementation.
//! The backend is chosen once, from the scheme of `DATABASE_URL`; nothing above this module
//! sees SQL. The interface is one trait per table family; [`Store`] is all of them, and
//! `sql/` holds their queries, one file per family, shared by both backends.

mod changes;
mod intake;
mod postgres;
mod records;
mod rows;
mod sqlite;

pub use changes::{
    Claim, ExecutionLink, Inserted, JobUpdate, NewExecution, NewMessage, NewStep, Recorded,
    Recording, Sizing, SubscriptionUpdate,
};
pub use intake::Intake;
pub use records::{
    Cancelled, Execution, ExecutionFilter, ForcedStart, Job, MessageEvent, MessageFilter,
    MessageRecord, Notification, Position, SavingsFilter, SavingsRun, StartSeen, Step,
    SubscriptionRecord, SummaryCount, Sweep,
};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::{DatabaseConfig, DatabaseUrl};
use crate::execution::{Disposition, ExecutionStats};

/// How long a request waits for a pooled connection before the database counts as down.
/// SNS abandons a delivery after 15 s; answering 503 well before lets it retry.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The store (or its intake) was shut down.
    #[error("the store is closed")]
    Closed,
    /// A stored value this version cannot read: written by a newer version, or by hand.
    #[error("{table}.{column} holds '{value}', which this version cannot read")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        value: String,
    },
    /// The database changed between two statements in a way that should not happen.
    #[error("{0}")]
    Inconsistent(String),
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] sqlx::Error),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Everything restop keeps, one trait per table family. Callers hold an `Arc<dyn Store>` and
/// call the families' methods on it directly.
#[async_trait]
pub trait Store:
    MessageStore
    + SubscriptionStore
    + ExecutionStore
    + JobStore
    + SweepStore
    + SavingsStore
    + RetentionStore
    + 'static
{
    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// `sns_messages`: every authenticated SNS delivery, deduplicated on MessageId.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Stores a message unless its MessageId is already stored; a new message's
    /// subscription change and execution are applied in the same transaction.
    async fn insert_message(
        &self,
        message: &NewMessage,
        subscription: Option<&SubscriptionUpdate>,
    ) -> Result<Inserted, StoreError>;

    /// Stores a batch of the intake's messages, in one statement of the same shape whatever
    /// the batch's size, with their wake-ups in the same transaction; a MessageId already
    /// stored is skipped. Answers for each recording, in order, once all are committed.
    /// The connection used is kept for the next batch until [`Self::end_of_batches`].
    async fn record_batch(&self, batch: &[Recording]) -> Result<Vec<Recorded>, StoreError>;

    /// Nothing waits in the intake: gives back the connection `record_batch` kept.
    async fn end_of_batches(&self);

    /// What became of a stored message.
    async fn message_disposition(
        &self,
        message_id: &str,
    ) -> Result<Option<Disposition>, StoreError>;

    async fn list_messages(&self, filter: &MessageFilter)
    -> Result<Vec<MessageRecord>, StoreError>;

    async fn get_message(&self, message_id: &str) -> Result<Option<MessageRecord>, StoreError>;
}

/// `sns_subscriptions`: what restop knows of each topic's subscription to it.
#[async_trait]
pub trait SubscriptionStore: Send + Sync {
    /// Records how a confirmation attempt ended, on the message and its subscription at once.
    async fn record_confirmation(
        &self,
        disposition: Disposition,
        reason: Option<&str>,
        subscription: &SubscriptionUpdate,
    ) -> Result<(), StoreError>;

    async fn list_subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError>;
}

/// `executions`: one per forced start, from its start to its end, and as the API reads them.
#[async_trait]
pub trait ExecutionStore: Send + Sync {
    /// Starts an execution unless one is active for the resource; returns the one that is.
    async fn start_execution(&self, execution: &NewExecution) -> Result<ExecutionLink, StoreError>;

    /// Cancels an active execution: it ends at once, and the lease token moves on so that a
    /// step in flight cannot commit. `notify` schedules the end-of-execution notification.
    async fn cancel_execution(
        &self,
        id: &str,
        now: DateTime<Utc>,
        notify: bool,
    ) -> Result<Cancelled, StoreError>;

    /// Makes the active execution of `resource_arn` that waits for `available` (then with
    /// short polls after that) or for `stopped` look at its database at once; not one
    /// waiting out a stop RDS refused. Returns its id, if there is one.
    async fn wake(
        &self,
        resource_arn: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;

    /// Whether an active execution of a DB cluster in `account` and `region` waits for
    /// `available` or `stopped` (a member instance's event may be for it).
    async fn cluster_waiting(&self, account: &str, region: &str) -> Result<bool, StoreError>;

    async fn list_executions(&self, filter: &ExecutionFilter)
    -> Result<Vec<Execution>, StoreError>;

    async fn get_execution(&self, id: &str) -> Result<Option<(Execution, Vec<Step>)>, StoreError>;

    async fn execution_stats(&self, now: DateTime<Utc>) -> Result<ExecutionStats, StoreError>;

    /// Executions by status and outcome: how many were created since `short` and since
    /// `long`, and how many active ones there are whenever they were created.
    async fn summarize_executions(
        &self,
        short: DateTime<Utc>,
        long: DateTime<Utc>,
    ) -> Result<Vec<SummaryCount>, StoreError>;
}

/// Executions as the engine works them: leased as jobs, one step at a time, each step
/// recorded in `execution_steps` only while the job's lease token is current.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Leases up to `limit` due jobs of the `claim` kind to `owner` until `now + lease`.
    /// Jobs leased by another owner are skipped until that lease expires. Pending
    /// executions become running.
    async fn claim_jobs(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        claim: Claim,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError>;

    /// Leases one job again if it is due and not leased: for a step that follows at once.
    async fn claim_job(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError>;

    /// Gives up the jobs `owner` still holds (steps abandoned at shutdown): another
    /// replica or the next start takes them at once instead of after their lease, and the
    /// abandoned claim does not count towards giving the job up. The lease token moves on.
    async fn release_jobs(&self, owner: &str) -> Result<u64, StoreError>;

    /// Records that restop is about to ask RDS to stop the job's database, if the job's
    /// lease token is still current. `Ok(false)`: the job was taken over or cancelled.
    async fn record_stop_intent(&self, job: &Job, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Whether a `wait_stopped` poll of execution `id` saw its database `stopping` or
    /// `stopped` (its step history says so).
    async fn saw_stop_take_effect(&self, id: &str) -> Result<bool, StoreError>;

    /// Appends `step` and applies `update` in one transaction, if `job`'s lease token is
    /// still current. `Ok(false)`: the job was taken over or cancelled; nothing was written.
    async fn complete_step(
        &self,
        job: &Job,
        step: &NewStep,
        update: &JobUpdate,
    ) -> Result<bool, StoreError>;
}

/// `catchup_sweeps`: RDS's event log, read per account and region for forced starts
/// that SNS did not deliver.
#[async_trait]
pub trait SweepStore: Send + Sync {
    /// Makes the sweeps of `places` due at `now`, adding those not yet swept: a restop
    /// that starts may have missed deliveries while it was down, so it looks at once.
    async fn ensure_sweeps(
        &self,
        places: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Forgets the sweeps of every place but `places` (a topic or member account removed
    /// from the settings), and returns those it forgot, sorted.
    async fn retire_sweeps(
        &self,
        places: &[(String, String)],
    ) -> Result<Vec<(String, String)>, StoreError>;

    /// Leases up to `limit` due sweeps of `places` to `owner` until `now + lease`: never
    /// one of a place this restop does not watch, whatever another restop on the same
    /// database recorded.
    async fn claim_sweeps(
        &self,
        owner: &str,
        places: &[(String, String)],
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Sweep>, StoreError>;

    /// Gives up the sweeps `owner` holds (a sweep cut short by shutdown), so that the next
    /// restop sweeps them at once instead of after their lease; the lease token moves on.
    async fn release_sweeps(&self, owner: &str) -> Result<(), StoreError>;

    /// Ends a sweep, fenced by its lease token: `Ok(until)` for a sweep that read the log
    /// up to `until`, `Err(error)` for one that failed.
    async fn complete_sweep(
        &self,
        sweep: &Sweep,
        result: Result<DateTime<Utc>, String>,
        next_run_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records a forced start found in RDS's event log: a new execution, unless one exists
    /// for the same forced start (the resource, and an event time within an hour) or the
    /// resource has an active one; with `ended` (outcome and reason), one already over,
    /// for a forced start that is too old or superseded. `note` is the first step of the
    /// execution; `notify` schedules the end notification of an ended one.
    async fn record_forced_start(
        &self,
        execution: &NewExecution,
        ended: Option<(crate::execution::Outcome, &str)>,
        note: &str,
        notify: bool,
    ) -> Result<ForcedStart, StoreError>;
}

/// What `/v1/savings` adds up: executions and "started" events, read as they are.
#[async_trait]
pub trait SavingsStore: Send + Sync {
    /// Executions whose event happened before `filter.until`, oldest first, and the
    /// "started" events received before it, oldest first, both of `filter.account` and
    /// `filter.region` when given.
    async fn savings_history(
        &self,
        filter: &SavingsFilter,
    ) -> Result<(Vec<SavingsRun>, Vec<StartSeen>), StoreError>;
}

/// What is old enough to go.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Deletes, at most `batch` of each, ignored messages received and executions finished
    /// before `before`. Returns how many rows went.
    async fn delete_expired(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, StoreError>;
}

/// How a database's schema compares with this build's migrations, read without changing
/// anything (`restop doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaState {
    /// Migrations of this build that the database has.
    pub applied: usize,
    /// Migrations of this build that it lacks (`restop serve` or `restop migrate` applies them).
    pub pending: Vec<String>,
    /// Versions it has that this build does not know: a newer restop migrated it.
    pub unknown: Vec<i64>,
}

impl SchemaState {
    fn compare(migrator: &sqlx::migrate::Migrator, applied: &[i64]) -> Self {
        let known: Vec<_> = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .collect();
        Self {
            applied: known
                .iter()
                .filter(|m| applied.contains(&m.version))
                .count(),
            pending: known
                .iter()
                .filter(|m| !applied.contains(&m.version))
                .map(|m| format!("{}_{}", m.version, m.description))
                .collect(),
            unknown: applied
                .iter()
                .copied()
                .filter(|v| !known.iter().any(|m| m.version == *v))
                .collect(),
        }
    }
}

/// Reads the schema state of the configured database; a SQLite file is opened read-only
/// and never created.
pub async fn schema_state(config: &DatabaseConfig) -> Result<SchemaState, sqlx::Error> {
    match &config.database_url {
        DatabaseUrl::Postgres(url) => postgres::schema_state(url).await,
        DatabaseUrl::Sqlite(url) => sqlite::schema_state(url).await,
    }
}

/// Connects to the configured backend and applies its pending migrations.
pub async fn connect_and_migrate(config: &DatabaseConfig) -> Result<Arc<dyn Store>, MigrateError> {
    Ok(match &config.database_url {
        DatabaseUrl::Postgres(url) => {
            Arc::new(postgres::PgStore::connect(url, config.db_max_connections).await?)
        }
        DatabaseUrl::Sqlite(url) => {
            Arc::new(sqlite::SqliteStore::connect(url, config.db_max_connections).await?)
        }
    })
}
