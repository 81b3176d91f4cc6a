//! Responses checked against `openapi.yaml`, the API's contract.
//!
//! [`assert_conforms`] finds the operation for a method and a concrete path, the response
//! documented for the status, and checks the answer against it: required headers (and
//! their schemas), the content type, and the JSON body against the response schema with
//! every `$ref` resolved inside the document. An unknown route may only answer the shared
//! `NotFound` response, a known route with an undocumented method only `MethodNotAllowed`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::{Map, Value};

/// Where `openapi.yaml` lives: the repository root.
pub const SPEC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The whole document as JSON, read once.
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text = std::fs::read_to_string(SPEC_PATH)
            .unwrap_or_else(|e| panic!("cannot read {SPEC_PATH}: {e}"));
        serde_norway::from_str::<Value>(&text)
            .unwrap_or_else(|e| panic!("{SPEC_PATH} is not valid YAML: {e}"))
    })
}

/// Panics, naming the operation and what differs, unless the answer is one `openapi.yaml`
/// documents.
#[track_caller]
pub fn assert_conforms(method: &str, path: &str, status: u16, headers: &HeaderMap, body: &[u8]) {
    if let Err(problem) = check(method, path, status, headers, body) {
        panic!(
            "{} {path} answered {status}, which breaks openapi.yaml: {problem}\nbody: {}",
            method.to_uppercase(),
            String::from_utf8_lossy(&body[..body.len().min(2000)])
        );
    }
}

/// What [`assert_conforms`] checks, as a result.
pub fn check(
    method: &str,
    path: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let doc = spec();
    let response = documented_response(doc, method, path, status)?;
    check_headers(doc, response, headers)?;
    if method.eq_ignore_ascii_case("head") {
        return Ok(());
    }
    check_content(response, headers, body)
}

/// A `$ref`'d object (response, header, parameter, schema) followed to its definition.
pub fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> Result<&'a Value, String> {
    for _ in 0..16 {
        let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
            return Ok(value);
        };
        value = resolve_ref(doc, reference)?;
    }
    Err("a $ref chain longer than 16 links".into())
}

/// A local `$ref` (`#/components/...`) to the value it points at.
pub fn resolve_ref<'a>(doc: &'a Value, reference: &str) -> Result<&'a Value, String> {
    let pointer = reference
        .strip_prefix('#')
        .ok_or_else(|| format!("$ref {reference} is not local to openapi.yaml"))?;
    doc.pointer(pointer)
        .ok_or_else(|| format!("$ref {reference} points at nothing"))
}

/// The path template of `openapi.yaml` that a concrete path (query string ignored) matches:
/// the one with the most literal segments when several do.
pub fn match_path<'a>(doc: &'a Value, path: &str) -> Option<&'a str> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').collect();
    let paths = doc.get("paths")?.as_object()?;
    paths
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') && part.ends_with('}') {
                    if segment.is_empty() {
                        return None;
                    }
                } else if part == segment {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, template.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template)
}

/// The Response Object for this answer, `$ref` followed.
fn documented_response<'a>(
    doc: &'a Value,
    method: &str,
    path: &str,
    status: u16,
) -> Result<&'a Value, String> {
    let Some(template) = match_path(doc, path) else {
        // The router's fallback: any unknown route answers 404 in the error shape.
        return if status == 404 {
            resolve_ref(doc, "#/components/responses/NotFound")
        } else {
            Err(format!(
                "no path in openapi.yaml matches {path}, so only 404 is expected"
            ))
        };
    };
    let item = &doc["paths"][template];
    let method = method.to_ascii_lowercase();
    // HEAD is answered by the GET handler without a body.
    let operation = item
        .get(&method)
        .or_else(|| (method == "head").then(|| item.get("get")).flatten());
    let Some(operation) = operation else {
        return if status == 405 {
            resolve_ref(doc, "#/components/responses/MethodNotAllowed")
        } else {
            Err(format!(
                "{} is not documented on {template}, so only 405 is expected",
                method.to_uppercase()
            ))
        };
    };
    let responses = operation
        .get("responses")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            format!(
                "{} {template} documents no responses",
                method.to_uppercase()
            )
        })?;
    let response = responses
        .get(&status.to_string())
        .or_else(|| responses.get(&format!("{}XX", status / 100)))
        .or_else(|| responses.get("default"))
        .ok_or_else(|| {
            format!(
                "status {status} is not documented for {} {template} (documented: {})",
                method.to_uppercase(),
                responses.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
    resolve(doc, response)
}

/// Every header the response marks `required` is present, and each documented header that
/// is present fits its schema.
fn check_headers(doc: &Value, response: &Value, headers: &HeaderMap) -> Result<(), String> {
    let Some(documented) = response.get("headers").and_then(Value::as_object) else {
        return Ok(());
    };
    for (name, header) in documented {
        // Content-Type is described by `content`, not by `headers`.
        if name.eq_ignore_ascii_case("content-type") {
            continue;
        }
        let header = resolve(doc, header)?;
        let required = header.get("required").and_then(Value::as_bool) == Some(true);
        let values: Vec<_> = headers.get_all(name.as_str()).iter().collect();
        if values.is_empty() {
            if required {
                return Err(format!("required header {name} is missing"));
            }
            continue;
        }
        if let Some(schema) = header.get("schema") {
            for value in values {
                let text = value
                    .to_str()
                    .map_err(|_| format!("header {name} is not visible ASCII"))?;
                validate(schema, &Value::String(text.to_owned()))
                    .map_err(|e| format!("header {name}: {text:?} does not fit its schema: {e}"))?;
            }
        }
    }
    Ok(())
}

/// The media type essence (`type/subtype`, lowercase) of a Content-Type value.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn is_json(essence: &str) -> bool {
    essence == "application/json" || essence.ends_with("+json")
}

/// The Content-Type is one the response documents, and the body fits that media type's
/// schema: JSON parsed and validated, text validated as a JSON string.
fn check_content(response: &Value, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        return if body.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "no body is documented, yet {} bytes came",
                body.len()
            ))
        };
    };
    let content_type = headers
        .get(CONTENT_TYPE)
        .ok_or("the Content-Type header is missing")?
        .to_str()
        .map_err(|_| "the Content-Type header is not visible ASCII")?;
    let actual = essence(content_type);
    let (_, media) = content
        .iter()
        .find(|(documented, _)| essence(documented) == actual)
        .ok_or_else(|| {
            format!(
                "Content-Type {content_type} is not documented (documented: {})",
                content.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
    let instance = if is_json(&actual) {
        serde_json::from_slice::<Value>(body).map_err(|e| format!("the body is not JSON: {e}"))?
    } else if actual.starts_with("text/") {
        Value::String(String::from_utf8(body.to_vec()).map_err(|_| "the text body is not UTF-8")?)
    } else {
        // Other media types carry bytes no JSON Schema describes.
        return Ok(());
    };
    match media.get("schema") {
        Some(schema) => validate(schema, &instance)
            .map_err(|e| format!("the body does not fit its schema: {e}")),
        None => Ok(()),
    }
}

type Validator = Arc<jsonschema::Validator>;

/// A validator for one schema of `openapi.yaml` (a Schema Object from anywhere in it),
/// built once.
///
/// The schema becomes the root of a JSON Schema (draft 2020-12) document that also carries
/// the OpenAPI `components`, so `#/components/schemas/X` references resolve as they do in
/// `openapi.yaml`. Formats (`date-time`, `uuid`) are asserted, not just annotated.
pub fn validator(schema: &Value) -> Result<Validator, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Validator>>> = OnceLock::new();
    let key = schema.to_string();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().unwrap().get(&key) {
        return Ok(found.clone());
    }
    let mut root = match schema {
        Value::Object(map) => map.clone(),
        Value::Bool(true) => Map::new(),
        other => return Err(format!("{other} is not a schema object")),
    };
    if root.contains_key("components") {
        return Err("a schema with a `components` keyword cannot be rooted here".into());
    }
    if let Some(components) = spec().get("components") {
        root.insert("components".into(), components.clone());
    }
    let built = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&Value::Object(root))
        .map_err(|e| format!("the schema does not compile: {e}"))?;
    let built = Arc::new(built);
    cache.lock().unwrap().insert(key, built.clone());
    Ok(built)
}

/// `instance` against a schema of `openapi.yaml`, every error in one message.
pub fn validate(schema: &Value, instance: &Value) -> Result<(), String> {
    let validator = validator(schema)?;
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!(
                "{}: {e}",
                if at.is_empty() { "(root)" } else { at.as_str() }
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// Every operation of the document: (path template, method, Operation Object).
pub fn operations(doc: &Value) -> Vec<(&str, &str, &Value)> {
    let mut found = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for (template, item) in paths {
            for method in METHODS {
                if let Some(operation) = item.get(*method) {
                    found.push((template.as_str(), *method, operation));
                }
            }
        }
    }
    found
}
