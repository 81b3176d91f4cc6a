//! An SNS `Message` into the RDS event parser, both shapes (event subscription and
//! EventBridge), and the event-message matchers.
//!
//! Properties: a parsed event has an `RDS-EVENT-nnnn` id and a non-empty identifier; when
//! it names a DB instance or cluster, the ARN's kind and identifier agree with the event,
//! and its region and account are the event's (the foreign-account rule relies on it);
//! such an event re-serialised in either shape parses to the same event.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use restop::aws::arn::{ResourceKind, TopicArn};
use restop::rds::event::{RdsEvent, SourceType, parse_rds_event};
use restop::rds::messages;
use serde_json::json;

static TOPIC: LazyLock<TopicArn> = LazyLock::new(|| {
    "arn:aws:sns:us-east-1:123456789012:rds-events"
        .parse()
        .unwrap()
});

fn subscription_shape(e: &RdsEvent) -> String {
    json!({
        "Event Source": e.source_type.as_str(),
        "Event Time": "2026-11-26 07:22:41.245",
        "Source ID": e.source_id,
        "Source ARN": e.source_arn,
        "Event ID": format!("http://docs.amazonwebservices.com/AmazonRDS/latest/UserGuide/USER_Events.html#{}", e.event_id),
        "Event Message": e.message,
    })
    .to_string()
}

fn eventbridge_shape(e: &RdsEvent) -> String {
    let source_type = match e.source_type {
        SourceType::DbInstance => "DB_INSTANCE",
        SourceType::DbCluster => "CLUSTER",
        SourceType::Other(ref other) => other,
    };
    json!({
        "version": "0",
        "detail-type": "RDS DB Instance Event",
        "source": "aws.rds",
        "account": e.account,
        "region": e.region,
        "resources": e.source_arn.iter().collect::<Vec<_>>(),
        "detail": {
            "EventCategories": ["notification"],
            "SourceType": source_type,
            "SourceArn": e.source_arn,
            "Date": "2026-11-26T07:22:41.245Z",
            "Message": e.message,
            // The documentation's `rds:` prefix, which the parser strips once.
            "SourceIdentifier": format!("rds:{}", e.source_id),
            "EventID": e.event_id,
        }
    })
    .to_string()
}

fuzz_target!(|data: &str| {
    let Some(event) = parse_rds_event(data, &TOPIC) else {
        return;
    };
    let digits = event
        .event_id
        .strip_prefix("RDS-EVENT-")
        .expect("an RDS event id");
    assert!(digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()));
    assert!(!event.source_id.is_empty());
    let kind = event.source_type.resource_kind();
    if kind.is_some() {
        assert!(
            event.source_arn.is_some(),
            "an instance or cluster event without an ARN"
        );
    }
    if let Some(message) = &event.message {
        let source = event.source_type.as_str();
        for (found, text) in [
            (
                messages::forced_start(source, message),
                [
                    messages::INSTANCE_FORCED_START,
                    messages::CLUSTER_FORCED_START,
                ],
            ),
            (
                messages::stopped(source, message),
                [messages::INSTANCE_STOPPED, messages::CLUSTER_STOPPED],
            ),
        ] {
            match found {
                Some(ResourceKind::DbInstance) => {
                    assert_eq!((source, message.trim()), ("db-instance", text[0]))
                }
                Some(ResourceKind::DbCluster) => {
                    assert_eq!((source, message.trim()), ("db-cluster", text[1]))
                }
                None => {}
            }
        }
    }
    let Ok(resource) = event.resource() else {
        return;
    };
    assert_eq!(Some(resource.kind), kind);
    assert!(resource.identifier.eq_ignore_ascii_case(&event.source_id));
    assert_eq!(
        (resource.region.as_str(), resource.account.as_str()),
        (event.region.as_str(), event.account.as_str()),
        "the event is attributed to another region or account than its resource"
    );
    for (shape, text) in [
        ("subscription", subscription_shape(&event)),
        ("EventBridge", eventbridge_shape(&event)),
    ] {
        assert_eq!(
            parse_rds_event(&text, &TOPIC).as_ref(),
            Some(&event),
            "{shape} shape: {text}"
        );
    }
});
