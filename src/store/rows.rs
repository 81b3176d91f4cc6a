//! Rows as the tables store them, and their decoding into the typed records: values are
//! stored as text and read back one by one, so a value this version cannot read is named.

use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::aws::arn::ResourceArn;
use crate::execution::{Outcome, Status};
use crate::store::{
    Execution, Job, MessageEvent, MessageRecord, Notification, SavingsRun, Sizing, StoreError,
    SubscriptionRecord, SummaryCount, Sweep,
};

// The column lists are macros so that queries can `concat!` them into constants.

/// The columns of an execution, in the order [`ExecutionRow`] reads them.
macro_rules! execution_columns {
    () => {
        "id, resource_arn, trigger, message_id, event_id, mode, dry_run, skip_tag_check, status,
         outcome, reason, phase, retries, sfn_execution_arn, event_at, created_at, updated_at,
         started_at, finished_at, deadline_at, next_run_at, stop_requested_at, stop_refusals,
         wakes, wake_polls, notify_state, notify_attempts, notify_error"
    };
}

/// The columns of a claimed execution, in the order [`JobRow`] reads them.
macro_rules! job_columns {
    () => {
        concat!(
            $crate::store::rows::execution_columns!(),
            ", lease_token, attempts"
        )
    };
}

/// The columns of a message, in the order [`MessageRow`] reads them.
macro_rules! message_columns {
    () => {
        "message_id, message_type, topic_arn, subject, body, sent_at, received_at,
         signature_version, disposition, disposition_reason, event_id, source_type, source_id,
         source_arn, region, account_id, execution_id"
    };
}

/// The columns of a subscription, in the order [`SubscriptionRow`] reads them.
macro_rules! subscription_columns {
    () => {
        "topic_arn, status, subscription_arn, last_message_id, last_error, first_seen_at,
         updated_at, confirmed_at, confirmed_with"
    };
}

pub(super) use {execution_columns, job_columns, message_columns, subscription_columns};

/// An `executions` row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct ExecutionRow {
    id: String,
    resource_arn: String,
    trigger: String,
    message_id: Option<String>,
    event_id: Option<String>,
    mode: String,
    dry_run: bool,
    skip_tag_check: bool,
    status: String,
    outcome: Option<String>,
    reason: Option<String>,
    phase: String,
    retries: i32,
    sfn_execution_arn: Option<String>,
    event_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    deadline_at: DateTime<Utc>,
    next_run_at: Option<DateTime<Utc>>,
    stop_requested_at: Option<DateTime<Utc>>,
    stop_refusals: i32,
    wakes: i32,
    wake_polls: i32,
    notify_state: Option<String>,
    notify_attempts: i32,
    notify_error: Option<String>,
}

/// A claimed `executions` row: the execution, its lease token and its claim count.
#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    #[sqlx(flatten)]
    execution: ExecutionRow,
    lease_token: i64,
    attempts: i32,
}

/// Reads a stored text as one of restop's values; anything else is a corrupt row.
fn decode<T: FromStr>(
    table: &'static str,
    column: &'static str,
    value: String,
) -> Result<T, StoreError> {
    value.parse().map_err(|_| StoreError::Corrupt {
        table,
        column,
        value,
    })
}

fn decode_optional<T: FromStr>(
    table: &'static str,
    column: &'static str,
    value: Option<String>,
) -> Result<Option<T>, StoreError> {
    value.map(|v| decode(table, column, v)).transpose()
}

fn count(value: i32) -> u32 {
    u32::try_from(value).unwrap_or(0)
}

/// A count as its column stores it.
pub(super) fn stored_count(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

impl TryFrom<ExecutionRow> for Execution {
    type Error = StoreError;

    fn try_from(row: ExecutionRow) -> Result<Self, StoreError> {
        const T: &str = "executions";
        let resource: ResourceArn = decode(T, "resource_arn", row.resource_arn)?;
        Ok(Execution {
            id: row.id,
            resource,
            trigger: decode(T, "trigger", row.trigger)?,
            message_id: row.message_id,
            event_id: row.event_id,
            mode: decode(T, "mode", row.mode)?,
            dry_run: row.dry_run,
            skip_tag_check: row.skip_tag_check,
            status: decode(T, "status", row.status)?,
            outcome: decode_optional(T, "outcome", row.outcome)?,
            reason: row.reason,
            phase: decode(T, "phase", row.phase)?,
            retries: count(row.retries),
            sfn_execution_arn: row.sfn_execution_arn,
            event_at: row.event_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            deadline_at: row.deadline_at,
            next_run_at: row.next_run_at,
            stop_requested_at: row.stop_requested_at,
            stop_refusals: count(row.stop_refusals),
            wakes: count(row.wakes),
            wake_polls: count(row.wake_polls),
            notification: Notification {
                state: decode_optional(T, "notify_state", row.notify_state)?,
                attempts: count(row.notify_attempts),
                error: row.notify_error,
            },
        })
    }
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(row: JobRow) -> Result<Self, StoreError> {
        Ok(Job {
            execution: row.execution.try_into()?,
            lease_token: row.lease_token,
            attempts: count(row.attempts),
        })
    }
}

/// Claimed rows, decoded one by one: a row this version cannot read is logged and skipped,
/// so it cannot stop the others from being worked.
pub(super) fn decode_jobs(rows: Vec<JobRow>) -> Vec<Job> {
    rows.into_iter()
        .filter_map(|row| {
            let id = row.execution.id.clone();
            Job::try_from(row)
                .inspect_err(|e| tracing::error!(execution_id = %id, error = %e, "claimed a job this version cannot read; leaving it"))
                .ok()
        })
        .collect()
}

/// An `sns_messages` row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct MessageRow {
    message_id: String,
    message_type: String,
    topic_arn: String,
    subject: Option<String>,
    body: Vec<u8>,
    sent_at: DateTime<Utc>,
    received_at: DateTime<Utc>,
    signature_version: String,
    disposition: String,
    disposition_reason: Option<String>,
    event_id: Option<String>,
    source_type: Option<String>,
    source_id: Option<String>,
    source_arn: Option<String>,
    region: Option<String>,
    account_id: Option<String>,
    execution_id: Option<String>,
}

impl TryFrom<MessageRow> for MessageRecord {
    type Error = StoreError;

    fn try_from(row: MessageRow) -> Result<Self, StoreError> {
        const T: &str = "sns_messages";
        let event = match (
            row.event_id,
            row.source_type,
            row.source_id,
            row.region,
            row.account_id,
        ) {
            (
                Some(event_id),
                Some(source_type),
                Some(source_id),
                Some(region),
                Some(account_id),
            ) => Some(MessageEvent {
                event_id,
                source_type,
                source_id,
                source_arn: row.source_arn,
                region,
                account_id,
            }),
            _ => None,
        };
        Ok(MessageRecord {
            message_id: row.message_id,
            message_type: decode(T, "message_type", row.message_type)?,
            topic_arn: row.topic_arn,
            subject: row.subject,
            body: String::from_utf8(row.body).map_err(|e| StoreError::Corrupt {
                table: T,
                column: "body",
                value: format!("{} bytes that are not UTF-8", e.as_bytes().len()),
            })?,
            sent_at: row.sent_at,
            received_at: row.received_at,
            signature_version: row.signature_version,
            disposition: decode(T, "disposition", row.disposition)?,
            disposition_reason: row.disposition_reason,
            event,
            execution_id: row.execution_id,
        })
    }
}

/// An `sns_subscriptions` row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct SubscriptionRow {
    topic_arn: String,
    status: String,
    subscription_arn: Option<String>,
    last_message_id: String,
    last_error: Option<String>,
    first_seen_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    confirmed_at: Option<DateTime<Utc>>,
    confirmed_with: Option<String>,
}

impl TryFrom<SubscriptionRow> for SubscriptionRecord {
    type Error = StoreError;

    fn try_from(row: SubscriptionRow) -> Result<Self, StoreError> {
        Ok(SubscriptionRecord {
            topic_arn: row.topic_arn,
            status: decode("sns_subscriptions", "status", row.status)?,
            subscription_arn: row.subscription_arn,
            last_message_id: row.last_message_id,
            last_error: row.last_error,
            first_seen_at: row.first_seen_at,
            updated_at: row.updated_at,
            confirmed_at: row.confirmed_at,
            confirmed_with: decode_optional(
                "sns_subscriptions",
                "confirmed_with",
                row.confirmed_with,
            )?,
        })
    }
}

/// Execution counts by (status, outcome), as `execution_stats` reads them.
pub(super) fn decode_counts(
    rows: Vec<(String, Option<String>, i64)>,
) -> Result<Vec<(Status, Option<Outcome>, i64)>, StoreError> {
    rows.into_iter()
        .map(|(status, outcome, count)| {
            Ok((
                decode("executions", "status", status)?,
                decode_optional("executions", "outcome", outcome)?,
                count,
            ))
        })
        .collect()
}

/// Executions of one (status, outcome), counted per summary window.
#[derive(sqlx::FromRow)]
pub(super) struct SummaryRow {
    status: String,
    outcome: Option<String>,
    short_window: i64,
    long_window: i64,
    active: i64,
}

impl TryFrom<SummaryRow> for SummaryCount {
    type Error = StoreError;

    fn try_from(row: SummaryRow) -> Result<Self, StoreError> {
        Ok(SummaryCount {
            status: decode("executions", "status", row.status)?,
            outcome: decode_optional("executions", "outcome", row.outcome)?,
            short_window: row.short_window,
            long_window: row.long_window,
            active: row.active,
        })
    }
}

/// An `executions` row as `/v1/savings` reads it.
#[derive(sqlx::FromRow)]
pub(super) struct SavingsRow {
    resource_arn: String,
    trigger: String,
    outcome: Option<String>,
    event_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    instance_class: Option<String>,
    engine: Option<String>,
    multi_az: Option<bool>,
    instance_count: Option<i32>,
}

impl TryFrom<SavingsRow> for SavingsRun {
    type Error = StoreError;

    fn try_from(row: SavingsRow) -> Result<Self, StoreError> {
        const T: &str = "executions";
        // Written together by one statement: an engine means the rest is there too.
        let sizing = row.engine.map(|engine| Sizing {
            instance_class: row.instance_class,
            engine,
            multi_az: row.multi_az.unwrap_or(false),
            instance_count: row.instance_count.map(count).unwrap_or(1),
        });
        Ok(SavingsRun {
            resource: decode(T, "resource_arn", row.resource_arn)?,
            trigger: decode(T, "trigger", row.trigger)?,
            outcome: decode_optional(T, "outcome", row.outcome)?,
            event_at: row.event_at,
            finished_at: row.finished_at,
            sizing,
        })
    }
}

/// A `catchup_sweeps` row, claimed.
#[derive(sqlx::FromRow)]
pub(super) struct SweepRow {
    account_id: String,
    region: String,
    swept_until: Option<DateTime<Utc>>,
    failures: i32,
    lease_token: i64,
}

impl From<SweepRow> for Sweep {
    fn from(row: SweepRow) -> Self {
        Sweep {
            account: row.account_id,
            region: row.region,
            swept_until: row.swept_until,
            failures: count(row.failures),
            lease_token: row.lease_token,
        }
    }
}

/// Decodes every row, failing on the first that cannot be read.
pub(super) fn decode_all<R, T: TryFrom<R, Error = StoreError>>(
    rows: Vec<R>,
) -> Result<Vec<T>, StoreError> {
    rows.into_iter().map(T::try_from).collect()
}
