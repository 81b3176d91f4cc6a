//! SNS subscription filter policies, evaluated the way SNS does, so that `restop doctor`
//! can tell whether a policy lets an event through.
//!
//! Covers the operators of the SNS developer guide's "Subscription filter policies": exact
//! strings, numbers, booleans and null; `prefix`, `suffix`, `equals-ignore-case`,
//! `anything-but` (value, list, prefix or suffix), `exists`, `numeric` and `wildcard`;
//! nested keys (message body scope) and `$or`. An operator it does not know (`cidr`, ...)
//! is an error: the caller reports that the policy could not be checked.

use serde_json::{Map, Value};

/// Whether `message` (the message attributes as `{name: value}`, or the message body) passes
/// `policy`. Every key of the policy must match; within a key's list, any condition.
pub fn passes(policy: &Value, message: &Value) -> Result<bool, String> {
    let Value::Object(keys) = policy else {
        return Err("a filter policy is a JSON object".into());
    };
    object_passes(keys, message)
}

fn object_passes(keys: &Map<String, Value>, message: &Value) -> Result<bool, String> {
    for (key, rule) in keys {
        let matched = if key == "$or" {
            let Value::Array(alternatives) = rule else {
                return Err("\"$or\" takes a list of policies".into());
            };
            let mut any = false;
            for alternative in alternatives {
                any |= passes(alternative, message)?;
            }
            any
        } else {
            let value = message.get(key);
            match rule {
                Value::Array(conditions) => leaf_passes(conditions, value)?,
                Value::Object(nested) => match value {
                    Some(inner @ Value::Object(_)) => object_passes(nested, inner)?,
                    _ => false,
                },
                other => return Err(format!("\"{key}\": {other} is not a list of conditions")),
            }
        };
        if !matched {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A key's conditions against its value (`None`: the message lacks the key). A list value
/// (message body) matches when any element does.
fn leaf_passes(conditions: &[Value], value: Option<&Value>) -> Result<bool, String> {
    for condition in conditions {
        if let Some(wanted) = condition.get("exists").filter(|_| condition.is_object()) {
            let wanted = wanted.as_bool().ok_or("\"exists\" takes true or false")?;
            if wanted == value.is_some() {
                return Ok(true);
            }
            continue;
        }
        let Some(value) = value else { continue };
        let values = match value {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for value in values {
            if condition_matches(condition, value)? {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn condition_matches(condition: &Value, value: &Value) -> Result<bool, String> {
    let Value::Object(operator) = condition else {
        return Ok(equal(condition, value));
    };
    let Some((name, operand)) = operator.iter().next().filter(|_| operator.len() == 1) else {
        return Err(format!("{condition} is not one operator"));
    };
    let text = value.as_str();
    Ok(match (name.as_str(), operand) {
        ("prefix", Value::String(p)) => text.is_some_and(|t| t.starts_with(p.as_str())),
        ("suffix", Value::String(s)) => text.is_some_and(|t| t.ends_with(s.as_str())),
        ("equals-ignore-case", Value::String(s)) => text.is_some_and(|t| t.eq_ignore_ascii_case(s)),
        ("wildcard", Value::String(pattern)) => text.is_some_and(|t| wildcard(pattern, t)),
        ("anything-but", Value::Array(excluded)) => !excluded.iter().any(|e| equal(e, value)),
        ("anything-but", Value::Object(_)) => !condition_matches(operand, value)?,
        ("anything-but", single) => !equal(single, value),
        ("numeric", Value::Array(comparisons)) => numeric(comparisons, value)?,
        (name, _) => {
            return Err(format!(
                "operator \"{name}\" is not checked by restop doctor"
            ));
        }
    })
}

fn equal(wanted: &Value, value: &Value) -> bool {
    match (wanted, value) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => wanted == value,
    }
}

/// `[">", 0, "<=", 5]`: every comparison holds.
fn numeric(comparisons: &[Value], value: &Value) -> Result<bool, String> {
    let Some(value) = value.as_f64() else {
        return Ok(false);
    };
    let mut holds = true;
    for pair in comparisons.chunks(2) {
        let [Value::String(op), Value::Number(operand)] = pair else {
            return Err("\"numeric\" takes operator and number pairs".into());
        };
        let operand = operand.as_f64().unwrap_or(f64::NAN);
        holds &= match op.as_str() {
            "=" => value == operand,
            "<" => value < operand,
            "<=" => value <= operand,
            ">" => value > operand,
            ">=" => value >= operand,
            other => return Err(format!("numeric operator \"{other}\" is unknown")),
        };
    }
    Ok(holds)
}

/// `*` matches any run of characters.
fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| wildcard(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attributes(event_id: &str) -> Value {
        json!({"EventID": event_id, "Resource": "arn:aws:rds:us-east-1:123456789012:db:orders"})
    }

    #[test]
    fn the_kits_policy_lets_exactly_its_ids_through() {
        let policy = json!({"EventID": ["RDS-EVENT-0154", "RDS-EVENT-0153", "RDS-EVENT-0088", "RDS-EVENT-0151"]});
        for id in [
            "RDS-EVENT-0154",
            "RDS-EVENT-0153",
            "RDS-EVENT-0088",
            "RDS-EVENT-0151",
        ] {
            assert_eq!(passes(&policy, &attributes(id)), Ok(true), "{id}");
        }
        assert_eq!(passes(&policy, &attributes("RDS-EVENT-0087")), Ok(false));
        assert_eq!(passes(&policy, &json!({})), Ok(false));
    }

    #[test]
    fn every_key_must_match_and_any_condition_of_a_key() {
        let policy = json!({
            "EventID": [{"prefix": "RDS-EVENT-015"}],
            "Resource": [{"suffix": ":db:orders"}, {"wildcard": "arn:aws:rds:*:cluster:*"}]
        });
        assert_eq!(passes(&policy, &attributes("RDS-EVENT-0154")), Ok(true));
        assert_eq!(passes(&policy, &attributes("RDS-EVENT-0088")), Ok(false));
        let cluster =
            json!({"EventID": "RDS-EVENT-0153", "Resource": "arn:aws:rds:eu-west-1:1:cluster:c"});
        assert_eq!(passes(&policy, &cluster), Ok(true));
        let other =
            json!({"EventID": "RDS-EVENT-0153", "Resource": "arn:aws:rds:eu-west-1:1:db:x"});
        assert_eq!(passes(&policy, &other), Ok(false));
    }

    #[test]
    fn anything_but_exists_and_ignore_case() {
        let drop_0154 = json!({"EventID": [{"anything-but": ["RDS-EVENT-0154"]}]});
        assert_eq!(passes(&drop_0154, &attributes("RDS-EVENT-0154")), Ok(false));
        assert_eq!(passes(&drop_0154, &attributes("RDS-EVENT-0153")), Ok(true));
        let drop_prefix = json!({"EventID": [{"anything-but": {"prefix": "RDS-EVENT-01"}}]});
        assert_eq!(
            passes(&drop_prefix, &attributes("RDS-EVENT-0154")),
            Ok(false)
        );
        let needs_tag = json!({"Tag": [{"exists": true}]});
        assert_eq!(passes(&needs_tag, &attributes("RDS-EVENT-0154")), Ok(false));
        let lacks_tag = json!({"Tag": [{"exists": false}]});
        assert_eq!(passes(&lacks_tag, &attributes("RDS-EVENT-0154")), Ok(true));
        let case = json!({"EventID": [{"equals-ignore-case": "rds-event-0154"}]});
        assert_eq!(passes(&case, &attributes("RDS-EVENT-0154")), Ok(true));
    }

    #[test]
    fn message_body_policies_nest_and_or_alternatives() {
        let body =
            json!({"Event Source": "db-instance", "Detail": {"count": 3, "ids": ["a", "b"]}});
        let nested = json!({"Detail": {"ids": ["b"], "count": [{"numeric": [">", 1, "<=", 3]}]}});
        assert_eq!(passes(&nested, &body), Ok(true));
        let too_many = json!({"Detail": {"count": [{"numeric": [">", 3]}]}});
        assert_eq!(passes(&too_many, &body), Ok(false));
        let either = json!({"$or": [{"Event Source": ["db-cluster"]}, {"Detail": {"ids": ["a"]}}]});
        assert_eq!(passes(&either, &body), Ok(true));
    }

    #[test]
    fn an_unknown_operator_is_reported_not_guessed() {
        let policy = json!({"source_ip": [{"cidr": "10.0.0.0/24"}]});
        let verdict = passes(&policy, &json!({"source_ip": "10.0.0.1"}));
        assert!(verdict.unwrap_err().contains("cidr"));
    }
}
