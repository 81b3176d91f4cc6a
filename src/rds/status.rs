//! What an RDS instance or cluster status means for restop.

/// The classes of `DBInstanceStatus` / cluster `Status` that decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// The only status from which a stop succeeds.
    Available,
    /// Busy; poll again.
    Transitional,
    /// A stop is under way.
    Stopping,
    Stopped,
    /// Being deleted: nothing left to stop.
    Deleting,
    /// Will not recover by waiting: finish and alert.
    Trouble,
    /// Misconfigured, may recover once fixed: keep polling, but warn.
    MayRecover,
    /// A status this version does not know: keep polling, warn.
    Unknown,
}

pub fn classify(status: &str) -> StatusClass {
    match status {
        "available" => StatusClass::Available,
        "stopping" => StatusClass::Stopping,
        "stopped" => StatusClass::Stopped,
        "deleting" | "deleted" => StatusClass::Deleting,
        "starting"
        | "backing-up"
        | "backtracking"
        | "converting-to-vpc"
        | "maintenance"
        | "modifying"
        | "moving-to-vpc"
        | "rebooting"
        | "renaming"
        | "resetting-master-credentials"
        | "storage-optimization"
        | "storage-config-upgrade"
        | "storage-initialization"
        | "upgrading"
        | "creating"
        | "delete-precheck"
        | "promoting"
        | "migrating"
        | "preparing-data-migration"
        | "failing-over"
        | "cloning-failed"
        | "update-iam-db-auth" => StatusClass::Transitional,
        s if s.starts_with("configuring-") => StatusClass::Transitional,
        "failed"
        | "incompatible-restore"
        | "inaccessible-encryption-credentials"
        | "inaccessible-encryption-credentials-recoverable"
        | "insufficient-capacity"
        | "restore-error"
        | "storage-full" => StatusClass::Trouble,
        "incompatible-network"
        | "incompatible-option-group"
        | "incompatible-parameters"
        | "incompatible-credentials" => StatusClass::MayRecover,
        _ => StatusClass::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_status_has_its_class() {
        let cases = [
            ("available", StatusClass::Available),
            ("stopping", StatusClass::Stopping),
            ("stopped", StatusClass::Stopped),
            ("deleting", StatusClass::Deleting),
            ("starting", StatusClass::Transitional),
            ("backing-up", StatusClass::Transitional),
            ("backtracking", StatusClass::Transitional),
            ("configuring-enhanced-monitoring", StatusClass::Transitional),
            ("configuring-iam-database-auth", StatusClass::Transitional),
            ("configuring-log-exports", StatusClass::Transitional),
            ("converting-to-vpc", StatusClass::Transitional),
            ("maintenance", StatusClass::Transitional),
            ("modifying", StatusClass::Transitional),
            ("moving-to-vpc", StatusClass::Transitional),
            ("rebooting", StatusClass::Transitional),
            ("renaming", StatusClass::Transitional),
            ("resetting-master-credentials", StatusClass::Transitional),
            ("storage-optimization", StatusClass::Transitional),
            ("storage-config-upgrade", StatusClass::Transitional),
            ("storage-initialization", StatusClass::Transitional),
            ("upgrading", StatusClass::Transitional),
            ("creating", StatusClass::Transitional),
            ("delete-precheck", StatusClass::Transitional),
            ("failed", StatusClass::Trouble),
            ("incompatible-restore", StatusClass::Trouble),
            ("inaccessible-encryption-credentials", StatusClass::Trouble),
            ("insufficient-capacity", StatusClass::Trouble),
            ("restore-error", StatusClass::Trouble),
            ("storage-full", StatusClass::Trouble),
            ("incompatible-network", StatusClass::MayRecover),
            ("incompatible-option-group", StatusClass::MayRecover),
            ("incompatible-parameters", StatusClass::MayRecover),
            ("something-new", StatusClass::Unknown),
            ("", StatusClass::Unknown),
            ("Available", StatusClass::Unknown),
        ];
        for (status, class) in cases {
            assert_eq!(classify(status), class, "{status}");
        }
    }
}
