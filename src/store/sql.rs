//! The queries both backends share. Postgres and SQLite accept the same SQL here
//! (`$n` placeholders, `ON CONFLICT ... DO UPDATE`), so one text serves both; the macro
//! instantiates it for each backend's sqlx types.

macro_rules! impl_store {
    ($store:ident, $db:ty) => {
        use async_trait::async_trait;
        use sqlx::Transaction;

        use super::{
            Disposition, Inserted, NewMessage, Store, StoreError, SubscriptionStatus,
            SubscriptionUpdate, disposition_from_db,
        };

        async fn upsert_subscription(
            tx: &mut Transaction<'_, $db>,
            s: &SubscriptionUpdate,
        ) -> Result<(), sqlx::Error> {
            let confirmed_at = (s.status == SubscriptionStatus::Confirmed).then_some(s.at);
            sqlx::query(
                "INSERT INTO sns_subscriptions (topic_arn, status, subscription_arn, subscribe_url,
                     last_message_id, last_error, first_seen_at, updated_at, confirmed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)
                 ON CONFLICT (topic_arn) DO UPDATE SET
                     status = EXCLUDED.status,
                     subscription_arn = COALESCE(EXCLUDED.subscription_arn, sns_subscriptions.subscription_arn),
                     subscribe_url = EXCLUDED.subscribe_url,
                     last_message_id = EXCLUDED.last_message_id,
                     last_error = EXCLUDED.last_error,
                     updated_at = EXCLUDED.updated_at,
                     confirmed_at = COALESCE(EXCLUDED.confirmed_at, sns_subscriptions.confirmed_at)",
            )
            .bind(&s.topic_arn)
            .bind(s.status.as_str())
            .bind(&s.subscription_arn)
            .bind(&s.subscribe_url)
            .bind(&s.message_id)
            .bind(&s.error)
            .bind(s.at)
            .bind(confirmed_at)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        #[async_trait]
        impl Store for $store {
            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn insert_message(
                &self,
                m: &NewMessage,
                subscription: Option<&SubscriptionUpdate>,
            ) -> Result<Inserted, StoreError> {
                let mut tx = self.pool.begin().await?;
                let event = m.event.as_ref();
                let inserted = sqlx::query(
                    "INSERT INTO sns_messages (message_id, message_type, topic_arn, subject, sent_at,
                         received_at, signature_version, disposition, disposition_reason, body,
                         event_id, source_type, source_id, source_arn, region, account_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
                     ON CONFLICT (message_id) DO NOTHING",
                )
                .bind(&m.message_id)
                .bind(m.message_type)
                .bind(&m.topic_arn)
                .bind(&m.subject)
                .bind(m.sent_at)
                .bind(m.received_at)
                .bind(&m.signature_version)
                .bind(m.disposition.as_str())
                .bind(&m.disposition_reason)
                .bind(&m.body)
                .bind(event.map(|e| &e.event_id))
                .bind(event.map(|e| &e.source_type))
                .bind(event.map(|e| &e.source_id))
                .bind(event.and_then(|e| e.source_arn.as_ref()))
                .bind(event.map(|e| &e.region))
                .bind(event.map(|e| &e.account))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if !inserted {
                    let stored: String =
                        sqlx::query_scalar("SELECT disposition FROM sns_messages WHERE message_id = $1")
                            .bind(&m.message_id)
                            .fetch_one(&mut *tx)
                            .await?;
                    return Ok(Inserted::Duplicate(disposition_from_db(&stored)));
                }
                if let Some(subscription) = subscription {
                    upsert_subscription(&mut tx, subscription).await?;
                }
                tx.commit().await?;
                Ok(Inserted::New)
            }

            async fn record_confirmation(
                &self,
                disposition: Disposition,
                reason: Option<&str>,
                subscription: &SubscriptionUpdate,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "UPDATE sns_messages SET disposition = $2, disposition_reason = $3
                     WHERE message_id = $1",
                )
                .bind(&subscription.message_id)
                .bind(disposition.as_str())
                .bind(reason)
                .execute(&mut *tx)
                .await?;
                upsert_subscription(&mut tx, subscription).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(super) use impl_store;
