//! The queries both backends share. Postgres and SQLite accept the same SQL here
//! (`$n` placeholders, `ON CONFLICT ... DO UPDATE`, partial indexes, `RETURNING`,
//! `UPDATE ... FROM` a materialised CTE), so one text serves both; the macro instantiates it
//! for each backend's sqlx types. The one difference is passed in: how the job claim locks
//! rows. Rows are read as text and decoded into the typed records here, one by one.

use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::{
    Execution, Job, MessageEvent, MessageRecord, Notification, StoreError, SubscriptionRecord,
    SummaryCount, Sweep,
};
use crate::aws::arn::ResourceArn;
use crate::execution::{Outcome, Status};

/// The columns of an execution, in the order [`ExecutionRow`] reads them.
pub(super) const EXECUTION_COLUMNS: &str = "id, resource_arn, trigger, message_id, event_id,
    mode, dry_run, skip_tag_check, status, outcome, reason, phase, retries, sfn_execution_arn,
    event_at, created_at, updated_at, started_at, finished_at, deadline_at, next_run_at,
    stop_requested_at, stop_refusals, wakes, wake_polls, notify_state, notify_attempts,
    notify_error";

pub(super) const MESSAGE_COLUMNS: &str = "message_id, message_type, topic_arn, subject, body,
    sent_at, received_at, signature_version, disposition, disposition_reason, event_id,
    source_type, source_id, source_arn, region, account_id, execution_id";

pub(super) const SUBSCRIPTION_COLUMNS: &str = "topic_arn, status, subscription_arn,
    last_message_id, last_error, first_seen_at, updated_at, confirmed_at";

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

macro_rules! impl_store {
    ($store:ident, $db:ty, claim_lock = $claim_lock:literal, begin_write = $begin_write:literal) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use sqlx::{QueryBuilder, Transaction};

        use super::sql::{
            EXECUTION_COLUMNS, ExecutionRow, JobRow, MESSAGE_COLUMNS, MessageRow, SweepRow,
            SUBSCRIPTION_COLUMNS, SubscriptionRow, SummaryRow, decode_all, decode_counts,
            decode_jobs,
        };
        use super::{
            Cancelled, Claim, Execution, ExecutionFilter, ExecutionLink, ForcedStart, Inserted,
            Job, JobUpdate, Sweep,
            MessageFilter, MessageRecord, NewExecution, NewMessage, NewStep, Position, Step,
            Store, StoreError, SubscriptionRecord, SubscriptionUpdate, SummaryCount,
        };
        use crate::execution::{
            Disposition, ExecutionStats, NotifyState, Outcome, Phase, Status, SubscriptionStatus,
            TriggerKind,
        };

        /// `AND (at < p.at OR (at = p.at AND id < p.id))`: the rows after `p`, newest first.
        fn push_after(q: &mut QueryBuilder<'_, $db>, at: &str, id: &str, p: &Position) {
            q.push(format!(" AND ({at} < "))
                .push_bind(p.at)
                .push(format!(" OR ({at} = "))
                .push_bind(p.at)
                .push(format!(" AND {id} < "))
                .push_bind(p.id.clone())
                .push("))");
        }

        async fn upsert_subscription(
            tx: &mut Transaction<'_, $db>,
            s: &SubscriptionUpdate,
        ) -> Result<(), sqlx::Error> {
            let confirmed_at = (s.status == SubscriptionStatus::Confirmed).then_some(s.at);
            sqlx::query(
                "INSERT INTO sns_subscriptions (topic_arn, status, subscription_arn, subscribe_url,
                     last_message_id, last_error, first_seen_at, updated_at, confirmed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)
                 ON CONFLICT (topic_arn) DO UPDATE SET
                     status = EXCLUDED.status,
                     subscription_arn = COALESCE(EXCLUDED.subscription_arn, sns_subscriptions.subscription_arn),
                     subscribe_url = EXCLUDED.subscribe_url,
                     last_message_id = EXCLUDED.last_message_id,
                     last_error = EXCLUDED.last_error,
                     updated_at = EXCLUDED.updated_at,
                     confirmed_at = COALESCE(EXCLUDED.confirmed_at, sns_subscriptions.confirmed_at)",
            )
            .bind(&s.topic_arn)
            .bind(s.status.as_str())
            .bind(&s.subscription_arn)
            .bind(&s.subscribe_url)
            .bind(&s.message_id)
            .bind(&s.error)
            .bind(s.at)
            .bind(confirmed_at)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// Starts `e` unless an execution for the resource is active; either way returns the
        /// execution that now handles the resource.
        async fn start_or_join(
            tx: &mut Transaction<'_, $db>,
            e: &NewExecution,
        ) -> Result<ExecutionLink, StoreError> {
            // SNS and RDS's event log may both report one forced start.
            if matches!(e.trigger, TriggerKind::Sns | TriggerKind::Catchup) {
                if let Some(id) = same_forced_start(tx, e).await? {
                    return Ok(ExecutionLink { id, joined: true, upgraded: false });
                }
            }
            // Two tries: an active execution may finish between the insert and the lookup.
            for _ in 0..2 {
                let inserted = sqlx::query(
                    "INSERT INTO executions (id, resource_type, resource_id, resource_arn, region,
                         account_id, trigger, message_id, event_id, mode, dry_run, skip_tag_check,
                         status, phase, event_at, created_at, updated_at, deadline_at, next_run_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending',
                         'check_protection', $13, $14, $14, $15, $14)
                     ON CONFLICT (resource_arn) WHERE status IN ('pending', 'running') DO NOTHING",
                )
                .bind(&e.id)
                .bind(e.resource.kind.as_str())
                .bind(&e.resource.identifier)
                .bind(&e.resource.arn)
                .bind(&e.resource.region)
                .bind(&e.resource.account)
                .bind(e.trigger.as_str())
                .bind(&e.message_id)
                .bind(&e.event_id)
                .bind(e.mode.as_str())
                .bind(e.dry_run)
                .bind(e.skip_tag_check)
                .bind(e.event_at)
                .bind(e.created_at)
                .bind(e.deadline_at)
                .execute(&mut **tx)
                .await?
                .rows_affected()
                    == 1;
                if inserted {
                    return Ok(ExecutionLink { id: e.id.clone(), joined: false, upgraded: false });
                }
                let active: Option<(String, bool)> = sqlx::query_as(
                    "SELECT id, dry_run OR skip_tag_check FROM executions
                     WHERE resource_arn = $1 AND status IN ('pending', 'running')",
                )
                .bind(&e.resource.arn)
                .fetch_optional(&mut **tx)
                .await?;
                if let Some((id, rehearsal)) = active {
                    let real = !e.dry_run && !e.skip_tag_check;
                    let upgraded = rehearsal && real;
                    if upgraded {
                        upgrade_to_real(tx, &id, e).await?;
                    }
                    return Ok(ExecutionLink { id, joined: true, upgraded });
                }
            }
            Err(StoreError::Inconsistent(format!(
                "could not start or join an execution for {}",
                e.resource.arn
            )))
        }

        /// The execution of the forced start `e` describes, if one exists: the same resource,
        /// started by an event (SNS or the event log) whose time is within an hour of `e`'s.
        /// Real forced starts of one resource are seven days apart at least; the two paths
        /// may round the time differently.
        async fn same_forced_start(
            tx: &mut Transaction<'_, $db>,
            e: &NewExecution,
        ) -> Result<Option<String>, StoreError> {
            let window = chrono::Duration::hours(1);
            Ok(sqlx::query_scalar(
                "SELECT id FROM executions
                 WHERE resource_arn = $1 AND trigger IN ('sns', 'catchup')
                   AND event_at >= $2 AND event_at <= $3
                 ORDER BY created_at LIMIT 1",
            )
            .bind(&e.resource.arn)
            .bind(e.event_at - window)
            .bind(e.event_at + window)
            .fetch_optional(&mut **tx)
            .await?)
        }

        /// The first step of an execution, before any of the engine's.
        async fn first_step(
            tx: &mut Transaction<'_, $db>,
            id: &str,
            at: DateTime<Utc>,
            step: &str,
            action: &str,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO execution_steps (execution_id, seq, at, last_at, step, action)
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $2, $3, $4
                 FROM execution_steps WHERE execution_id = $1",
            )
            .bind(id)
            .bind(at)
            .bind(step)
            .bind(action)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// A real event for a resource whose active execution is a dry run, or one that
        /// skipped the tag check: that execution becomes a real run (tag checked, stop made),
        /// so a real forced start is never swallowed by a rehearsal. The lease token moves
        /// on, so a rehearsal step in flight cannot commit. In Step Functions mode a dry run's
        /// state machine run (which never stops anything) is left to end; a real one starts.
        async fn upgrade_to_real(
            tx: &mut Transaction<'_, $db>,
            id: &str,
            e: &NewExecution,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE executions SET
                     phase = CASE
                         WHEN skip_tag_check THEN 'check_protection'
                         WHEN phase = 'follow_state_machine' THEN 'start_state_machine'
                         ELSE phase END,
                     sfn_execution_arn = CASE WHEN phase = 'follow_state_machine' THEN NULL
                         ELSE sfn_execution_arn END,
                     dry_run = FALSE, skip_tag_check = FALSE,
                     message_id = COALESCE($2, message_id), event_id = COALESCE($3, event_id),
                     event_at = $4,
                     deadline_at = CASE WHEN deadline_at < $5 THEN $5 ELSE deadline_at END,
                     next_run_at = $6, updated_at = $6, retries = 0,
                     lease_token = lease_token + 1, lease_owner = NULL, lease_expires_at = NULL
                 WHERE id = $1",
            )
            .bind(id)
            .bind(&e.message_id)
            .bind(&e.event_id)
            .bind(e.event_at)
            .bind(e.deadline_at)
            .bind(e.created_at)
            .execute(&mut **tx)
            .await?;
            let action = format!(
                "upgraded to a real run by {} {}",
                e.event_id.as_deref().unwrap_or("an event"),
                e.message_id.as_deref().map(|m| format!("(SNS message {m})")).unwrap_or_default()
            );
            sqlx::query(
                "INSERT INTO execution_steps (execution_id, seq, at, last_at, step, action)
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $2, 'upgrade', $3
                 FROM execution_steps WHERE execution_id = $1",
            )
            .bind(id)
            .bind(e.created_at)
            .bind(action.trim_end())
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// The INSERT of a message, doing nothing for a MessageId already stored.
        fn insert_message_row(
            m: &NewMessage,
        ) -> sqlx::query::Query<'_, $db, <$db as sqlx::Database>::Arguments<'_>> {
            let event = m.event.as_ref();
            sqlx::query(
                "INSERT INTO sns_messages (message_id, message_type, topic_arn, subject, sent_at,
                     received_at, signature_version, disposition, disposition_reason, body,
                     event_id, source_type, source_id, source_arn, region, account_id,
                     execution_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
                 ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(&m.message_id)
            .bind(m.message_type.as_str())
            .bind(&m.topic_arn)
            .bind(&m.subject)
            .bind(m.sent_at)
            .bind(m.received_at)
            .bind(&m.signature_version)
            .bind(m.disposition.as_str())
            .bind(&m.disposition_reason)
            .bind(m.body.as_bytes())
            .bind(event.map(|e| &e.event_id))
            .bind(event.map(|e| &e.source_type))
            .bind(event.map(|e| &e.source_id))
            .bind(event.and_then(|e| e.source_arn.as_ref()))
            .bind(event.map(|e| &e.region))
            .bind(event.map(|e| &e.account_id))
            .bind(&m.execution_id)
        }

        /// What became of a message stored earlier (for a redelivery).
        async fn stored_disposition<'e>(
            executor: impl sqlx::Executor<'e, Database = $db>,
            message_id: &str,
        ) -> Result<Option<Disposition>, StoreError> {
            let stored: Option<String> =
                sqlx::query_scalar("SELECT disposition FROM sns_messages WHERE message_id = $1")
                    .bind(message_id)
                    .fetch_optional(executor)
                    .await?;
            // A value this version does not know was written by a newer one; treating it as
            // final (`ignored`) never repeats a side effect.
            Ok(stored.map(|s| s.parse().unwrap_or(Disposition::Ignored)))
        }

        #[async_trait]
        impl Store for $store {
            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn insert_message(
                &self,
                m: &NewMessage,
                subscription: Option<&SubscriptionUpdate>,
            ) -> Result<Inserted, StoreError> {
                let mut tx = self.pool.begin_with($begin_write).await?;
                let inserted = insert_message_row(m).execute(&mut *tx).await?.rows_affected() == 1;
                if !inserted {
                    let stored = stored_disposition(&mut *tx, &m.message_id)
                        .await?
                        .ok_or_else(|| StoreError::Inconsistent(format!(
                            "message {} was neither inserted nor found", m.message_id
                        )))?;
                    return Ok(Inserted::Duplicate(stored));
                }
                if let Some(subscription) = subscription {
                    upsert_subscription(&mut tx, subscription).await?;
                }
                let execution = match &m.execution {
                    Some(new) => {
                        let link = start_or_join(&mut tx, new).await?;
                        sqlx::query("UPDATE sns_messages SET execution_id = $2 WHERE message_id = $1")
                            .bind(&m.message_id)
                            .bind(&link.id)
                            .execute(&mut *tx)
                            .await?;
                        Some(link)
                    }
                    None => None,
                };
                tx.commit().await?;
                Ok(Inserted::New { execution })
            }

            async fn insert_messages(&self, messages: &[NewMessage]) -> Result<Vec<String>, StoreError> {
                let mut q = QueryBuilder::<$db>::new(
                    "INSERT INTO sns_messages (message_id, message_type, topic_arn, subject, sent_at,
                         received_at, signature_version, disposition, disposition_reason, body,
                         event_id, source_type, source_id, source_arn, region, account_id,
                         execution_id) ",
                );
                q.push_values(messages, |mut row, m| {
                    let event = m.event.as_ref();
                    row.push_bind(m.message_id.clone())
                        .push_bind(m.message_type.as_str())
                        .push_bind(m.topic_arn.clone())
                        .push_bind(m.subject.clone())
                        .push_bind(m.sent_at)
                        .push_bind(m.received_at)
                        .push_bind(m.signature_version.clone())
                        .push_bind(m.disposition.as_str())
                        .push_bind(m.disposition_reason.clone())
                        .push_bind(m.body.as_bytes().to_vec())
                        .push_bind(event.map(|e| e.event_id.clone()))
                        .push_bind(event.map(|e| e.source_type.clone()))
                        .push_bind(event.map(|e| e.source_id.clone()))
                        .push_bind(event.and_then(|e| e.source_arn.clone()))
                        .push_bind(event.map(|e| e.region.clone()))
                        .push_bind(event.map(|e| e.account_id.clone()))
                        .push_bind(m.execution_id.clone());
                });
                q.push(" ON CONFLICT (message_id) DO NOTHING RETURNING message_id");
                Ok(q.build_query_scalar().fetch_all(&self.pool).await?)
            }

            async fn message_disposition(&self, message_id: &str) -> Result<Option<Disposition>, StoreError> {
                stored_disposition(&self.pool, message_id).await
            }

            async fn record_confirmation(
                &self,
                disposition: Disposition,
                reason: Option<&str>,
                subscription: &SubscriptionUpdate,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_with($begin_write).await?;
                sqlx::query(
                    "UPDATE sns_messages SET disposition = $2, disposition_reason = $3
                     WHERE message_id = $1",
                )
                .bind(&subscription.message_id)
                .bind(disposition.as_str())
                .bind(reason)
                .execute(&mut *tx)
                .await?;
                upsert_subscription(&mut tx, subscription).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn claim_jobs(
                &self,
                owner: &str,
                now: DateTime<Utc>,
                lease: std::time::Duration,
                claim: Claim,
                limit: u32,
            ) -> Result<Vec<Job>, StoreError> {
                let polls = "phase IN ('wait_available', 'wait_stopped')
                             AND status IN ('pending', 'running')";
                let kind = match claim {
                    Claim::Polls => polls.to_owned(),
                    Claim::Steps => format!("NOT ({polls})"),
                };
                // The shape of the well-known Postgres queues: pick due rows in a CTE (locked
                // and skipped by concurrent claims on Postgres), lease them in the same statement.
                let rows: Vec<JobRow> = sqlx::query_as(&format!(
                    "WITH due AS MATERIALIZED (
                         SELECT id AS due_id FROM executions
                         WHERE next_run_at <= $2
                           AND (lease_expires_at IS NULL OR lease_expires_at < $2)
                           AND {kind}
                         ORDER BY next_run_at
                         LIMIT $4 {}
                     )
                     UPDATE executions SET
                         lease_owner = $1,
                         lease_expires_at = $3,
                         lease_token = lease_token + 1,
                         attempts = attempts + 1,
                         status = CASE WHEN status = 'pending' THEN 'running' ELSE status END,
                         started_at = COALESCE(started_at, $2),
                         updated_at = $2
                     FROM due WHERE id = due_id
                     RETURNING {EXECUTION_COLUMNS}, lease_token, attempts",
                    $claim_lock
                ))
                .bind(owner)
                .bind(now)
                .bind(now + lease)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(decode_jobs(rows))
            }

            async fn claim_job(
                &self,
                id: &str,
                owner: &str,
                now: DateTime<Utc>,
                lease: std::time::Duration,
            ) -> Result<Option<Job>, StoreError> {
                let row: Option<JobRow> = sqlx::query_as(&format!(
                    "UPDATE executions SET lease_owner = $2, lease_expires_at = $4,
                         lease_token = lease_token + 1, attempts = attempts + 1, updated_at = $3
                     WHERE id = $1 AND next_run_at <= $3
                       AND (lease_expires_at IS NULL OR lease_expires_at < $3)
                     RETURNING {EXECUTION_COLUMNS}, lease_token, attempts"
                ))
                .bind(id)
                .bind(owner)
                .bind(now)
                .bind(now + lease)
                .fetch_optional(&self.pool)
                .await?;
                Ok(decode_jobs(row.into_iter().collect()).pop())
            }

            async fn start_execution(&self, e: &NewExecution) -> Result<ExecutionLink, StoreError> {
                let mut tx = self.pool.begin_with($begin_write).await?;
                let link = start_or_join(&mut tx, e).await?;
                tx.commit().await?;
                Ok(link)
            }

            async fn cancel_execution(
                &self,
                id: &str,
                now: DateTime<Utc>,
                notify: bool,
            ) -> Result<Cancelled, StoreError> {
                let mut tx = self.pool.begin_with($begin_write).await?;
                // In Step Functions mode the state machine run must be stopped too: the
                // engine does that as the execution's next step (phase abort_state_machine).
                let cancelled = sqlx::query(
                    "UPDATE executions SET status = $5, outcome = $6,
                         reason = 'cancelled by an operator',
                         phase = CASE WHEN mode = 'step_functions' THEN 'abort_state_machine'
                             ELSE 'done' END,
                         finished_at = $2, updated_at = $2,
                         next_run_at = CASE WHEN mode = 'step_functions' THEN $2 ELSE $3 END,
                         notify_state = $4, retries = 0,
                         lease_token = lease_token + 1, lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = $1 AND status IN ('pending', 'running')",
                )
                .bind(id)
                .bind(now)
                .bind(notify.then_some(now))
                .bind(notify.then_some(NotifyState::Pending.as_str()))
                .bind(Status::Cancelled.as_str())
                .bind(Outcome::Cancelled.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !cancelled {
                    let exists: Option<String> =
                        sqlx::query_scalar("SELECT id FROM executions WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&mut *tx)
                            .await?;
                    return Ok(match exists {
                        Some(_) => Cancelled::AlreadyFinished,
                        None => Cancelled::NotFound,
                    });
                }
                sqlx::query(
                    "INSERT INTO execution_steps (execution_id, seq, at, last_at, step, action)
                     SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $2, 'cancel', 'cancelled by an operator'
                     FROM execution_steps WHERE execution_id = $1",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Cancelled::Cancelled)
            }

            async fn list_executions(&self, f: &ExecutionFilter) -> Result<Vec<Execution>, StoreError> {
                let mut q = QueryBuilder::<$db>::new(format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions WHERE 1 = 1"
                ));
                if let Some(resource) = &f.resource {
                    q.push(" AND (resource_id = ")
                        .push_bind(resource.clone())
                        .push(" OR resource_arn = ")
                        .push_bind(resource.clone())
                        .push(")");
                }
                if let Some(status) = f.status {
                    q.push(" AND status = ").push_bind(status.as_str());
                }
                if let Some(outcome) = f.outcome {
                    q.push(" AND outcome = ").push_bind(outcome.as_str());
                }
                if let Some(trigger) = f.trigger {
                    q.push(" AND trigger = ").push_bind(trigger.as_str());
                }
                if let Some(since) = f.since {
                    q.push(" AND created_at >= ").push_bind(since);
                }
                if let Some(until) = f.until {
                    q.push(" AND created_at < ").push_bind(until);
                }
                if let Some(after) = &f.after {
                    push_after(&mut q, "created_at", "id", after);
                }
                q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
                    .push_bind(i64::from(f.limit));
                let rows: Vec<ExecutionRow> = q.build_query_as().fetch_all(&self.pool).await?;
                decode_all(rows)
            }

            async fn get_execution(&self, id: &str) -> Result<Option<(Execution, Vec<Step>)>, StoreError> {
                let row: Option<ExecutionRow> = sqlx::query_as(&format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let steps = sqlx::query_as(
                    "SELECT seq, at, last_at, repeats, step, rds_status, action, error
                     FROM execution_steps WHERE execution_id = $1 ORDER BY seq",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                Ok(Some((row.try_into()?, steps)))
            }

            async fn list_messages(&self, f: &MessageFilter) -> Result<Vec<MessageRecord>, StoreError> {
                let mut q = QueryBuilder::<$db>::new(format!(
                    "SELECT {MESSAGE_COLUMNS} FROM sns_messages WHERE 1 = 1"
                ));
                if let Some(kind) = f.message_type {
                    q.push(" AND message_type = ").push_bind(kind.as_str());
                }
                if let Some(disposition) = f.disposition {
                    q.push(" AND disposition = ").push_bind(disposition.as_str());
                }
                if let Some(topic) = &f.topic {
                    q.push(" AND topic_arn = ").push_bind(topic.clone());
                }
                if let Some(resource) = &f.resource {
                    q.push(" AND (source_id = ")
                        .push_bind(resource.clone())
                        .push(" OR source_arn = ")
                        .push_bind(resource.clone())
                        .push(")");
                }
                if let Some(since) = f.since {
                    q.push(" AND received_at >= ").push_bind(since);
                }
                if let Some(until) = f.until {
                    q.push(" AND received_at < ").push_bind(until);
                }
                if let Some(after) = &f.after {
                    push_after(&mut q, "received_at", "message_id", after);
                }
                q.push(" ORDER BY received_at DESC, message_id DESC LIMIT ")
                    .push_bind(i64::from(f.limit));
                let rows: Vec<MessageRow> = q.build_query_as().fetch_all(&self.pool).await?;
                decode_all(rows)
            }

            async fn get_message(&self, message_id: &str) -> Result<Option<MessageRecord>, StoreError> {
                let row: Option<MessageRow> = sqlx::query_as(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM sns_messages WHERE message_id = $1"
                ))
                .bind(message_id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(MessageRecord::try_from).transpose()
            }

            async fn list_subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
                let rows: Vec<SubscriptionRow> = sqlx::query_as(&format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM sns_subscriptions ORDER BY topic_arn"
                ))
                .fetch_all(&self.pool)
                .await?;
                decode_all(rows)
            }

            async fn execution_stats(&self, now: DateTime<Utc>) -> Result<ExecutionStats, StoreError> {
                let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(
                    "SELECT status, outcome, COUNT(*) FROM executions
                     GROUP BY status, outcome ORDER BY status, outcome",
                )
                .fetch_all(&self.pool)
                .await?;
                let by_status = decode_counts(rows)?;
                let oldest_due: Option<DateTime<Utc>> = sqlx::query_scalar(
                    "SELECT MIN(next_run_at) FROM executions WHERE next_run_at <= $1",
                )
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
                let overdue: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM executions
                     WHERE status IN ('pending', 'running') AND deadline_at < $1",
                )
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
                Ok(ExecutionStats { by_status, oldest_due, overdue })
            }

            async fn summarize_executions(
                &self,
                short: DateTime<Utc>,
                long: DateTime<Utc>,
            ) -> Result<Vec<SummaryCount>, StoreError> {
                let rows: Vec<SummaryRow> = sqlx::query_as(
                    "SELECT status, outcome,
                         SUM(CASE WHEN created_at >= $1 THEN 1 ELSE 0 END) AS short_window,
                         SUM(CASE WHEN created_at >= $2 THEN 1 ELSE 0 END) AS long_window,
                         SUM(CASE WHEN status IN ('pending', 'running') THEN 1 ELSE 0 END)
                             AS active
                     FROM executions
                     WHERE created_at >= $2 OR status IN ('pending', 'running')
                     GROUP BY status, outcome ORDER BY status, outcome",
                )
                .bind(short)
                .bind(long)
                .fetch_all(&self.pool)
                .await?;
                decode_all(rows)
            }

            async fn wake(&self, resource_arn: &str, now: DateTime<Utc>) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "UPDATE executions SET next_run_at = $2, wakes = wakes + 1, wake_polls = 1,
                         updated_at = $2
                     WHERE resource_arn = $1 AND status IN ('pending', 'running')
                       AND phase = 'wait_available'
                     RETURNING id",
                )
                .bind(resource_arn)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn cluster_waiting(&self, account: &str, region: &str) -> Result<bool, StoreError> {
                let waiting: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM executions
                     WHERE account_id = $1 AND region = $2 AND resource_type = 'db-cluster'
                       AND status IN ('pending', 'running') AND phase = 'wait_available'
                     LIMIT 1",
                )
                .bind(account)
                .bind(region)
                .fetch_optional(&self.pool)
                .await?;
                Ok(waiting.is_some())
            }

            async fn record_forced_start(
                &self,
                e: &NewExecution,
                expired: bool,
                note: &str,
                notify: bool,
            ) -> Result<ForcedStart, StoreError> {
                let mut tx = self.pool.begin_with($begin_write).await?;
                if let Some(id) = same_forced_start(&mut tx, e).await? {
                    return Ok(ForcedStart::Known(id));
                }
                let found = if expired {
                    let reason = "found in RDS's event log after RESTOP_MAX_DURATION: too late to act on";
                    sqlx::query(
                        "INSERT INTO executions (id, resource_type, resource_id, resource_arn,
                             region, account_id, trigger, message_id, event_id, mode, dry_run,
                             skip_tag_check, status, outcome, reason, phase, event_at, created_at,
                             updated_at, finished_at, deadline_at, next_run_at, notify_state)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                             $16, $17, $18, $18, $18, $19, $20, $21)",
                    )
                    .bind(&e.id)
                    .bind(e.resource.kind.as_str())
                    .bind(&e.resource.identifier)
                    .bind(&e.resource.arn)
                    .bind(&e.resource.region)
                    .bind(&e.resource.account)
                    .bind(e.trigger.as_str())
                    .bind(&e.message_id)
                    .bind(&e.event_id)
                    .bind(e.mode.as_str())
                    .bind(e.dry_run)
                    .bind(e.skip_tag_check)
                    .bind(Outcome::Expired.status().as_str())
                    .bind(Outcome::Expired.as_str())
                    .bind(reason)
                    .bind(Phase::Done.as_str())
                    .bind(e.event_at)
                    .bind(e.created_at)
                    .bind(e.deadline_at)
                    .bind(notify.then_some(e.created_at))
                    .bind(notify.then_some(NotifyState::Pending.as_str()))
                    .execute(&mut *tx)
                    .await?;
                    ForcedStart::Expired(e.id.clone())
                } else {
                    let link = start_or_join(&mut tx, e).await?;
                    if link.joined {
                        tx.commit().await?;
                        return Ok(ForcedStart::Known(link.id));
                    }
                    ForcedStart::New(link.id)
                };
                first_step(&mut tx, &e.id, e.created_at, "catchup", note).await?;
                tx.commit().await?;
                Ok(found)
            }

            async fn ensure_sweeps(
                &self,
                places: &[(String, String)],
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                for (account, region) in places {
                    sqlx::query(
                        "INSERT INTO catchup_sweeps (account_id, region, next_run_at)
                         VALUES ($1, $2, $3) ON CONFLICT (account_id, region) DO UPDATE
                         SET next_run_at = excluded.next_run_at
                         WHERE catchup_sweeps.next_run_at > excluded.next_run_at",
                    )
                    .bind(account)
                    .bind(region)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                }
                Ok(())
            }

            async fn claim_sweeps(
                &self,
                owner: &str,
                now: DateTime<Utc>,
                lease: std::time::Duration,
                limit: u32,
            ) -> Result<Vec<Sweep>, StoreError> {
                let rows: Vec<SweepRow> = sqlx::query_as(&format!(
                    "WITH due AS MATERIALIZED (
                         SELECT account_id AS due_account, region AS due_region FROM catchup_sweeps
                         WHERE next_run_at <= $2
                           AND (lease_expires_at IS NULL OR lease_expires_at < $2)
                         ORDER BY next_run_at
                         LIMIT $4 {}
                     )
                     UPDATE catchup_sweeps SET lease_owner = $1, lease_expires_at = $3,
                         lease_token = lease_token + 1
                     FROM due WHERE account_id = due_account AND region = due_region
                     RETURNING account_id, region, swept_until, failures, lease_token",
                    $claim_lock
                ))
                .bind(owner)
                .bind(now)
                .bind(now + lease)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(Sweep::from).collect())
            }

            async fn complete_sweep(
                &self,
                sweep: &Sweep,
                result: Result<DateTime<Utc>, String>,
                next_run_at: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let query = match &result {
                    Ok(until) => sqlx::query(
                        "UPDATE catchup_sweeps SET swept_until = $4, failures = 0,
                             last_error = NULL, last_success_at = $5, next_run_at = $6,
                             lease_owner = NULL, lease_expires_at = NULL
                         WHERE account_id = $1 AND region = $2 AND lease_token = $3",
                    )
                    .bind(&sweep.account)
                    .bind(&sweep.region)
                    .bind(sweep.lease_token)
                    .bind(*until)
                    .bind(now)
                    .bind(next_run_at),
                    Err(error) => sqlx::query(
                        "UPDATE catchup_sweeps SET failures = failures + 1, last_error = $4,
                             next_run_at = $5, lease_owner = NULL, lease_expires_at = NULL
                         WHERE account_id = $1 AND region = $2 AND lease_token = $3",
                    )
                    .bind(&sweep.account)
                    .bind(&sweep.region)
                    .bind(sweep.lease_token)
                    .bind(error)
                    .bind(next_run_at),
                };
                Ok(query.execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn record_stop_intent(&self, job: &Job, at: DateTime<Utc>) -> Result<bool, StoreError> {
                let fenced = sqlx::query(
                    "UPDATE executions SET stop_requested_at = $3, updated_at = $3
                     WHERE id = $1 AND lease_token = $2",
                )
                .bind(&job.id)
                .bind(job.lease_token)
                .bind(at)
                .execute(&self.pool)
                .await?
                .rows_affected()
                    == 1;
                Ok(fenced)
            }

            async fn delete_expired(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, StoreError> {
                let mut tx = self.pool.begin_with($begin_write).await?;
                let executions: Vec<String> = sqlx::query_scalar(
                    "SELECT id FROM executions
                     WHERE finished_at < $1 AND next_run_at IS NULL
                     ORDER BY finished_at LIMIT $2",
                )
                .bind(before)
                .bind(i64::from(batch))
                .fetch_all(&mut *tx)
                .await?;
                let mut deleted = 0;
                for id in &executions {
                    // The messages that started an execution outlive it, unlinked.
                    sqlx::query("UPDATE sns_messages SET execution_id = NULL WHERE execution_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM execution_steps WHERE execution_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    deleted += sqlx::query("DELETE FROM executions WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                deleted += sqlx::query(
                    "DELETE FROM sns_messages WHERE message_id IN (
                         SELECT message_id FROM sns_messages
                         WHERE disposition = $1 AND received_at < $2
                         ORDER BY received_at LIMIT $3)",
                )
                .bind(Disposition::Ignored.as_str())
                .bind(before)
                .bind(i64::from(batch))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(deleted)
            }

            async fn complete_step(
                &self,
                job: &Job,
                step: &NewStep,
                u: &JobUpdate,
            ) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin_with($begin_write).await?;
                let fenced = sqlx::query(
                    // A wake-up that came while the step ran (more wakes than the job was
                    // claimed with) still makes the next poll happen at once.
                    "UPDATE executions SET status = $3, outcome = $4, reason = $5, phase = $6,
                         retries = $7, sfn_execution_arn = $8, finished_at = $9,
                         notify_state = $10, notify_attempts = $11, notify_error = $12,
                         next_run_at = CASE WHEN wakes > $16 AND $6 = 'wait_available'
                             THEN $14 ELSE $13 END,
                         wake_polls = CASE WHEN wakes > $16 AND $6 = 'wait_available'
                             THEN 1 ELSE $17 END,
                         updated_at = $14, stop_refusals = $15, attempts = 0,
                         lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = $1 AND lease_token = $2",
                )
                .bind(&job.id)
                .bind(job.lease_token)
                .bind(u.status.as_str())
                .bind(u.outcome.map(Outcome::as_str))
                .bind(&u.reason)
                .bind(u.phase.as_str())
                .bind(i32::try_from(u.retries).unwrap_or(i32::MAX))
                .bind(&u.sfn_execution_arn)
                .bind(u.finished_at)
                .bind(u.notify_state.map(NotifyState::as_str))
                .bind(i32::try_from(u.notify_attempts).unwrap_or(i32::MAX))
                .bind(&u.notify_error)
                .bind(u.next_run_at)
                .bind(step.at)
                .bind(i32::try_from(u.stop_refusals).unwrap_or(i32::MAX))
                .bind(i32::try_from(job.wakes).unwrap_or(i32::MAX))
                .bind(i32::try_from(u.wake_polls).unwrap_or(i32::MAX))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !fenced {
                    return Ok(false);
                }
                // The same observation as last time extends that row instead of adding one.
                let repeated = sqlx::query(
                    "UPDATE execution_steps SET repeats = repeats + 1, last_at = $2
                     WHERE execution_id = $1
                       AND seq = (SELECT MAX(seq) FROM execution_steps WHERE execution_id = $1)
                       AND step = $3 AND action = $4
                       AND rds_status IS NOT DISTINCT FROM $5 AND error IS NOT DISTINCT FROM $6",
                )
                .bind(&job.id)
                .bind(step.at)
                .bind(&step.step)
                .bind(&step.action)
                .bind(&step.rds_status)
                .bind(&step.error)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !repeated {
                    sqlx::query(
                        "INSERT INTO execution_steps (execution_id, seq, at, last_at, step,
                             rds_status, action, error)
                         SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $2, $3, $4, $5, $6
                         FROM execution_steps WHERE execution_id = $1",
                    )
                    .bind(&job.id)
                    .bind(step.at)
                    .bind(&step.step)
                    .bind(&step.rds_status)
                    .bind(&step.action)
                    .bind(&step.error)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}

pub(super) use impl_store;
