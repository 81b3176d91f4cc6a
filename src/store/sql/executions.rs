//! `executions`: one per forced start, worked by the engine as a job under a lease.

use std::sync::LazyLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Transaction};

use super::jobs::{append_step, note_step, steps_of};
use super::{BEGIN_WRITE, Db, SqlStore, TEXT_LIST_ROWS, push_either, push_page, text_list};
use crate::execution::{ExecutionStats, NotifyState, Outcome, Phase, Status, TriggerKind};
use crate::store::rows::{ExecutionRow, SummaryRow, decode_all, decode_counts, execution_columns};
use crate::store::{
    Cancelled, Execution, ExecutionFilter, ExecutionLink, ExecutionStore, NewExecution, Step,
    StoreError, SummaryCount,
};

/// A new execution, unless the resource has an active one.
const INSERT: &str = "
    INSERT INTO executions (id, resource_type, resource_id, resource_arn, region, account_id,
        trigger, message_id, event_id, mode, dry_run, skip_tag_check, status, outcome, reason,
        phase, event_at, created_at, updated_at, finished_at, deadline_at, next_run_at,
        notify_state)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $18, $19, $20, $21, $22)
    ON CONFLICT (resource_arn) WHERE status IN ('pending', 'running') DO NOTHING";

/// The active execution, and whether it is a dry run (a rehearsal a real event upgrades).
/// A run that skips the tag check without being a dry run is an operator's explicit stop:
/// already real, so a real event joins it as it is.
const SELECT_ACTIVE: &str = "
    SELECT id, dry_run FROM executions
    WHERE resource_arn = $1 AND status IN ('pending', 'running')";

const SELECT_SAME_FORCED_START: &str = "
    SELECT id FROM executions
    WHERE resource_arn = $1 AND trigger IN ('sns', 'catchup')
      AND event_at >= $2 AND event_at <= $3
    ORDER BY created_at LIMIT 1";

/// A rehearsal becomes a real run: see [`upgrade_to_real`].
const UPGRADE: &str = "
    UPDATE executions SET
        phase = CASE
            WHEN phase IN ('wait_stopped', 'abort_state_machine', 'done') THEN phase
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
    WHERE id = $1";

// In Step Functions mode the state machine run must be stopped too: the engine does that as
// the execution's next step (phase abort_state_machine).
const CANCEL: &str = "
    UPDATE executions SET status = $5, outcome = $6,
        reason = 'cancelled by an operator',
        phase = CASE WHEN mode = 'step_functions' THEN 'abort_state_machine' ELSE 'done' END,
        finished_at = $2, updated_at = $2,
        next_run_at = CASE WHEN mode = 'step_functions' THEN $2 ELSE $3 END,
        notify_state = $4, retries = 0,
        lease_token = lease_token + 1, lease_owner = NULL, lease_expires_at = NULL
    WHERE id = $1 AND status IN ('pending', 'running')";

const SELECT_ID: &str = "SELECT id FROM executions WHERE id = $1";

/// Waiting for `available`: look now, then poll quickly. Waiting for `stopped`: look now
/// (a start or stop event may end the wait, see `decide`). Not after RDS refused a stop:
/// the refusal's backoff stands, or the start events of an Aurora cluster's members could
/// use up its refusal budget (`decide`'s `MAX_STOP_REFUSALS`) within minutes.
const WAKE: &str = "
    UPDATE executions SET next_run_at = $2, wakes = wakes + 1,
        wake_polls = CASE WHEN phase = 'wait_available' THEN 1 ELSE wake_polls END,
        updated_at = $2
    WHERE resource_arn = $1 AND status IN ('pending', 'running')
      AND (phase = 'wait_stopped' OR (phase = 'wait_available' AND stop_refusals = 0))
    RETURNING id";

/// [`WAKE`] for the databases of a text list (`$1`): the wake-ups of an intake batch.
static WAKE_ANY: LazyLock<String> = LazyLock::new(|| {
    WAKE.replace(
        "WHERE resource_arn = $1",
        &format!("WHERE resource_arn IN ({TEXT_LIST_ROWS})"),
    )
    .replace("RETURNING id", "RETURNING id, resource_arn")
});

const SELECT_CLUSTER_WAITING: &str = "
    SELECT id FROM executions
    WHERE account_id = $1 AND region = $2 AND resource_type = 'db-cluster'
      AND status IN ('pending', 'running') AND phase IN ('wait_available', 'wait_stopped')
    LIMIT 1";

const SELECT_ONE: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM executions WHERE id = $1"
);

/// The head of a listing; the filters follow.
const SELECT_ALL: &str = concat!(
    "SELECT ",
    execution_columns!(),
    " FROM executions WHERE 1 = 1"
);

const COUNT_BY_STATUS: &str = "
    SELECT status, outcome, COUNT(*) FROM executions
    GROUP BY status, outcome ORDER BY status, outcome";

const OLDEST_DUE: &str = "SELECT MIN(next_run_at) FROM executions WHERE next_run_at <= $1";

const COUNT_OVERDUE: &str = "
    SELECT COUNT(*) FROM executions
    WHERE status IN ('pending', 'running') AND deadline_at < $1";

const SUMMARY: &str = "
    SELECT status, outcome,
        SUM(CASE WHEN created_at >= $1 THEN 1 ELSE 0 END) AS short_window,
        SUM(CASE WHEN created_at >= $2 THEN 1 ELSE 0 END) AS long_window,
        SUM(CASE WHEN status IN ('pending', 'running') THEN 1 ELSE 0 END) AS active
    FROM executions
    WHERE created_at >= $2 OR status IN ('pending', 'running')
    GROUP BY status, outcome ORDER BY status, outcome";

#[async_trait]
impl ExecutionStore for SqlStore {
    async fn start_execution(&self, e: &NewExecution) -> Result<ExecutionLink, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
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
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let cancelled = sqlx::query(CANCEL)
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
            let exists: Option<String> = sqlx::query_scalar(SELECT_ID)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            return Ok(match exists {
                Some(_) => Cancelled::AlreadyFinished,
                None => Cancelled::NotFound,
            });
        }
        append_step(
            &mut tx,
            id,
            &note_step(now, "cancel", "cancelled by an operator"),
        )
        .await?;
        tx.commit().await?;
        Ok(Cancelled::Cancelled)
    }

    async fn wake(
        &self,
        resource_arn: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(WAKE)
            .bind(resource_arn)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn cluster_waiting(&self, account: &str, region: &str) -> Result<bool, StoreError> {
        cluster_waiting_in(&self.pool, account, region).await
    }

    async fn list_executions(&self, f: &ExecutionFilter) -> Result<Vec<Execution>, StoreError> {
        let mut q = QueryBuilder::<Db>::new(SELECT_ALL);
        if let Some(resource) = &f.resource {
            push_either(&mut q, ["resource_id", "resource_arn"], resource);
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
        let page = ["created_at", "id"];
        push_page(&mut q, page, f.since, f.until, f.after.as_ref(), f.limit);
        let rows: Vec<ExecutionRow> = q.build_query_as().fetch_all(&self.pool).await?;
        decode_all(rows)
    }

    async fn get_execution(&self, id: &str) -> Result<Option<(Execution, Vec<Step>)>, StoreError> {
        let row: Option<ExecutionRow> = sqlx::query_as(SELECT_ONE)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let steps = steps_of(&self.pool, id).await?;
        Ok(Some((row.try_into()?, steps)))
    }

    async fn execution_stats(&self, now: DateTime<Utc>) -> Result<ExecutionStats, StoreError> {
        let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(COUNT_BY_STATUS)
            .fetch_all(&self.pool)
            .await?;
        let by_status = decode_counts(rows)?;
        let oldest_due: Option<DateTime<Utc>> = sqlx::query_scalar(OLDEST_DUE)
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        let overdue: i64 = sqlx::query_scalar(COUNT_OVERDUE)
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        Ok(ExecutionStats {
            by_status,
            oldest_due,
            overdue,
        })
    }

    async fn summarize_executions(
        &self,
        short: DateTime<Utc>,
        long: DateTime<Utc>,
    ) -> Result<Vec<SummaryCount>, StoreError> {
        let rows: Vec<SummaryRow> = sqlx::query_as(SUMMARY)
            .bind(short)
            .bind(long)
            .fetch_all(&self.pool)
            .await?;
        decode_all(rows)
    }
}

/// Wakes the executions waiting for the databases `arns` (see [`WAKE`]); returns the
/// woken ones' ids with their database's ARN.
pub(super) async fn wake_any(
    conn: &mut <Db as sqlx::Database>::Connection,
    arns: Vec<String>,
    now: DateTime<Utc>,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(WAKE_ANY.as_str())
        .bind(text_list(arns))
        .bind(now)
        .fetch_all(conn)
        .await
}

/// See [`ExecutionStore::cluster_waiting`].
pub(super) async fn cluster_waiting_in<'e>(
    executor: impl sqlx::Executor<'e, Database = Db>,
    account: &str,
    region: &str,
) -> Result<bool, StoreError> {
    let waiting: Option<String> = sqlx::query_scalar(SELECT_CLUSTER_WAITING)
        .bind(account)
        .bind(region)
        .fetch_optional(executor)
        .await?;
    Ok(waiting.is_some())
}

/// An execution recorded as already over: a forced start found too late to act on.
pub(super) struct Ended<'a> {
    pub outcome: Outcome,
    pub reason: &'a str,
    /// Schedules the end-of-execution notification.
    pub notify: bool,
}

/// Inserts `e`, due for its protection check at once or, with `ended`, already over.
/// `Ok(false)`: the resource has an active execution; nothing was written.
pub(super) async fn insert_execution(
    tx: &mut Transaction<'_, Db>,
    e: &NewExecution,
    ended: Option<Ended<'_>>,
) -> Result<bool, sqlx::Error> {
    let (status, phase, finished_at, next_run_at) = match &ended {
        None => (
            Status::Pending,
            Phase::CheckProtection,
            None,
            Some(e.created_at),
        ),
        Some(end) => (
            end.outcome.status(),
            Phase::Done,
            Some(e.created_at),
            end.notify.then_some(e.created_at),
        ),
    };
    let notify = ended.as_ref().is_some_and(|end| end.notify);
    let inserted = sqlx::query(INSERT)
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
        .bind(status.as_str())
        .bind(ended.as_ref().map(|end| end.outcome.as_str()))
        .bind(ended.as_ref().map(|end| end.reason))
        .bind(phase.as_str())
        .bind(e.event_at)
        .bind(e.created_at)
        .bind(finished_at)
        .bind(e.deadline_at)
        .bind(next_run_at)
        .bind(notify.then_some(NotifyState::Pending.as_str()))
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(inserted == 1)
}

/// Starts `e` unless an execution for the resource is active; either way returns the
/// execution that now handles the resource.
pub(super) async fn start_or_join(
    tx: &mut Transaction<'_, Db>,
    e: &NewExecution,
) -> Result<ExecutionLink, StoreError> {
    // SNS and RDS's event log may both report one forced start.
    if matches!(e.trigger, TriggerKind::Sns | TriggerKind::Catchup)
        && let Some(id) = same_forced_start(tx, e).await?
    {
        return Ok(ExecutionLink {
            id,
            joined: true,
            upgraded: false,
        });
    }
    // Two tries: an active execution may finish between the insert and the lookup.
    for _ in 0..2 {
        if insert_execution(tx, e, None).await? {
            return Ok(ExecutionLink {
                id: e.id.clone(),
                joined: false,
                upgraded: false,
            });
        }
        let active: Option<(String, bool)> = sqlx::query_as(SELECT_ACTIVE)
            .bind(&e.resource.arn)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some((id, rehearsal)) = active {
            let real = !e.dry_run && !e.skip_tag_check;
            let upgraded = rehearsal && real;
            if upgraded {
                upgrade_to_real(tx, &id, e).await?;
            }
            return Ok(ExecutionLink {
                id,
                joined: true,
                upgraded,
            });
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
pub(super) async fn same_forced_start(
    tx: &mut Transaction<'_, Db>,
    e: &NewExecution,
) -> Result<Option<String>, StoreError> {
    let window = chrono::Duration::hours(1);
    Ok(sqlx::query_scalar(SELECT_SAME_FORCED_START)
        .bind(&e.resource.arn)
        .bind(e.event_at - window)
        .bind(e.event_at + window)
        .fetch_optional(&mut **tx)
        .await?)
}

/// A real event for a resource whose active execution is a dry run: that execution
/// becomes a real run (tag checked, stop made), so a real forced start is never swallowed
/// by a rehearsal. A dry run that skipped the tag check had no authority to stop
/// anything: its tag check is made now. Never moved back past the stop. The lease token moves
/// on, so a rehearsal step in flight cannot commit. In Step Functions mode a dry run's
/// state machine run (which never stops anything) is left to end; a real one starts.
async fn upgrade_to_real(
    tx: &mut Transaction<'_, Db>,
    id: &str,
    e: &NewExecution,
) -> Result<(), StoreError> {
    sqlx::query(UPGRADE)
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
        e.message_id
            .as_deref()
            .map(|m| format!("(SNS message {m})"))
            .unwrap_or_default()
    );
    append_step(
        tx,
        id,
        &note_step(e.created_at, "upgrade", action.trim_end()),
    )
    .await?;
    Ok(())
}
