//! `sns_subscriptions`: what restop knows of each topic's subscription to it.

use async_trait::async_trait;
use sqlx::Transaction;

use super::{BEGIN_WRITE, Db, SqlStore};
use crate::execution::{ConfirmedWith, Disposition, SubscriptionStatus};
use crate::store::rows::{SubscriptionRow, decode_all, subscription_columns};
use crate::store::{StoreError, SubscriptionRecord, SubscriptionStore, SubscriptionUpdate};

/// A topic's row, added or brought up to date; an unknown subscription ARN or confirmation
/// (time and way) keeps the one known.
const UPSERT: &str = "
    INSERT INTO sns_subscriptions (topic_arn, status, subscription_arn, subscribe_url,
        last_message_id, last_error, first_seen_at, updated_at, confirmed_at, confirmed_with)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9)
    ON CONFLICT (topic_arn) DO UPDATE SET
        status = EXCLUDED.status,
        subscription_arn = COALESCE(EXCLUDED.subscription_arn,
            sns_subscriptions.subscription_arn),
        subscribe_url = EXCLUDED.subscribe_url,
        last_message_id = EXCLUDED.last_message_id,
        last_error = EXCLUDED.last_error,
        updated_at = EXCLUDED.updated_at,
        confirmed_at = COALESCE(EXCLUDED.confirmed_at, sns_subscriptions.confirmed_at),
        confirmed_with = COALESCE(EXCLUDED.confirmed_with, sns_subscriptions.confirmed_with)";

const SET_DISPOSITION: &str = "
    UPDATE sns_messages SET disposition = $2, disposition_reason = $3 WHERE message_id = $1";

const SELECT_ALL: &str = concat!(
    "SELECT ",
    subscription_columns!(),
    " FROM sns_subscriptions ORDER BY topic_arn"
);

#[async_trait]
impl SubscriptionStore for SqlStore {
    async fn record_confirmation(
        &self,
        disposition: Disposition,
        reason: Option<&str>,
        subscription: &SubscriptionUpdate,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        sqlx::query(SET_DISPOSITION)
            .bind(&subscription.message_id)
            .bind(disposition.as_str())
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        upsert_subscription(&mut tx, subscription).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let rows: Vec<SubscriptionRow> = sqlx::query_as(SELECT_ALL).fetch_all(&self.pool).await?;
        decode_all(rows)
    }
}

pub(super) async fn upsert_subscription(
    tx: &mut Transaction<'_, Db>,
    s: &SubscriptionUpdate,
) -> Result<(), sqlx::Error> {
    let confirmed_at = (s.status == SubscriptionStatus::Confirmed).then_some(s.at);
    sqlx::query(UPSERT)
        .bind(&s.topic_arn)
        .bind(s.status.as_str())
        .bind(&s.subscription_arn)
        .bind(&s.subscribe_url)
        .bind(&s.message_id)
        .bind(&s.error)
        .bind(s.at)
        .bind(confirmed_at)
        .bind(s.confirmed_with.map(ConfirmedWith::as_str))
        .execute(&mut **tx)
        .await?;
    Ok(())
}
