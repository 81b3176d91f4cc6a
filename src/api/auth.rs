//! Bearer tokens for `/v1`, compared in constant time.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use openssl::sha::sha256;

use super::AppState;
use super::error::{ApiError, ErrorCode};

pub async fn require_bearer(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        // RFC 9110: scheme names are case-insensitive.
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, token)| token.trim());
    // Every configured token is compared, so timing tells nothing about which one matched.
    let accepted = given.is_some_and(|given| {
        let given = sha256(given.as_bytes());
        app.api_tokens.iter().fold(false, |ok, token| {
            openssl::memcmp::eq(&given, &sha256(token.as_bytes())) | ok
        })
    });
    if accepted {
        return next.run(request).await;
    }
    // The same answer whether or not any token is configured (start-up logs that).
    let mut response =
        ApiError::new(ErrorCode::Unauthorized, "a valid bearer token is required").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"restop\""),
    );
    response
}
