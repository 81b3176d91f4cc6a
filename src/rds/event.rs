//! RDS events in either shape SNS can carry them (an RDS event subscription, or EventBridge)
//! turned into one [`RdsEvent`].

use serde::Deserialize;
use serde_json::Value;

use crate::aws::arn::{Arn, ResourceArn, ResourceKind, TopicArn};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceType {
    DbInstance,
    DbCluster,
    /// Snapshots, parameter groups, ...: recorded, never acted on.
    Other(String),
}

impl SourceType {
    /// The kind of resource restop protects, if this source is one.
    pub fn resource_kind(&self) -> Option<ResourceKind> {
        match self {
            Self::DbInstance => Some(ResourceKind::DbInstance),
            Self::DbCluster => Some(ResourceKind::DbCluster),
            Self::Other(_) => None,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::DbInstance => "db-instance",
            Self::DbCluster => "db-cluster",
            Self::Other(other) => other,
        }
    }
}

/// One RDS event, whatever shape it arrived in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdsEvent {
    /// `RDS-EVENT-nnnn`.
    pub event_id: String,
    pub source_type: SourceType,
    /// The DB instance or cluster identifier.
    pub source_id: String,
    /// From the event, or built from the identifier when the event predates `Source ARN`.
    pub source_arn: Option<String>,
    pub region: String,
    pub account: String,
    pub message: Option<String>,
}

impl RdsEvent {
    /// The DB instance or cluster this event is about, if it is about one.
    pub fn resource(&self) -> Result<ResourceArn, String> {
        let expected = self.source_type.resource_kind().ok_or_else(|| {
            format!(
                "source type {} is not a DB instance or cluster",
                self.source_type.as_str()
            )
        })?;
        let arn = self.source_arn.as_deref().unwrap_or_default();
        let resource: ResourceArn = arn.parse()?;
        if resource.kind != expected || !resource.identifier.eq_ignore_ascii_case(&self.source_id) {
            return Err(format!(
                "Source ARN {arn} does not name the {} {}",
                expected.as_str(),
                self.source_id
            ));
        }
        Ok(resource)
    }
}

/// Parses an SNS `Message` as an RDS event. `None` means "not an RDS event": such messages
/// are recorded and ignored, never treated as errors.
pub fn parse_rds_event(message: &str, topic: &TopicArn) -> Option<RdsEvent> {
    let value: Value = serde_json::from_str(message).ok()?;
    if value.get("detail-type").is_some() {
        from_eventbridge(serde_json::from_value(value).ok()?, topic)
    } else if value.get("Event ID").is_some() {
        from_event_subscription(serde_json::from_value(value).ok()?, topic)
    } else {
        None
    }
}

#[derive(Deserialize)]
struct SubscriptionEvent {
    #[serde(rename = "Event ID")]
    event_id: String,
    #[serde(rename = "Event Source")]
    source: String,
    #[serde(rename = "Source ID")]
    source_id: String,
    #[serde(rename = "Source ARN")]
    source_arn: Option<String>,
    #[serde(rename = "Event Message")]
    message: Option<String>,
}

fn from_event_subscription(event: SubscriptionEvent, topic: &TopicArn) -> Option<RdsEvent> {
    // The URL's host and path changed over the years; only the fragment is stable.
    let event_id = event.event_id.rsplit_once('#')?.1;
    let source_type = match event.source.as_str() {
        "db-instance" => SourceType::DbInstance,
        "db-cluster" => SourceType::DbCluster,
        other => SourceType::Other(other.to_owned()),
    };
    build(
        event_id,
        source_type,
        &event.source_id,
        event.source_arn,
        None,
        event.message,
        topic,
    )
}

#[derive(Deserialize)]
struct EventBridgeEvent {
    source: String,
    region: Option<String>,
    account: Option<String>,
    #[serde(default)]
    resources: Vec<String>,
    detail: EventBridgeDetail,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EventBridgeDetail {
    #[serde(rename = "EventID")]
    event_id: String,
    source_type: String,
    source_identifier: String,
    source_arn: Option<String>,
    message: Option<String>,
}

fn from_eventbridge(event: EventBridgeEvent, topic: &TopicArn) -> Option<RdsEvent> {
    if event.source != "aws.rds" {
        return None;
    }
    let detail = event.detail;
    let source_type = match detail.source_type.as_str() {
        "DB_INSTANCE" => SourceType::DbInstance,
        "CLUSTER" => SourceType::DbCluster,
        other => SourceType::Other(other.to_owned()),
    };
    // AWS documentation examples prefix the identifier with `rds:`; real events do not.
    let source_id = detail
        .source_identifier
        .strip_prefix("rds:")
        .unwrap_or(&detail.source_identifier);
    let source_arn = detail
        .source_arn
        .or_else(|| event.resources.into_iter().next());
    let region_account = event.region.zip(event.account);
    build(
        &detail.event_id,
        source_type,
        source_id,
        source_arn,
        region_account,
        detail.message,
        topic,
    )
}

/// Fills region, account and ARN from the best source available: the resource ARN, then
/// the event, then the SNS topic (RDS publishes to a topic in the resource's account and region).
fn build(
    event_id: &str,
    source_type: SourceType,
    source_id: &str,
    source_arn: Option<String>,
    event_region_account: Option<(String, String)>,
    message: Option<String>,
    topic: &TopicArn,
) -> Option<RdsEvent> {
    if !is_event_id(event_id) || source_id.is_empty() {
        return None;
    }
    let from_arn = source_arn.as_deref().and_then(rds_arn_region_account);
    let (region, account) = from_arn
        .or(event_region_account)
        .unwrap_or_else(|| (topic.region().to_owned(), topic.account().to_owned()));
    let source_arn = source_arn.or_else(|| {
        source_type.resource_kind().map(|kind| {
            format!(
                "arn:{}:rds:{region}:{account}:{}:{source_id}",
                topic.partition(),
                kind.arn_segment()
            )
        })
    });
    Some(RdsEvent {
        event_id: event_id.to_owned(),
        source_type,
        source_id: source_id.to_owned(),
        source_arn,
        region,
        account,
        message,
    })
}

fn is_event_id(s: &str) -> bool {
    s.strip_prefix("RDS-EVENT-")
        .is_some_and(|n| n.len() == 4 && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Region and account of `arn:<partition>:rds:<region>:<account>:<kind>:<name>`.
fn rds_arn_region_account(arn: &str) -> Option<(String, String)> {
    Arn::parse(arn)
        .filter(|arn| {
            arn.service == "rds"
                && !arn.region.is_empty()
                && !arn.account.is_empty()
                && arn.resource.matches(':').count() == 1
        })
        .map(|arn| (arn.region.to_owned(), arn.account.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic() -> TopicArn {
        "arn:aws:sns:eu-west-1:999999999999:rds-events"
            .parse()
            .unwrap()
    }

    fn subscription_event(event_url: &str, source: &str, arn: Option<&str>) -> String {
        let mut event = serde_json::json!({
            "Event Source": source,
            "Event Time": "2020-11-27 07:22:41.245",
            "Identifier Link": "https://console.aws.amazon.com/rds/home?region=us-east-1#dbinstance:id=rds-stop-test",
            "Source ID": "rds-stop-test",
            "Event ID": event_url,
            "Event Message": "DB instance is being started due to it exceeding the maximum allowed time being stopped."
        });
        if let Some(arn) = arn {
            event["Source ARN"] = arn.into();
        }
        event.to_string()
    }

    #[test]
    fn event_subscription_format_with_source_arn() {
        let msg = subscription_event(
            "http://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_Events.html#RDS-EVENT-0154",
            "db-instance",
            Some("arn:aws:rds:us-east-1:123456789012:db:rds-stop-test"),
        );
        let event = parse_rds_event(&msg, &topic()).unwrap();
        assert_eq!(event.event_id, "RDS-EVENT-0154");
        assert_eq!(event.source_type, SourceType::DbInstance);
        assert_eq!(event.source_id, "rds-stop-test");
        assert_eq!(event.region, "us-east-1");
        assert_eq!(event.account, "123456789012");
        assert_eq!(
            event.source_arn.as_deref(),
            Some("arn:aws:rds:us-east-1:123456789012:db:rds-stop-test")
        );
    }

    #[test]
    fn old_and_new_event_id_urls() {
        for url in [
            "http://docs.amazonwebservices.com/AmazonRDS/latest/UserGuide/USER_Events.html#RDS-EVENT-0154",
            "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_Events.Messages.html#RDS-EVENT-0154",
        ] {
            let msg = subscription_event(url, "db-instance", None);
            assert_eq!(
                parse_rds_event(&msg, &topic()).unwrap().event_id,
                "RDS-EVENT-0154"
            );
        }
        let no_fragment = subscription_event(
            "http://docs.aws.amazon.com/RDS-EVENT-0154",
            "db-instance",
            None,
        );
        assert_eq!(parse_rds_event(&no_fragment, &topic()), None);
    }

    #[test]
    fn missing_source_arn_is_built_from_the_topic() {
        let msg = subscription_event("x#RDS-EVENT-0153", "db-cluster", None);
        let event = parse_rds_event(&msg, &topic()).unwrap();
        assert_eq!(event.source_type, SourceType::DbCluster);
        assert_eq!(
            (event.region.as_str(), event.account.as_str()),
            ("eu-west-1", "999999999999")
        );
        assert_eq!(
            event.source_arn.as_deref(),
            Some("arn:aws:rds:eu-west-1:999999999999:cluster:rds-stop-test")
        );
    }

    #[test]
    fn other_sources_have_no_built_arn() {
        let msg = subscription_event("x#RDS-EVENT-0042", "db-snapshot", None);
        let event = parse_rds_event(&msg, &topic()).unwrap();
        assert_eq!(event.source_type, SourceType::Other("db-snapshot".into()));
        assert_eq!(event.source_arn, None);
    }

    fn eventbridge(detail_type: &str, source_type: &str, identifier: &str, arn: &str) -> String {
        serde_json::json!({
            "version": "0", "id": "68f6e973-1a0c-d37b-f2f2-94a7f62ffd4e",
            "detail-type": detail_type, "source": "aws.rds",
            "account": "111222333444", "time": "2025-06-08T04:54:48Z", "region": "us-west-2",
            "resources": [arn],
            "detail": {
                "EventCategories": ["notification"], "SourceType": source_type,
                "SourceArn": arn, "Date": "2025-06-08T04:54:48.420Z",
                "Message": "DB instance is being started due to it exceeding the maximum allowed time being stopped.",
                "SourceIdentifier": identifier, "EventID": "RDS-EVENT-0154", "Tags": {"k": "v"}
            }
        })
        .to_string()
    }

    #[test]
    fn eventbridge_instance_and_cluster() {
        let arn = "arn:aws:rds:us-west-2:111222333444:db:mydb";
        let event = parse_rds_event(
            &eventbridge("RDS DB Instance Event", "DB_INSTANCE", "mydb", arn),
            &topic(),
        )
        .unwrap();
        assert_eq!(event.source_type, SourceType::DbInstance);
        assert_eq!(event.source_id, "mydb");
        assert_eq!(event.source_arn.as_deref(), Some(arn));
        assert_eq!(
            (event.region.as_str(), event.account.as_str()),
            ("us-west-2", "111222333444")
        );

        let arn = "arn:aws:rds:us-west-2:111222333444:cluster:aurora-1";
        let event = parse_rds_event(
            &eventbridge("RDS DB Cluster Event", "CLUSTER", "aurora-1", arn),
            &topic(),
        )
        .unwrap();
        assert_eq!(event.source_type, SourceType::DbCluster);
        assert_eq!(event.source_id, "aurora-1");
    }

    #[test]
    fn eventbridge_rds_prefix_is_dropped() {
        let arn = "arn:aws:rds:us-west-2:111222333444:db:mydb";
        let event = parse_rds_event(
            &eventbridge("RDS DB Instance Event", "DB_INSTANCE", "rds:mydb", arn),
            &topic(),
        )
        .unwrap();
        assert_eq!(event.source_id, "mydb");
    }

    #[test]
    fn non_rds_messages() {
        for msg in [
            "hello",
            "",
            "{}",
            "[1,2]",
            r#"{"notificationType":"Bounce","bounce":{}}"#,
            r#"{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{}}"#,
            r##"{"Event ID":"#RDS-EVENT-0154"}"##,
        ] {
            assert_eq!(parse_rds_event(msg, &topic()), None, "{msg}");
        }
    }
}
