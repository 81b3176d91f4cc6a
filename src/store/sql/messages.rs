//! `sns_messages`: every authenticated SNS delivery, deduplicated on MessageId.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sqlx::{Connection, Executor, QueryBuilder};

use super::executions::{cluster_waiting_in, start_or_join, wake_any};
use super::subscriptions::upsert_subscription;
use super::{BEGIN_WRITE, Db, SqlStore, insert_batch, push_either, push_page};
use crate::aws::arn::ResourceKind;
use crate::execution::Disposition;
use crate::store::changes::BatchRow;
use crate::store::rows::{MessageRow, decode_all, message_columns};
use crate::store::{
    Inserted, MessageFilter, MessageRecord, MessageStore, NewMessage, Recorded, Recording,
    StoreError, SubscriptionUpdate,
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

    async fn record_batch(&self, batch: &[Recording]) -> Result<Vec<Recorded>, StoreError> {
        let mut kept = self.intake.lock().await;
        let conn = match kept.take() {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        let mut conn = conn;
        let written = write_batch(&mut conn, batch).await;
        // Kept for the next batch unless the statement failed (sqlx then checks it before
        // pooling it again) or it is the pool's only connection.
        if written.is_ok() && self.pool.options().get_max_connections() > 1 {
            *kept = Some(conn);
        }
        written
    }

    async fn end_of_batches(&self) {
        self.intake.lock().await.take();
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

/// One intake batch on `conn`: the wake-ups and the INSERT in one transaction when there
/// are wake-ups, else the INSERT alone.
async fn write_batch(
    conn: &mut <Db as sqlx::Database>::Connection,
    batch: &[Recording],
) -> Result<Vec<Recorded>, StoreError> {
    let mut woken: HashMap<String, String> = HashMap::new();
    let mut deferred = vec![false; batch.len()];
    let inserted = if batch.iter().all(|r| r.wake.is_none()) {
        let rows: Vec<BatchRow<'_>> = batch
            .iter()
            .map(|r| BatchRow::new(&r.message, None))
            .collect();
        insert_batch(&mut *conn, &rows).await?
    } else {
        let mut tx = conn.begin_with(BEGIN_WRITE).await?;
        let wakes = || batch.iter().filter_map(|r| r.wake.as_ref().map(|w| (r, w)));
        let arns: HashSet<&str> = wakes().map(|(_, w)| w.arn.as_str()).collect();
        let now = wakes().map(|(r, _)| r.message.received_at).max();
        if let Some(now) = now {
            let arns = arns.into_iter().map(str::to_owned).collect();
            for (id, arn) in wake_any(&mut tx, arns, now).await? {
                woken.insert(arn, id);
            }
        }
        // An instance's start may be its Aurora cluster's: whether it is a member takes an
        // RDS call, so such a wake-up is left to its caller when a cluster waits nearby.
        let mut places: HashMap<(&str, &str), bool> = HashMap::new();
        for (i, r) in batch.iter().enumerate() {
            let Some(w) = &r.wake else { continue };
            if woken.contains_key(&w.arn) || w.kind != ResourceKind::DbInstance {
                continue;
            }
            let place = (w.account.as_str(), w.region.as_str());
            let waiting = match places.get(&place) {
                Some(waiting) => *waiting,
                None => {
                    let waiting = cluster_waiting_in(&mut *tx, place.0, place.1).await?;
                    places.insert(place, waiting);
                    waiting
                }
            };
            deferred[i] = waiting;
        }
        let rows: Vec<BatchRow<'_>> = batch
            .iter()
            .zip(&deferred)
            .filter(|(_, deferred)| !**deferred)
            .map(|(r, _)| {
                let woken = r.wake.as_ref().and_then(|w| woken.get(&w.arn));
                BatchRow::new(&r.message, woken.map(String::as_str))
            })
            .collect();
        let inserted = insert_batch(&mut tx, &rows).await?;
        tx.commit().await?;
        inserted
    };
    let mut fresh: HashSet<String> = inserted.into_iter().collect();
    let mut answers = Vec::with_capacity(batch.len());
    for (r, deferred) in batch.iter().zip(deferred) {
        if deferred {
            answers.push(Recorded::Deferred);
            continue;
        }
        let woken = r.wake.as_ref().and_then(|w| woken.get(&w.arn)).cloned();
        // The first of several deliveries of one MessageId in a batch is the new one.
        if fresh.remove(&r.message.message_id) {
            answers.push(Recorded::New { woken });
            continue;
        }
        let disposition = stored_disposition(&mut *conn, &r.message.message_id)
            .await?
            .ok_or_else(|| {
                StoreError::Inconsistent(format!(
                    "message {} was neither inserted nor found",
                    r.message.message_id
                ))
            })?;
        answers.push(Recorded::Duplicate { disposition, woken });
    }
    Ok(answers)
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
