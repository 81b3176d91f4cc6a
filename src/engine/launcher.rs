//! How executions come into being: the SNS endpoint and the manual trigger both describe
//! a new execution through the [`Launcher`], and wake the engine when one is new.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use tokio::sync::Notify;

use crate::aws::arn::ResourceArn;
use crate::execution::{Mode, TriggerKind};
use crate::store::NewExecution;

/// Creates executions the way the engine expects them.
#[derive(Clone)]
pub struct Launcher {
    pub mode: Mode,
    pub max_duration: Duration,
    pub wakeup: Arc<Notify>,
    /// RESTOP_NOTIFY_URL is set: ended executions (cancelled ones too) are notified.
    pub notify: bool,
}

/// Who asked for an execution.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub kind: TriggerKind,
    pub message_id: Option<String>,
    pub event_id: Option<String>,
    /// When the event happened: the start grace period counts from here.
    pub event_at: DateTime<Utc>,
    pub dry_run: bool,
    pub skip_tag_check: bool,
}

impl Launcher {
    pub fn execution(
        &self,
        resource: &ResourceArn,
        trigger: Trigger,
        now: DateTime<Utc>,
    ) -> NewExecution {
        // Stored timestamps keep microseconds (Postgres' precision), so a pagination cursor
        // built from a row compares equal to the row on every backend.
        let now = now.trunc_subsecs(6);
        NewExecution {
            id: uuid::Uuid::new_v4().to_string(),
            resource: resource.clone(),
            trigger: trigger.kind,
            message_id: trigger.message_id,
            event_id: trigger.event_id,
            mode: self.mode,
            dry_run: trigger.dry_run,
            skip_tag_check: trigger.skip_tag_check,
            event_at: trigger.event_at,
            created_at: now,
            deadline_at: now + self.max_duration,
        }
    }

    /// Tells the engine that a new execution is due now.
    pub fn wake(&self) {
        self.wakeup.notify_one();
    }
}
