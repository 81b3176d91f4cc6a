//! The queries, one file per table family, each implementing its trait from `store`.
//!
//! Postgres and SQLite accept the same SQL here (`$n` placeholders, `ON CONFLICT ... DO
//! UPDATE`, partial indexes, `RETURNING`, `UPDATE ... FROM` a materialised CTE), so each
//! statement is written once, as a named constant. sqlx, though, types every query by its
//! database, so this module is compiled once per backend: `postgres.rs` and `sqlite.rs`
//! each include it as their child `sql` (`#[path = "sql/mod.rs"]`), after naming what
//! differs between them:
//! - `Db`, the sqlx database, and `SqlStore`, the store, whose `pool` the queries use;
//! - `BEGIN_WRITE` and `CLAIM_LOCK`, what the two dialects write differently;
//! - `text_list` and `TEXT_LIST_ROWS`, a list bound as one parameter (an array, a JSON
//!   array), and `insert_batch`, the intake's INSERT of one shape for any batch (arrays
//!   on Postgres, fixed-size chunks on SQLite);
//! - `MIGRATOR`, `MIGRATIONS_TABLE_EXISTS` and `connect_to_inspect`, for `open` and
//!   `schema_state`.
//!
//! What does not depend on the backend, the rows and their decoding, is in `store::rows`,
//! compiled once. Plain Rust compiled twice reads better than the alternatives. Functions generic over
//! `sqlx::Database` would repeat a `where` clause for the executor and for every bound
//! type at each function (sqlx's bounds are not implied), and a macro per family would
//! hide its body from rustfmt and most of clippy. The cost in compile time is the same as
//! a macro's: each query is instantiated once per backend either way. (Clippy's
//! `duplicate_mod` is expected on the second inclusion, in `sqlite.rs`.)

mod database;
mod executions;
mod jobs;
mod messages;
mod retention;
mod savings;
mod subscriptions;
mod sweeps;

pub(in crate::store) use database::{open, schema_state};

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, Pool, QueryBuilder};

use super::{
    BEGIN_WRITE, CLAIM_LOCK, Db, MIGRATIONS_TABLE_EXISTS, MIGRATOR, SqlStore, TEXT_LIST_ROWS,
    TextList, connect_to_inspect, insert_batch, text_list,
};
use crate::store::Position;

/// Runs `claim`, a statement that leases up to `$4` rows due at `$2` to `$1` until `$3`.
async fn claim_due<R>(
    pool: &Pool<Db>,
    claim: &str,
    owner: &str,
    now: DateTime<Utc>,
    lease: Duration,
    limit: u32,
) -> Result<Vec<R>, sqlx::Error>
where
    R: for<'r> FromRow<'r, <Db as sqlx::Database>::Row> + Send + Unpin,
{
    sqlx::query_as(claim)
        .bind(owner)
        .bind(now)
        .bind(now + lease)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await
}

/// `AND (a = value OR b = value)`: a resource named by its identifier or its ARN.
fn push_either(q: &mut QueryBuilder<'_, Db>, [a, b]: [&str; 2], value: &str) {
    q.push(format!(" AND ({a} = "))
        .push_bind(value.to_owned())
        .push(format!(" OR {b} = "))
        .push_bind(value.to_owned())
        .push(")");
}

/// The end of a listing ordered newest first by `at`, then `id`: the rows from `since` to
/// before `until`, after the last row of the previous page, `limit` of them.
fn push_page(
    q: &mut QueryBuilder<'_, Db>,
    [at, id]: [&str; 2],
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    after: Option<&Position>,
    limit: u32,
) {
    if let Some(since) = since {
        q.push(format!(" AND {at} >= ")).push_bind(since);
    }
    if let Some(until) = until {
        q.push(format!(" AND {at} < ")).push_bind(until);
    }
    if let Some(p) = after {
        q.push(format!(" AND ({at} < "))
            .push_bind(p.at)
            .push(format!(" OR ({at} = "))
            .push_bind(p.at)
            .push(format!(" AND {id} < "))
            .push_bind(p.id.clone())
            .push("))");
    }
    q.push(format!(" ORDER BY {at} DESC, {id} DESC LIMIT "))
        .push_bind(i64::from(limit));
}
