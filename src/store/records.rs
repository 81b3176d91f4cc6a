//! The read side: executions as the engine and the history API see them, and what the
//! history API lists.

use chrono::{DateTime, Utc};

use crate::aws::arn::ResourceArn;
use crate::execution::{
    ConfirmedWith, Disposition, MessageType, Mode, NotifyState, Outcome, Phase, Status,
    SubscriptionStatus, TriggerKind,
};

/// An account and region whose RDS event log is read for forced starts, claimed with a
/// lease like a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sweep {
    pub account: String,
    pub region: String,
    /// The end of the last sweep that succeeded.
    pub swept_until: Option<DateTime<Utc>>,
    /// Sweeps that failed in a row.
    pub failures: u32,
    pub lease_token: i64,
}

/// What a sweep found of one forced start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForcedStart {
    /// Nothing knew it: this execution now handles it.
    New(String),
    /// An execution for it (or the resource's active one) exists already.
    Known(String),
    /// Over before restop could act (too old, or the resource was stopped since):
    /// recorded as this skipped execution, ended so.
    Ended(String, crate::execution::Outcome),
}

/// What `/v1/savings` reads: the executions before `until`, and the "started" events of
/// their databases, of one account and region when given.
#[derive(Debug, Clone, Default)]
pub struct SavingsFilter {
    pub until: DateTime<Utc>,
    pub account: Option<String>,
    pub region: Option<String>,
    /// The event ids that say a database has started (RESTOP_WAKE_EVENT_IDS).
    pub started_event_ids: Vec<String>,
}

/// One execution as `/v1/savings` counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavingsRun {
    pub resource: ResourceArn,
    pub trigger: TriggerKind,
    pub outcome: Option<Outcome>,
    /// The forced start (or the operator's request).
    pub event_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// What its last Describe said; `None` when it never described its database.
    pub sizing: Option<crate::store::Sizing>,
}

/// A "started" event RDS sent about a database: it ran from then on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartSeen {
    pub resource_arn: String,
    pub at: DateTime<Utc>,
}

/// Keyset pagination position: the last item of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub at: DateTime<Utc>,
    pub id: String,
}

#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    /// Identifier or ARN.
    pub resource: Option<String>,
    pub status: Option<Status>,
    pub outcome: Option<Outcome>,
    pub trigger: Option<TriggerKind>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub after: Option<Position>,
    pub limit: u32,
}

/// Executions of one status and outcome, counted for the console's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryCount {
    pub status: Status,
    pub outcome: Option<Outcome>,
    /// Created at or after the start of the short window.
    pub short_window: i64,
    /// Created at or after the start of the long window.
    pub long_window: i64,
    /// How many are pending or running, however old (0 for the other statuses).
    pub active: i64,
}

#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub message_type: Option<MessageType>,
    pub disposition: Option<Disposition>,
    pub topic: Option<String>,
    /// Identifier or ARN of the RDS resource the event is about.
    pub resource: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub after: Option<Position>,
    pub limit: u32,
}

/// One protection run, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub id: String,
    pub resource: ResourceArn,
    pub trigger: TriggerKind,
    pub message_id: Option<String>,
    pub event_id: Option<String>,
    pub mode: Mode,
    pub dry_run: bool,
    pub skip_tag_check: bool,
    pub status: Status,
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
    pub phase: Phase,
    /// Consecutive transient failures so far.
    pub retries: u32,
    pub sfn_execution_arn: Option<String>,
    /// When the event happened: the start grace period counts from here.
    pub event_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub deadline_at: DateTime<Utc>,
    pub next_run_at: Option<DateTime<Utc>>,
    /// When restop asked RDS to stop the database (written before the call).
    pub stop_requested_at: Option<DateTime<Utc>>,
    /// Stops RDS refused in a row while the database reported `available`.
    pub stop_refusals: u32,
    /// "Started" events that woke the execution.
    pub wakes: u32,
    /// Short polls made since the last wake-up (0: polling at the interval).
    pub wake_polls: u32,
    pub notification: Notification,
}

/// The end-of-execution notification to `RESTOP_NOTIFY_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// `None` when no notification is configured or due yet.
    pub state: Option<NotifyState>,
    pub attempts: u32,
    /// The last attempt's error.
    pub error: Option<String>,
}

/// An execution claimed by a worker, with the lease token its commit must carry.
#[derive(Debug, Clone)]
pub struct Job {
    pub execution: Execution,
    pub lease_token: i64,
    /// Claims since the last completed step: more than one means a step crashed or hung.
    pub attempts: u32,
}

/// A job is its execution plus a lease: the engine reads the execution's fields through it.
impl std::ops::Deref for Job {
    type Target = Execution;

    fn deref(&self) -> &Execution {
        &self.execution
    }
}

/// One recorded step. Identical consecutive observations share a row: `repeats` counts
/// them and `last_at` is the latest.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Step {
    pub seq: i32,
    pub at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub repeats: i32,
    pub step: String,
    pub rds_status: Option<String>,
    pub action: String,
    pub error: Option<String>,
}

/// A stored SNS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub message_id: String,
    pub message_type: MessageType,
    pub topic_arn: String,
    pub subject: Option<String>,
    pub body: String,
    pub sent_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub signature_version: String,
    pub disposition: Disposition,
    pub disposition_reason: Option<String>,
    pub event: Option<MessageEvent>,
    pub execution_id: Option<String>,
}

/// The RDS event a notification carried, in the columns of its message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MessageEvent {
    pub event_id: String,
    pub source_type: String,
    pub source_id: String,
    pub source_arn: Option<String>,
    pub region: String,
    pub account_id: String,
}

/// What is known of a topic's subscription; never the SubscribeURL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    pub topic_arn: String,
    pub status: SubscriptionStatus,
    pub subscription_arn: Option<String>,
    pub last_message_id: String,
    pub last_error: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// How it was last confirmed (`None` before the first confirmation).
    pub confirmed_with: Option<ConfirmedWith>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    Cancelled,
    AlreadyFinished,
    NotFound,
}
