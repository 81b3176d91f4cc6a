//! `/v1/summary`: what the console shows at the top. How executions ended over the last
//! 7 and 30 days, how many are active now, and the recent failures someone should look at.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};

use super::AppState;
use super::error::ApiError;
use super::views::{ExecutionView, SummaryView, SummaryWindowView};
use crate::execution::{Outcome, Status};
use crate::store::{ExecutionFilter, SummaryCount};

/// The windows, in days, shortest first.
const WINDOWS: [i64; 2] = [7, 30];
/// How many failures `attention` lists at most.
const ATTENTION: u32 = 10;

pub async fn show(State(app): State<AppState>) -> Result<Response, ApiError> {
    let now = app.clock.now();
    let [short, long] = WINDOWS.map(|days| now - TimeDelta::days(days));
    let counts = app.store.summarize_executions(short, long).await?;
    let failed = app
        .store
        .list_executions(&ExecutionFilter {
            status: Some(Status::Failed),
            since: Some(short),
            limit: ATTENTION,
            ..ExecutionFilter::default()
        })
        .await?;
    Ok(Json(SummaryView {
        generated_at: now,
        windows: [
            window(WINDOWS[0], short, &counts, |c| c.short_window),
            window(WINDOWS[1], long, &counts, |c| c.long_window),
        ],
        active: counts.iter().map(|c| c.active).sum(),
        attention: failed.iter().map(ExecutionView::from).collect(),
    })
    .into_response())
}

/// One window's counts, with every status and outcome present (zero when none).
fn window(
    days: i64,
    since: DateTime<Utc>,
    counts: &[SummaryCount],
    count: impl Fn(&SummaryCount) -> i64,
) -> SummaryWindowView {
    let mut by_status: BTreeMap<Status, i64> = Status::ALL.iter().map(|s| (*s, 0)).collect();
    let mut by_outcome: BTreeMap<Outcome, i64> = Outcome::ALL.iter().map(|o| (*o, 0)).collect();
    for c in counts {
        let n = count(c);
        *by_status.entry(c.status).or_default() += n;
        if let Some(outcome) = c.outcome {
            *by_outcome.entry(outcome).or_default() += n;
        }
    }
    SummaryWindowView {
        days,
        since,
        total: by_status.values().sum(),
        by_outcome,
        by_status,
    }
}
