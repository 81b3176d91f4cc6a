//! `catchup_sweeps`: RDS's event log, read per account and region for the forced starts
//! SNS did not deliver, and what those reads found.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::executions::{Ended, insert_execution, same_forced_start, start_or_join};
use super::jobs::{append_step, note_step};
use super::{BEGIN_WRITE, CLAIM_LOCK, SqlStore};
use crate::execution::Outcome;
use crate::store::rows::SweepRow;
use crate::store::{ForcedStart, NewExecution, StoreError, Sweep, SweepStore};

/// A place's sweep, added or made due by `$3` if it is due later.
const ENSURE: &str = "
    INSERT INTO catchup_sweeps (account_id, region, next_run_at)
    VALUES ($1, $2, $3) ON CONFLICT (account_id, region) DO UPDATE
    SET next_run_at = excluded.next_run_at
    WHERE catchup_sweeps.next_run_at > excluded.next_run_at";

const SUCCEEDED: &str = "
    UPDATE catchup_sweeps SET swept_until = $4, failures = 0,
        last_error = NULL, last_success_at = $5, next_run_at = $6,
        lease_owner = NULL, lease_expires_at = NULL
    WHERE account_id = $1 AND region = $2 AND lease_token = $3";

const FAILED: &str = "
    UPDATE catchup_sweeps SET failures = failures + 1, last_error = $4,
        next_run_at = $5, lease_owner = NULL, lease_expires_at = NULL
    WHERE account_id = $1 AND region = $2 AND lease_token = $3";

const RELEASE: &str = "
    UPDATE catchup_sweeps SET lease_owner = NULL, lease_expires_at = NULL,
        lease_token = lease_token + 1
    WHERE lease_owner = $1";

/// `(account_id, region)` is one of `count` places bound from `$first` on, two
/// placeholders each.
fn one_of_places(first: usize, count: usize) -> String {
    if count == 0 {
        return "1 = 0".into();
    }
    let places: Vec<String> = (0..count)
        .map(|i| {
            let account = first + 2 * i;
            format!("(account_id = ${account} AND region = ${})", account + 1)
        })
        .collect();
    format!("({})", places.join(" OR "))
}

/// The claim of due sweeps among `count` places bound from `$5`, shaped like the claim of
/// jobs.
fn claim_sql(count: usize) -> String {
    let watched = one_of_places(5, count);
    format!(
        "WITH due AS MATERIALIZED (
             SELECT account_id AS due_account, region AS due_region FROM catchup_sweeps
             WHERE next_run_at <= $2
               AND (lease_expires_at IS NULL OR lease_expires_at < $2)
               AND {watched}
             ORDER BY next_run_at
             LIMIT $4 {CLAIM_LOCK}
         )
         UPDATE catchup_sweeps SET lease_owner = $1, lease_expires_at = $3,
             lease_token = lease_token + 1
         FROM due WHERE account_id = due_account AND region = due_region
         RETURNING account_id, region, swept_until, failures, lease_token"
    )
}

#[async_trait]
impl SweepStore for SqlStore {
    async fn ensure_sweeps(
        &self,
        places: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for (account, region) in places {
            sqlx::query(ENSURE)
                .bind(account)
                .bind(region)
                .bind(now)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    async fn retire_sweeps(
        &self,
        places: &[(String, String)],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let sql = format!(
            "DELETE FROM catchup_sweeps WHERE NOT {} RETURNING account_id, region",
            one_of_places(1, places.len())
        );
        let mut query = sqlx::query_as(&sql);
        for (account, region) in places {
            query = query.bind(account).bind(region);
        }
        let mut retired: Vec<(String, String)> = query.fetch_all(&self.pool).await?;
        retired.sort();
        Ok(retired)
    }

    async fn claim_sweeps(
        &self,
        owner: &str,
        places: &[(String, String)],
        now: DateTime<Utc>,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Sweep>, StoreError> {
        let sql = claim_sql(places.len());
        let mut query = sqlx::query_as(&sql)
            .bind(owner)
            .bind(now)
            .bind(now + lease)
            .bind(i64::from(limit));
        for (account, region) in places {
            query = query.bind(account).bind(region);
        }
        let rows: Vec<SweepRow> = query.fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(Sweep::from).collect())
    }

    async fn release_sweeps(&self, owner: &str) -> Result<(), StoreError> {
        sqlx::query(RELEASE).bind(owner).execute(&self.pool).await?;
        Ok(())
    }

    async fn complete_sweep(
        &self,
        sweep: &Sweep,
        result: Result<DateTime<Utc>, String>,
        next_run_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let query = match &result {
            Ok(until) => sqlx::query(SUCCEEDED)
                .bind(&sweep.account)
                .bind(&sweep.region)
                .bind(sweep.lease_token)
                .bind(*until)
                .bind(now)
                .bind(next_run_at),
            Err(error) => sqlx::query(FAILED)
                .bind(&sweep.account)
                .bind(&sweep.region)
                .bind(sweep.lease_token)
                .bind(error)
                .bind(next_run_at),
        };
        Ok(query.execute(&self.pool).await?.rows_affected() == 1)
    }

    async fn record_forced_start(
        &self,
        e: &NewExecution,
        ended: Option<(Outcome, &str)>,
        note: &str,
        notify: bool,
    ) -> Result<ForcedStart, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        if let Some(id) = same_forced_start(&mut tx, e).await? {
            return Ok(ForcedStart::Known(id));
        }
        let found = if let Some((outcome, reason)) = ended {
            let ended = Ended {
                outcome,
                reason,
                notify,
            };
            insert_execution(&mut tx, e, Some(ended)).await?;
            ForcedStart::Ended(e.id.clone(), outcome)
        } else {
            let link = start_or_join(&mut tx, e).await?;
            if link.joined {
                tx.commit().await?;
                return Ok(ForcedStart::Known(link.id));
            }
            ForcedStart::New(link.id)
        };
        append_step(&mut tx, &e.id, &note_step(e.created_at, "catchup", note)).await?;
        tx.commit().await?;
        Ok(found)
    }
}
