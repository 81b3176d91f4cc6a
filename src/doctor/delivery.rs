//! What a confirmed subscription's attributes do to deliveries: whether its filter policy
//! lets restop's events through, whether raw delivery strips their signature, and how long
//! SNS keeps retrying while restop is down.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{Check, CheckStatus, filter_policy};
use crate::aws::arn::ResourceKind;
use crate::aws::arn::TopicArn;
use crate::config::ServeConfig;

/// A delivery policy whose retries end sooner than this loses every event sent while
/// restop is down for longer; the catch-up sweep then has to find them (SNS's default for
/// HTTP/S: 3 retries 20 s apart, about a minute).
const SHORT_RETRY_WINDOW_SECONDS: u64 = 600;

/// `filter_policy`, `raw_delivery` and `delivery_policy` of the subscription to `topic`.
pub(super) fn checks(
    serve: &ServeConfig,
    topic: &TopicArn,
    attributes: &HashMap<String, String>,
) -> Vec<Check> {
    let attribute = |key: &str| attributes.get(key).map(String::as_str);
    vec![
        filter_policy(
            serve,
            topic,
            attribute("FilterPolicy"),
            attribute("FilterPolicyScope"),
        ),
        raw_delivery(topic, attribute("RawMessageDelivery") == Some("true")),
        confirmation(topic, attribute("ConfirmationWasAuthenticated")),
        delivery_policy(
            topic,
            attribute("DeliveryPolicy").or(attribute("EffectiveDeliveryPolicy")),
        ),
    ]
}

/// How the subscription was confirmed (`ConfirmationWasAuthenticated`): a confirmation by
/// SubscribeURL lets anyone holding the subscription's ARN unsubscribe restop.
fn confirmation(topic: &TopicArn, authenticated: Option<&str>) -> Check {
    let name = format!("confirmation {}", topic.as_str());
    match authenticated {
        Some("true") => Check::new(
            name,
            CheckStatus::Ok,
            "confirmed with the SNS API: only the topic's owner can unsubscribe it",
        ),
        Some(_) => Check::new(
            name,
            CheckStatus::Warn,
            "confirmed by visiting its SubscribeURL: anyone holding its ARN can unsubscribe \
             it; grant restop sns:ConfirmSubscription on the topic, then subscribe again (or \
             confirm with aws sns confirm-subscription --authenticate-on-unsubscribe true)",
        ),
        None => Check::new(
            name,
            CheckStatus::Warn,
            "SNS did not say how it was confirmed (no ConfirmationWasAuthenticated)",
        ),
    }
}

fn filter_policy(
    serve: &ServeConfig,
    topic: &TopicArn,
    policy: Option<&str>,
    scope: Option<&str>,
) -> Check {
    let name = format!("filter_policy {}", topic.as_str());
    let Some(policy) = policy.filter(|p| !p.trim().is_empty()) else {
        return Check::new(
            name,
            CheckStatus::Ok,
            "none: every event reaches restop (a policy on EventID spares it the rest)",
        );
    };
    let policy: Value = match serde_json::from_str(policy) {
        Ok(policy) => policy,
        Err(e) => return Check::new(name, CheckStatus::Fail, format!("not JSON: {e}")),
    };
    let body = scope == Some("MessageBody");
    let mut dropped_forced = Vec::new();
    let mut dropped_wake = Vec::new();
    for (id, forced) in serve
        .event_ids
        .iter()
        .map(|id| (id, true))
        .chain(serve.wake_event_ids.iter().map(|id| (id, false)))
    {
        let sample = sample_event(id, topic, body);
        match filter_policy::passes(&policy, &sample) {
            Ok(true) => {}
            Ok(false) if forced => dropped_forced.push(id.as_str()),
            Ok(false) => dropped_wake.push(id.as_str()),
            Err(e) => {
                return Check::new(
                    name,
                    CheckStatus::Warn,
                    format!("cannot be checked ({e}): make sure it lets {id} through"),
                );
            }
        }
    }
    let (status, detail) = if !dropped_forced.is_empty() {
        (
            CheckStatus::Fail,
            format!(
                "drops the forced-start events {}: restop never hears of them; \
                 use {{\"EventID\": [{}]}} (scope MessageAttributes)",
                dropped_forced.join(", "),
                wanted_ids(serve)
            ),
        )
    } else if !dropped_wake.is_empty() {
        (
            CheckStatus::Warn,
            format!(
                "drops the \"started\" events {}: restop then learns that a database is \
                 available only at its next poll; use {{\"EventID\": [{}]}}",
                dropped_wake.join(", "),
                wanted_ids(serve)
            ),
        )
    } else {
        (
            CheckStatus::Ok,
            format!("lets {} through", wanted_ids(serve)),
        )
    };
    Check::new(name, status, detail)
}

/// The event ids restop acts on, quoted for a filter policy.
fn wanted_ids(serve: &ServeConfig) -> String {
    serve
        .event_ids
        .iter()
        .chain(&serve.wake_event_ids)
        .map(|id| format!("\"{id}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What SNS would deliver for event `id` from a database in the topic's account and region:
/// its message attributes, or (filter policy scope `MessageBody`) its message.
fn sample_event(id: &str, topic: &TopicArn, body: bool) -> Value {
    // RDS-EVENT-0153 (forced start) and 0151 (started) are a cluster's; the rest an instance's.
    let kind = match id {
        "RDS-EVENT-0153" | "RDS-EVENT-0151" => ResourceKind::DbCluster,
        _ => ResourceKind::DbInstance,
    };
    let arn = format!(
        "arn:{}:rds:{}:{}:{}:restop-doctor",
        topic.partition(),
        topic.region(),
        topic.account(),
        kind.arn_segment()
    );
    if body {
        json!({
            "Event Source": kind.as_str(),
            "Event Time": "2026-01-01 00:00:00.000",
            "Source ID": "restop-doctor",
            "Source ARN": arn,
            "Event ID": format!("http://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_Events.html#{id}"),
        })
    } else {
        json!({"EventID": id, "Resource": arn})
    }
}

fn raw_delivery(topic: &TopicArn, raw: bool) -> Check {
    let name = format!("raw_delivery {}", topic.as_str());
    if raw {
        Check::new(
            name,
            CheckStatus::Fail,
            "raw message delivery is on: SNS then sends the bare message without its \
             signature and restop refuses it; set RawMessageDelivery to false",
        )
    } else {
        Check::new(name, CheckStatus::Ok, "off")
    }
}

fn delivery_policy(topic: &TopicArn, policy: Option<&str>) -> Check {
    let name = format!("delivery_policy {}", topic.as_str());
    let window = policy
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .and_then(|p| retry_window_seconds(&p));
    let (status, detail) = match window {
        Some(seconds) if seconds >= SHORT_RETRY_WINDOW_SECONDS => (
            CheckStatus::Ok,
            format!("SNS retries a failed delivery for up to {seconds} s"),
        ),
        window => (
            CheckStatus::Warn,
            format!(
                "SNS retries a failed delivery for only about {} s (its default): events \
                 sent while restop is down longer wait for the catch-up sweep; use \
                 deploy/cloudformation/member-events.yaml's policy (one hour)",
                window.unwrap_or(60)
            ),
        ),
    };
    Check::new(name, status, detail)
}

/// The longest an HTTP/S delivery policy keeps retrying, in seconds: every delay lies
/// between `minDelayTarget` and `maxDelayTarget`. Takes a subscription's policy
/// (`healthyRetryPolicy`) or a topic's (`http.defaultHealthyRetryPolicy`).
fn retry_window_seconds(policy: &Value) -> Option<u64> {
    let retry = policy
        .get("healthyRetryPolicy")
        .or_else(|| policy.pointer("/http/defaultHealthyRetryPolicy"))?;
    let number =
        |key: &str, default: u64| retry.get(key).and_then(Value::as_u64).unwrap_or(default);
    let retries = number("numRetries", 3);
    let no_delay = number("numNoDelayRetries", 0);
    let min_delay = number("minDelayTarget", 20);
    let max_delay = number("maxDelayTarget", 20);
    let at_min = number("numMinDelayRetries", 0);
    let at_max = number("numMaxDelayRetries", 0);
    let backoff = retries.saturating_sub(no_delay + at_min + at_max);
    Some(at_min * min_delay + (backoff + at_max) * max_delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_window_of_the_default_and_of_the_kits_policy() {
        let default = json!({"http": {"defaultHealthyRetryPolicy": {
            "minDelayTarget": 20, "maxDelayTarget": 20, "numRetries": 3,
            "numMaxDelayRetries": 0, "numNoDelayRetries": 0, "numMinDelayRetries": 0,
            "backoffFunction": "linear"}}});
        assert_eq!(retry_window_seconds(&default), Some(60));
        let kit = json!({"healthyRetryPolicy": {
            "numRetries": 17, "numNoDelayRetries": 0, "numMinDelayRetries": 6,
            "minDelayTarget": 20, "maxDelayTarget": 300, "numMaxDelayRetries": 8,
            "backoffFunction": "exponential"}});
        assert_eq!(retry_window_seconds(&kit), Some(3420));
        assert_eq!(retry_window_seconds(&json!({"throttlePolicy": {}})), None);
    }

    #[test]
    fn a_subscription_confirmed_by_its_url_is_a_warning() {
        let topic: TopicArn = "arn:aws:sns:us-east-1:123456789012:rds-events"
            .parse()
            .unwrap();
        assert_eq!(confirmation(&topic, Some("true")).status, CheckStatus::Ok);
        for unprotected in [Some("false"), None] {
            assert_eq!(confirmation(&topic, unprotected).status, CheckStatus::Warn);
        }
    }
}
