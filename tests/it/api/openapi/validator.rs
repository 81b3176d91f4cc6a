//! The validator (`support::openapi`): what conforms passes, and drift in a body, an
//! undocumented status, content type or header, or an error of another shape is caught.

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::{body, headers, json_headers};
use crate::support::openapi::{assert_conforms, check, match_path, spec};

const EXECUTION_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

fn execution() -> Value {
    json!({
        "id": EXECUTION_ID,
        "resource_type": "db-instance",
        "resource_id": "reports-db",
        "resource_arn": "arn:aws:rds:us-east-1:123456789012:db:reports-db",
        "region": "us-east-1",
        "account_id": "123456789012",
        "trigger": "manual",
        "message_id": null,
        "event_id": null,
        "mode": "internal",
        "dry_run": false,
        "skip_tag_check": false,
        "status": "running",
        "outcome": null,
        "reason": null,
        "phase": "wait_available",
        "sfn_execution_arn": null,
        "created_at": "2026-11-26T07:22:41.245123Z",
        "updated_at": "2026-11-26T07:22:41.302511Z",
        "started_at": "2026-11-26T07:22:41.302511Z",
        "finished_at": null,
        "deadline_at": "2026-11-27T07:22:41.245123Z",
        "next_run_at": "2026-11-26T07:27:41.302511Z",
        "notification": {"state": null, "attempts": 0, "error": null}
    })
}

fn execution_detail() -> Value {
    let mut detail = execution();
    detail["steps"] = json!([{
        "seq": 1,
        "at": "2026-11-26T07:22:41.302511Z",
        "last_at": "2026-11-26T07:22:41.302511Z",
        "repeats": 1,
        "step": "check_protection",
        "rds_status": "starting",
        "action": "check_tag",
        "error": null
    }]);
    detail
}

fn get_execution(value: &Value) -> Result<(), String> {
    check(
        "GET",
        &format!("/v1/executions/{EXECUTION_ID}"),
        200,
        &json_headers(),
        &body(value),
    )
}

#[test]
fn a_valid_execution_detail_conforms() {
    get_execution(&execution_detail()).unwrap();
    assert_conforms(
        "GET",
        &format!("/v1/executions/{EXECUTION_ID}?verbose=1"),
        200,
        &headers(&[("content-type", "application/json; charset=utf-8")]),
        &body(&execution_detail()),
    );
}

#[test]
fn drift_in_an_execution_is_caught() {
    let mut extra = execution_detail();
    extra["owner"] = json!("me");
    let err = get_execution(&extra).unwrap_err();
    assert!(err.contains("owner"), "{err}");

    let mut missing = execution_detail();
    missing.as_object_mut().unwrap().remove("next_run_at");
    let err = get_execution(&missing).unwrap_err();
    assert!(err.contains("next_run_at"), "{err}");

    let mut bad_enum = execution_detail();
    bad_enum["status"] = json!("stopping");
    assert!(get_execution(&bad_enum).is_err());

    let mut bad_outcome = execution_detail();
    bad_outcome["outcome"] = json!("maybe");
    assert!(get_execution(&bad_outcome).is_err());

    let mut bad_time = execution_detail();
    bad_time["created_at"] = json!("yesterday");
    assert!(get_execution(&bad_time).is_err(), "date-time is asserted");

    let mut bad_id = execution_detail();
    bad_id["id"] = json!("42");
    assert!(get_execution(&bad_id).is_err());

    let mut not_nullable = execution_detail();
    not_nullable["deadline_at"] = Value::Null;
    assert!(get_execution(&not_nullable).is_err());

    let mut nested = execution_detail();
    nested["notification"]["extra"] = json!(1);
    assert!(get_execution(&nested).is_err());

    let mut step = execution_detail();
    step["steps"][0]["repeats"] = json!(0);
    assert!(get_execution(&step).is_err());

    // A list item is an Execution: no steps.
    let page = json!({"items": [execution_detail()], "next_cursor": null});
    assert!(check("GET", "/v1/executions", 200, &json_headers(), &body(&page)).is_err());
    let page = json!({"items": [execution()], "next_cursor": "abc"});
    check(
        "GET",
        "/v1/executions?limit=1",
        200,
        &json_headers(),
        &body(&page),
    )
    .unwrap();
}

#[test]
fn an_undocumented_status_is_refused_and_assert_conforms_panics() {
    let err = check(
        "GET",
        "/v1/subscriptions",
        404,
        &json_headers(),
        &body(&json!({"error": {"code": "not_found", "message": "x"}})),
    )
    .unwrap_err();
    assert!(err.contains("404 is not documented"), "{err}");

    let panicked = std::panic::catch_unwind(|| {
        assert_conforms(
            "GET",
            "/healthz",
            500,
            &json_headers(),
            br#"{"error":{"code":"internal","message":"x"}}"#,
        )
    });
    assert!(panicked.is_err());
}

#[test]
fn the_content_type_must_be_documented() {
    let ok = br#"{"status":"ok"}"#;
    check("GET", "/healthz", 200, &json_headers(), ok).unwrap();
    let err = check(
        "GET",
        "/healthz",
        200,
        &headers(&[("content-type", "text/plain")]),
        ok,
    )
    .unwrap_err();
    assert!(err.contains("Content-Type"), "{err}");
    assert!(check("GET", "/healthz", 200, &HeaderMap::new(), ok).is_err());
    assert!(check("GET", "/healthz", 200, &json_headers(), b"ok").is_err());
    assert!(
        check(
            "GET",
            "/healthz",
            200,
            &json_headers(),
            br#"{"status":"up"}"#
        )
        .is_err()
    );

    let metrics = headers(&[("content-type", "text/plain; version=0.0.4")]);
    check("GET", "/metrics", 200, &metrics, b"# TYPE x counter\nx 1\n").unwrap();
    assert!(check("GET", "/metrics", 200, &json_headers(), b"{}").is_err());
}

#[test]
fn required_headers_are_checked() {
    let created = body(&execution_detail());
    let location = format!("/v1/executions/{EXECUTION_ID}");
    check(
        "POST",
        "/v1/executions",
        201,
        &headers(&[
            ("content-type", "application/json"),
            ("location", &location),
        ]),
        &created,
    )
    .unwrap();
    let err = check("POST", "/v1/executions", 201, &json_headers(), &created).unwrap_err();
    assert!(err.contains("Location"), "{err}");
    assert!(
        check(
            "POST",
            "/v1/executions",
            201,
            &headers(&[
                ("content-type", "application/json"),
                ("location", "/elsewhere")
            ]),
            &created,
        )
        .is_err()
    );

    let unauthorized = br#"{"error":{"code":"unauthorized","message":"a token is required"}}"#;
    for path in ["/v1/executions", "/v1/messages/m-1", "/v1/subscriptions"] {
        let err = check("GET", path, 401, &json_headers(), unauthorized).unwrap_err();
        assert!(err.contains("WWW-Authenticate"), "{path}: {err}");
        check(
            "GET",
            path,
            401,
            &headers(&[
                ("content-type", "application/json"),
                ("www-authenticate", "Bearer realm=\"restop\""),
            ]),
            unauthorized,
        )
        .unwrap();
    }
}

#[test]
fn errors_have_exactly_the_error_shape() {
    let not_found = |value: Value| {
        check(
            "GET",
            &format!("/v1/executions/{EXECUTION_ID}"),
            404,
            &json_headers(),
            &body(&value),
        )
    };
    not_found(json!({"error": {"code": "not_found", "message": "no such execution"}})).unwrap();
    assert!(not_found(json!({"error": {"code": "not_found"}})).is_err());
    assert!(not_found(json!({"error": "not_found"})).is_err());
    assert!(not_found(json!({"error": {"code": "Not Found", "message": "x"}})).is_err());
    assert!(
        not_found(json!({"error": {"code": "not_found", "message": "x"}, "status": 404})).is_err()
    );

    let active = |value: Value| {
        check(
            "POST",
            "/v1/executions",
            409,
            &json_headers(),
            &body(&value),
        )
    };
    active(json!({"error": {"code": "execution_active", "message": "busy", "execution_id": EXECUTION_ID}}))
        .unwrap();
    assert!(active(json!({"error": {"code": "execution_active", "message": "busy"}})).is_err());
    // Cancel's 409 carries no execution id.
    let finished = json!({"error": {"code": "execution_finished", "message": "done"}});
    let cancel = format!("/v1/executions/{EXECUTION_ID}/cancel");
    check("POST", &cancel, 409, &json_headers(), &body(&finished)).unwrap();
}

#[test]
fn unknown_routes_and_methods_answer_the_shared_shapes() {
    let not_found = br#"{"error":{"code":"not_found","message":"no such route"}}"#;
    check("GET", "/nowhere", 404, &json_headers(), not_found).unwrap();
    check(
        "DELETE",
        "/v1/executions/x/y/z",
        404,
        &json_headers(),
        not_found,
    )
    .unwrap();
    assert!(check("GET", "/nowhere", 200, &json_headers(), not_found).is_err());

    let not_allowed = br#"{"error":{"code":"method_not_allowed","message":"nope"}}"#;
    let allow = headers(&[("content-type", "application/json"), ("allow", "POST")]);
    check("GET", "/sns", 405, &allow, not_allowed).unwrap();
    check("DELETE", "/v1/executions", 405, &allow, not_allowed).unwrap();
    let err = check("GET", "/sns", 405, &json_headers(), not_allowed).unwrap_err();
    assert!(err.contains("Allow"), "{err}");
    assert!(check("GET", "/sns", 200, &allow, not_allowed).is_err());
}

#[test]
fn paths_match_their_templates() {
    let doc = spec();
    assert_eq!(match_path(doc, "/v1/executions"), Some("/v1/executions"));
    assert_eq!(
        match_path(doc, "/v1/executions?status=running"),
        Some("/v1/executions")
    );
    assert_eq!(
        match_path(doc, "/v1/executions/abc"),
        Some("/v1/executions/{id}")
    );
    assert_eq!(
        match_path(doc, "/v1/executions/abc/cancel"),
        Some("/v1/executions/{id}/cancel")
    );
    assert_eq!(match_path(doc, "/v1/executions/"), None);
    assert_eq!(
        match_path(doc, "/v1/messages/m-1"),
        Some("/v1/messages/{message_id}")
    );
    assert_eq!(match_path(doc, "/sns/"), None);
}

#[test]
fn other_answers_conform() {
    let message = json!({
        "message_id": "m-1",
        "type": "Notification",
        "topic_arn": "arn:aws:sns:us-east-1:123456789012:rds-events",
        "subject": null,
        "message": "{}",
        "sent_at": "2026-11-26T07:22:41.245Z",
        "received_at": "2026-11-26T07:22:41.301882Z",
        "signature_version": "2",
        "disposition": "ignored",
        "disposition_reason": "not an RDS event",
        "event": null,
        "execution_id": null
    });
    check(
        "GET",
        "/v1/messages/m-1",
        200,
        &json_headers(),
        &body(&message),
    )
    .unwrap();
    let page = json!({"items": [message.clone()], "next_cursor": null});
    check("GET", "/v1/messages", 200, &json_headers(), &body(&page)).unwrap();
    let mut leaky = message.clone();
    leaky["subscribe_url"] =
        json!("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription");
    assert!(
        check(
            "GET",
            "/v1/messages/m-1",
            200,
            &json_headers(),
            &body(&leaky)
        )
        .is_err()
    );
    let mut event = message;
    event["event"] = json!({"event_id": "RDS-EVENT-0154", "source_type": "db-instance",
        "source_id": "reports-db", "source_arn": null, "region": "us-east-1",
        "account_id": "123456789012"});
    check(
        "GET",
        "/v1/messages/m-1",
        200,
        &json_headers(),
        &body(&event),
    )
    .unwrap();
    event["event"]["extra"] = json!(true);
    assert!(
        check(
            "GET",
            "/v1/messages/m-1",
            200,
            &json_headers(),
            &body(&event)
        )
        .is_err()
    );

    let subscriptions = json!({"items": [{
        "topic_arn": "arn:aws:sns:us-east-1:123456789012:rds-events",
        "status": "pending_confirmation",
        "subscription_arn": null,
        "last_message_id": "m-1",
        "last_error": null,
        "first_seen_at": "2026-11-20T09:00:02.114400Z",
        "updated_at": "2026-11-20T09:00:02.114400Z",
        "confirmed_at": null,
        "confirmed_with": null
    }]});
    check(
        "GET",
        "/v1/subscriptions",
        200,
        &json_headers(),
        &body(&subscriptions),
    )
    .unwrap();

    let answer = json!({"message_id": "m-1", "disposition": "accepted", "duplicate": false,
        "execution_id": EXECUTION_ID});
    check("POST", "/sns", 200, &json_headers(), &body(&answer)).unwrap();
    let duplicate = json!({"message_id": "m-1", "disposition": "confirmed", "duplicate": true,
        "execution_id": null});
    check("POST", "/sns", 200, &json_headers(), &body(&duplicate)).unwrap();
    let wrong = json!({"message_id": "m-1", "disposition": "done", "duplicate": false,
        "execution_id": null});
    assert!(check("POST", "/sns", 200, &json_headers(), &body(&wrong)).is_err());
    let challenge = headers(&[
        ("content-type", "application/json"),
        (
            "www-authenticate",
            "Basic realm=\"restop\", charset=\"UTF-8\"",
        ),
    ]);
    let unauthorized = br#"{"error":{"code":"unauthorized","message":"x"}}"#;
    check("POST", "/sns", 401, &challenge, unauthorized).unwrap();

    check(
        "GET",
        "/readyz",
        200,
        &json_headers(),
        br#"{"status":"ready"}"#,
    )
    .unwrap();
    let unavailable = br#"{"error":{"code":"storage_unavailable","message":"x"}}"#;
    check("GET", "/readyz", 503, &json_headers(), unavailable).unwrap();
    check("HEAD", "/healthz", 200, &json_headers(), b"").unwrap();
}
