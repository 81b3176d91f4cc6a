//! The read side: what the history API lists and shows.

use chrono::{DateTime, Utc};

use crate::engine::decide::Status;

/// Keyset pagination position: the last item of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub at: DateTime<Utc>,
    pub id: String,
}

#[derive(Debug, Clone, Default)]
pub struct ExecutionFilter {
    /// Identifier or ARN.
    pub resource: Option<String>,
    pub status: Option<Status>,
    pub trigger: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub after: Option<Position>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub message_type: Option<String>,
    pub disposition: Option<String>,
    pub topic: Option<String>,
    /// Identifier or ARN of the RDS resource the event is about.
    pub resource: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub after: Option<Position>,
    pub limit: u32,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExecutionRecord {
    pub id: String,
    pub resource_type: String,
    pub resource_id: String,
    pub resource_arn: String,
    pub region: String,
    pub account_id: String,
    pub trigger: String,
    pub message_id: Option<String>,
    pub event_id: Option<String>,
    pub mode: String,
    pub dry_run: bool,
    pub skip_tag_check: bool,
    pub status: String,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub phase: String,
    pub sfn_execution_arn: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub deadline_at: DateTime<Utc>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub notify_state: Option<String>,
    pub notify_attempts: i32,
    pub notify_error: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StepRow {
    pub seq: i32,
    pub at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub repeats: i32,
    pub step: String,
    pub rds_status: Option<String>,
    pub action: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRecord {
    pub message_id: String,
    pub message_type: String,
    pub topic_arn: String,
    pub subject: Option<String>,
    pub body: String,
    pub sent_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub signature_version: String,
    pub disposition: String,
    pub disposition_reason: Option<String>,
    pub event_id: Option<String>,
    pub source_type: Option<String>,
    pub source_id: Option<String>,
    pub source_arn: Option<String>,
    pub region: Option<String>,
    pub account_id: Option<String>,
    pub execution_id: Option<String>,
}

/// What is known of a topic's subscription; never the SubscribeURL.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriptionRecord {
    pub topic_arn: String,
    pub status: String,
    pub subscription_arn: Option<String>,
    pub last_message_id: String,
    pub last_error: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    Cancelled,
    AlreadyFinished,
    NotFound,
}

/// Counts for /metrics, read from the database so every replica reports the same.
#[derive(Debug, Clone, Default)]
pub struct ExecutionStats {
    /// (status, outcome or "") -> count
    pub by_status: Vec<(String, String, i64)>,
    /// Pending or running executions.
    pub active: i64,
    /// How late the most overdue job is.
    pub oldest_due: Option<DateTime<Utc>>,
}
