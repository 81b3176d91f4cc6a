//! The layers in front of `POST /sns`: Basic auth when RESTOP_SNS_BASIC_AUTH is set, the
//! announced body size, the body read within [`BODY_READ_TIMEOUT`], and load shedding.

use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use openssl::sha::sha256;

use super::{MAX_BODY_BYTES, refuse};
use crate::api::AppState;
use crate::api::error::{ApiError, ErrorCode};
use crate::config::BasicAuth;
use crate::sns::Rejection;

/// Answers 503 at once when RESTOP_SNS_CONCURRENCY deliveries are already being worked on:
/// SNS delivers the message again later, and restop stays responsive meanwhile. (Never 429:
/// SNS would drop the message.)
pub async fn shed_load(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let Ok(_slot) = app.sns_slots.clone().try_acquire_owned() else {
        tracing::warn!("too many SNS deliveries at once; answering 503 so SNS retries");
        app.metrics.sns_refusal(ErrorCode::Overloaded.as_str());
        return ApiError::new(
            ErrorCode::Overloaded,
            "too many deliveries at once; retry later",
        )
        .into_response();
    };
    next.run(request).await
}

/// SNS sends at most 256 KiB, from AWS's network, in well under a second. A body that
/// takes longer is not SNS's, and a client that sends one byte at a time is not allowed
/// to hold a connection for the whole request deadline.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the whole body (at most one byte more than the limit, so the limit still answers
/// 413) within [`BODY_READ_TIMEOUT`], else answers 503 (SNS delivers again). It runs before
/// [`shed_load`]: a slow upload waits here without holding one of the delivery slots.
pub async fn read_body_promptly(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(BODY_READ_TIMEOUT, read_at_most(body, MAX_BODY_BYTES + 1)).await {
        Ok(Ok(read)) => next.run(Request::from_parts(parts, Body::from(read))).await,
        Ok(Err(e)) => {
            refuse(&app, Rejection::Malformed(format!("unreadable body: {e}"))).into_response()
        }
        Err(_) => {
            tracing::warn!("an SNS request body was not read in time; answering 503");
            app.metrics.sns_refusal(ErrorCode::Timeout.as_str());
            ApiError::new(ErrorCode::Timeout, "the body came too slowly; retry later")
                .into_response()
        }
    }
}

/// The body's bytes, stopping once there are `limit` of them.
async fn read_at_most(mut body: Body, limit: usize) -> Result<Vec<u8>, axum::Error> {
    let mut read = Vec::new();
    while read.len() < limit {
        let Some(frame) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        else {
            break;
        };
        if let Ok(data) = frame?.into_data() {
            read.extend_from_slice(&data);
        }
    }
    read.truncate(limit);
    Ok(read)
}

/// Answers 413 from the Content-Length header alone, instead of reading an upload that
/// can only be refused.
pub async fn refuse_announced_oversize(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return refuse(&app, Rejection::BodyTooLarge(MAX_BODY_BYTES)).into_response();
    }
    next.run(request).await
}

/// Middleware for `/sns` when `RESTOP_SNS_BASIC_AUTH` is set: SNS sends the credentials
/// from the subscription URL after a 401 challenge.
pub async fn require_basic_auth(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &app.basic_auth else {
        return next.run(request).await;
    };
    if basic_auth_matches(request.headers(), expected) {
        return next.run(request).await;
    }
    let mut response = refuse(&app, Rejection::Unauthorized).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"restop\", charset=\"UTF-8\""),
    );
    response
}

fn basic_auth_matches(headers: &HeaderMap, expected: &BasicAuth) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
    else {
        return false;
    };
    let wanted = format!("{}:{}", expected.user, expected.password);
    // Comparing digests keeps the comparison constant-time whatever the lengths.
    openssl::memcmp::eq(&sha256(&given), &sha256(wanted.as_bytes()))
}
