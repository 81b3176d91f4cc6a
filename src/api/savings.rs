//! `/v1/savings`: what restop kept from running, per database, over a window (the last 30
//! days unless `since` and `until` say otherwise), with an estimate when RESTOP_PRICES
//! knows the database's price. The figures are `crate::savings`'.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::query::Params;
use super::views::{CostView, SavingsDatabaseView, SavingsTotalsView, SavingsView};
use crate::aws::arn::{is_account_id, is_region};
use crate::savings::{Window, compute, default_since};
use crate::store::SavingsFilter;

pub async fn show(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let now = app.clock.now();
    let until = params.time("until")?.unwrap_or(now);
    let since = params
        .time("since")?
        .unwrap_or_else(|| default_since(until));
    // As on the other listings, a window that ends before it starts is empty, not an error.
    let account = params.text("account");
    if let Some(account) = &account
        && !is_account_id(account)
    {
        return Err(invalid("account must be a 12-digit AWS account id"));
    }
    let region = params.text("region");
    if let Some(region) = &region
        && !is_region(region)
    {
        return Err(invalid("region must be an AWS region, e.g. eu-west-1"));
    }
    let (runs, starts) = app
        .store
        .savings_history(&SavingsFilter {
            until,
            account,
            region,
            started_event_ids: app.event_rules.wake_event_ids.clone(),
        })
        .await?;
    let (rows, totals) = compute(
        &runs,
        &starts,
        Window { since, until, now },
        app.prices.as_deref(),
    );
    Ok(Json(SavingsView {
        since,
        until,
        databases: rows
            .into_iter()
            .map(|r| SavingsDatabaseView {
                resource_arn: r.resource.arn,
                resource_id: r.resource.identifier,
                resource_type: r.resource.kind.as_str(),
                account: r.resource.account,
                region: r.resource.region,
                instance_class: r.instance_class,
                instance_count: r.instance_count,
                figures: r.figures,
                estimated_cost_avoided: CostView::usd(r.amount, r.basis),
            })
            .collect(),
        totals: SavingsTotalsView {
            figures: totals.figures,
            estimated_cost_avoided: CostView::usd(totals.amount, totals.basis),
        },
    })
    .into_response())
}

fn invalid(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message)
}
