//! Confirming a subscription: with the SNS API where restop has credentials in the topic's
//! account (only the topic's owner can then unsubscribe it), else by visiting the
//! SubscribeURL; the outcome is recorded on the message and the subscription.

use chrono::{DateTime, Utc};
use url::Url;

use super::{AppState, Failure, store};
use crate::execution::{Disposition, SubscriptionStatus};
use crate::http::FetchError;
use crate::sns::confirm::confirm_subscription;
use crate::sns::message::SnsMessage;
use crate::store::{Inserted, NewMessage, SubscriptionUpdate};

/// The subscription's new state, from a message about it.
fn update(msg: &SnsMessage, status: SubscriptionStatus, at: DateTime<Utc>) -> SubscriptionUpdate {
    SubscriptionUpdate {
        topic_arn: msg.topic_arn.to_string(),
        status,
        subscription_arn: None,
        subscribe_url: None,
        message_id: msg.message_id.clone(),
        error: None,
        at,
    }
}

/// Records an UnsubscribeConfirmation loudly: no more events will come from this topic.
/// Returns the disposition and whether it was a redelivery.
pub(super) async fn unsubscribed(
    app: &AppState,
    msg: &SnsMessage,
    mut record: NewMessage,
) -> Result<(Disposition, bool), Failure> {
    // Its SubscribeURL would subscribe the endpoint again: never visit it.
    record.disposition = Disposition::Unsubscribed;
    let unsubscribed = update(msg, SubscriptionStatus::Unsubscribed, record.received_at);
    let inserted = store(app.store.insert_message(&record, Some(&unsubscribed))).await?;
    let duplicate = matches!(inserted, Inserted::Duplicate(_));
    if !duplicate {
        tracing::warn!(
            "the endpoint was UNSUBSCRIBED from the topic: no forced start will be \
             delivered from it until it is subscribed again"
        );
        app.metrics.unsubscription(msg.topic_arn.as_str());
        if let Some(notifier) = &app.notifier {
            notifier.unsubscribed(&msg.topic_arn, &msg.message_id, record.received_at);
        }
    }
    Ok((Disposition::Unsubscribed, duplicate))
}

/// Records a SubscriptionConfirmation and confirms it, or leaves it to an operator when
/// RESTOP_SNS_AUTO_CONFIRM is off. Returns the disposition and whether it was a
/// redelivery.
pub(super) async fn confirmation(
    app: &AppState,
    msg: &SnsMessage,
    mut record: NewMessage,
) -> Result<(Disposition, bool), Failure> {
    let pending = SubscriptionUpdate {
        subscribe_url: msg.subscribe_url.clone(),
        ..update(
            msg,
            SubscriptionStatus::PendingConfirmation,
            record.received_at,
        )
    };
    if !app.auto_confirm {
        tracing::warn!(
            "subscription confirmation recorded; RESTOP_SNS_AUTO_CONFIRM is off, so an operator must confirm it"
        );
        record.disposition = Disposition::PendingConfirmation;
        let inserted = store(app.store.insert_message(&record, Some(&pending))).await?;
        let duplicate = matches!(inserted, Inserted::Duplicate(_));
        return Ok((Disposition::PendingConfirmation, duplicate));
    }
    record.disposition = Disposition::Confirming;
    match store(app.store.insert_message(&record, Some(&pending))).await? {
        // An earlier attempt did not finish: this redelivery tries again.
        Inserted::New { .. }
        | Inserted::Duplicate(Disposition::Confirming | Disposition::ConfirmationFailed) => {
            confirm(app, msg, pending).await?;
            Ok((Disposition::Confirmed, false))
        }
        Inserted::Duplicate(stored) => Ok((stored, true)),
    }
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
