//! `/v1/messages` and `/v1/subscriptions`: what SNS delivered, and the subscriptions it
//! implied. Tokens, SubscribeURLs and UnsubscribeURLs are never stored here or returned.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::query::{Params, page};
use crate::store::{MessageFilter, MessageRecord, Position};

const TYPES: &[&str] = &[
    "Notification",
    "SubscriptionConfirmation",
    "UnsubscribeConfirmation",
];
const DISPOSITIONS: &[&str] = &[
    "accepted",
    "ignored",
    "confirming",
    "confirmed",
    "confirmation_failed",
    "pending_confirmation",
    "unsubscribed",
];

pub async fn list(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let limit = params.limit()?;
    let filter = MessageFilter {
        message_type: params.one_of("type", TYPES)?,
        disposition: params.one_of("disposition", DISPOSITIONS)?,
        topic: params.text("topic"),
        resource: params.text("resource"),
        since: params.time("since")?,
        until: params.time("until")?,
        after: params.cursor()?,
        limit: limit + 1,
    };
    let rows = app
        .store
        .list_messages(&filter)
        .await
        .map_err(ApiError::storage)?;
    let (rows, next_cursor) = page(rows, limit, |m| Position {
        at: m.received_at,
        id: m.message_id.clone(),
    });
    let items: Vec<Value> = rows.iter().map(message_json).collect();
    Ok(Json(json!({"items": items, "next_cursor": next_cursor})))
}

pub async fn show(
    State(app): State<AppState>,
    Path(message_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let message = app
        .store
        .get_message(&message_id)
        .await
        .map_err(ApiError::storage)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no message {message_id}"),
            )
        })?;
    Ok(Json(message_json(&message)))
}

pub async fn subscriptions(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    let rows = app
        .store
        .list_subscriptions()
        .await
        .map_err(ApiError::storage)?;
    let items: Vec<Value> = rows
        .iter()
        .map(|s| {
            json!({
                "topic_arn": s.topic_arn,
                "status": s.status,
                "subscription_arn": s.subscription_arn,
                "last_message_id": s.last_message_id,
                "last_error": s.last_error,
                "first_seen_at": s.first_seen_at,
                "updated_at": s.updated_at,
                "confirmed_at": s.confirmed_at,
            })
        })
        .collect();
    Ok(Json(json!({"items": items})))
}

fn message_json(m: &MessageRecord) -> Value {
    let event = match (
        &m.event_id,
        &m.source_type,
        &m.source_id,
        &m.region,
        &m.account_id,
    ) {
        (Some(event_id), Some(source_type), Some(source_id), Some(region), Some(account)) => {
            json!({
                "event_id": event_id,
                "source_type": source_type,
                "source_id": source_id,
                "source_arn": m.source_arn,
                "region": region,
                "account_id": account,
            })
        }
        _ => Value::Null,
    };
    json!({
        "message_id": m.message_id,
        "type": m.message_type,
        "topic_arn": m.topic_arn,
        "subject": m.subject,
        "message": m.body,
        "sent_at": m.sent_at,
        "received_at": m.received_at,
        "signature_version": m.signature_version,
        "disposition": m.disposition,
        "disposition_reason": m.disposition_reason,
        "event": event,
        "execution_id": m.execution_id,
    })
}
