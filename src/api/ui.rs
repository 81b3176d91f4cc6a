//! The operator console: a static page over the `/v1` API, embedded in the binary.
//!
//! `/ui` is the page and `/ui/<asset>` its script, style sheet and icon; `/` redirects to
//! `/ui`. None of it needs a token: the page is the same for everyone, and everything it
//! shows comes from `/v1` with the token the operator pastes in. Every answer carries
//! strict headers: the page may load only its own assets and talk only to its own origin,
//! and may not be framed.

use axum::Router;

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::query::PathParam;

/// No inline script or style anywhere: the page builds its DOM with `createElement` and
/// styles it with classes from `console.css`.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

const PAGE: &str = include_str!("../../ui/index.html");

/// The files under `/ui/`, by name.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../ui/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../ui/console.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("../../ui/favicon.svg"),
    ),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(to_console))
        .route("/ui", get(page))
        .route("/ui/{*name}", get(asset))
        .layer(axum::middleware::map_response(security_headers))
}

/// `303 See Other`: not cached as permanent, so `/` may mean something else one day.
async fn to_console() -> Redirect {
    Redirect::to("/ui")
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

async fn asset(PathParam(name): PathParam<String>) -> Result<Response, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(known, _, _)| *known == name)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such file"))?;
    Ok(([(header::CONTENT_TYPE, *content_type)], *body).into_response())
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Always revalidated: a new restop version is picked up on the next load.
        (header::CACHE_CONTROL, "no-cache"),
        // A window the console opens (none today) could not reach back into it.
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
