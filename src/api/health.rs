//! Liveness, readiness and metrics: no authentication.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;
use super::error::ApiError;
use crate::metrics::DatabaseFacts;

const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The body of `/healthz` and `/readyz`.
#[derive(serde::Serialize)]
pub struct Health {
    status: &'static str,
}

/// 200 while the process runs.
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// 200 when the database answers, 503 otherwise.
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Health>, ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, app.store.ping()).await {
        Ok(Ok(())) => Ok(Json(Health { status: "ready" })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: database ping failed");
            Err(ApiError::storage_unavailable())
        }
        Err(_) => {
            tracing::warn!("not ready: database ping timed out");
            Err(ApiError::storage_unavailable())
        }
    }
}

/// Prometheus text. Execution and subscription gauges come from the database; when it does
/// not answer in time they are left out rather than failing the scrape.
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let now = app.clock.now();
    let read = async {
        Ok::<_, crate::store::StoreError>(DatabaseFacts {
            executions: app.store.execution_stats(now).await?,
            subscriptions: app
                .store
                .list_subscriptions()
                .await?
                .into_iter()
                .map(|s| (s.topic_arn, s.status))
                .collect(),
        })
    };
    let facts = match tokio::time::timeout(READY_TIMEOUT, read).await {
        Ok(Ok(facts)) => Some(facts),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: database gauges unavailable");
            None
        }
        Err(_) => {
            tracing::warn!("metrics: database gauges timed out");
            None
        }
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(facts, now),
    )
}
