//! The RDS event subscriptions of one watched account and region.

use super::{Check, CheckStatus, Reach};
use crate::aws::arn::ResourceKind;
use crate::aws::arn::TopicArn;
use crate::aws::explain;
use crate::config::ServeConfig;

/// An enabled RDS event subscription of this account and region must publish the
/// `notification` events of instances and of clusters to an allowed topic; one limited to
/// some databases (`SourceIds`) covers only those, which is a warning.
pub(super) async fn check(
    reach: &Reach,
    serve: &ServeConfig,
    account: &str,
    region: &str,
) -> Check {
    let name = format!("event_subscriptions {account}/{region}");
    let rds = match reach.rds(account, region).await {
        Ok(rds) => rds,
        Err(e) => return Check::new(name, CheckStatus::Fail, e),
    };
    let topics: Vec<&str> = serve
        .sns
        .topic_arns
        .0
        .iter()
        .filter(|t| t.region() == region)
        .map(TopicArn::as_str)
        .collect();
    let subscriptions = match rds
        .describe_event_subscriptions()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
    {
        Ok(subscriptions) => subscriptions,
        Err(e) => {
            let detail = format!("rds:DescribeEventSubscriptions failed: {}", explain(&e));
            return Check::new(name, CheckStatus::Fail, detail);
        }
    };
    let mut missing = Vec::new();
    let mut limited = Vec::new();
    let mut notes = Vec::new();
    for source_type in [ResourceKind::DbInstance, ResourceKind::DbCluster] {
        let source_type = source_type.as_str();
        let mut covered = false;
        for s in &subscriptions {
            let label = s.cust_subscription_id().unwrap_or_default();
            let to_topic = s.sns_topic_arn().is_some_and(|t| topics.contains(&t));
            let of_type = s.source_type().is_none_or(|t| t == source_type);
            if !to_topic || !of_type {
                continue;
            }
            let categories = s.event_categories_list();
            if !categories.is_empty() && !categories.iter().any(|c| c == "notification") {
                notes.push(format!("{label} lacks the category notification"));
            } else if s.enabled() != Some(true) {
                notes.push(format!("{label} is disabled"));
            } else if s.status().is_some_and(|status| status != "active") {
                notes.push(format!(
                    "{label} is {} (RDS cannot publish to the topic: check its policy)",
                    s.status().unwrap_or_default()
                ));
            } else if !s.source_ids_list().is_empty() {
                limited.push(format!(
                    "{label} sends the {source_type} events of {} only",
                    s.source_ids_list().join(", ")
                ));
            } else {
                covered = true;
            }
        }
        if !covered {
            missing.push(source_type);
        }
    }
    notes.dedup();
    limited.dedup();
    match verdict(&missing, &limited) {
        Some((status, detail)) => Check::new(name, status, detail),
        None => fail(name, &missing, &topics, &notes),
    }
}

/// Whether every instance's and cluster's events reach the topic: `None` when some kind of
/// database is not covered at all (a failure, explained by [`fail`]); a warning when only
/// subscriptions limited to `SourceIds` cover it (other databases' forced starts never
/// reach restop).
fn verdict(missing: &[&str], limited: &[String]) -> Option<(CheckStatus, String)> {
    match (missing.is_empty(), limited.is_empty()) {
        (true, _) => Some((
            CheckStatus::Ok,
            "db-instance and db-cluster notification events reach the topic".into(),
        )),
        (false, false) => Some((
            CheckStatus::Warn,
            format!(
                "{}: the forced starts of every other {} never reach restop; remove the \
                 SourceIds to cover every database",
                limited.join("; "),
                missing.join(" and ")
            ),
        )),
        (false, true) => None,
    }
}

fn fail(name: String, missing: &[&str], topics: &[&str], notes: &[String]) -> Check {
    let mut detail = format!(
        "no enabled event subscription sends the notification events of {} to {}",
        missing.join(" and "),
        if topics.is_empty() {
            "an allowed topic".to_owned()
        } else {
            topics.join(" or ")
        }
    );
    if !notes.is_empty() {
        detail.push_str(&format!(" ({})", notes.join("; ")));
    }
    detail.push_str(": deploy deploy/cloudformation/member-events.yaml here");
    Check::new(name, CheckStatus::Fail, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_limited_to_source_ids_is_a_warning_not_coverage() {
        let (status, detail) = verdict(&[], &[]).unwrap();
        assert_eq!(status, CheckStatus::Ok, "{detail}");
        let limited = vec!["restop-db-instance sends the db-instance events of orders only".into()];
        let (status, detail) = verdict(&["db-instance"], &limited).unwrap();
        assert_eq!(status, CheckStatus::Warn);
        assert!(detail.contains("orders only"), "{detail}");
        assert!(detail.contains("every other db-instance"), "{detail}");
        assert!(
            verdict(&["db-cluster"], &[]).is_none(),
            "not covered at all fails"
        );
    }
}
