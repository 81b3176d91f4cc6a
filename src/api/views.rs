//! The JSON bodies of `/v1`, as types: what `openapi.yaml` promises, field for field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::aws::arn::ResourceKind;
use crate::execution::{
    ConfirmedWith, Disposition, MessageType, Mode, NotifyState, Outcome, Phase, Status,
    SubscriptionStatus, TriggerKind,
};
use crate::savings::Figures;
use crate::store::{Execution, MessageEvent, MessageRecord, Step, SubscriptionRecord};

/// One page of a list.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass it as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ExecutionView<'a> {
    pub id: &'a str,
    pub resource_type: ResourceKind,
    pub resource_id: &'a str,
    pub resource_arn: &'a str,
    pub region: &'a str,
    pub account_id: &'a str,
    pub trigger: TriggerKind,
    pub message_id: Option<&'a str>,
    pub event_id: Option<&'a str>,
    pub mode: Mode,
    pub dry_run: bool,
    pub skip_tag_check: bool,
    pub status: Status,
    pub outcome: Option<Outcome>,
    pub reason: Option<&'a str>,
    pub phase: Phase,
    pub sfn_execution_arn: Option<&'a str>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub deadline_at: DateTime<Utc>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub notification: NotificationView<'a>,
}

#[derive(Debug, Serialize)]
pub struct NotificationView<'a> {
    pub state: Option<NotifyState>,
    pub attempts: u32,
    pub error: Option<&'a str>,
}

impl<'a> From<&'a Execution> for ExecutionView<'a> {
    fn from(e: &'a Execution) -> Self {
        Self {
            id: &e.id,
            resource_type: e.resource.kind,
            resource_id: &e.resource.identifier,
            resource_arn: &e.resource.arn,
            region: &e.resource.region,
            account_id: &e.resource.account,
            trigger: e.trigger,
            message_id: e.message_id.as_deref(),
            event_id: e.event_id.as_deref(),
            mode: e.mode,
            dry_run: e.dry_run,
            skip_tag_check: e.skip_tag_check,
            status: e.status,
            outcome: e.outcome,
            reason: e.reason.as_deref(),
            phase: e.phase,
            sfn_execution_arn: e.sfn_execution_arn.as_deref(),
            created_at: e.created_at,
            updated_at: e.updated_at,
            started_at: e.started_at,
            finished_at: e.finished_at,
            deadline_at: e.deadline_at,
            next_run_at: e.next_run_at,
            notification: NotificationView {
                state: e.notification.state,
                attempts: e.notification.attempts,
                error: e.notification.error.as_deref(),
            },
        }
    }
}

/// An execution with its history, as `GET /v1/executions/{id}` shows it.
#[derive(Debug, Serialize)]
pub struct ExecutionDetailView<'a> {
    #[serde(flatten)]
    pub execution: ExecutionView<'a>,
    pub steps: Vec<StepView<'a>>,
}

#[derive(Debug, Serialize)]
pub struct StepView<'a> {
    pub seq: i32,
    pub at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub repeats: i32,
    pub step: &'a str,
    pub rds_status: Option<&'a str>,
    pub action: &'a str,
    pub error: Option<&'a str>,
}

impl<'a> From<&'a Step> for StepView<'a> {
    fn from(s: &'a Step) -> Self {
        Self {
            seq: s.seq,
            at: s.at,
            last_at: s.last_at,
            repeats: s.repeats,
            step: &s.step,
            rds_status: s.rds_status.as_deref(),
            action: &s.action,
            error: s.error.as_deref(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct MessageView<'a> {
    pub message_id: &'a str,
    pub r#type: MessageType,
    pub topic_arn: &'a str,
    pub subject: Option<&'a str>,
    pub message: &'a str,
    pub sent_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub signature_version: &'a str,
    pub disposition: Disposition,
    pub disposition_reason: Option<&'a str>,
    pub event: Option<&'a MessageEvent>,
    pub execution_id: Option<&'a str>,
}

impl<'a> From<&'a MessageRecord> for MessageView<'a> {
    fn from(m: &'a MessageRecord) -> Self {
        Self {
            message_id: &m.message_id,
            r#type: m.message_type,
            topic_arn: &m.topic_arn,
            subject: m.subject.as_deref(),
            message: &m.body,
            sent_at: m.sent_at,
            received_at: m.received_at,
            signature_version: &m.signature_version,
            disposition: m.disposition,
            disposition_reason: m.disposition_reason.as_deref(),
            event: m.event.as_ref(),
            execution_id: m.execution_id.as_deref(),
        }
    }
}

/// Subscriptions are few: one list, no pages.
#[derive(Debug, Serialize)]
pub struct SubscriptionList<'a> {
    pub items: Vec<SubscriptionView<'a>>,
}

#[derive(Debug, Serialize)]
pub struct SubscriptionView<'a> {
    pub topic_arn: &'a str,
    pub status: SubscriptionStatus,
    pub subscription_arn: Option<&'a str>,
    pub last_message_id: &'a str,
    pub last_error: Option<&'a str>,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub confirmed_with: Option<ConfirmedWith>,
}

impl<'a> From<&'a SubscriptionRecord> for SubscriptionView<'a> {
    fn from(s: &'a SubscriptionRecord) -> Self {
        Self {
            topic_arn: &s.topic_arn,
            status: s.status,
            subscription_arn: s.subscription_arn.as_deref(),
            last_message_id: &s.last_message_id,
            last_error: s.last_error.as_deref(),
            first_seen_at: s.first_seen_at,
            updated_at: s.updated_at,
            confirmed_at: s.confirmed_at,
            confirmed_with: s.confirmed_with,
        }
    }
}

/// `/v1/summary`: what the console shows at the top.
#[derive(Debug, Serialize)]
pub struct SummaryView<'a> {
    /// The windows end here.
    pub generated_at: DateTime<Utc>,
    /// The last 7 days, then the last 30.
    pub windows: [SummaryWindowView; 2],
    /// Pending or running executions, however old.
    pub active: i64,
    /// Failures of the short window, newest first.
    pub attention: Vec<ExecutionView<'a>>,
}

/// Executions created in one window, by outcome and by status; every value is listed.
#[derive(Debug, Serialize)]
pub struct SummaryWindowView {
    pub days: i64,
    pub since: DateTime<Utc>,
    pub total: i64,
    pub by_outcome: BTreeMap<Outcome, i64>,
    pub by_status: BTreeMap<Status, i64>,
}

/// `/v1/savings`: the window, each database active in it, and their sums.
#[derive(Debug, Serialize)]
pub struct SavingsView {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub databases: Vec<SavingsDatabaseView>,
    pub totals: SavingsTotalsView,
}

#[derive(Debug, Serialize)]
pub struct SavingsDatabaseView {
    pub resource_arn: String,
    pub resource_id: String,
    pub resource_type: &'static str,
    pub account: String,
    pub region: String,
    pub instance_class: Option<String>,
    pub instance_count: Option<u32>,
    #[serde(flatten)]
    pub figures: Figures,
    pub estimated_cost_avoided: CostView,
}

#[derive(Debug, Serialize)]
pub struct SavingsTotalsView {
    #[serde(flatten)]
    pub figures: Figures,
    pub estimated_cost_avoided: CostView,
}

/// An estimate: `amount` is `null` when no price is known; `basis` says how it was made.
#[derive(Debug, Serialize)]
pub struct CostView {
    pub amount: Option<f64>,
    pub currency: &'static str,
    pub basis: String,
}

impl CostView {
    pub fn usd(amount: Option<f64>, basis: String) -> Self {
        Self {
            amount,
            currency: "USD",
            basis,
        }
    }
}

/// What `POST /sns` answers once a message is stored.
#[derive(Debug, Serialize)]
pub struct SnsAnswer {
    pub message_id: String,
    pub disposition: Disposition,
    /// A redelivery of a message already stored.
    pub duplicate: bool,
    /// The execution an accepted event started or joined.
    pub execution_id: Option<String>,
}
