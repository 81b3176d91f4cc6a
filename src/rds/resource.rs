//! Whether RDS can stop a resource at all.

use crate::aws::ResourceFacts;
use crate::aws::arn::ResourceKind;

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
