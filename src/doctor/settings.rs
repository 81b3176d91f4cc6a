//! The settings themselves: what `restop serve` would refuse, the public URL SNS posts to,
//! and the allowed topics.

use super::{Check, CheckStatus};
use crate::aws::arn::TopicArn;
use crate::config::DoctorConfig;

/// `settings` (only when `restop serve` would refuse them), `public_url` and `topics`.
pub(super) fn checks(config: &DoctorConfig) -> Vec<Check> {
    let mut checks = Vec::new();
    if let Err(e) = config.serve.validate() {
        checks.push(Check::new(
            "settings",
            CheckStatus::Fail,
            format!("{e}: restop serve refuses to start"),
        ));
    }
    checks.push(public_url(config.serve.engine.public_url.as_deref()));
    checks.push(topics(&config.serve.sns.topic_arns.0));
    checks
}

fn public_url(url: Option<&str>) -> Check {
    let (status, detail) = match url {
        None => (
            CheckStatus::Fail,
            "RESTOP_PUBLIC_URL is not set: set it to the URL SNS posts to (e.g. \
             https://restop.example.com/sns) so the subscriptions can be checked"
                .to_owned(),
        ),
        Some(url) if url.starts_with("http://") => (
            CheckStatus::Warn,
            format!(
                "{url} is plain HTTP: anyone on the path can read and delay deliveries; use HTTPS"
            ),
        ),
        Some(url) => (CheckStatus::Ok, url.to_owned()),
    };
    Check::new("public_url", status, detail)
}

fn topics(topics: &[TopicArn]) -> Check {
    if topics.is_empty() {
        Check::new(
            "topics",
            CheckStatus::Fail,
            "RESTOP_TOPIC_ARNS is empty: restop refuses every SNS delivery; list the topics \
             RDS publishes to (deploy/cloudformation/member-events.yaml outputs TopicArn)",
        )
    } else {
        let names: Vec<&str> = topics.iter().map(TopicArn::as_str).collect();
        Check::new("topics", CheckStatus::Ok, names.join(", "))
    }
}
