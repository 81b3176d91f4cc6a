//! The queries both backends share. Postgres and SQLite accept the same SQL here
//! (`$n` placeholders, `ON CONFLICT ... DO UPDATE`, partial indexes, `RETURNING`), so one
//! text serves both; the macro instantiates it for each backend's sqlx types. The one
//! difference is passed in: how the job claim locks rows.

use chrono::{DateTime, Utc};

use super::{Job, Mode};
use crate::engine::decide::{Outcome, Phase, Status};

/// An `executions` row as stored.
#[derive(sqlx::FromRow)]
pub(super) struct JobRow {
    id: String,
    resource_type: String,
    resource_id: String,
    resource_arn: String,
    region: String,
    account_id: String,
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
    finished_at: Option<DateTime<Utc>>,
    deadline_at: DateTime<Utc>,
    notify_state: Option<String>,
    notify_attempts: i32,
    lease_token: i64,
}

impl TryFrom<JobRow> for Job {
    type Error = sqlx::Error;

    fn try_from(row: JobRow) -> Result<Self, Self::Error> {
        let bad = |column: &str, value: &str| {
            sqlx::Error::Decode(format!("executions.{column} has unknown value '{value}'").into())
        };
        Ok(Job {
            kind: row
                .resource_type
                .parse()
                .map_err(|_| bad("resource_type", &row.resource_type))?,
            mode: match row.mode.as_str() {
                "internal" => Mode::Internal,
                "step_functions" => Mode::StepFunctions,
                other => return Err(bad("mode", other)),
            },
            status: Status::parse(&row.status).ok_or_else(|| bad("status", &row.status))?,
            outcome: match &row.outcome {
                Some(o) => Some(Outcome::parse(o).ok_or_else(|| bad("outcome", o))?),
                None => None,
            },
            phase: Phase::parse(&row.phase).ok_or_else(|| bad("phase", &row.phase))?,
            retries: row.retries.max(0) as u32,
            notify_attempts: row.notify_attempts.max(0) as u32,
            id: row.id,
            resource_id: row.resource_id,
            resource_arn: row.resource_arn,
            region: row.region,
            account: row.account_id,
            trigger: row.trigger,
            message_id: row.message_id,
            event_id: row.event_id,
            dry_run: row.dry_run,
            skip_tag_check: row.skip_tag_check,
            reason: row.reason,
            sfn_execution_arn: row.sfn_execution_arn,
            event_at: row.event_at,
            created_at: row.created_at,
            finished_at: row.finished_at,
            deadline_at: row.deadline_at,
            notify_state: row.notify_state,
            lease_token: row.lease_token,
        })
    }
}

macro_rules! impl_store {
    ($store:ident, $db:ty, claim_lock = $claim_lock:literal) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use sqlx::Transaction;

        use super::sql::JobRow;
        use super::{
            Cancelled, Disposition, ExecutionFilter, ExecutionLink, ExecutionRecord,
            ExecutionStats, Inserted, Job, JobUpdate, MessageFilter, MessageRecord, NewExecution,
            NewMessage, Position, StepRecord, StepRow, Store, StoreError, SubscriptionRecord,
            SubscriptionStatus, SubscriptionUpdate, disposition_from_db,
        };
        use sqlx::QueryBuilder;

        const EXECUTION_COLUMNS: &str = "id, resource_type, resource_id, resource_arn, region,
            account_id, trigger, message_id, event_id, mode, dry_run, skip_tag_check, status,
            outcome, reason, phase, sfn_execution_arn, created_at, updated_at, started_at,
            finished_at, deadline_at, next_run_at, notify_state, notify_attempts, notify_error";
        const MESSAGE_COLUMNS: &str = "message_id, message_type, topic_arn, subject, body, sent_at,
            received_at, signature_version, disposition, disposition_reason, event_id,
            source_type, source_id, source_arn, region, account_id, execution_id";

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
        ) -> Result<ExecutionLink, sqlx::Error> {
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
                .bind(e.kind.as_str())
                .bind(&e.resource_id)
                .bind(&e.resource_arn)
                .bind(&e.region)
                .bind(&e.account)
                .bind(e.trigger)
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
                    return Ok(ExecutionLink { id: e.id.clone(), joined: false });
                }
                let active: Option<String> = sqlx::query_scalar(
                    "SELECT id FROM executions
                     WHERE resource_arn = $1 AND status IN ('pending', 'running')",
                )
                .bind(&e.resource_arn)
                .fetch_optional(&mut **tx)
                .await?;
                if let Some(id) = active {
                    return Ok(ExecutionLink { id, joined: true });
                }
            }
            Err(sqlx::Error::Protocol(
                "could not start or join an execution for the resource".into(),
            ))
        }

        /// The INSERT of a message, doing nothing for a MessageId already stored.
        fn insert_message_row(
            m: &NewMessage,
        ) -> sqlx::query::Query<'_, $db, <$db as sqlx::Database>::Arguments<'_>> {
            let event = m.event.as_ref();
            sqlx::query(
                "INSERT INTO sns_messages (message_id, message_type, topic_arn, subject, sent_at,
                     received_at, signature_version, disposition, disposition_reason, body,
                     event_id, source_type, source_id, source_arn, region, account_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                 ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(&m.message_id)
            .bind(m.message_type)
            .bind(&m.topic_arn)
            .bind(&m.subject)
            .bind(m.sent_at)
            .bind(m.received_at)
            .bind(&m.signature_version)
            .bind(m.disposition.as_str())
            .bind(&m.disposition_reason)
            .bind(&m.body)
            .bind(event.map(|e| &e.event_id))
            .bind(event.map(|e| &e.source_type))
            .bind(event.map(|e| &e.source_id))
            .bind(event.and_then(|e| e.source_arn.as_ref()))
            .bind(event.map(|e| &e.region))
            .bind(event.map(|e| &e.account))
        }

        /// What became of a message stored earlier (for a redelivery).
        async fn stored_disposition<'e>(
            executor: impl sqlx::Executor<'e, Database = $db>,
            m: &NewMessage,
        ) -> Result<Disposition, sqlx::Error> {
            let stored: String =
                sqlx::query_scalar("SELECT disposition FROM sns_messages WHERE message_id = $1")
                    .bind(&m.message_id)
                    .fetch_one(executor)
                    .await?;
            Ok(disposition_from_db(&stored))
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
                let mut tx = self.pool.begin().await?;
                let inserted = insert_message_row(m).execute(&mut *tx).await?.rows_affected() == 1;
                if !inserted {
                    return Ok(Inserted::Duplicate(stored_disposition(&mut *tx, m).await?));
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
                         event_id, source_type, source_id, source_arn, region, account_id) ",
                );
                q.push_values(messages, |mut row, m| {
                    let event = m.event.as_ref();
                    row.push_bind(m.message_id.clone())
                        .push_bind(m.message_type)
                        .push_bind(m.topic_arn.clone())
                        .push_bind(m.subject.clone())
                        .push_bind(m.sent_at)
                        .push_bind(m.received_at)
                        .push_bind(m.signature_version.clone())
                        .push_bind(m.disposition.as_str())
                        .push_bind(m.disposition_reason.clone())
                        .push_bind(m.body.clone())
                        .push_bind(event.map(|e| e.event_id.clone()))
                        .push_bind(event.map(|e| e.source_type.clone()))
                        .push_bind(event.map(|e| e.source_id.clone()))
                        .push_bind(event.and_then(|e| e.source_arn.clone()))
                        .push_bind(event.map(|e| e.region.clone()))
                        .push_bind(event.map(|e| e.account.clone()));
                });
                q.push(" ON CONFLICT (message_id) DO NOTHING RETURNING message_id");
                Ok(q.build_query_scalar().fetch_all(&self.pool).await?)
            }

            async fn message_disposition(&self, message_id: &str) -> Result<Option<Disposition>, StoreError> {
                let stored: Option<String> =
                    sqlx::query_scalar("SELECT disposition FROM sns_messages WHERE message_id = $1")
                        .bind(message_id)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(stored.as_deref().map(disposition_from_db))
            }

            async fn record_confirmation(
                &self,
                disposition: Disposition,
                reason: Option<&str>,
                subscription: &SubscriptionUpdate,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
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
                limit: u32,
            ) -> Result<Vec<Job>, StoreError> {
                let lease_until = now + lease;
                let rows: Vec<JobRow> = sqlx::query_as(concat!(
                    "UPDATE executions SET
                         lease_owner = $1,
                         lease_expires_at = $3,
                         lease_token = lease_token + 1,
                         status = CASE WHEN status = 'pending' THEN 'running' ELSE status END,
                         started_at = COALESCE(started_at, $2),
                         updated_at = $2
                     WHERE id IN (
                         SELECT id FROM executions
                         WHERE next_run_at <= $2
                           AND (lease_expires_at IS NULL OR lease_expires_at < $2)
                         ORDER BY next_run_at
                         LIMIT $4 ",
                    $claim_lock,
                    ")
                     RETURNING *"
                ))
                .bind(owner)
                .bind(now)
                .bind(lease_until)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|row| Job::try_from(row).map_err(StoreError::from))
                    .collect()
            }

            async fn claim_job(
                &self,
                id: &str,
                owner: &str,
                now: DateTime<Utc>,
                lease: std::time::Duration,
            ) -> Result<Option<Job>, StoreError> {
                let row: Option<JobRow> = sqlx::query_as(
                    "UPDATE executions SET lease_owner = $2, lease_expires_at = $4,
                         lease_token = lease_token + 1, updated_at = $3
                     WHERE id = $1 AND next_run_at <= $3
                       AND (lease_expires_at IS NULL OR lease_expires_at < $3)
                     RETURNING *",
                )
                .bind(id)
                .bind(owner)
                .bind(now)
                .bind(now + lease)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(Job::try_from).transpose()?)
            }

            async fn start_execution(&self, e: &NewExecution) -> Result<ExecutionLink, StoreError> {
                let mut tx = self.pool.begin().await?;
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
                let mut tx = self.pool.begin().await?;
                let cancelled = sqlx::query(
                    "UPDATE executions SET status = 'cancelled', outcome = 'cancelled',
                         reason = 'cancelled by an operator', phase = 'done', finished_at = $2,
                         updated_at = $2, next_run_at = $3, notify_state = $4,
                         lease_token = lease_token + 1, lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = $1 AND status IN ('pending', 'running')",
                )
                .bind(id)
                .bind(now)
                .bind(notify.then_some(now))
                .bind(notify.then_some(crate::engine::NOTIFY_PENDING))
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

            async fn list_executions(
                &self,
                f: &ExecutionFilter,
            ) -> Result<Vec<ExecutionRecord>, StoreError> {
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
                if let Some(trigger) = &f.trigger {
                    q.push(" AND trigger = ").push_bind(trigger.clone());
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
                Ok(q.build_query_as().fetch_all(&self.pool).await?)
            }

            async fn get_execution(
                &self,
                id: &str,
            ) -> Result<Option<(ExecutionRecord, Vec<StepRow>)>, StoreError> {
                let execution: Option<ExecutionRecord> = sqlx::query_as(&format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions WHERE id = $1"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                let Some(execution) = execution else {
                    return Ok(None);
                };
                let steps = sqlx::query_as(
                    "SELECT seq, at, last_at, repeats, step, rds_status, action, error
                     FROM execution_steps WHERE execution_id = $1 ORDER BY seq",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                Ok(Some((execution, steps)))
            }

            async fn list_messages(&self, f: &MessageFilter) -> Result<Vec<MessageRecord>, StoreError> {
                let mut q = QueryBuilder::<$db>::new(format!(
                    "SELECT {MESSAGE_COLUMNS} FROM sns_messages WHERE 1 = 1"
                ));
                if let Some(kind) = &f.message_type {
                    q.push(" AND message_type = ").push_bind(kind.clone());
                }
                if let Some(disposition) = &f.disposition {
                    q.push(" AND disposition = ").push_bind(disposition.clone());
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
                Ok(q.build_query_as().fetch_all(&self.pool).await?)
            }

            async fn get_message(&self, message_id: &str) -> Result<Option<MessageRecord>, StoreError> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {MESSAGE_COLUMNS} FROM sns_messages WHERE message_id = $1"
                ))
                .bind(message_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT topic_arn, status, subscription_arn, last_message_id, last_error,
                         first_seen_at, updated_at, confirmed_at
                     FROM sns_subscriptions ORDER BY topic_arn",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn execution_stats(&self, now: DateTime<Utc>) -> Result<ExecutionStats, StoreError> {
                let by_status: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT status, COALESCE(outcome, ''), COUNT(*) FROM executions
                     GROUP BY status, outcome ORDER BY status, outcome",
                )
                .fetch_all(&self.pool)
                .await?;
                let oldest_due: Option<DateTime<Utc>> = sqlx::query_scalar(
                    "SELECT MIN(next_run_at) FROM executions WHERE next_run_at <= $1",
                )
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
                let active = by_status
                    .iter()
                    .filter(|(status, _, _)| status == "pending" || status == "running")
                    .map(|(_, _, n)| n)
                    .sum();
                Ok(ExecutionStats { by_status, active, oldest_due })
            }

            async fn complete_step(
                &self,
                job: &Job,
                step: &StepRecord,
                u: &JobUpdate,
            ) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await?;
                let fenced = sqlx::query(
                    "UPDATE executions SET status = $3, outcome = $4, reason = $5, phase = $6,
                         retries = $7, sfn_execution_arn = $8, finished_at = $9,
                         notify_state = $10, notify_attempts = $11, notify_error = $12,
                         next_run_at = $13, updated_at = $14,
                         lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = $1 AND lease_token = $2",
                )
                .bind(&job.id)
                .bind(job.lease_token)
                .bind(u.status.as_str())
                .bind(u.outcome.map(|o| o.as_str()))
                .bind(&u.reason)
                .bind(u.phase.as_str())
                .bind(u.retries as i32)
                .bind(&u.sfn_execution_arn)
                .bind(u.finished_at)
                .bind(&u.notify_state)
                .bind(u.notify_attempts as i32)
                .bind(&u.notify_error)
                .bind(u.next_run_at)
                .bind(step.at)
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
