//! The protected databases of one watched account and region.

use aws_sdk_rds::types::Tag;

use super::{Check, CheckStatus, Reach};
use crate::aws::arn::ResourceKind;
use crate::aws::explain;
use crate::aws::{cluster_facts, instance_facts};
use crate::config::EngineConfig;
use crate::engine::decide::hold::{Hold, hold_rule};
use crate::engine::decide::tag_rule;
use crate::rds::resource::not_stoppable_reason;

/// How many databases carry the protection tag, which of them RDS can never stop, which
/// are held and which have a hold tag that is not a date.
pub(super) async fn protected(
    reach: &Reach,
    engine: &EngineConfig,
    account: &str,
    region: &str,
) -> Check {
    let name = format!("protected {account}/{region}");
    let rds = match reach.rds(account, region).await {
        Ok(rds) => rds,
        Err(e) => return Check::new(name, CheckStatus::Fail, e),
    };
    let instances = match rds
        .describe_db_instances()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
    {
        Ok(instances) => instances,
        Err(e) => {
            let detail = format!("rds:DescribeDBInstances failed: {}", explain(&e));
            return Check::new(name, CheckStatus::Fail, detail);
        }
    };
    let clusters = match rds
        .describe_db_clusters()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
    {
        Ok(clusters) => clusters,
        Err(e) => {
            let detail = format!("rds:DescribeDBClusters failed: {}", explain(&e));
            return Check::new(name, CheckStatus::Fail, detail);
        }
    };
    let mut never = Vec::new();
    let mut held = Vec::new();
    let mut not_dates = Vec::new();
    let now = chrono::Utc::now();
    let mut hold = |what: &str, id: &str, tags: &[Tag]| match hold_rule(
        pairs(tags),
        &engine.hold_tag_key,
        now,
    ) {
        Hold::Until(until) => held.push(format!("{what} {id} until {}", until.to_rfc3339())),
        Hold::Invalid(value) => not_dates.push(format!(
            "{what} {id}: tag {} is '{value}', not an ISO 8601 date or date-time (no hold: \
                 protected as usual)",
            engine.hold_tag_key
        )),
        Hold::None | Hold::Over(_) => {}
    };
    let mut protected_instances = 0;
    for db in instances
        .iter()
        .filter(|db| protects(engine, db.tag_list()))
    {
        if let Some(why) = not_stoppable_reason(ResourceKind::DbInstance, &instance_facts(db)) {
            let id = db.db_instance_identifier().unwrap_or_default();
            never.push(format!("instance {id}: {why}"));
        }
        hold(
            "instance",
            db.db_instance_identifier().unwrap_or_default(),
            db.tag_list(),
        );
        protected_instances += 1;
    }
    let mut protected_clusters = 0;
    for cluster in clusters.iter().filter(|c| protects(engine, c.tag_list())) {
        if let Some(why) = not_stoppable_reason(ResourceKind::DbCluster, &cluster_facts(cluster)) {
            let id = cluster.db_cluster_identifier().unwrap_or_default();
            never.push(format!("cluster {id}: {why}"));
        }
        hold(
            "cluster",
            cluster.db_cluster_identifier().unwrap_or_default(),
            cluster.tag_list(),
        );
        protected_clusters += 1;
    }
    let mut counts = format!(
        "{protected_instances} instances and {protected_clusters} clusters tagged {}={}",
        engine.tag_key, engine.tag_value
    );
    if !held.is_empty() {
        counts = format!("{counts}; held: {}", held.join(", "));
    }
    let mut warnings = Vec::new();
    if !never.is_empty() {
        warnings.push(format!(
            "RDS can never stop {}: {}",
            never.len(),
            never.join("; ")
        ));
    }
    if !not_dates.is_empty() {
        warnings.push(format!(
            "hold tag not a date on {}: {}",
            not_dates.len(),
            not_dates.join("; ")
        ));
    }
    if warnings.is_empty() {
        Check::new(name, CheckStatus::Ok, counts)
    } else {
        let detail = format!("{counts}; {}", warnings.join("; "));
        Check::new(name, CheckStatus::Warn, detail)
    }
}

/// Whether restop protects a database with these tags: the engine's own rule.
fn protects(engine: &EngineConfig, tags: &[Tag]) -> bool {
    tag_rule(pairs(tags), &engine.tag_key, &engine.tag_value).is_ok()
}

fn pairs(tags: &[Tag]) -> impl Iterator<Item = (&str, &str)> {
    tags.iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
}
