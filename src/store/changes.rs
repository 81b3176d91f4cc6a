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

/// A message for the group-commit intake: plain (no subscription change, no execution to
/// start), or a "started" event that wakes the execution waiting for its database.
#[derive(Debug, Clone)]
pub struct Recording {
    /// For a wake-up: what to store when no execution is woken.
    pub message: NewMessage,
    /// The database whose waiting execution the message wakes, in the same transaction.
    pub wake: Option<ResourceArn>,
}

/// What the intake did with a [`Recording`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Stored now; `woken` is the execution a wake-up woke (then the message is stored as
    /// a `wakeup` of it).
    New { woken: Option<String> },
    /// A redelivery: nothing was stored (a wake-up still woke `woken`). Carries the stored
    /// disposition.
    Duplicate {
        disposition: Disposition,
        woken: Option<String>,
    },
    /// Nothing was written: the wake-up of an instance woke nothing while an Aurora
    /// cluster's execution waits in its account and region. Finding out whether the
    /// instance is a member of it takes an RDS call, which has no place in a batch: the
    /// caller wakes and records it on its own.
    Deferred,
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
    /// What the step's Describe said of the database's size; `None` keeps what is stored.
    pub sizing: Option<Sizing>,
}

/// What a Describe tells of a database's size, kept on its execution for `/v1/savings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizing {
    /// `None` for a cluster: RDS's cluster answer names no class.
    pub instance_class: Option<String>,
    pub engine: String,
    pub multi_az: bool,
    /// 1 for an instance; an Aurora cluster's members.
    pub instance_count: u32,
}

impl Sizing {
    pub fn of(kind: crate::aws::arn::ResourceKind, facts: &crate::aws::ResourceFacts) -> Self {
        use crate::aws::arn::ResourceKind;
        Self {
            instance_class: facts.instance_class.clone(),
            engine: facts.engine.clone(),
            multi_az: facts.multi_az,
            instance_count: match kind {
                ResourceKind::DbInstance => 1,
                ResourceKind::DbCluster => u32::try_from(facts.members.len()).unwrap_or(u32::MAX),
            },
        }
    }
}

/// Which due jobs a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Active executions waiting for a status: described together, many per call.
    Polls,
    /// Everything else: tag checks, stops, state machines, notifications.
    Steps,
}

/// One row of a batch INSERT: a message, with what its wake-up decided.
pub(in crate::store) struct BatchRow<'a> {
    pub message: &'a NewMessage,
    pub disposition: Disposition,
    pub disposition_reason: Option<&'a str>,
    pub execution_id: Option<&'a str>,
}

impl<'a> BatchRow<'a> {
    /// `message` as it is, or as the wake-up of execution `woken`.
    pub fn new(message: &'a NewMessage, woken: Option<&'a str>) -> Self {
        match woken {
            Some(id) => Self {
                message,
                disposition: Disposition::Wakeup,
                disposition_reason: None,
                execution_id: Some(id),
            },
            None => Self {
                message,
                disposition: message.disposition,
                disposition_reason: message.disposition_reason.as_deref(),
                execution_id: message.execution_id.as_deref(),
            },
        }
    }
}
