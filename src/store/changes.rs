//! The write side: what callers hand the store to record, and what it answers.

use chrono::{DateTime, Utc};

use super::MessageEvent;
use crate::aws::arn::ResourceArn;
use crate::execution::{
    ConfirmedWith, Disposition, MessageType, Mode, NotifyState, Outcome, Phase, Status,
    SubscriptionStatus, TriggerKind,
};

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub message_id: String,
    pub message_type: MessageType,
    pub topic_arn: String,
    pub subject: Option<String>,
    pub sent_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub signature_version: String,
    pub disposition: Disposition,
    pub disposition_reason: Option<String>,
    /// The SNS `Message` field.
    pub body: String,
    pub event: Option<MessageEvent>,
    /// For an accepted event: the execution to start, unless one is active for the resource.
    pub execution: Option<NewExecution>,
    /// An existing execution the message concerns (the one a "started" event woke).
    pub execution_id: Option<String>,
}

/// A change to what is known of a topic's subscription.
#[derive(Clone)]
pub struct SubscriptionUpdate {
    pub topic_arn: String,
    pub status: SubscriptionStatus,
    pub subscription_arn: Option<String>,
    pub subscribe_url: Option<String>,
    pub message_id: String,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
    /// How it was confirmed, when this update confirms it.
    pub confirmed_with: Option<ConfirmedWith>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    New {
        /// The execution the message started or joined.
        execution: Option<ExecutionLink>,
    },
    /// A redelivery: nothing was written. Carries the stored disposition.
    Duplicate(Disposition),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionLink {
    pub id: String,
    /// True when an active execution for the resource already existed.
    pub joined: bool,
    /// True when the active execution was a dry run (or skipped the tag check) and a real
    /// event made it a real run.
    pub upgraded: bool,
}

/// An execution about to be created.
#[derive(Debug, Clone)]
pub struct NewExecution {
    pub id: String,
    pub resource: ResourceArn,
    pub trigger: TriggerKind,
    pub message_id: Option<String>,
    pub event_id: Option<String>,
    pub mode: Mode,
    pub dry_run: bool,
    pub skip_tag_check: bool,
    pub event_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub deadline_at: DateTime<Utc>,
}

/// One step of an execution's history, about to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStep {
    pub at: DateTime<Utc>,
    /// The phase the step ran in, or `notify`.
    pub step: String,
    pub rds_status: Option<String>,
    pub action: String,
    pub error: Option<String>,
}

/// The state a step leaves its execution in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpdate {
    pub status: Status,
    pub outcome: Option<Outcome>,
    pub reason: Option<String>,
    pub phase: Phase,
    pub retries: u32,
    pub stop_refusals: u32,
    pub wake_polls: u32,
    pub sfn_execution_arn: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
    pub notify_state: Option<NotifyState>,
    pub notify_attempts: u32,
    pub notify_error: Option<String>,
    /// `None`: nothing left to do.
    pub next_run_at: Option<DateTime<Utc>>,
}

/// Which due jobs a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Active executions waiting for a status: described together, many per call.
    Polls,
    /// Everything else: tag checks, stops, state machines, notifications.
    Steps,
}
