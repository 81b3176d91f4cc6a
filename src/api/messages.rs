//! `/v1/messages` and `/v1/subscriptions`: what SNS delivered, and the subscriptions it
//! implied. Tokens, SubscribeURLs and UnsubscribeURLs are never stored here or returned.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::query::{Params, PathParam, encode_cursor};
use super::views::{MessageView, Page, SubscriptionList, SubscriptionView};
use crate::execution::{Disposition, MessageType};
use crate::store::{MessageFilter, Position};

/// A page stops growing once its message bodies add up to this much (the `limit` is an
/// upper bound); the next page starts where it stopped. SNS bodies are up to 256 KiB, so
/// 500 of them would otherwise make a response of 128 MiB.
pub const PAGE_BODY_BUDGET: usize = 4 * 1024 * 1024;

/// Rows read from the database at once, so that what is held in memory stays near the
/// budget however large `limit` is.
const BATCH: usize = 25;

pub async fn list(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref())?;
    let limit = params.limit()? as usize;
    let mut filter = MessageFilter {
        message_type: params.one_of::<MessageType>("type")?,
        disposition: params.one_of::<Disposition>("disposition")?,
        topic: params.text("topic"),
        resource: params.text("resource"),
        since: params.time("since")?,
        until: params.time("until")?,
        after: params.cursor()?,
        limit: 0,
    };
    let mut items = Vec::new();
    let mut body_bytes = 0;
    let next_cursor = loop {
        let wanted = (limit - items.len()).min(BATCH);
        filter.limit = wanted as u32 + 1;
        let rows = app.store.list_messages(&filter).await?;
        let more = rows.len() > wanted;
        let mut over_budget = false;
        for row in rows.into_iter().take(wanted) {
            // Always at least one message, however large, so that paging moves on.
            if !items.is_empty() && body_bytes + row.body.len() > PAGE_BODY_BUDGET {
                over_budget = true;
                break;
            }
            body_bytes += row.body.len();
            filter.after = Some(Position {
                at: row.received_at,
                id: row.message_id.clone(),
            });
            items.push(row);
        }
        if over_budget || (more && items.len() == limit) {
            break filter.after.as_ref().map(encode_cursor);
        }
        if !more {
            break None;
        }
    };
    Ok(Json(Page {
        items: items.iter().map(MessageView::from).collect(),
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
