//! Durable storage behind one small interface, with a Postgres and a SQLite implementation.
//! The backend is chosen once, from the scheme of `DATABASE_URL`; nothing above this module
//! sees SQL.

mod intake;
mod postgres;
mod records;
mod sql;
mod sqlite;

pub use intake::Intake;
pub use records::{
    Cancelled, Execution, ExecutionFilter, ForcedStart, Job, MessageEvent, MessageFilter,
    MessageRecord, Notification, Position, Step, SubscriptionRecord, SummaryCount, Sweep,
};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::aws::arn::ResourceArn;
use crate::config::{DatabaseConfig, DatabaseUrl};
use crate::execution::{
    Disposition, ExecutionStats, MessageType, Mode, NotifyState, Outcome, Phase, Status,
    SubscriptionStatus, TriggerKind,
};

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

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub message_id: String,
    pub message_type: MessageType,
    pub topic_arn: String,
    pub subject: Option<String>,
    pub sent_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub signature_version: String,
    pub disposition: Disposition,
    pub disposition_reason: Option<String>,
    /// The SNS `Message` field.
    pub body: String,
    pub event: Option<MessageEvent>,
    /// For an accepted event: the execution to start, unless one is active for the resource.
    pub execution: Option<NewExecution>,
    /// An existing execution the message concerns (the one a "started" event woke).
    pub execution_id: Option<String>,
}

/// A change to what is known of a topic's subscription.
#[derive(Clone)]
pub struct SubscriptionUpdate {
    pub topic_arn: String,
    pub status: SubscriptionStatus,
    pub subscription_arn: Option<String>,
    pub subscribe_url: Option<String>,
    pub message_id: String,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    New {
        /// The execution the message started or joined.
        execution: Option<ExecutionLink>,
    },
    /// A redelivery: nothing was written. Carries the stored disposition.
    Duplicate(Disposition),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionLink {
    pub id: String,
    /// True when an active execution for the resource already existed.
    pub joined: bool,
    /// True when the active execution was a dry run (or skipped the tag check) and a real
    /// event made it a real run.
    pub upgraded: bool,
}

/// An execution about to be created.
#[derive(Debug, Clone)]
pub struct NewExecution {
    pub id: String,
    pub resource: ResourceArn,
    pub trigger: TriggerKind,
    pub message_id: Option<String>,
    pub event_id: Option<String>,
    pub mode: Mode,
    pub dry_run: bool,
    pub skip_tag_check: bool,
    pub event_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
}

/// One step of an execution's history, about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStep {
    pub at: DateTime<Utc>,
    /// The phase the step ran in, or `notify`.
    pub step: String,
    pub rds_status: Option<String>,
    pub action: String,
    pub error: Option<String>,
}

/// The state a step leaves its execution in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpdate {
    pub status: Status,
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
    pub phase: Phase,
    pub retries: u32,
    pub stop_refusals: u32,
    pub wake_polls: u32,
    pub sfn_execution_arn: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
    pub notify_state: Option<NotifyState>,
    pub notify_attempts: u32,
    pub notify_error: Option<String>,
    /// `None`: nothing left to do.
    pub next_run_at: Option<DateTime<Utc>>,
}

/// Which due jobs a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Active executions waiting for a status: described together, many per call.
    Polls,
    /// Everything else: tag checks, stops, state machines, notifications.
    Steps,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a message unless its MessageId is already stored; a new message's
    /// subscription change and execution are applied in the same transaction.
    async fn insert_message(
        &self,
        message: &NewMessage,
        subscription: Option<&SubscriptionUpdate>,
    ) -> Result<Inserted, StoreError>;

    /// Stores plain messages (no subscription change, no execution) in one statement; a
    /// MessageId already stored is skipped. Returns the ids that were inserted.
    async fn insert_messages(&self, messages: &[NewMessage]) -> Result<Vec<String>, StoreError>;

    /// What became of a stored message.
    async fn message_disposition(
        &self,
        message_id: &str,
    ) -> Result<Option<Disposition>, StoreError>;

    /// Records how a confirmation attempt ended, on the message and its subscription at once.
    async fn record_confirmation(
        &self,
        disposition: Disposition,
        reason: Option<&str>,
        subscription: &SubscriptionUpdate,
    ) -> Result<(), StoreError>;

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

    async fn list_executions(&self, filter: &ExecutionFilter)
    -> Result<Vec<Execution>, StoreError>;

    async fn get_execution(&self, id: &str) -> Result<Option<(Execution, Vec<Step>)>, StoreError>;

    async fn list_messages(&self, filter: &MessageFilter)
    -> Result<Vec<MessageRecord>, StoreError>;

    async fn get_message(&self, message_id: &str) -> Result<Option<MessageRecord>, StoreError>;

    async fn list_subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError>;

    async fn execution_stats(&self, now: DateTime<Utc>) -> Result<ExecutionStats, StoreError>;

    /// Executions by status and outcome: how many were created since `short` and since
    /// `long`, and how many active ones there are whenever they were created.
    async fn summarize_executions(
        &self,
        short: DateTime<Utc>,
        long: DateTime<Utc>,
    ) -> Result<Vec<SummaryCount>, StoreError>;

    /// Makes the active execution of `resource_arn` that waits for `available` look at its
    /// database at once, with short polls after that. Returns its id, if there is one.
    async fn wake(
        &self,
        resource_arn: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;

    /// Whether an active execution of a DB cluster in `account` and `region` waits for
    /// `available` (a member instance's "started" event may be for it).
    async fn cluster_waiting(&self, account: &str, region: &str) -> Result<bool, StoreError>;

    /// Records a forced start found in RDS's event log: a new execution, unless one exists
    /// for the same forced start (the resource, and an event time within an hour) or the
    /// resource has an active one; an expired one if it is too old to act on. `note` is
    /// the first step of a new execution; `notify` schedules the end notification of an
    /// expired one.
    async fn record_forced_start(
        &self,
        execution: &NewExecution,
        expired: bool,
        note: &str,
        notify: bool,
    ) -> Result<ForcedStart, StoreError>;

    /// Makes the sweeps of `places` due at `now`, adding those not yet swept: a restop
    /// that starts may have missed deliveries while it was down, so it looks at once.
    async fn ensure_sweeps(
        &self,
        places: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Leases up to `limit` due sweeps to `owner` until `now + lease`.
    async fn claim_sweeps(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Sweep>, StoreError>;

    /// Ends a sweep, fenced by its lease token: `Ok(until)` for a sweep that read the log
    /// up to `until`, `Err(error)` for one that failed.
    async fn complete_sweep(
        &self,
        sweep: &Sweep,
        result: Result<DateTime<Utc>, String>,
        next_run_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Records that restop is about to ask RDS to stop the job's database, if the job's
    /// lease token is still current. `Ok(false)`: the job was taken over or cancelled.
    async fn record_stop_intent(&self, job: &Job, at: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Deletes, at most `batch` of each, ignored messages received and executions finished
    /// before `before`. Returns how many rows went.
    async fn delete_expired(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, StoreError>;

    /// Appends `step` and applies `update` in one transaction, if `job`'s lease token is
    /// still current. `Ok(false)`: the job was taken over or cancelled; nothing was written.
    async fn complete_step(
        &self,
        job: &Job,
        step: &NewStep,
        update: &JobUpdate,
    ) -> Result<bool, StoreError>;
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
