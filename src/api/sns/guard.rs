//! The layers in front of `POST /sns`: load shedding, the announced body size, and Basic
//! auth when RESTOP_SNS_BASIC_AUTH is set.

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
