//! RDS resources restop protects, and whether one can be stopped at all.

use std::str::FromStr;

use crate::execution::text_enum;

text_enum! {
    /// The two kinds of RDS resource restop protects.
    pub enum ResourceKind {
        DbInstance = "db-instance",
        DbCluster = "db-cluster",
    }
}

impl ResourceKind {
    /// The resource-type part of its ARN: `arn:aws:rds:REGION:ACCOUNT:db:NAME`.
    pub fn arn_segment(self) -> &'static str {
        match self {
            Self::DbInstance => "db",
            Self::DbCluster => "cluster",
        }
    }
}

/// A DB instance or cluster, named by its ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceArn {
    pub arn: String,
    pub partition: String,
    pub region: String,
    pub account: String,
    pub kind: ResourceKind,
    pub identifier: String,
}

impl FromStr for ResourceArn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || format!("'{s}' is not an RDS DB instance or cluster ARN");
        let parts: Vec<&str> = s.split(':').collect();
        let [
            "arn",
            partition,
            "rds",
            region,
            account,
            segment,
            identifier,
        ] = parts[..]
        else {
            return Err(err());
        };
        let kind = match segment {
            "db" => ResourceKind::DbInstance,
            "cluster" => ResourceKind::DbCluster,
            _ => return Err(err()),
        };
        if !crate::partition::is_partition_of(partition, region)
            || account.len() != 12
            || !account.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        validate_identifier(identifier)?;
        // RDS identifiers are case-insensitive (RDS keeps them in lower case): `db:Orders`
        // and `db:orders` are one resource.
        let identifier = identifier.to_ascii_lowercase();
        Ok(Self {
            arn: format!("arn:{partition}:rds:{region}:{account}:{segment}:{identifier}"),
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            kind,
            identifier,
        })
    }
}

/// RDS naming rules for DB instance and cluster identifiers: 1 to 63 letters, digits or
/// hyphens; a letter first; no hyphen at the end and no two in a row.
pub fn validate_identifier(id: &str) -> Result<(), String> {
    let problem = if id.is_empty() || id.len() > 63 {
        Some("must be 1 to 63 characters")
    } else if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Some("may contain only ASCII letters, digits and hyphens")
    } else if !id.as_bytes()[0].is_ascii_alphabetic() {
        Some("must begin with a letter")
    } else if id.ends_with('-') || id.contains("--") {
        Some("must not end with a hyphen or contain two consecutive hyphens")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(format!("identifier '{id}' {problem}")),
        None => Ok(()),
    }
}

/// What DescribeDBInstances / DescribeDBClusters tell about a resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceFacts {
    pub status: String,
    pub engine: String,
    pub multi_az: bool,
    /// For an instance: the Aurora cluster it belongs to.
    pub cluster_id: Option<String>,
    /// The source this resource replicates from.
    pub replica_source: Option<String>,
    /// Replicas of this resource.
    pub replicas: Vec<String>,
    /// For a cluster: `provisioned`, `serverless` (v1), ...
    pub engine_mode: Option<String>,
    /// For a cluster: the Aurora global database it is a member of.
    pub global_cluster_id: Option<String>,
}

/// Why RDS refuses to stop this resource, if it does.
pub fn not_stoppable_reason(kind: ResourceKind, facts: &ResourceFacts) -> Option<String> {
    if let Some(cluster) = &facts.cluster_id
        && kind == ResourceKind::DbInstance
    {
        return Some(format!(
            "Aurora member instance of cluster {cluster}: stop the cluster instead \
                 (its RDS-EVENT-0153 does)"
        ));
    }
    if let Some(source) = &facts.replica_source {
        return Some(format!("read replica of {source}"));
    }
    if !facts.replicas.is_empty() {
        return Some(format!("has read replicas: {}", facts.replicas.join(", ")));
    }
    if kind == ResourceKind::DbInstance && facts.engine.starts_with("sqlserver") && facts.multi_az {
        return Some("RDS for SQL Server in a Multi-AZ deployment".into());
    }
    if facts.engine.starts_with("custom-") {
        return Some("RDS Custom".into());
    }
    // DescribeDBClusters also answers for Neptune, DocumentDB and Multi-AZ DB clusters.
    if kind == ResourceKind::DbCluster && !facts.engine.starts_with("aurora") {
        return Some(format!(
            "a {} cluster, not Aurora: restop stops Aurora clusters only",
            facts.engine
        ));
    }
    if kind == ResourceKind::DbCluster && facts.engine_mode.as_deref() == Some("serverless") {
        return Some("Aurora Serverless v1 cluster".into());
    }
    if let Some(global) = &facts.global_cluster_id {
        return Some(format!(
            "member of the Aurora global database {global}: RDS cannot stop it"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns() {
        let arn: ResourceArn = "arn:aws:rds:eu-west-1:123456789012:cluster:aurora-1"
            .parse()
            .unwrap();
        assert_eq!(arn.kind, ResourceKind::DbCluster);
        assert_eq!(
            (arn.region.as_str(), arn.identifier.as_str()),
            ("eu-west-1", "aurora-1")
        );
        for bad in [
            "arn:aws:rds:eu-west-1:123456789012:snapshot:s1",
            "arn:aws:ec2:eu-west-1:123456789012:db:x",
            "arn:aws:rds:eu-west-1:1234:db:x",
            "arn:aws:rds:eu-west-1:123456789012:db:1x",
            "arn:aws:rds:eu-west-1:123456789012:db:x:y",
        ] {
            assert!(bad.parse::<ResourceArn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers_are_case_insensitive() {
        let mixed: ResourceArn = "arn:aws:rds:eu-west-1:123456789012:db:Orders-DB"
            .parse()
            .unwrap();
        assert_eq!(mixed.identifier, "orders-db");
        assert_eq!(mixed.arn, "arn:aws:rds:eu-west-1:123456789012:db:orders-db");
        assert_eq!(
            mixed,
            "arn:aws:rds:eu-west-1:123456789012:db:orders-db"
                .parse()
                .unwrap()
        );
    }

    #[test]
    fn identifiers() {
        assert!(validate_identifier("orders-db-1").is_ok());
        assert!(validate_identifier(&"a".repeat(63)).is_ok());
        for bad in ["", "1db", "db-", "d--b", "d_b", "dé", &"a".repeat(64)] {
            assert!(validate_identifier(bad).is_err(), "{bad}");
        }
    }

    fn facts() -> ResourceFacts {
        ResourceFacts {
            status: "available".into(),
            engine: "postgres".into(),
            ..ResourceFacts::default()
        }
    }

    #[test]
    fn stoppable_cases() {
        use ResourceKind::*;
        assert_eq!(not_stoppable_reason(DbInstance, &facts()), None);
        let multi_az_postgres = ResourceFacts {
            multi_az: true,
            ..facts()
        };
        assert_eq!(not_stoppable_reason(DbInstance, &multi_az_postgres), None);
        let cluster = ResourceFacts {
            engine: "aurora-postgresql".into(),
            engine_mode: Some("provisioned".into()),
            ..facts()
        };
        assert_eq!(not_stoppable_reason(DbCluster, &cluster), None);

        let cases = [
            (
                DbInstance,
                ResourceFacts {
                    cluster_id: Some("c1".into()),
                    ..facts()
                },
                "Aurora member",
            ),
            (
                DbInstance,
                ResourceFacts {
                    replica_source: Some("src".into()),
                    ..facts()
                },
                "read replica of src",
            ),
            (
                DbInstance,
                ResourceFacts {
                    replicas: vec!["r1".into()],
                    ..facts()
                },
                "has read replicas: r1",
            ),
            (
                DbInstance,
                ResourceFacts {
                    engine: "sqlserver-se".into(),
                    multi_az: true,
                    ..facts()
                },
                "SQL Server",
            ),
            (
                DbInstance,
                ResourceFacts {
                    engine: "custom-oracle-ee".into(),
                    ..facts()
                },
                "RDS Custom",
            ),
            (
                DbCluster,
                ResourceFacts {
                    engine: "aurora-mysql".into(),
                    engine_mode: Some("serverless".into()),
                    ..facts()
                },
                "Serverless v1",
            ),
            (
                DbCluster,
                ResourceFacts {
                    engine: "neptune".into(),
                    ..facts()
                },
                "a neptune cluster, not Aurora",
            ),
            (
                DbCluster,
                ResourceFacts {
                    replica_source: Some("arn:x".into()),
                    ..facts()
                },
                "read replica",
            ),
            (
                DbCluster,
                ResourceFacts {
                    engine: "aurora-mysql".into(),
                    global_cluster_id: Some("world".into()),
                    ..facts()
                },
                "global database world",
            ),
        ];
        for (kind, facts, expected) in cases {
            let reason = not_stoppable_reason(kind, &facts).unwrap_or_default();
            assert!(reason.contains(expected), "{facts:?}: {reason}");
        }
    }
}
