//! The HTTP surface: one router, one cheap shared state, cross-cutting layers in one place.

mod auth;
mod error;
mod executions;
mod health;
mod messages;
pub(crate) mod query;
mod savings;
mod sns;
mod summary;
mod ui;
mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::extract::{DefaultBodyLimit, MatchedPath, State};
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::aws::Aws;
use crate::clock::Clock;
use crate::config::BasicAuth;
use crate::engine::{Launcher, Notifier, Wakeups};
use crate::metrics::{DatabaseFacts, Metrics};
use crate::rds::classify::EventRules;
use crate::sns::verify::Verifier;
use crate::store::{Intake, Store};

pub use error::{ApiError, ErrorCode};

/// Everything a handler needs; cloned per request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Arc<dyn Store>,
    /// Group commit for SNS messages that are only recorded.
    pub intake: Intake,
    pub verifier: Verifier,
    /// For subscription confirmations: no redirects, short timeouts.
    pub http: reqwest::Client,
    pub auto_confirm: bool,
    pub basic_auth: Option<BasicAuth>,
    /// What an RDS event means: acted on, a wake-up, or ignored.
    pub event_rules: EventRules,
    /// Carries out the wake-ups that "started" events ask for.
    pub wakeups: Wakeups,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    pub launcher: Launcher,
    /// For manual triggers named by identifier.
    pub aws: Arc<dyn Aws>,
    /// For operator events that belong to no execution (an unsubscription).
    pub notifier: Option<Notifier>,
    /// One permit per delivery /sns works on at once (RESTOP_SNS_CONCURRENCY).
    pub sns_slots: Arc<tokio::sync::Semaphore>,
    /// Bearer tokens for /v1; empty refuses every /v1 request.
    pub api_tokens: Vec<String>,
    /// RESTOP_PRICES, for `/v1/savings`' estimates.
    pub prices: Option<Arc<crate::prices::Prices>>,
    /// `/readyz`'s database ping, shared by concurrent probes.
    pub readiness: health::SingleFlight<bool>,
    /// `/metrics`' database gauges (and when they were read), shared by concurrent scrapes.
    pub gauges: health::SingleFlight<Option<(DatabaseFacts, DateTime<Utc>)>>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// SNS waits 15 s for an answer; no request should outlive that. A request cut short
/// answers 503, so SNS delivers again.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(14);

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The routers of one restop: everything on the main listener, and `/metrics` on a
/// listener of its own when `RESTOP_METRICS_LISTEN` is set.
pub struct Routers {
    pub main: Router,
    pub metrics: Option<Router>,
}

pub fn routers(shared: Shared, metrics_apart: bool) -> Routers {
    shared
        .metrics
        .expect_refusals(ErrorCode::SNS_REFUSALS.iter().map(|code| code.as_str()));
    shared.metrics.expect_topics(
        shared
            .verifier
            .allowed_topics
            .iter()
            .map(|topic| topic.as_str()),
    );
    let state = AppState(Arc::new(shared));
    if metrics_apart {
        let metrics = Router::new()
            .route("/metrics", get(health::metrics))
            .fallback(error::not_found)
            .with_state(state.clone());
        Routers {
            main: router(state, false),
            metrics: Some(metrics),
        }
    } else {
        Routers {
            main: router(state, true),
            metrics: None,
        }
    }
}

fn router(state: AppState, with_metrics: bool) -> Router {
    // Layers run bottom-up: authentication first, then the announced length, then the body
    // read in full within a short time, then a free slot (load shedding), then the limit
    // on what was read. A slow or unauthenticated upload never holds a slot.
    let sns = post(sns::receive)
        .layer(DefaultBodyLimit::max(sns::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            sns::guard::shed_load,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            sns::guard::read_body_promptly,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            sns::guard::refuse_announced_oversize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            sns::guard::require_basic_auth,
        ));
    let v1 = Router::new()
        .route(
            "/executions",
            get(executions::list).post(executions::create),
        )
        .route("/executions/{id}", get(executions::show))
        .route("/executions/{id}/cancel", post(executions::cancel))
        .route("/messages", get(messages::list))
        .route("/messages/{message_id}", get(messages::show))
        .route("/subscriptions", get(messages::subscriptions))
        .route("/summary", get(summary::show))
        .route("/savings", get(savings::show))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_bearer,
        ));
    let mut routes = Router::new()
        .nest("/v1", v1)
        .route("/sns", sns)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(ui::routes());
    if with_metrics {
        routes = routes.route("/metrics", get(health::metrics));
    }
    routes
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            record_duration,
        ))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(state.clone())
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|request: &Request| {
                            let request_id = request
                                .headers()
                                .get(REQUEST_ID)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default();
                            tracing::info_span!(
                                "request",
                                method = %request.method(),
                                path = request.uri().path(),
                                request_id
                            )
                        })
                        .on_response(log_response),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(axum::middleware::from_fn(deadline)),
        )
}

/// Marks a response whose handler has logged the request already, with more to say than
/// the status: a delivery to `/sns` then makes one log line at `info`, not two (logging
/// is a sixth of the work of a delivery).
#[derive(Clone, Copy)]
pub struct Logged;

/// One line per finished request, unless its handler wrote one ([`Logged`]).
fn log_response(response: &Response, latency: Duration, _span: &tracing::Span) {
    if response.extensions().get::<Logged>().is_none() {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = latency.as_millis() as u64,
            "finished processing request"
        );
    }
}

/// Ends a request that runs past [`REQUEST_TIMEOUT`] with a 503 in the usual error shape.
async fn deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("request timed out");
            ApiError::new(ErrorCode::Timeout, "the request took too long; retry later")
                .into_response()
        }
    }
}

/// Times every request into the duration histogram, labelled by route template so that
/// ids in paths do not make new series.
async fn record_duration(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    app.metrics.http_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
