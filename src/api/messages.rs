//! `/v1/messages` and `/v1/subscriptions`: what SNS delivered, and the subscriptions it
//! implied. Tokens, SubscribeURLs and UnsubscribeURLs are never stored here or returned.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::query::{Params, PathParam, page};
use super::views::{MessageView, Page, SubscriptionList, SubscriptionView};
use crate::execution::{Disposition, MessageType};
use crate::store::{MessageFilter, Position};

pub async fn list(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let limit = params.limit()?;
    let filter = MessageFilter {
        message_type: params.one_of::<MessageType>("type")?,
        disposition: params.one_of::<Disposition>("disposition")?,
        topic: params.text("topic"),
        resource: params.text("resource"),
        since: params.time("since")?,
        until: params.time("until")?,
        after: params.cursor()?,
        limit: limit + 1,
    };
    let rows = app.store.list_messages(&filter).await?;
    let (rows, next_cursor) = page(rows, limit, |m| Position {
        at: m.received_at,
        id: m.message_id.clone(),
    });
    Ok(Json(Page {
        items: rows.iter().map(MessageView::from).collect(),
        next_cursor,
    })
    .into_response())
}

pub async fn show(
    State(app): State<AppState>,
    PathParam(message_id): PathParam<String>,
) -> Result<Response, ApiError> {
    let message =
        app.store.get_message(&message_id).await?.ok_or_else(|| {
            ApiError::new(ErrorCode::NotFound, format!("no message {message_id}"))
        })?;
    Ok(Json(MessageView::from(&message)).into_response())
}

pub async fn subscriptions(State(app): State<AppState>) -> Result<Response, ApiError> {
    let rows = app.store.list_subscriptions().await?;
    Ok(Json(SubscriptionList {
        items: rows.iter().map(SubscriptionView::from).collect(),
    })
    .into_response())
}
