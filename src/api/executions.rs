//! `/v1/executions`: the history of protection runs, manual triggers and cancellation.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::query::{Params, PathParam, page};
use super::views::{ExecutionDetailView, ExecutionView, Page, StepView};
use crate::aws::arn::{ResourceArn, ResourceKind, is_region, validate_identifier};
use crate::aws::{AwsFailure, in_request};
use crate::engine::Trigger;
use crate::execution::{Outcome, Status, TriggerKind};
use crate::store::{Cancelled, Execution, ExecutionFilter, Position, Step};

pub async fn list(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let limit = params.limit()?;
    let filter = ExecutionFilter {
        resource: params.text("resource"),
        status: params.one_of::<Status>("status")?,
        outcome: params.one_of::<Outcome>("outcome")?,
        trigger: params.one_of::<TriggerKind>("trigger")?,
        since: params.time("since")?,
        until: params.time("until")?,
        after: params.cursor()?,
        limit: limit + 1,
    };
    let rows = app.store.list_executions(&filter).await?;
    let (rows, next_cursor) = page(rows, limit, |e| Position {
        at: e.created_at,
        id: e.id.clone(),
    });
    Ok(Json(Page {
        items: rows.iter().map(ExecutionView::from).collect(),
        next_cursor,
    })
    .into_response())
}

pub async fn show(
    State(app): State<AppState>,
    PathParam(id): PathParam<String>,
) -> Result<Response, ApiError> {
    let (execution, steps) = find(&app, &id).await?;
    Ok(Json(detail(&execution, &steps)).into_response())
}

/// How an operator names the resource to protect. A key may be left out; `null` is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    #[serde(default, deserialize_with = "present")]
    resource_arn: Option<String>,
    #[serde(default, deserialize_with = "present")]
    db_instance_identifier: Option<String>,
    #[serde(default, deserialize_with = "present")]
    db_cluster_identifier: Option<String>,
    #[serde(default, deserialize_with = "present")]
    region: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    skip_tag_check: bool,
}

/// For a key that, when present, must hold a string (absent keys fall back to `None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message)
}

pub async fn create(
    State(app): State<AppState>,
    body: Result<Json<TriggerRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body.map_err(|rejection| match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the request body as application/json",
        ),
        other => bad_request(other.body_text()),
    })?;
    let resource = resolve(&app, &request).await?;
    let now = app.clock.now();
    let execution = app.launcher.execution(
        &resource,
        Trigger {
            kind: TriggerKind::Manual,
            message_id: None,
            event_id: None,
            event_at: now,
            dry_run: request.dry_run,
            skip_tag_check: request.skip_tag_check,
        },
        now,
    );
    let link = app.store.start_execution(&execution).await?;
    if link.upgraded {
        // The active dry run is now this real run: answer with it, not with a conflict.
        tracing::info!(execution_id = %link.id, resource = %resource.arn, "manual trigger upgraded the active dry run");
        app.launcher.wake();
        let (execution, steps) = find(&app, &link.id).await?;
        return Ok((StatusCode::OK, Json(detail(&execution, &steps))).into_response());
    }
    if link.joined {
        let mut error = ApiError::new(
            ErrorCode::ExecutionActive,
            format!(
                "execution {} is already active for {}",
                link.id, resource.arn
            ),
        );
        error.execution_id = Some(link.id);
        return Err(error);
    }
    tracing::info!(execution_id = %link.id, resource = %resource.arn, "manual execution started");
    app.launcher.wake();
    let (execution, steps) = find(&app, &link.id).await?;
    let location =
        HeaderValue::from_str(&format!("/v1/executions/{}", link.id)).expect("uuid is ASCII");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(detail(&execution, &steps)),
    )
        .into_response())
}

/// The resource a trigger request names, validated, and looked up when named by identifier.
async fn resolve(app: &AppState, r: &TriggerRequest) -> Result<ResourceArn, ApiError> {
    let named = [
        &r.resource_arn,
        &r.db_instance_identifier,
        &r.db_cluster_identifier,
    ];
    if named.iter().filter(|n| n.is_some()).count() != 1 {
        return Err(bad_request(
            "name the resource with exactly one of resource_arn, db_instance_identifier, db_cluster_identifier",
        ));
    }
    if let Some(arn) = &r.resource_arn {
        if r.region.is_some() {
            return Err(bad_request(
                "region comes from resource_arn; do not give both",
            ));
        }
        let resource: ResourceArn = arn.parse().map_err(bad_request)?;
        return match app.aws.acts_in(&resource.account).await {
            Ok(true) => Ok(resource),
            Ok(false) => Err(ApiError::new(
                ErrorCode::AccountNotAllowed,
                format!(
                    "account {} is neither restop's own nor in RESTOP_ACCOUNTS",
                    resource.account
                ),
            )),
            Err(e) => Err(aws_unavailable(
                e,
                "could not tell which accounts restop acts in",
            )),
        };
    }
    let (kind, identifier) = match (&r.db_instance_identifier, &r.db_cluster_identifier) {
        (Some(id), _) => (ResourceKind::DbInstance, id),
        (_, Some(id)) => (ResourceKind::DbCluster, id),
        _ => unreachable!("exactly one name was checked above"),
    };
    validate_identifier(identifier).map_err(bad_request)?;
    let region = r
        .region
        .as_deref()
        .ok_or_else(|| bad_request("region is required with an identifier"))?;
    if !is_region(region) {
        return Err(bad_request(format!("'{region}' is not an AWS region")));
    }
    // An identifier names a database of restop's own account. Both calls are given up
    // after IN_REQUEST_TIMEOUT (STS slow, RDS slow or its request budget spent): the
    // operator hears a 503 well before the request deadline.
    let account = in_request(app.aws.own_account())
        .await
        .map_err(|e| aws_unavailable(e, "could not tell restop's own account"))?;
    let arn = in_request(app.aws.resource_arn(&account, kind, region, identifier))
        .await
        .map_err(|failure| match failure {
            AwsFailure::NotFound => ApiError::new(
                ErrorCode::ResourceNotFound,
                format!("no {kind} {identifier} in {region}"),
            ),
            other => aws_unavailable(
                other,
                &format!("could not ask RDS for {kind} {identifier} in {region}"),
            ),
        })?;
    arn.parse().map_err(|e: String| {
        ApiError::new(
            ErrorCode::AwsUnavailable,
            format!("RDS answered an unexpected ARN: {e}"),
        )
    })
}

/// AWS could not answer a question the request needs: 503, so the caller tries again.
fn aws_unavailable(failure: AwsFailure, what: &str) -> ApiError {
    tracing::warn!(error = %failure, "{what}");
    ApiError::new(ErrorCode::AwsUnavailable, format!("{what}; retry later"))
}

pub async fn cancel(
    State(app): State<AppState>,
    PathParam(id): PathParam<String>,
) -> Result<Response, ApiError> {
    let result = app
        .store
        .cancel_execution(&id, app.clock.now(), app.launcher.notify)
        .await?;
    match result {
        Cancelled::Cancelled => {
            tracing::info!(execution_id = %id, "execution cancelled by an operator");
            app.metrics.execution_finished(Outcome::Cancelled);
            let (execution, steps) = find(&app, &id).await?;
            Ok(Json(detail(&execution, &steps)).into_response())
        }
        Cancelled::AlreadyFinished => Err(ApiError::new(
            ErrorCode::ExecutionFinished,
            format!("execution {id} has already ended"),
        )),
        Cancelled::NotFound => Err(not_found(&id)),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no execution {id}"))
}

async fn find(app: &AppState, id: &str) -> Result<(Execution, Vec<Step>), ApiError> {
    app.store
        .get_execution(id)
        .await?
        .ok_or_else(|| not_found(id))
}

fn detail<'a>(execution: &'a Execution, steps: &'a [Step]) -> ExecutionDetailView<'a> {
    ExecutionDetailView {
        execution: ExecutionView::from(execution),
        steps: steps.iter().map(StepView::from).collect(),
    }
}
