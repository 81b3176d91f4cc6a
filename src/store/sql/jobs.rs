//! Executions as the engine works them: due ones leased as jobs, one step at a time, and
//! `execution_steps`, what each step did. A job is written only while its lease token is
//! current, so a step taken over or cancelled meanwhile cannot commit.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Executor, Transaction};

use super::{BEGIN_WRITE, CLAIM_LOCK, Db, SqlStore, claim_due};
use crate::execution::{NotifyState, Outcome};
use crate::store::rows::{JobRow, decode_jobs, job_columns, stored_count};
use crate::store::{Claim, Job, JobStore, JobUpdate, NewStep, Step, StoreError};

/// The executions waiting for a status, described together.
const POLLS: &str =
    "phase IN ('wait_available', 'wait_stopped') AND status IN ('pending', 'running')";

/// The claim of due jobs of one kind. The shape of the well-known Postgres queues: pick due
/// rows in a CTE (locked and skipped by concurrent claims on Postgres), lease them in the
/// same statement.
fn claim_sql(claim: Claim) -> String {
    let kind = match claim {
        Claim::Polls => POLLS.to_owned(),
        Claim::Steps => format!("NOT ({POLLS})"),
    };
    format!(
        "WITH due AS MATERIALIZED (
             SELECT id AS due_id FROM executions
             WHERE next_run_at <= $2
               AND (lease_expires_at IS NULL OR lease_expires_at < $2)
               AND {kind}
             ORDER BY next_run_at
             LIMIT $4 {CLAIM_LOCK}
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
         RETURNING {}",
        job_columns!()
    )
}

/// One job leased again, if it is due and not leased.
const CLAIM_ONE: &str = concat!(
    "UPDATE executions SET lease_owner = $2, lease_expires_at = $4,
         lease_token = lease_token + 1, attempts = attempts + 1, updated_at = $3
     WHERE id = $1 AND next_run_at <= $3
       AND (lease_expires_at IS NULL OR lease_expires_at < $3)
     RETURNING ",
    job_columns!()
);

const STOP_INTENT: &str = "
    UPDATE executions SET stop_requested_at = $3, updated_at = $3
    WHERE id = $1 AND lease_token = $2";

// A wake-up that came while the step ran (more wakes than the job was claimed with) still
// makes the next poll happen at once.
const COMPLETE: &str = "
    UPDATE executions SET status = $3, outcome = $4, reason = $5, phase = $6,
        retries = $7, sfn_execution_arn = $8, finished_at = $9,
        notify_state = $10, notify_attempts = $11, notify_error = $12,
        next_run_at = CASE WHEN wakes > $16 AND $6 IN ('wait_available', 'wait_stopped')
            THEN $14 ELSE $13 END,
        wake_polls = CASE WHEN wakes > $16 AND $6 = 'wait_available' THEN 1 ELSE $17 END,
        updated_at = $14, stop_refusals = $15, attempts = 0,
        lease_owner = NULL, lease_expires_at = NULL
    WHERE id = $1 AND lease_token = $2";

/// What the step's Describe said of the database's size (the latest answer wins: an Aurora
/// cluster's members at the time).
const SIZING: &str = "
    UPDATE executions SET instance_class = $2, engine = $3, multi_az = $4, instance_count = $5
    WHERE id = $1";

const RELEASE: &str = "
    UPDATE executions SET lease_owner = NULL, lease_expires_at = NULL,
        lease_token = lease_token + 1,
        attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END
    WHERE lease_owner = $1";

const STOP_SEEN: &str = "
    SELECT COUNT(*) FROM execution_steps
    WHERE execution_id = $1 AND step = 'wait_stopped' AND rds_status IN ('stopping', 'stopped')";

/// The same observation as the last step extends that row instead of adding one.
const REPEAT_STEP: &str = "
    UPDATE execution_steps SET repeats = repeats + 1, last_at = $2
    WHERE execution_id = $1
      AND seq = (SELECT MAX(seq) FROM execution_steps WHERE execution_id = $1)
      AND step = $3 AND action = $4
      AND rds_status IS NOT DISTINCT FROM $5 AND error IS NOT DISTINCT FROM $6";

/// The next step of an execution's history.
const INSERT_STEP: &str = "
    INSERT INTO execution_steps (execution_id, seq, at, last_at, step, rds_status, action, error)
    SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $2, $3, $4, $5, $6
    FROM execution_steps WHERE execution_id = $1";

const SELECT_STEPS: &str = "
    SELECT seq, at, last_at, repeats, step, rds_status, action, error
    FROM execution_steps WHERE execution_id = $1 ORDER BY seq";

#[async_trait]
impl JobStore for SqlStore {
    async fn claim_jobs(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
        claim: Claim,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        let rows: Vec<JobRow> =
            claim_due(&self.pool, &claim_sql(claim), owner, now, lease, limit).await?;
        Ok(decode_jobs(rows))
    }

    async fn claim_job(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        let row: Option<JobRow> = sqlx::query_as(CLAIM_ONE)
            .bind(id)
            .bind(owner)
            .bind(now)
            .bind(now + lease)
            .fetch_optional(&self.pool)
            .await?;
        Ok(decode_jobs(row.into_iter().collect()).pop())
    }

    async fn record_stop_intent(&self, job: &Job, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let fenced = sqlx::query(STOP_INTENT)
            .bind(&job.id)
            .bind(job.lease_token)
            .bind(at)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1;
        Ok(fenced)
    }

    async fn release_jobs(&self, owner: &str) -> Result<u64, StoreError> {
        let released = sqlx::query(RELEASE).bind(owner).execute(&self.pool).await?;
        Ok(released.rows_affected())
    }

    async fn saw_stop_take_effect(&self, id: &str) -> Result<bool, StoreError> {
        let seen: i64 = sqlx::query_scalar(STOP_SEEN)
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(seen > 0)
    }

    async fn complete_step(
        &self,
        job: &Job,
        step: &NewStep,
        u: &JobUpdate,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let fenced = sqlx::query(COMPLETE)
            .bind(&job.id)
            .bind(job.lease_token)
            .bind(u.status.as_str())
            .bind(u.outcome.map(Outcome::as_str))
            .bind(&u.reason)
            .bind(u.phase.as_str())
            .bind(stored_count(u.retries))
            .bind(&u.sfn_execution_arn)
            .bind(u.finished_at)
            .bind(u.notify_state.map(NotifyState::as_str))
            .bind(stored_count(u.notify_attempts))
            .bind(&u.notify_error)
            .bind(u.next_run_at)
            .bind(step.at)
            .bind(stored_count(u.stop_refusals))
            .bind(stored_count(job.wakes))
            .bind(stored_count(u.wake_polls))
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !fenced {
            return Ok(false);
        }
        if let Some(sizing) = &u.sizing {
            sqlx::query(SIZING)
                .bind(&job.id)
                .bind(&sizing.instance_class)
                .bind(&sizing.engine)
                .bind(sizing.multi_az)
                .bind(stored_count(sizing.instance_count))
                .execute(&mut *tx)
                .await?;
        }
        let repeated = sqlx::query(REPEAT_STEP)
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
            append_step(&mut tx, &job.id, step).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// A step restop notes itself, with no observation of RDS and no error.
pub(super) fn note_step(at: DateTime<Utc>, step: &str, action: &str) -> NewStep {
    NewStep {
        at,
        step: step.to_owned(),
        rds_status: None,
        action: action.to_owned(),
        error: None,
    }
}

/// Appends `step` to the history of execution `id`.
pub(super) async fn append_step(
    tx: &mut Transaction<'_, Db>,
    id: &str,
    step: &NewStep,
) -> Result<(), sqlx::Error> {
    sqlx::query(INSERT_STEP)
        .bind(id)
        .bind(step.at)
        .bind(&step.step)
        .bind(&step.rds_status)
        .bind(&step.action)
        .bind(&step.error)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The history of execution `id`, oldest step first.
pub(super) async fn steps_of<'e>(
    executor: impl Executor<'e, Database = Db>,
    id: &str,
) -> Result<Vec<Step>, sqlx::Error> {
    sqlx::query_as(SELECT_STEPS)
        .bind(id)
        .fetch_all(executor)
        .await
}
