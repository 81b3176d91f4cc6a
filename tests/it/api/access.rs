//! Who may call `/v1`: a valid bearer token on every route, none when no token is
//! configured; health and metrics stay open; errors share one shape everywhere.

use reqwest::Method;
use serde_json::{Value, json};

use super::api;
use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::{TOKENS, TestApp, config, error_code};

on_both_backends!(
    every_v1_route_needs_a_valid_bearer_token,
    no_configured_token_refuses_everything,
    errors_share_one_shape,
);

async fn every_v1_route_needs_a_valid_bearer_token(db: TestDb) {
    let api = api(&db).await;
    let routes = [
        (Method::GET, "/v1/executions"),
        (Method::POST, "/v1/executions"),
        (
            Method::GET,
            "/v1/executions/00000000-0000-4000-8000-000000000000",
        ),
        (
            Method::POST,
            "/v1/executions/00000000-0000-4000-8000-000000000000/cancel",
        ),
        (Method::GET, "/v1/messages"),
        (Method::GET, "/v1/messages/m-1"),
        (Method::GET, "/v1/subscriptions"),
        (Method::GET, "/v1/savings"),
    ];
    for (method, path) in &routes {
        for token in [None, Some("wrong-token-0123456789"), Some(&TOKENS[0][1..])] {
            let answer = api.call(method.clone(), path, Some(json!({})), token).await;
            assert_eq!(answer.status, 401, "{method} {path} with {token:?}");
            assert_eq!(error_code(&answer.body), "unauthorized");
            assert_eq!(
                answer.headers["www-authenticate"],
                "Bearer realm=\"restop\""
            );
        }
    }
    for token in TOKENS {
        let answer = api
            .call(Method::GET, "/v1/executions", None, Some(token))
            .await;
        assert_eq!(answer.status, 200, "{token}");
    }
    // RFC 9110: the scheme name is case-insensitive.
    for scheme in ["bearer", "BEARER"] {
        let response = api
            .app
            .client
            .get(format!("{}/v1/executions", api.app.base))
            .header("authorization", format!("{scheme} {}", TOKENS[0]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{scheme}");
    }
    // Health and metrics stay open.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            api.call(Method::GET, path, None, None).await.status,
            200,
            "{path}"
        );
    }
}

async fn no_configured_token_refuses_everything(db: TestDb) {
    let mut cfg = config(&db.url, None);
    cfg.api_tokens.0.clear();
    let app = TestApp::spawn(cfg).await;
    for token in [None, Some(TOKENS[0]), Some("")] {
        let mut request = app.client.get(format!("{}/v1/executions", app.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        // The same answer as a wrong token gets: a caller cannot tell that none is configured.
        assert_eq!(
            (error_code(&body), body["error"]["message"].as_str()),
            ("unauthorized", Some("a valid bearer token is required")),
            "{body}"
        );
    }
}

async fn errors_share_one_shape(db: TestDb) {
    let api = api(&db).await;
    let cases = [
        (Method::GET, "/nowhere", 404, "not_found"),
        (Method::GET, "/v1/nowhere", 404, "not_found"),
        (Method::GET, "/ui/%FF", 400, "invalid_parameter"),
        (Method::DELETE, "/healthz", 405, "method_not_allowed"),
        (Method::GET, "/sns", 405, "method_not_allowed"),
        (Method::PUT, "/v1/executions", 405, "method_not_allowed"),
    ];
    for (method, path, status, code) in cases {
        let response = api
            .app
            .client
            .request(method.clone(), format!("{}{path}", api.app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(error_code(&body), code, "{method} {path}");
        assert!(body["error"]["message"].is_string());
    }
}
