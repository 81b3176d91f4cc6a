//! `POST /sns`: authenticate a delivery, store it exactly once, then act by type.
//!
//! The answer decides what SNS does next: 2xx only once the message is committed, 4xx for
//! input that will never be acceptable (SNS drops it), 5xx for trouble that a retry may
//! cure (SNS delivers again).

use std::future::Future;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::SubsecRound;
use openssl::sha::sha256;
use tracing::Instrument;
use url::Url;

use super::AppState;
use super::error::{ApiError, ErrorCode};
use super::views::SnsAnswer;
use crate::aws::arn::{ResourceArn, ResourceKind, TopicArn};
use crate::config::BasicAuth;
use crate::engine::Trigger;
use crate::execution::{Disposition, MessageType, SubscriptionStatus, TriggerKind};
use crate::http::FetchError;
use crate::rds::event::{RdsEvent, fits_topic, parse_rds_event};
use crate::sns::Rejection;
use crate::sns::confirm::confirm_subscription;
use crate::sns::message::SnsMessage;
use crate::store::{Inserted, MessageEvent, NewMessage, StoreError, SubscriptionUpdate};

/// SNS messages are at most 256 KiB; JSON escaping can roughly double that.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A store call that takes longer is abandoned, so SNS hears 503 long before its 15 s limit.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

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
            Json(SnsAnswer {
                message_id: done.message_id,
                disposition: done.disposition,
                duplicate: done.duplicate,
                execution_id: done.execution_id,
            })
            .into_response()
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
    ApiError::new(code, rejection.to_string())
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
    let mut record = NewMessage {
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
    let subscription = |status, subscribe_url: Option<String>| SubscriptionUpdate {
        topic_arn: msg.topic_arn.to_string(),
        status,
        subscription_arn: None,
        subscribe_url,
        message_id: msg.message_id.clone(),
        error: None,
        at: received_at,
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
            // Its SubscribeURL would subscribe the endpoint again: never visit it.
            record.disposition = Disposition::Unsubscribed;
            let update = subscription(SubscriptionStatus::Unsubscribed, None);
            let inserted = store(app.store.insert_message(&record, Some(&update))).await?;
            let duplicate = matches!(inserted, Inserted::Duplicate(_));
            if !duplicate {
                // No more events will come from this topic: the operator must hear of it.
                tracing::warn!(
                    "the endpoint was UNSUBSCRIBED from the topic: no forced start will be \
                     delivered from it until it is subscribed again"
                );
                app.metrics.unsubscription(msg.topic_arn.as_str());
                if let Some(notifier) = &app.notifier {
                    notifier.unsubscribed(&msg.topic_arn, &msg.message_id, received_at);
                }
            }
            (Disposition::Unsubscribed, duplicate)
        }
        MessageType::SubscriptionConfirmation if !app.auto_confirm => {
            tracing::warn!(
                "subscription confirmation recorded; RESTOP_SNS_AUTO_CONFIRM is off, so an operator must confirm it"
            );
            record.disposition = Disposition::PendingConfirmation;
            let update = subscription(
                SubscriptionStatus::PendingConfirmation,
                msg.subscribe_url.clone(),
            );
            let inserted = store(app.store.insert_message(&record, Some(&update))).await?;
            (
                Disposition::PendingConfirmation,
                matches!(inserted, Inserted::Duplicate(_)),
            )
        }
        MessageType::SubscriptionConfirmation => {
            record.disposition = Disposition::Confirming;
            let pending = subscription(
                SubscriptionStatus::PendingConfirmation,
                msg.subscribe_url.clone(),
            );
            match store(app.store.insert_message(&record, Some(&pending))).await? {
                // An earlier attempt did not finish: this redelivery tries again.
                Inserted::New { .. }
                | Inserted::Duplicate(Disposition::Confirming | Disposition::ConfirmationFailed) => {
                    confirm(app, &msg, pending).await?;
                    (Disposition::Confirmed, false)
                }
                Inserted::Duplicate(stored) => (stored, true),
            }
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
    let classified = classify(event.as_ref(), &msg.topic_arn, app);
    let foreign = matches!(&classified, Classified::Foreign(_));
    match classified {
        Classified::Accepted(resource) => {
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
        Classified::Foreign(resource) => {
            tracing::warn!(
                resource = %resource.arn,
                "an event about a resource outside its topic's account or region; ignored"
            );
            record.disposition = Disposition::Ignored;
            record.disposition_reason = Some(FOREIGN_RESOURCE.into());
        }
        Classified::Wake(resource) => match wake(app, &resource, record.received_at).await? {
            Some(execution) => {
                record.disposition = Disposition::Wakeup;
                record.execution_id = Some(execution);
            }
            None => {
                record.disposition = Disposition::Ignored;
                record.disposition_reason = Some("no execution waits for this database".into());
            }
        },
        Classified::Ignored(reason) => {
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
    let disposition = record.disposition;
    let woken = record.execution_id.clone();
    // Plain records go through the group-commit intake; those that start an execution
    // need their own transaction.
    let inserted = if record.execution.is_some() {
        store(app.store.insert_message(&record, None)).await?
    } else {
        store(app.intake.record(record)).await?
    };
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
        Inserted::New { execution: None } => stored.execution_id = woken,
        Inserted::Duplicate(disposition) => {
            stored.disposition = disposition;
            stored.duplicate = true;
        }
    }
    Ok(stored)
}

/// Confirms the subscription and records the outcome on the message and the subscription.
/// With credentials in the topic's account, the SNS API confirms it so that only the
/// topic's owner can unsubscribe it (`AuthenticateOnUnsubscribe`); otherwise, or if that
/// fails, restop visits the SubscribeURL.
async fn confirm(
    app: &AppState,
    msg: &SnsMessage,
    mut update: SubscriptionUpdate,
) -> Result<(), Failure> {
    let topic = &msg.topic_arn;
    let mut result = Err(FetchError::Refused("not confirmed".into()));
    let credentials_there = matches!(app.aws.acts_in(topic.account()).await, Ok(true));
    if let (Some(token), true) = (&msg.token, credentials_there) {
        result = app.aws.confirm_subscription(topic, token).await.map_err(|e| {
            tracing::warn!(error = %e, "could not confirm with the SNS API; visiting the SubscribeURL instead");
            FetchError::Refused(e.to_string())
        });
        if result.is_ok() {
            tracing::info!(
                "subscription confirmed with the SNS API (only the topic's owner can unsubscribe it)"
            );
        }
    }
    if result.is_err() {
        // The verifier has already checked this URL against the SNS host rules.
        let url = msg
            .subscribe_url
            .as_deref()
            .and_then(|u| Url::parse(u).ok())
            .ok_or_else(|| Failure::Confirmation("SubscribeURL missing".into()))?;
        result = confirm_subscription(&app.http, url, topic.as_str()).await;
        if result.is_ok() {
            tracing::info!("subscription confirmed by visiting its SubscribeURL");
        }
    }
    let disposition = match &result {
        Ok(arn) => {
            tracing::debug!(subscription_arn = %arn, "subscription ARN");
            update.status = SubscriptionStatus::Confirmed;
            update.subscription_arn = Some(arn.clone());
            Disposition::Confirmed
        }
        Err(e) => {
            update.status = SubscriptionStatus::ConfirmationFailed;
            update.error = Some(e.to_string());
            Disposition::ConfirmationFailed
        }
    };
    let reason = update.error.clone();
    store(
        app.store
            .record_confirmation(disposition, reason.as_deref(), &update),
    )
    .await?;
    result
        .map(drop)
        .map_err(|e| Failure::Confirmation(e.to_string()))
}

/// How long a wake-up may spend finding an Aurora member instance's cluster.
const WAKE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// A "started" event: makes the execution waiting for this database (or, for an Aurora
/// member instance, for its cluster) look at it now. Returns the execution woken. Costs no
/// AWS call unless a cluster execution waits in the instance's account and region.
async fn wake(
    app: &AppState,
    resource: &ResourceArn,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<String>, Failure> {
    let mut woken = store(app.store.wake(&resource.arn, now)).await?;
    if woken.is_none()
        && resource.kind == ResourceKind::DbInstance
        && store(
            app.store
                .cluster_waiting(&resource.account, &resource.region),
        )
        .await?
    {
        // An Aurora member's start says its cluster is coming up.
        let facts = tokio::time::timeout(WAKE_LOOKUP_TIMEOUT, app.aws.describe(resource)).await;
        if let Ok(Ok(facts)) = facts {
            if let Some(cluster) = facts.cluster_id {
                let arn = format!(
                    "arn:{}:rds:{}:{}:cluster:{}",
                    resource.partition,
                    resource.region,
                    resource.account,
                    cluster.to_ascii_lowercase()
                );
                woken = store(app.store.wake(&arn, now)).await?;
            }
        }
    }
    match &woken {
        Some(execution) => {
            tracing::info!(execution_id = %execution, "a started event woke the waiting execution");
            app.metrics.wakeup("woken");
            app.launcher.wake();
        }
        None => app.metrics.wakeup("ignored"),
    }
    Ok(woken)
}

/// What a notification is to restop.
enum Classified {
    /// An event restop acts on, about this resource.
    Accepted(ResourceArn),
    /// A "started" event about this resource: a waiting execution may look at it now.
    Wake(ResourceArn),
    /// An event about a resource outside its topic's region, or its account (and the
    /// accounts allowed to publish to it).
    Foreign(ResourceArn),
    /// Nothing to do, and why.
    Ignored(String),
}

fn classify(event: Option<&RdsEvent>, topic: &TopicArn, app: &AppState) -> Classified {
    let Some(event) = event else {
        return Classified::Ignored("not an RDS event".into());
    };
    let resource = event.resource();
    if let Ok(resource) = &resource {
        if !fits_topic(resource, topic, &app.member_accounts) {
            return Classified::Foreign(resource.clone());
        }
    }
    let acts_on = app.event_ids.contains(&event.event_id);
    let wakes = app.wake_event_ids.contains(&event.event_id);
    if !acts_on && !wakes {
        return Classified::Ignored(format!(
            "{} is not in RESTOP_EVENT_IDS or RESTOP_WAKE_EVENT_IDS",
            event.event_id
        ));
    }
    match resource {
        Ok(resource) if acts_on => Classified::Accepted(resource),
        Ok(resource) => Classified::Wake(resource),
        Err(reason) => Classified::Ignored(reason),
    }
}

async fn store<T>(op: impl Future<Output = Result<T, StoreError>>) -> Result<T, Failure> {
    match tokio::time::timeout(STORE_TIMEOUT, op).await {
        Ok(result) => result.map_err(|e| Failure::Storage(e.to_string())),
        Err(_) => Err(Failure::Storage(format!(
            "no answer within {}s",
            STORE_TIMEOUT.as_secs()
        ))),
    }
}

/// Answers 503 at once when RESTOP_SNS_CONCURRENCY deliveries are already being worked on:
/// SNS delivers the message again later, and restop stays responsive meanwhile. (Never 429:
/// SNS would drop the message.)
pub async fn shed_load(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let Ok(_slot) = app.sns_slots.clone().try_acquire_owned() else {
        tracing::warn!("too many SNS deliveries at once; answering 503 so SNS retries");
        app.metrics.sns_refusal(ErrorCode::Overloaded.as_str());
        return ApiError::new(
            ErrorCode::Overloaded,
            "too many deliveries at once; retry later",
        )
        .into_response();
    };
    next.run(request).await
}

/// Answers 413 from the Content-Length header alone, instead of reading an upload that
/// can only be refused.
pub async fn refuse_announced_oversize(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return refuse(&app, Rejection::BodyTooLarge(MAX_BODY_BYTES)).into_response();
    }
    next.run(request).await
}

/// Middleware for `/sns` when `RESTOP_SNS_BASIC_AUTH` is set: SNS sends the credentials
/// from the subscription URL after a 401 challenge.
pub async fn require_basic_auth(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &app.basic_auth else {
        return next.run(request).await;
    };
    if basic_auth_matches(request.headers(), expected) {
        return next.run(request).await;
    }
    let mut response = refuse(&app, Rejection::Unauthorized).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"restop\", charset=\"UTF-8\""),
    );
    response
}

fn basic_auth_matches(headers: &HeaderMap, expected: &BasicAuth) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
    else {
        return false;
    };
    let wanted = format!("{}:{}", expected.user, expected.password);
    // Comparing digests keeps the comparison constant-time whatever the lengths.
    openssl::memcmp::eq(&sha256(&given), &sha256(wanted.as_bytes()))
}
