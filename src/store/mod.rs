//! Durable storage behind one small interface, with a Postgres and a SQLite implementation.
//! The backend is chosen once, from the scheme of `DATABASE_URL`; nothing above this module
//! sees SQL.

mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::{DatabaseConfig, DatabaseUrl};

/// How long a request waits for a pooled connection before the database counts as down.
/// SNS abandons a delivery after 15 s; answering 503 well before lets it retry.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
#[error("database error: {0}")]
pub struct StoreError(#[from] sqlx::Error);

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] sqlx::Error),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// What restop did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// An RDS event restop acts on.
    Accepted,
    /// Authentic, but nothing to do (other events, non-RDS messages).
    Ignored,
    /// A confirmation is being attempted.
    Confirming,
    Confirmed,
    ConfirmationFailed,
    /// Auto-confirm is off: an operator confirms.
    PendingConfirmation,
    Unsubscribed,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Ignored => "ignored",
            Self::Confirming => "confirming",
            Self::Confirmed => "confirmed",
            Self::ConfirmationFailed => "confirmation_failed",
            Self::PendingConfirmation => "pending_confirmation",
            Self::Unsubscribed => "unsubscribed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::Accepted,
            Self::Ignored,
            Self::Confirming,
            Self::Confirmed,
            Self::ConfirmationFailed,
            Self::PendingConfirmation,
            Self::Unsubscribed,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    PendingConfirmation,
    Confirmed,
    ConfirmationFailed,
    Unsubscribed,
}

impl SubscriptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingConfirmation => "pending_confirmation",
            Self::Confirmed => "confirmed",
            Self::ConfirmationFailed => "confirmation_failed",
            Self::Unsubscribed => "unsubscribed",
        }
    }
}

/// The RDS event columns of a notification that parsed as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventColumns {
    pub event_id: String,
    pub source_type: String,
    pub source_id: String,
    pub source_arn: Option<String>,
    pub region: String,
    pub account: String,
}

#[derive(Debug, Clone)]
pub struct NewMessage {
    pub message_id: String,
    pub message_type: &'static str,
    pub topic_arn: String,
    pub subject: Option<String>,
    pub sent_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub signature_version: String,
    pub disposition: Disposition,
    pub disposition_reason: Option<String>,
    /// The SNS `Message` field.
    pub body: String,
    pub event: Option<EventColumns>,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New,
    /// A redelivery: nothing was written. Carries the stored disposition.
    Duplicate(Disposition),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a message unless its MessageId is already stored; a new message's
    /// subscription change is applied in the same transaction.
    async fn insert_message(
        &self,
        message: &NewMessage,
        subscription: Option<&SubscriptionUpdate>,
    ) -> Result<Inserted, StoreError>;

    /// Records how a confirmation attempt ended, on the message and its subscription at once.
    async fn record_confirmation(
        &self,
        disposition: Disposition,
        reason: Option<&str>,
        subscription: &SubscriptionUpdate,
    ) -> Result<(), StoreError>;
}

/// Connects to the configured backend and applies its pending migrations.
pub async fn connect_and_migrate(config: &DatabaseConfig) -> Result<Arc<dyn Store>, MigrateError> {
    Ok(match &config.database_url {
        DatabaseUrl::Postgres(url) => {
            Arc::new(postgres::PgStore::connect(url, config.db_max_connections).await?)
        }
        DatabaseUrl::Sqlite(url) => {
            Arc::new(sqlite::SqliteStore::connect(url, config.db_max_connections).await?)
        }
    })
}

fn disposition_from_db(s: &str) -> Disposition {
    // Values only ever come from `Disposition::as_str`; an unknown one is a newer version's,
    // and treating it as final (`ignored`) never repeats a side effect.
    Disposition::parse(s).unwrap_or(Disposition::Ignored)
}
