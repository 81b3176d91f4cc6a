//! `sns_messages`: every authenticated SNS delivery, deduplicated on MessageId.

use async_trait::async_trait;
use sqlx::{Executor, QueryBuilder};

use super::executions::start_or_join;
use super::subscriptions::upsert_subscription;
use super::{BEGIN_WRITE, Db, SqlStore, push_either, push_page};
use crate::execution::Disposition;
use crate::store::rows::{MessageRow, decode_all, message_columns};
use crate::store::{
    Inserted, MessageFilter, MessageRecord, MessageStore, NewMessage, StoreError,
    SubscriptionUpdate,
};

/// The head of the INSERT of messages; [`insert_rows`] adds their values.
const INSERT: &str = "
    INSERT INTO sns_messages (message_id, message_type, topic_arn, subject, sent_at,
        received_at, signature_version, disposition, disposition_reason, body, event_id,
        source_type, source_id, source_arn, region, account_id, execution_id) ";

/// The tail of the INSERT: a MessageId already stored is skipped.
const INSERT_SKIPPING_STORED: &str = " ON CONFLICT (message_id) DO NOTHING RETURNING message_id";

const LINK_EXECUTION: &str = "UPDATE sns_messages SET execution_id = $2 WHERE message_id = $1";

const SELECT_DISPOSITION: &str = "SELECT disposition FROM sns_messages WHERE message_id = $1";

const SELECT_ONE: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM sns_messages WHERE message_id = $1"
);

/// The head of a listing; the filters follow.
const SELECT_ALL: &str = concat!(
    "SELECT ",
    message_columns!(),
    " FROM sns_messages WHERE 1 = 1"
);

#[async_trait]
impl MessageStore for SqlStore {
    async fn insert_message(
        &self,
        m: &NewMessage,
        subscription: Option<&SubscriptionUpdate>,
    ) -> Result<Inserted, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let inserted: Option<String> = insert_rows([m])
            .build_query_scalar()
            .fetch_optional(&mut *tx)
            .await?;
        if inserted.is_none() {
            let stored = stored_disposition(&mut *tx, &m.message_id)
                .await?
                .ok_or_else(|| {
                    StoreError::Inconsistent(format!(
                        "message {} was neither inserted nor found",
                        m.message_id
                    ))
                })?;
            return Ok(Inserted::Duplicate(stored));
        }
        if let Some(subscription) = subscription {
            upsert_subscription(&mut tx, subscription).await?;
        }
        let execution = match &m.execution {
            Some(new) => {
                let link = start_or_join(&mut tx, new).await?;
                sqlx::query(LINK_EXECUTION)
                    .bind(&m.message_id)
                    .bind(&link.id)
                    .execute(&mut *tx)
                    .await?;
                Some(link)
            }
            None => None,
        };
        tx.commit().await?;
        Ok(Inserted::New { execution })
    }

    async fn insert_messages(&self, messages: &[NewMessage]) -> Result<Vec<String>, StoreError> {
        Ok(insert_rows(messages)
            .build_query_scalar()
            .fetch_all(&self.pool)
            .await?)
    }

    async fn message_disposition(
        &self,
        message_id: &str,
    ) -> Result<Option<Disposition>, StoreError> {
        stored_disposition(&self.pool, message_id).await
    }

    async fn list_messages(&self, f: &MessageFilter) -> Result<Vec<MessageRecord>, StoreError> {
        let mut q = QueryBuilder::<Db>::new(SELECT_ALL);
        if let Some(kind) = f.message_type {
            q.push(" AND message_type = ").push_bind(kind.as_str());
        }
        if let Some(disposition) = f.disposition {
            q.push(" AND disposition = ")
                .push_bind(disposition.as_str());
        }
        if let Some(topic) = &f.topic {
            q.push(" AND topic_arn = ").push_bind(topic.clone());
        }
        if let Some(resource) = &f.resource {
            push_either(&mut q, ["source_id", "source_arn"], resource);
        }
        let page = ["received_at", "message_id"];
        push_page(&mut q, page, f.since, f.until, f.after.as_ref(), f.limit);
        let rows: Vec<MessageRow> = q.build_query_as().fetch_all(&self.pool).await?;
        decode_all(rows)
    }

    async fn get_message(&self, message_id: &str) -> Result<Option<MessageRecord>, StoreError> {
        let row: Option<MessageRow> = sqlx::query_as(SELECT_ONE)
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(MessageRecord::try_from).transpose()
    }
}

/// The INSERT of `messages`, one statement for all, returning the MessageIds it stored.
fn insert_rows<'a>(messages: impl IntoIterator<Item = &'a NewMessage>) -> QueryBuilder<'a, Db> {
    let mut q = QueryBuilder::new(INSERT);
    q.push_values(messages, |mut row, m| {
        let event = m.event.as_ref();
        row.push_bind(&m.message_id)
            .push_bind(m.message_type.as_str())
            .push_bind(&m.topic_arn)
            .push_bind(&m.subject)
            .push_bind(m.sent_at)
            .push_bind(m.received_at)
            .push_bind(&m.signature_version)
            .push_bind(m.disposition.as_str())
            .push_bind(&m.disposition_reason)
            .push_bind(m.body.as_bytes())
            .push_bind(event.map(|e| &e.event_id))
            .push_bind(event.map(|e| &e.source_type))
            .push_bind(event.map(|e| &e.source_id))
            .push_bind(event.and_then(|e| e.source_arn.as_ref()))
            .push_bind(event.map(|e| &e.region))
            .push_bind(event.map(|e| &e.account_id))
            .push_bind(&m.execution_id);
    });
    q.push(INSERT_SKIPPING_STORED);
    q
}

/// What became of a message stored earlier (for a redelivery).
async fn stored_disposition<'e>(
    executor: impl Executor<'e, Database = Db>,
    message_id: &str,
) -> Result<Option<Disposition>, StoreError> {
    let stored: Option<String> = sqlx::query_scalar(SELECT_DISPOSITION)
        .bind(message_id)
        .fetch_optional(executor)
        .await?;
    // A value this version does not know was written by a newer one; treating it as
    // final (`ignored`) never repeats a side effect.
    Ok(stored.map(|s| s.parse().unwrap_or(Disposition::Ignored)))
}
