//! The RDS permissions restop needs in one watched account and region.

use super::{Check, CheckStatus, Reach};
use crate::aws::explain;
use crate::config::ServeConfig;

/// The calls the engine and the catch-up make, each tried in a way that changes
/// nothing: a tag read of a database that does not exist answers "not found" when
/// allowed and "access denied" when not.
pub(super) async fn check(
    reach: &Reach,
    serve: &ServeConfig,
    account: &str,
    region: &str,
) -> Check {
    let name = format!("permissions {account}/{region}");
    let rds = match reach.rds(account, region).await {
        Ok(rds) => rds,
        Err(e) => return Check::new(name, CheckStatus::Fail, e),
    };
    // restop works in one partition: that of its topics.
    let partition = serve
        .sns
        .topic_arns
        .0
        .first()
        .map(|t| t.partition().to_owned())
        .unwrap_or_else(|| "aws".into());
    let probe = format!("arn:{partition}:rds:{region}:{account}:db:restop-doctor-probe");
    let now = aws_sdk_rds::primitives::DateTime::from_secs(chrono::Utc::now().timestamp());
    let denied = [
        (
            "rds:DescribeDBInstances",
            rds.describe_db_instances()
                .max_records(20)
                .send()
                .await
                .err()
                .map(|e| explain(&e)),
        ),
        (
            "rds:DescribeDBClusters",
            rds.describe_db_clusters()
                .max_records(20)
                .send()
                .await
                .err()
                .map(|e| explain(&e)),
        ),
        (
            "rds:ListTagsForResource",
            rds.list_tags_for_resource()
                .resource_name(&probe)
                .send()
                .await
                .err()
                .filter(|e| {
                    !e.as_service_error()
                        .is_some_and(|s| s.is_db_instance_not_found_fault())
                })
                .map(|e| explain(&e)),
        ),
        (
            "rds:DescribeEvents",
            rds.describe_events()
                .end_time(now)
                .duration(60)
                .max_records(20)
                .send()
                .await
                .err()
                .map(|e| explain(&e)),
        ),
    ];
    let failed: Vec<String> = denied
        .into_iter()
        .filter_map(|(action, error)| error.map(|e| format!("{action}: {e}")))
        .collect();
    if failed.is_empty() {
        return Check::new(
            name,
            CheckStatus::Ok,
            "DescribeDBInstances, DescribeDBClusters, ListTagsForResource, DescribeEvents allowed",
        );
    }
    let member = serve
        .accounts
        .accounts
        .0
        .iter()
        .any(|m| m.account == account);
    let detail = format!(
        "{}; grant deploy/iam/'s policy (deploy/cloudformation/{})",
        failed.join("; "),
        if member {
            "member-role.yaml"
        } else {
            "restop.yaml"
        }
    );
    Check::new(name, CheckStatus::Fail, detail)
}
