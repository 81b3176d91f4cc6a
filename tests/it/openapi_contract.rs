//! `openapi.yaml` itself, and the validator the other tests check answers with.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::support::openapi::{
    assert_conforms, check, match_path, operations, resolve, resolve_ref, spec, validate,
};

const EXECUTION_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn json_headers() -> HeaderMap {
    headers(&[("content-type", "application/json")])
}

fn body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

fn component(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

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

/// Every value under `value` that is an object, with its JSON pointer.
fn walk<'a>(pointer: String, value: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            out.push((pointer.clone(), value));
            for (key, child) in map {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                walk(format!("{pointer}/{escaped}"), child, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk(format!("{pointer}/{i}"), child, out);
            }
        }
        _ => {}
    }
}

fn objects() -> Vec<(String, &'static Value)> {
    let mut out = Vec::new();
    walk(String::new(), spec(), &mut out);
    out
}

// ---- the document ----

#[test]
fn the_document_is_openapi_3_1_with_a_description() {
    let doc = spec();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(
        doc["info"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("RDS") && d.len() > 200),
        "info.description should describe restop"
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
}

#[test]
fn every_ref_resolves_inside_the_document() {
    let mut broken = Vec::new();
    for (at, object) in objects() {
        if let Some(reference) = object.get("$ref") {
            let reference = reference.as_str().expect("$ref is a string");
            if let Err(e) = resolve_ref(spec(), reference) {
                broken.push(format!("{at}: {e}"));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}");
}

#[test]
fn it_documents_exactly_the_routes_of_the_contract() {
    let documented: BTreeSet<(String, String)> = operations(spec())
        .into_iter()
        .map(|(path, method, _)| (path.to_owned(), method.to_owned()))
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("/sns", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/v1/executions", "get"),
        ("/v1/executions", "post"),
        ("/v1/executions/{id}", "get"),
        ("/v1/executions/{id}/cancel", "post"),
        ("/v1/messages", "get"),
        ("/v1/messages/{message_id}", "get"),
        ("/v1/subscriptions", "get"),
        ("/v1/summary", "get"),
        ("/", "get"),
        ("/ui", "get"),
        ("/ui/{asset}", "get"),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_owned(), m.to_owned()))
    .collect();
    assert_eq!(documented, expected);
}

#[test]
fn operation_ids_are_unique_and_links_name_real_operations() {
    let mut ids = BTreeMap::new();
    for (path, method, operation) in operations(spec()) {
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(
            ids.insert(id.to_owned(), path).is_none(),
            "operationId {id} is used twice"
        );
    }
    for (at, object) in objects() {
        if at.ends_with("/links") {
            for (name, link) in object.as_object().unwrap() {
                let target = link["operationId"].as_str().unwrap();
                assert!(
                    ids.contains_key(target),
                    "{at}/{name}: no operation {target}"
                );
            }
        }
    }
}

#[test]
fn path_parameters_are_declared_and_plain_strings() {
    for (path, method, operation) in operations(spec()) {
        let names: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        let declared: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| resolve(spec(), p).unwrap())
                    .filter(|p| p["in"] == "path")
                    .map(|p| {
                        assert_eq!(p["required"], true, "{method} {path}");
                        // The server answers 404 for any unknown id: no format to fuzz against.
                        assert_eq!(p["schema"], json!({"type": "string"}), "{method} {path}");
                        p["name"].as_str().unwrap()
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(names, declared, "{method} {path}");
    }
}

#[test]
fn query_parameters_are_optional_and_empty_means_absent() {
    let mut seen = 0;
    for (path, method, operation) in operations(spec()) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let parameter = resolve(spec(), parameter).unwrap();
            if parameter["in"] == "query" {
                let name = &parameter["name"];
                assert_eq!(parameter["required"], false, "{method} {path} {name}");
                assert_eq!(parameter["allowEmptyValue"], true, "{method} {path} {name}");
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 16);
}

#[test]
fn security_is_bearer_on_v1_optional_basic_on_sns_and_none_elsewhere() {
    let doc = spec();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["type"],
        "http"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["basicAuth"]["type"],
        "http"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["basicAuth"]["scheme"],
        "basic"
    );
    assert!(
        doc.get("security").is_none(),
        "security is set per operation"
    );
    for (path, method, operation) in operations(doc) {
        let security = &operation["security"];
        let responses = &operation["responses"];
        if path.starts_with("/v1/") {
            assert_eq!(security, &json!([{"bearerAuth": []}]), "{method} {path}");
            assert_eq!(
                responses["401"],
                json!({"$ref": "#/components/responses/Unauthorized"}),
                "{method} {path}"
            );
        } else if path == "/sns" {
            assert_eq!(security, &json!([{}, {"basicAuth": []}]));
            assert_eq!(
                responses["401"],
                json!({"$ref": "#/components/responses/SnsUnauthorized"})
            );
        } else {
            assert_eq!(security, &json!([]), "{method} {path}");
            assert!(responses.get("401").is_none(), "{method} {path}");
        }
    }
    for (name, scheme) in [("Unauthorized", "Bearer"), ("SnsUnauthorized", "Basic")] {
        let header = resolve(
            doc,
            &doc["components"]["responses"][name]["headers"]["WWW-Authenticate"],
        )
        .unwrap();
        assert_eq!(header["required"], true, "{name}");
        assert!(header["example"].as_str().unwrap().starts_with(scheme));
    }
}

#[test]
fn the_statuses_of_the_contract_are_documented() {
    let expected: &[(&str, &str, &[&str])] = &[
        ("/sns", "post", &["200", "400", "401", "403", "413", "503"]),
        ("/healthz", "get", &["200"]),
        ("/readyz", "get", &["200", "503"]),
        ("/metrics", "get", &["200"]),
        ("/v1/executions", "get", &["200", "400", "401", "503"]),
        (
            "/v1/executions",
            "post",
            &["201", "400", "401", "403", "404", "409", "415", "503"],
        ),
        ("/v1/executions/{id}", "get", &["200", "401", "404", "503"]),
        (
            "/v1/executions/{id}/cancel",
            "post",
            &["200", "401", "404", "409", "503"],
        ),
        ("/v1/messages", "get", &["200", "400", "401", "503"]),
        (
            "/v1/messages/{message_id}",
            "get",
            &["200", "401", "404", "503"],
        ),
        ("/v1/subscriptions", "get", &["200", "401", "503"]),
        ("/v1/summary", "get", &["200", "401", "503"]),
        ("/", "get", &["303"]),
        ("/ui", "get", &["200"]),
        ("/ui/{asset}", "get", &["200", "404"]),
    ];
    for (path, method, statuses) in expected {
        let responses = spec()["paths"][*path][*method]["responses"]
            .as_object()
            .unwrap();
        let documented: Vec<&str> = responses.keys().map(String::as_str).collect();
        assert_eq!(&documented, statuses, "{method} {path}");
    }
}

#[test]
fn every_error_answer_has_the_error_shape() {
    let doc = spec();
    let mut responses: Vec<(String, &Value)> = Vec::new();
    for (path, method, operation) in operations(doc) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            if status.starts_with('4') || status.starts_with('5') {
                responses.push((format!("{method} {path} {status}"), response));
            }
        }
    }
    for name in ["NotFound", "MethodNotAllowed"] {
        responses.push((name.into(), &doc["components"]["responses"][name]));
    }
    for (label, response) in responses {
        let response = resolve(doc, response).unwrap();
        let content = response["content"].as_object().unwrap();
        assert_eq!(
            content.keys().collect::<Vec<_>>(),
            ["application/json"],
            "{label}"
        );
        let schema = &content["application/json"]["schema"]["$ref"];
        assert!(
            schema == "#/components/schemas/Error"
                || (label == "post /v1/executions 409"
                    && schema == "#/components/schemas/ExecutionActiveError"),
            "{label}: {schema}"
        );
    }
}

#[test]
fn response_objects_are_closed_and_list_every_key_as_required() {
    let doc = spec();
    let names = [
        "Error",
        "ExecutionActiveError",
        "Execution",
        "ExecutionDetail",
        "Notification",
        "Step",
        "ExecutionPage",
        "Message",
        "MessageEvent",
        "MessagePage",
        "Subscription",
        "SubscriptionList",
        "SnsAnswer",
        "Summary",
        "SummaryWindow",
    ];
    for name in names {
        let mut found = Vec::new();
        walk(
            format!("/components/schemas/{name}"),
            &doc["components"]["schemas"][name],
            &mut found,
        );
        for (at, schema) in found {
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                continue;
            };
            // `examples` hold instances, not schemas.
            if at.contains("/examples/") {
                continue;
            }
            assert_eq!(schema["additionalProperties"], false, "{at}");
            let keys: BTreeSet<&str> = properties.keys().map(String::as_str).collect();
            let required: BTreeSet<&str> = schema["required"]
                .as_array()
                .unwrap_or_else(|| panic!("{at} has no required"))
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            assert_eq!(keys, required, "{at}");
        }
    }
}

#[test]
fn execution_detail_is_execution_plus_steps() {
    let schemas = &spec()["components"]["schemas"];
    let mut execution = schemas["Execution"]["properties"]
        .as_object()
        .unwrap()
        .clone();
    let detail = schemas["ExecutionDetail"]["properties"]
        .as_object()
        .unwrap();
    execution.insert("steps".into(), detail["steps"].clone());
    assert_eq!(&execution, detail);
    let mut required = schemas["Execution"]["required"].as_array().unwrap().clone();
    required.push(json!("steps"));
    assert_eq!(
        &required,
        schemas["ExecutionDetail"]["required"].as_array().unwrap()
    );
}

#[test]
fn every_component_schema_compiles() {
    for name in spec()["components"]["schemas"].as_object().unwrap().keys() {
        crate::support::openapi::validator(&component(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn every_example_fits_its_schema() {
    let mut checked = 0;
    for (at, object) in objects() {
        if at.contains("/example") {
            continue;
        }
        let Some(schema) = object.get("schema") else {
            // A Schema Object's own `examples` (JSON Schema keyword: a list of instances).
            if at.starts_with("/components/schemas/") {
                if let Some(examples) = object.get("examples").and_then(Value::as_array) {
                    for example in examples {
                        validate(object, example).unwrap_or_else(|e| panic!("{at}: {e}"));
                        checked += 1;
                    }
                }
            }
            continue;
        };
        // Media Type, Parameter and Header Objects: `example` or `examples` (a map of
        // Example Objects).
        if let Some(example) = object.get("example") {
            validate(schema, example).unwrap_or_else(|e| panic!("{at}: {e}"));
            checked += 1;
        }
        if let Some(examples) = object.get("examples").and_then(Value::as_object) {
            for (name, example) in examples {
                validate(schema, &example["value"]).unwrap_or_else(|e| panic!("{at} {name}: {e}"));
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "only {checked} examples");
}

// ---- the validator ----

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
        "confirmed_at": null
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

// ---- the schemas agree with the server's own validation ----
//
// A fuzzer counts a 400 for input the schema allows, and a 2xx for input it forbids, as
// failures: the patterns must say exactly what the server checks.

fn fits(schema: &str, value: &str) -> bool {
    validate(&component(schema), &json!(value)).is_ok()
}

#[test]
fn the_identifier_schema_is_the_rds_naming_rule() {
    let long = format!("a{}", "b".repeat(62));
    let too_long = format!("a{}", "b".repeat(63));
    for id in [
        "a",
        "A",
        "a1",
        "reports-db",
        "a-b-c-1",
        "Db-1-x",
        &long,
        &too_long,
        "",
        "1db",
        "-db",
        "db-",
        "a--b",
        "a_b",
        "a.b",
        "a b",
        "ä",
        "db\n",
        "a-",
        "a-1-",
    ] {
        assert_eq!(
            fits("Identifier", id),
            restop::aws::arn::validate_identifier(id).is_ok(),
            "{id:?}"
        );
    }
}

#[test]
fn the_region_schema_is_the_servers() {
    for region in [
        "us-east-1",
        "us-gov-west-1",
        "cn-north-1",
        "eu-central-2",
        "ap-southeast-10",
        "us-iso-east-1",
        "eusc-de-east-1",
        "aa-east-1",
        "us-east",
        "us-east-123",
        "US-east-1",
        "u-east-1",
        "usa-east-1",
        "us--east-1",
        "us-east-1a",
        "us-1",
        "us-east-1\n",
        "",
    ] {
        assert_eq!(
            fits("Region", region),
            restop::aws::arn::is_region(region),
            "{region:?}"
        );
    }
}

#[test]
fn the_arn_schemas_are_the_servers() {
    let long = format!("a{}", "b".repeat(62));
    let too_long = format!("a{}", "b".repeat(63));
    let mut arns = vec![
        "arn:aws:rds:us-east-1:123456789012:db:reports-db".to_owned(),
        "arn:aws:rds:us-east-1:123456789012:cluster:analytics".to_owned(),
        "arn:aws-us-gov:rds:us-gov-west-1:123456789012:db:x".to_owned(),
        "arn:awsfoo:rds:us-east-1:123456789012:db:x".to_owned(),
        "arn:aws-cn:rds:us-east-1:123456789012:db:x".to_owned(),
        "arn:aws:rds:cn-north-1:123456789012:db:x".to_owned(),
        "arn:aws-cn:rds:cn-north-1:123456789012:cluster:x".to_owned(),
        "arn:aws:rds:us-east-1:123456789012:db:".to_owned(),
        "arn:aws:rds:us-east-1:123456789012:db:a--b".to_owned(),
        "arn:aws:rds:us-east-1:123456789012:db:ab-".to_owned(),
        "arn:aws:rds:us-east-1:12345678901:db:x".to_owned(),
        "arn:aws:rds:us-east-1:123456789012:snapshot:x".to_owned(),
        "arn:aws:rds:us-east-1:123456789012:db:x:y".to_owned(),
        "arn:gcp:rds:us-east-1:123456789012:db:x".to_owned(),
        "arn:aws:ec2:us-east-1:123456789012:db:x".to_owned(),
        "arn:aws:rds:useast1:123456789012:db:x".to_owned(),
        "xarn:aws:rds:us-east-1:123456789012:db:x".to_owned(),
        "arn:aws:rds:us-east-1:123456789012:db:x ".to_owned(),
    ];
    arns.push(format!("arn:aws:rds:us-east-1:123456789012:db:{long}"));
    arns.push(format!("arn:aws:rds:us-east-1:123456789012:db:{too_long}"));
    for arn in &arns {
        assert_eq!(
            fits("ResourceArn", arn),
            arn.parse::<restop::aws::arn::ResourceArn>().is_ok(),
            "{arn:?}"
        );
    }

    let name = "n".repeat(256);
    let too_long = "n".repeat(257);
    for arn in [
        "arn:aws:sns:us-east-1:123456789012:rds-events".to_owned(),
        "arn:aws-cn:sns:cn-north-1:123456789012:a.b_c-d".to_owned(),
        "arn:aws-cn:sns:us-east-1:123456789012:t".to_owned(),
        "arn:aws\u{90}:sns:us-east-1:123456789012:t".to_owned(),
        format!("arn:aws:sns:us-east-1:123456789012:{name}"),
        format!("arn:aws:sns:us-east-1:123456789012:{too_long}"),
        "arn:aws:sns:us-east-1:123456789012:".to_owned(),
        "arn:aws:sns:us-east-1:123456789012:a:b".to_owned(),
        "arn:aws:sns:us-east-1:123456789012:a b".to_owned(),
        "arn:aws:sqs:us-east-1:123456789012:q".to_owned(),
        "arn:aws:sns:us-east-1:1234567890123:t".to_owned(),
    ] {
        assert_eq!(
            fits("TopicArn", &arn),
            arn.parse::<restop::aws::arn::TopicArn>().is_ok(),
            "{arn:?}"
        );
    }
}

#[test]
fn the_trigger_request_schema_takes_exactly_one_way_to_name_a_resource() {
    let request = |value: Value| validate(&component("TriggerRequest"), &value).is_ok();
    assert!(request(
        json!({"resource_arn": "arn:aws:rds:us-east-1:123456789012:db:x"})
    ));
    assert!(request(
        json!({"db_instance_identifier": "x", "region": "us-east-1", "dry_run": true})
    ));
    assert!(request(
        json!({"db_cluster_identifier": "x", "region": "us-east-1", "skip_tag_check": false})
    ));
    assert!(!request(json!({})));
    assert!(!request(json!({"db_instance_identifier": "x"})));
    assert!(!request(
        json!({"resource_arn": "arn:aws:rds:us-east-1:123456789012:db:x",
        "db_instance_identifier": "x", "region": "us-east-1"})
    ));
    assert!(!request(
        json!({"resource_arn": "arn:aws:rds:us-east-1:123456789012:db:x",
        "region": "us-east-1"})
    ));
    assert!(!request(
        json!({"db_instance_identifier": "x", "db_cluster_identifier": "y", "region": "us-east-1"})
    ));
    assert!(!request(
        json!({"resource_arn": "arn:aws:rds:us-east-1:123456789012:db:x",
        "dry_run": "yes"})
    ));
    assert!(!request(
        json!({"resource_arn": "arn:aws:rds:us-east-1:123456789012:db:x",
        "force": true})
    ));
    assert!(!request(
        json!({"db_instance_identifier": "a--b", "region": "us-east-1"})
    ));
    assert!(!request(
        json!({"db_instance_identifier": "x", "region": "mars"})
    ));
}

/// `SignatureVersion` is left out: the parser takes any, the verifier then answers 403.
#[test]
fn the_sns_body_schema_is_what_the_parser_accepts() {
    let notification =
        spec()["paths"]["/sns"]["post"]["requestBody"]["content"]["text/plain"]["example"].clone();
    let confirmation = {
        let mut m = notification.clone();
        m["Type"] = json!("SubscriptionConfirmation");
        m["Token"] = json!("2336412f37fb687f5d51e6e2425c464de257ebb5");
        m["SubscribeURL"] =
            json!("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription");
        m
    };
    let mut bodies = vec![notification.clone(), confirmation.clone()];
    let edit = |base: &Value, f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut m = base.as_object().unwrap().clone();
        f(&mut m);
        Value::Object(m)
    };
    bodies.push(edit(&notification, &|m| {
        m.remove("Subject");
        m.insert("MessageAttributes".into(), json!({"a": {"Type": "String"}}));
    }));
    bodies.push(edit(&notification, &|m| {
        m.remove("Signature");
    }));
    bodies.push(edit(&notification, &|m| {
        m.insert("Type".into(), json!("Other"));
    }));
    bodies.push(edit(&notification, &|m| {
        m.insert("Subject".into(), json!(1));
    }));
    bodies.push(edit(&notification, &|m| {
        m.insert("MessageId".into(), json!("has space"));
    }));
    bodies.push(edit(&notification, &|m| {
        m.insert("MessageId".into(), json!("m".repeat(129)));
    }));
    bodies.push(edit(&notification, &|m| {
        m.insert(
            "TopicArn".into(),
            json!("arn:aws:sqs:us-east-1:123456789012:q"),
        );
    }));
    bodies.push(edit(&notification, &|m| {
        m.insert("Timestamp".into(), json!("26/11/2026"));
    }));
    bodies.push(edit(&confirmation, &|m| {
        m.remove("Token");
    }));
    bodies.push(edit(&confirmation, &|m| {
        m.insert("Type".into(), json!("UnsubscribeConfirmation"));
    }));
    bodies.push(json!(["not", "an", "object"]));
    for sns_body in bodies {
        assert_eq!(
            validate(&component("SnsMessage"), &sns_body).is_ok(),
            restop::sns::message::SnsMessage::parse(&body(&sns_body)).is_ok(),
            "{sns_body}"
        );
    }
}
