//! Each allowed topic: it exists, and restop's public URL has a confirmed subscription to
//! it (whose attributes [`delivery`](super::delivery) then checks).

use std::collections::HashMap;

use super::{Check, CheckStatus, Reach, delivery};
use crate::aws::Accounts;
use crate::aws::arn::TopicArn;
use crate::aws::explain;
use crate::config::DoctorConfig;

/// `topic`, then (with a public URL) `subscription` and the subscription's attributes.
pub(super) async fn checks(
    reach: &Reach,
    config: &DoctorConfig,
    topic: &TopicArn,
    own: &str,
    accounts: &Accounts,
) -> Vec<Check> {
    let name = format!("topic {}", topic.as_str());
    if topic.account() != own && !accounts.members().iter().any(|m| m == topic.account()) {
        let detail = format!(
            "restop has no credentials in account {} (neither its own nor in \
             RESTOP_ACCOUNTS): check this topic and its subscription by hand",
            topic.account()
        );
        return vec![Check::new(name, CheckStatus::Warn, detail)];
    }
    let sns = match reach.sns(topic.account(), topic.region()).await {
        Ok(sns) => sns,
        Err(e) => return vec![Check::new(name, CheckStatus::Fail, e)],
    };
    if let Err(e) = sns
        .get_topic_attributes()
        .topic_arn(topic.as_str())
        .send()
        .await
    {
        let detail = match e.as_service_error().map(|s| s.is_not_found_exception()) {
            Some(true) => "does not exist: create it (deploy/cloudformation/member-events.yaml) \
                           or correct RESTOP_TOPIC_ARNS"
                .to_owned(),
            _ => format!("sns:GetTopicAttributes failed: {}", explain(&e)),
        };
        return vec![Check::new(name, CheckStatus::Fail, detail)];
    }
    let mut checks = vec![Check::new(name, CheckStatus::Ok, "exists")];
    let Some(url) = config.serve.engine.public_url.as_deref() else {
        return checks;
    };
    let name = format!("subscription {}", topic.as_str());
    match confirmed_subscription(&sns, topic, url).await {
        Ok(attributes) => {
            checks.push(Check::new(
                name,
                CheckStatus::Ok,
                format!("{url}, confirmed"),
            ));
            checks.extend(delivery::checks(&config.serve, topic, &attributes));
        }
        Err(detail) => checks.push(Check::new(name, CheckStatus::Fail, detail)),
    }
    checks
}

/// The attributes of the topic's confirmed subscription to `url`, or what is wrong.
async fn confirmed_subscription(
    sns: &aws_sdk_sns::Client,
    topic: &TopicArn,
    url: &str,
) -> Result<HashMap<String, String>, String> {
    let subscriptions = sns
        .list_subscriptions_by_topic()
        .topic_arn(topic.as_str())
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| format!("sns:ListSubscriptionsByTopic failed: {}", explain(&e)))?;
    let endpoint = Some(without_credentials(url));
    let subscription_arn = subscriptions
        .iter()
        .find(|s| s.endpoint().map(without_credentials) == endpoint)
        .map(|s| s.subscription_arn().unwrap_or_default());
    let subscription_arn = match subscription_arn {
        None => {
            return Err(format!(
                "no subscription to {url}: subscribe it (protocol https, \
                 deploy/cloudformation/member-events.yaml does) while restop runs"
            ));
        }
        Some(arn) if arn == "PendingConfirmation" || !arn.starts_with("arn:") => {
            return Err(format!(
                "the subscription to {url} is pending confirmation: restop confirms it when \
                 SNS can reach it and RESTOP_TOPIC_ARNS lists the topic; then subscribe again \
                 (a confirmation link is valid for two days)"
            ));
        }
        Some(arn) => arn,
    };
    match sns
        .get_subscription_attributes()
        .subscription_arn(subscription_arn)
        .send()
        .await
    {
        Ok(answer) => Ok(answer.attributes().cloned().unwrap_or_default()),
        Err(e) => Err(format!(
            "sns:GetSubscriptionAttributes failed: {}",
            explain(&e)
        )),
    }
}

/// An endpoint URL without its Basic auth user and password: SNS lists the password
/// masked, and `RESTOP_PUBLIC_URL` may carry it or not.
fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_compare_without_their_credentials() {
        assert_eq!(
            without_credentials("https://restop:****@restop.example.com/sns"),
            without_credentials("https://restop.example.com/sns")
        );
        assert_ne!(
            without_credentials("https://restop.example.com/sns"),
            without_credentials("https://restop.example.com/other")
        );
    }
}
