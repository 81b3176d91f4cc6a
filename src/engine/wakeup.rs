//! Wake-ups: a "started" event (RESTOP_WAKE_EVENT_IDS) makes the execution waiting for that
//! database look at it now, instead of at its next poll.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Launcher;
use crate::aws::Aws;
use crate::aws::arn::{ResourceArn, ResourceKind};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// How long a wake-up may spend finding an Aurora member instance's cluster.
pub const CLUSTER_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Wakes the executions that wait for a database.
#[derive(Clone)]
pub struct Wakeups {
    pub store: Arc<dyn Store>,
    pub aws: Arc<dyn Aws>,
    pub metrics: Arc<Metrics>,
    pub launcher: Launcher,
}

impl Wakeups {
    /// Makes the execution waiting for `resource` (or, for an Aurora member instance, for
    /// its cluster) look at it now. Returns the execution woken. Costs no AWS call unless a
    /// cluster execution waits in the instance's account and region.
    pub async fn wake(
        &self,
        resource: &ResourceArn,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let mut woken = self.store.wake(&resource.arn, now).await?;
        if woken.is_none()
            && resource.kind == ResourceKind::DbInstance
            && self
                .store
                .cluster_waiting(&resource.account, &resource.region)
                .await?
            && let Some(cluster) = self.cluster_of(resource).await
        {
            // An Aurora member's start says its cluster is coming up.
            woken = self.store.wake(&cluster, now).await?;
        }
        self.woke(woken.as_deref());
        Ok(woken)
    }

    /// Counts a wake-up made (by [`Self::wake`] or in the SNS intake's batch), and has the
    /// engine look at the execution it woke.
    pub fn woke(&self, woken: Option<&str>) {
        match woken {
            Some(execution) => {
                tracing::info!(execution_id = %execution, "a started event woke the waiting execution");
                self.metrics.wakeup("woken");
                self.launcher.wake();
            }
            None => self.metrics.wakeup("ignored"),
        }
    }

    /// The ARN of the Aurora cluster `instance` belongs to, if it is a member and RDS
    /// says so in time.
    async fn cluster_of(&self, instance: &ResourceArn) -> Option<String> {
        let facts = tokio::time::timeout(CLUSTER_LOOKUP_TIMEOUT, self.aws.describe(instance))
            .await
            .ok()?
            .ok()?;
        let cluster = facts.cluster_id?;
        Some(format!(
            "arn:{}:rds:{}:{}:cluster:{}",
            instance.partition,
            instance.region,
            instance.account,
            cluster.to_ascii_lowercase()
        ))
    }
}
