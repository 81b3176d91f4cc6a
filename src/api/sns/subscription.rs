//! Confirming a subscription: with the SNS API where restop has credentials in the topic's
//! account (only the topic's owner can then unsubscribe it), else by visiting the
//! SubscribeURL; the outcome is recorded on the message and the subscription.

use chrono::{DateTime, Utc};
use url::Url;

use super::{AppState, Failure, store};
use crate::aws::{AwsFailure, in_request};
use crate::execution::{ConfirmedWith, Disposition, SubscriptionStatus};
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
        confirmed_with: None,
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
/// topic's owner can unsubscribe it (`AuthenticateOnUnsubscribe`); without, or when SNS
/// says restop may not (no permission), restop visits the SubscribeURL. Any other failure
/// (throttling, network, 5xx, no answer in time) fails the attempt, so that SNS delivers
/// the confirmation again rather than restop settling for a subscription anyone holding
/// its ARN can cancel.
async fn confirm(
    app: &AppState,
    msg: &SnsMessage,
    mut update: SubscriptionUpdate,
) -> Result<(), Failure> {
    let result = match with_the_api(app, msg).await {
        Ok(Some(arn)) => Ok((arn, ConfirmedWith::SnsApi)),
        Ok(None) => visit(app, msg)
            .await?
            .map(|arn| (arn, ConfirmedWith::SubscribeUrl)),
        Err(e) => Err(e),
    };
    let disposition = match &result {
        Ok((arn, with)) => {
            tracing::debug!(subscription_arn = %arn, "subscription ARN");
            update.status = SubscriptionStatus::Confirmed;
            update.subscription_arn = Some(arn.clone());
            update.confirmed_with = Some(*with);
            Disposition::Confirmed
        }
        Err(e) => {
            update.status = SubscriptionStatus::ConfirmationFailed;
            update.error = Some(e.clone());
            Disposition::ConfirmationFailed
        }
    };
    let reason = update.error.clone();
    store(
        app.store
            .record_confirmation(disposition, reason.as_deref(), &update),
    )
    .await?;
    result.map(drop).map_err(Failure::Confirmation)
}

/// Confirms with the SNS API where restop holds credentials in the topic's account.
/// `Ok(None)`: the SubscribeURL is the way (no credentials there, or no permission).
async fn with_the_api(app: &AppState, msg: &SnsMessage) -> Result<Option<String>, String> {
    let topic = &msg.topic_arn;
    let Some(token) = &msg.token else {
        return Ok(None);
    };
    let account = topic.account();
    match in_request(app.aws.acts_in(account)).await {
        Ok(true) => {}
        // No credentials at all (restop runs without a role): nobody can call the API.
        Ok(false) | Err(AwsFailure::NoCredentials) => return Ok(None),
        Err(e) => {
            return Err(format!(
                "could not tell whether restop holds credentials in account {account}: {e}"
            ));
        }
    }
    match in_request(app.aws.confirm_subscription(topic, token)).await {
        Ok(arn) => {
            tracing::info!(
                "subscription confirmed with the SNS API (only the topic's owner can unsubscribe it)"
            );
            Ok(Some(arn))
        }
        Err(e @ AwsFailure::AccessDenied { .. }) => {
            tracing::warn!(
                error = %e,
                "SNS refused ConfirmSubscription: visiting the SubscribeURL instead, so anyone \
                 holding the subscription's ARN can unsubscribe it; grant \
                 sns:ConfirmSubscription on the topic to restop's role"
            );
            app.metrics.confirmation_fallback(topic.as_str());
            Ok(None)
        }
        Err(e) => Err(format!("ConfirmSubscription failed: {e}")),
    }
}

/// Confirms by visiting the SubscribeURL.
async fn visit(app: &AppState, msg: &SnsMessage) -> Result<Result<String, String>, Failure> {
    // The verifier has already checked this URL against the SNS host rules.
    let url = msg
        .subscribe_url
        .as_deref()
        .and_then(|u| Url::parse(u).ok())
        .ok_or_else(|| Failure::Confirmation("SubscribeURL missing".into()))?;
    let result = confirm_subscription(&app.http, url, msg.topic_arn.as_str()).await;
    if result.is_ok() {
        tracing::info!("subscription confirmed by visiting its SubscribeURL");
    }
    Ok(result.map_err(|e| e.to_string()))
}
