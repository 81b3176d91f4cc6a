//! `POST /sns`: authenticate a delivery, store it exactly once, then act by type.
//!
//! The answer decides what SNS does next: 2xx only once the message is committed, 4xx for
//! input that will never be acceptable (SNS drops it), 5xx for trouble that a retry may
//! cure (SNS delivers again). What an RDS event means is `rds::classify`'s to say, and a
//! wake-up is the engine's: this door authenticates, stores and answers.

pub mod guard;
mod subscription;

use std::future::Future;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::SubsecRound;
use tracing::Instrument;

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::views::SnsAnswer;
use crate::engine::{CLUSTER_LOOKUP_TIMEOUT, Trigger};
use crate::execution::{Disposition, MessageType, TriggerKind};
use crate::rds::classify::Meaning;
use crate::rds::event::parse_rds_event;
use crate::sns::Rejection;
use crate::sns::message::SnsMessage;
use crate::store::{Inserted, MessageEvent, NewMessage, Recorded, Recording, StoreError};

/// SNS messages are at most 256 KiB; JSON escaping can roughly double that.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A store call that takes longer is abandoned, so SNS hears 503 long before its 15 s limit.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// A wake-up: store calls and, for an Aurora member, the lookup of its cluster.
const WAKE_TIMEOUT: Duration = STORE_TIMEOUT.saturating_add(CLUSTER_LOOKUP_TIMEOUT);

/// Why a delivery was not answered 200.
enum Failure {
    Rejected(Rejection),
    Storage(String),
    Confirmation(String),
}

impl From<Rejection> for Failure {
    fn from(r: Rejection) -> Self {
        Self::Rejected(r)
    }
}

struct Handled {
    message_id: String,
    disposition: Disposition,
    duplicate: bool,
    /// The execution an accepted event started or joined.
    execution_id: Option<String>,
}

pub async fn receive(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match handle(&app, &headers, body).await {
        Ok(done) => {
            let result = if done.duplicate {
                "duplicate"
            } else {
                done.disposition.as_str()
            };
            tracing::info!(message_id = %done.message_id, result, "SNS message handled");
            let mut response = Json(SnsAnswer {
                message_id: done.message_id,
                disposition: done.disposition,
                duplicate: done.duplicate,
                execution_id: done.execution_id,
            })
            .into_response();
            response.extensions_mut().insert(super::Logged);
            response
        }
        Err(Failure::Rejected(rejection)) => refuse(&app, rejection).into_response(),
        Err(Failure::Storage(e)) => {
            tracing::error!(error = %e, "SNS message not stored; answering 503 so SNS retries");
            app.metrics
                .sns_refusal(ErrorCode::StorageUnavailable.as_str());
            ApiError::storage_unavailable().into_response()
        }
        Err(Failure::Confirmation(e)) => {
            tracing::error!(error = %e, "subscription confirmation failed; answering 503 so SNS retries");
            app.metrics
                .sns_refusal(ErrorCode::ConfirmationFailed.as_str());
            ApiError::new(
                ErrorCode::ConfirmationFailed,
                "the subscription could not be confirmed; retry later",
            )
            .into_response()
        }
    }
}

/// Logs and counts a refusal once, and turns it into the JSON error answer.
fn refuse(app: &AppState, rejection: Rejection) -> ApiError {
    let code = ErrorCode::from(&rejection);
    tracing::warn!(reason = %code, detail = %rejection, "SNS delivery refused");
    app.metrics.sns_refusal(code.as_str());
    ApiError::new(code, rejection.public_message())
}

async fn handle(
    app: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Handled, Failure> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Rejection::BodyTooLarge(MAX_BODY_BYTES),
        _ => Rejection::Malformed(format!("unreadable body: {e}")),
    })?;
    if headers
        .get("x-amz-sns-rawdelivery")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
    {
        return Err(Rejection::RawDelivery.into());
    }
    let msg = SnsMessage::parse(&body).map_err(Rejection::Malformed)?;
    let span = tracing::info_span!(
        "sns",
        message_id = %msg.message_id,
        topic = %msg.topic_arn,
        kind = msg.message_type.as_str()
    );
    process(app, msg).instrument(span).await
}

/// Authenticates a parsed message, stores it, and acts on it by type.
async fn process(app: &AppState, msg: SnsMessage) -> Result<Handled, Failure> {
    app.verifier.verify(&msg).await?;

    // Microseconds, as Postgres stores them: pagination cursors compare exactly.
    let received_at = app.clock.now().trunc_subsecs(6);
    let record = NewMessage {
        message_id: msg.message_id.clone(),
        message_type: msg.message_type,
        topic_arn: msg.topic_arn.to_string(),
        subject: msg.subject.clone(),
        sent_at: msg.timestamp,
        received_at,
        signature_version: msg.signature_version.clone(),
        disposition: Disposition::Ignored,
        disposition_reason: None,
        body: msg.message.clone(),
        event: None,
        execution: None,
        execution_id: None,
    };
    let mut execution_id = None;
    let mut result = None;
    let (disposition, duplicate) = match msg.message_type {
        MessageType::Notification => {
            let stored = notification(app, &msg, record).await?;
            execution_id = stored.execution_id;
            result = stored.foreign.then_some(FOREIGN_RESOURCE);
            (stored.disposition, stored.duplicate)
        }
        MessageType::UnsubscribeConfirmation => {
            subscription::unsubscribed(app, &msg, record).await?
        }
        MessageType::SubscriptionConfirmation => {
            subscription::confirmation(app, &msg, record).await?
        }
    };
    let result = match (duplicate, result) {
        (true, _) => "duplicate",
        (false, Some(result)) => result,
        (false, None) => disposition.as_str(),
    };
    app.metrics.sns_message(msg.message_type.as_str(), result);
    Ok(Handled {
        message_id: msg.message_id,
        disposition,
        duplicate,
        execution_id,
    })
}

/// Why a "started" event was stored as ignored.
const NOTHING_WAITS: &str = "no execution waits for this database";

/// The reason (and metric result) of an authentic event about a resource that its topic
/// may not speak for.
const FOREIGN_RESOURCE: &str = "foreign_resource";

/// What became of a notification.
struct StoredNotification {
    disposition: Disposition,
    duplicate: bool,
    execution_id: Option<String>,
    /// An event about a resource its topic may not speak for.
    foreign: bool,
}

/// Classifies an authentic notification, stores it, and starts or joins the execution of
/// an accepted event.
async fn notification(
    app: &AppState,
    msg: &SnsMessage,
    mut record: NewMessage,
) -> Result<StoredNotification, Failure> {
    let event = parse_rds_event(&msg.message, &msg.topic_arn);
    let meaning = app.event_rules.classify(event.as_ref(), &msg.topic_arn);
    let foreign = matches!(&meaning, Meaning::Foreign(_));
    let mut wake = None;
    match meaning {
        Meaning::Act(resource) => {
            record.disposition = Disposition::Accepted;
            record.execution = Some(app.launcher.execution(
                &resource,
                Trigger {
                    kind: TriggerKind::Sns,
                    message_id: Some(msg.message_id.clone()),
                    event_id: event.as_ref().map(|e| e.event_id.clone()),
                    event_at: msg.timestamp,
                    dry_run: false,
                    skip_tag_check: false,
                },
                record.received_at,
            ));
        }
        Meaning::Foreign(resource) => {
            tracing::warn!(
                resource = %resource.arn,
                "an event about a resource outside its topic's account or region; ignored"
            );
            record.disposition = Disposition::Ignored;
            record.disposition_reason = Some(FOREIGN_RESOURCE.into());
        }
        Meaning::Wake(resource) => {
            // What is stored unless the intake's batch wakes an execution.
            record.disposition = Disposition::Ignored;
            record.disposition_reason = Some(NOTHING_WAITS.into());
            wake = Some(resource);
        }
        Meaning::Ignore(reason) => {
            record.disposition = Disposition::Ignored;
            record.disposition_reason = Some(reason);
        }
    }
    record.event = event.map(|event| MessageEvent {
        event_id: event.event_id,
        source_type: event.source_type.as_str().to_owned(),
        source_id: event.source_id,
        source_arn: event.source_arn,
        region: event.region,
        account_id: event.account,
    });
    // Plain records and wake-ups go through the group-commit intake; those that start an
    // execution need their own transaction.
    if record.execution.is_some() {
        let disposition = record.disposition;
        let inserted = store(app.store.insert_message(&record, None)).await?;
        return Ok(started(disposition, inserted, foreign, app));
    }
    let disposition = record.disposition;
    // Kept for a wake-up the intake leaves to us (rare).
    let kept = wake.is_some().then(|| record.clone());
    let recorded = store(app.intake.record(Recording {
        message: record,
        wake: wake.clone(),
    }))
    .await?;
    let recorded = match (recorded, wake, kept) {
        (Recorded::Deferred, Some(resource), Some(mut record)) => {
            // An Aurora member's start, perhaps: its cluster is looked up on its own.
            let woken = app.wakeups.wake(&resource, record.received_at);
            let woken = store_within(WAKE_TIMEOUT, woken).await?;
            if let Some(execution) = &woken {
                record.disposition = Disposition::Wakeup;
                record.disposition_reason = None;
                record.execution_id = Some(execution.clone());
            }
            let recorded = store(app.intake.record(Recording {
                message: record,
                wake: None,
            }))
            .await?;
            match recorded {
                Recorded::New { .. } => Recorded::New { woken },
                other => other,
            }
        }
        (recorded, Some(_), _) => {
            let woken = match &recorded {
                Recorded::New { woken } | Recorded::Duplicate { woken, .. } => woken.as_deref(),
                Recorded::Deferred => None,
            };
            app.wakeups.woke(woken);
            recorded
        }
        (recorded, _, _) => recorded,
    };
    Ok(match recorded {
        Recorded::New { woken } => StoredNotification {
            disposition: if woken.is_some() {
                Disposition::Wakeup
            } else {
                disposition
            },
            duplicate: false,
            execution_id: woken,
            foreign,
        },
        Recorded::Duplicate { disposition, .. } => StoredNotification {
            disposition,
            duplicate: true,
            execution_id: None,
            foreign,
        },
        Recorded::Deferred => {
            return Err(Failure::Storage(
                "the intake deferred a message without a wake-up".into(),
            ));
        }
    })
}

/// What became of a notification that starts or joins an execution.
fn started(
    disposition: Disposition,
    inserted: Inserted,
    foreign: bool,
    app: &AppState,
) -> StoredNotification {
    let mut stored = StoredNotification {
        disposition,
        duplicate: false,
        execution_id: None,
        foreign,
    };
    match inserted {
        Inserted::New {
            execution: Some(link),
        } => {
            if link.upgraded {
                tracing::info!(execution_id = %link.id, "the resource's dry run is now a real run");
                app.launcher.wake();
            } else if link.joined {
                tracing::info!(execution_id = %link.id, "joined the resource's active execution");
            } else {
                tracing::info!(execution_id = %link.id, "execution started");
                app.launcher.wake();
            }
            stored.execution_id = Some(link.id);
        }
        Inserted::New { execution: None } => {}
        Inserted::Duplicate(disposition) => {
            stored.disposition = disposition;
            stored.duplicate = true;
        }
    }
    stored
}

async fn store<T>(op: impl Future<Output = Result<T, StoreError>>) -> Result<T, Failure> {
    store_within(STORE_TIMEOUT, op).await
}

async fn store_within<T>(
    limit: Duration,
    op: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, Failure> {
    match tokio::time::timeout(limit, op).await {
        Ok(result) => result.map_err(|e| Failure::Storage(e.to_string())),
        Err(_) => Err(Failure::Storage(format!(
            "no answer within {}s",
            limit.as_secs()
        ))),
    }
}
