//! Liveness, readiness and metrics: no authentication, so anyone who reaches the main
//! listener can call them as often as they like. Their database reads are therefore shared
//! ([`SingleFlight`]): however many requests arrive at once, `/readyz` and `/metrics` each
//! hold at most one pooled connection, and the rest of the pool stays with `/sns`, the
//! engine and the catch-up.

use std::future::Future;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};

use super::AppState;
use super::error::ApiError;
use crate::metrics::DatabaseFacts;
use crate::savings::{self, Window};
use crate::store::SavingsFilter;

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

/// One read at a time, shared by every request that arrives while it runs.
///
/// A request takes the result of a read that started after the request arrived, or else
/// starts one itself once the read in flight is over: answers are never older than their
/// request (so nothing is cached between scrapes), and a flood of requests makes one read
/// after the other, never many at once.
#[derive(Default)]
pub struct SingleFlight<T> {
    last: tokio::sync::Mutex<Option<(Instant, T)>>,
}

impl<T: Clone> SingleFlight<T> {
    pub async fn read<F: Future<Output = T>>(&self, read: impl FnOnce() -> F) -> T {
        let asked = Instant::now();
        let mut last = self.last.lock().await;
        if let Some((started, value)) = &*last
            && *started >= asked
        {
            return value.clone();
        }
        let started = Instant::now();
        let value = read().await;
        *last = Some((started, value.clone()));
        value
    }
}

/// 200 when the database answers, 503 otherwise.
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Health>, ApiError> {
    let ping = || async {
        match tokio::time::timeout(READY_TIMEOUT, app.store.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "not ready: database ping failed");
                false
            }
            Err(_) => {
                tracing::warn!("not ready: database ping timed out");
                false
            }
        }
    };
    if app.readiness.read(ping).await {
        Ok(Json(Health { status: "ready" }))
    } else {
        Err(ApiError::storage_unavailable())
    }
}

/// Prometheus text. Execution and subscription gauges, and the savings counters, come from
/// the database; when it does not answer in time they are left out rather than failing the
/// scrape.
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let gauges = || async {
        let now = app.clock.now();
        let read = async {
            let (runs, starts) = app
                .store
                .savings_history(&SavingsFilter {
                    until: now,
                    started_event_ids: app.event_rules.wake_event_ids.clone(),
                    ..SavingsFilter::default()
                })
                .await?;
            let all_time = Window {
                since: DateTime::<Utc>::MIN_UTC,
                until: now,
                now,
            };
            let (_, savings) = savings::compute(&runs, &starts, all_time, None);
            Ok::<_, crate::store::StoreError>(DatabaseFacts {
                executions: app.store.execution_stats(now).await?,
                subscriptions: app
                    .store
                    .list_subscriptions()
                    .await?
                    .into_iter()
                    .map(|s| (s.topic_arn, s.status))
                    .collect(),
                held_stopped_seconds: savings.figures.held_stopped_seconds,
                forced_start_running_seconds: savings.figures.running_seconds,
            })
        };
        match tokio::time::timeout(READY_TIMEOUT, read).await {
            Ok(Ok(facts)) => Some((facts, now)),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "metrics: database gauges unavailable");
                None
            }
            Err(_) => {
                tracing::warn!("metrics: database gauges timed out");
                None
            }
        }
    };
    let facts = app.gauges.read(gauges).await;
    // The overdue gauges compare with the time of the read that filled them.
    let now = facts
        .as_ref()
        .map_or_else(|| app.clock.now(), |(_, at)| *at);
    let facts = facts.map(|(facts, _)| facts);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(facts, now),
    )
}
