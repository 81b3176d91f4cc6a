//! The schemas agree with the server's own validation. A fuzzer counts a 400 for input the
//! schema allows, and a 2xx for input it forbids, as failures: the patterns must say
//! exactly what the server checks.

use serde_json::{Value, json};

use super::{body, component};
use crate::support::openapi::{spec, validate};

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
