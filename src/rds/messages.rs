//! What RDS says in the events restop cares about, word for word. `DescribeEvents` gives
//! no event id, so a forced start in RDS's event log is recognised by its message. Source:
//! the Amazon RDS and Aurora user guides, "Amazon RDS event categories and event messages"
//! (RDS-EVENT-0154 for instances, RDS-EVENT-0153 for clusters).

use crate::aws::arn::ResourceKind;

/// RDS-EVENT-0154: a stopped DB instance started again after seven days.
pub const INSTANCE_FORCED_START: &str =
    "DB instance is being started due to it exceeding the maximum allowed time being stopped.";
/// RDS-EVENT-0153: a stopped Aurora DB cluster started again after seven days.
pub const CLUSTER_FORCED_START: &str =
    "DB cluster is being started due to it exceeding the maximum allowed time being stopped.";

/// RDS-EVENT-0087: a DB instance has been stopped (by anyone: restop, a person, a script).
pub const INSTANCE_STOPPED: &str = "The DB instance has been stopped.";
/// RDS-EVENT-0150: an Aurora DB cluster has been stopped.
pub const CLUSTER_STOPPED: &str = "The DB cluster has been stopped.";

/// The kind of resource a logged event is a forced start of, if it is one: the source type
/// and the message (trimmed) must both match.
pub fn forced_start(source_type: &str, message: &str) -> Option<ResourceKind> {
    match (source_type, message.trim()) {
        ("db-instance", INSTANCE_FORCED_START) => Some(ResourceKind::DbInstance),
        ("db-cluster", CLUSTER_FORCED_START) => Some(ResourceKind::DbCluster),
        _ => None,
    }
}

/// The kind of resource a logged event says has been stopped, if it says so.
pub fn stopped(source_type: &str, message: &str) -> Option<ResourceKind> {
    match (source_type, message.trim()) {
        ("db-instance", INSTANCE_STOPPED) => Some(ResourceKind::DbInstance),
        ("db-cluster", CLUSTER_STOPPED) => Some(ResourceKind::DbCluster),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_documented_messages_are_forced_starts() {
        assert_eq!(
            forced_start("db-instance", &format!("  {INSTANCE_FORCED_START}\n")),
            Some(ResourceKind::DbInstance)
        );
        assert_eq!(
            forced_start("db-cluster", CLUSTER_FORCED_START),
            Some(ResourceKind::DbCluster)
        );
        for (source, message) in [
            ("db-cluster", INSTANCE_FORCED_START),
            ("db-instance", "DB instance started"),
            ("db-instance", "The DB instance has been started."),
            ("db-snapshot", INSTANCE_FORCED_START),
            ("db-instance", &INSTANCE_FORCED_START.to_lowercase()),
        ] {
            assert_eq!(forced_start(source, message), None, "{source}: {message}");
        }
    }
}
