//! The document: OpenAPI 3.1, self-contained, exactly the routes, statuses, security and
//! error shapes of the contract, closed response objects, and examples that fit.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::component;
use crate::support::openapi::{operations, resolve, resolve_ref, spec, validate};

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
        ("/v1/savings", "get"),
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
    assert_eq!(seen, 20);
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
            &[
                "200", "201", "400", "401", "403", "404", "409", "415", "503",
            ],
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
            if at.starts_with("/components/schemas/")
                && let Some(examples) = object.get("examples").and_then(Value::as_array)
            {
                for example in examples {
                    validate(object, example).unwrap_or_else(|e| panic!("{at}: {e}"));
                    checked += 1;
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
