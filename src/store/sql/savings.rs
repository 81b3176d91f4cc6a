//! What `/v1/savings` adds up: executions with the size their database had, and the
//! "started" events that say when a stopped database ran again.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::{Db, SqlStore};
use crate::store::rows::{SavingsRow, decode_all};
use crate::store::{SavingsFilter, SavingsRun, SavingsStore, StartSeen, StoreError};

const RUNS: &str = "
    SELECT resource_arn, trigger, outcome, event_at, finished_at,
        instance_class, engine, multi_az, instance_count
    FROM executions WHERE event_at < ";

const STARTS: &str = "
    SELECT source_arn, sent_at FROM sns_messages
    WHERE source_arn IS NOT NULL AND sent_at < ";

#[async_trait]
impl SavingsStore for SqlStore {
    async fn savings_history(
        &self,
        f: &SavingsFilter,
    ) -> Result<(Vec<SavingsRun>, Vec<StartSeen>), StoreError> {
        let mut q = QueryBuilder::<Db>::new(RUNS);
        q.push_bind(f.until);
        push_place(&mut q, f);
        q.push(" ORDER BY event_at, id");
        let rows: Vec<SavingsRow> = q.build_query_as().fetch_all(&self.pool).await?;
        let runs = decode_all(rows)?;

        if f.started_event_ids.is_empty() {
            return Ok((runs, Vec::new()));
        }
        let mut q = QueryBuilder::<Db>::new(STARTS);
        q.push_bind(f.until);
        push_place(&mut q, f);
        q.push(" AND event_id IN (");
        let mut ids = q.separated(", ");
        for id in &f.started_event_ids {
            ids.push_bind(id.clone());
        }
        q.push(") ORDER BY sent_at");
        let starts: Vec<(String, DateTime<Utc>)> = q.build_query_as().fetch_all(&self.pool).await?;
        Ok((
            runs,
            starts
                .into_iter()
                .map(|(resource_arn, at)| StartSeen { resource_arn, at })
                .collect(),
        ))
    }
}

/// `AND account_id = .. AND region = ..`, for what the filter names; both tables have them.
fn push_place(q: &mut QueryBuilder<'_, Db>, f: &SavingsFilter) {
    if let Some(account) = &f.account {
        q.push(" AND account_id = ").push_bind(account.clone());
    }
    if let Some(region) = &f.region {
        q.push(" AND region = ").push_bind(region.clone());
    }
}
