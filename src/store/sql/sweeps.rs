//! `catchup_sweeps`: RDS's event log, read per account and region for the forced starts
//! SNS did not deliver, and what those reads found.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::executions::{Ended, insert_execution, same_forced_start, start_or_join};
use super::jobs::{append_step, note_step};
use super::{BEGIN_WRITE, CLAIM_LOCK, SqlStore, TEXT_LIST_ROWS, TextList, text_list};
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

/// `(account_id, region)` is one of the places bound as `$1`, a text list of
/// `account/region` (neither an account id nor a region contains a `/`). One parameter
/// whatever the number of places: 500 accounts in 17 regions bound one by one would be
/// 17,000 parameters and an `OR` of 8,500 terms planned at every round, and a few more
/// accounts would pass SQLite's limit of 32,766 parameters.
fn watched() -> String {
    format!("(account_id || '/' || region) IN ({TEXT_LIST_ROWS})")
}

fn place_list(places: &[(String, String)]) -> TextList {
    text_list(
        places
            .iter()
            .map(|(account, region)| format!("{account}/{region}"))
            .collect(),
    )
}

/// The claim of due sweeps among the places bound as `$1`, shaped like the claim of jobs.
static CLAIM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH due AS MATERIALIZED (
             SELECT account_id AS due_account, region AS due_region FROM catchup_sweeps
             WHERE next_run_at <= $3
               AND (lease_expires_at IS NULL OR lease_expires_at < $3)
               AND {}
             ORDER BY next_run_at
             LIMIT $5 {CLAIM_LOCK}
         )
         UPDATE catchup_sweeps SET lease_owner = $2, lease_expires_at = $4,
             lease_token = lease_token + 1
         FROM due WHERE account_id = due_account AND region = due_region
         RETURNING account_id, region, swept_until, failures, lease_token",
        watched()
    )
});

/// The sweeps of places that are not among those bound as `$1`.
static RETIRE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "DELETE FROM catchup_sweeps WHERE NOT {} RETURNING account_id, region",
        watched()
    )
});

#[async_trait]
impl SweepStore for SqlStore {
    async fn ensure_sweeps(
        &self,
        places: &[(String, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // One transaction: on SQLite, thousands of places would otherwise be as many
        // commits, each waiting for the disk.
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        for (account, region) in places {
            sqlx::query(ENSURE)
                .bind(account)
                .bind(region)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn retire_sweeps(
        &self,
        places: &[(String, String)],
    ) -> Result<Vec<(String, String)>, StoreError> {
        let mut retired: Vec<(String, String)> = sqlx::query_as(&RETIRE)
            .bind(place_list(places))
            .fetch_all(&self.pool)
            .await?;
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
        let rows: Vec<SweepRow> = sqlx::query_as(&CLAIM)
            .bind(place_list(places))
            .bind(owner)
            .bind(now)
            .bind(now + lease)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
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
