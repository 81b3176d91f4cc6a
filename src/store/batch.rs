//! Group commit for the common case: most SNS deliveries are events restop only records.
//! Concurrent ones are written together, one multi-row INSERT per batch, and each caller
//! hears back only after the batch is committed. Everything else goes straight through.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::{
    Cancelled, Disposition, ExecutionFilter, ExecutionLink, ExecutionRecord, ExecutionStats,
    Inserted, Job, JobUpdate, MessageFilter, MessageRecord, NewExecution, NewMessage, StepRecord,
    StepRow, Store, StoreError, SubscriptionRecord, SubscriptionUpdate,
};

/// Rows per INSERT at most (16 columns each: far below every backend's parameter limit).
const MAX_BATCH: usize = 128;

struct Pending {
    message: NewMessage,
    reply: oneshot::Sender<Result<Inserted, Arc<StoreError>>>,
}

/// A [`Store`] that batches plain message inserts.
pub struct Batched {
    inner: Arc<dyn Store>,
    queue: mpsc::Sender<Pending>,
}

impl Batched {
    /// Starts the writer task; it ends when the last `Batched` handle is dropped.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        let (queue, receiver) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_batches(inner.clone(), receiver));
        Self { inner, queue }
    }
}

/// Takes whatever is waiting (at least one), writes it, answers each caller.
async fn write_batches(store: Arc<dyn Store>, mut receiver: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let messages: Vec<NewMessage> = batch.iter().map(|p| p.message.clone()).collect();
        match store.insert_messages(&messages).await {
            Ok(inserted) => {
                let mut fresh: HashSet<String> = inserted.into_iter().collect();
                for pending in batch.drain(..) {
                    // The first of several deliveries of one MessageId in a batch is the new one.
                    let result = if fresh.remove(&pending.message.message_id) {
                        Ok(Inserted::New { execution: None })
                    } else {
                        redelivery(&*store, &pending.message.message_id).await
                    };
                    let _ = pending.reply.send(result);
                }
            }
            Err(e) => {
                let error = Arc::new(e);
                for pending in batch.drain(..) {
                    let _ = pending.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

async fn redelivery(store: &dyn Store, message_id: &str) -> Result<Inserted, Arc<StoreError>> {
    match store.message_disposition(message_id).await {
        Ok(Some(disposition)) => Ok(Inserted::Duplicate(disposition)),
        Ok(None) => Err(Arc::new(StoreError::from(sqlx::Error::RowNotFound))),
        Err(e) => Err(Arc::new(e)),
    }
}

#[async_trait]
impl Store for Batched {
    async fn insert_message(
        &self,
        message: &NewMessage,
        subscription: Option<&SubscriptionUpdate>,
    ) -> Result<Inserted, StoreError> {
        if subscription.is_some() || message.execution.is_some() {
            return self.inner.insert_message(message, subscription).await;
        }
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            message: message.clone(),
            reply,
        };
        let closed = || StoreError::from(sqlx::Error::PoolClosed);
        self.queue.send(pending).await.map_err(|_| closed())?;
        answer
            .await
            .map_err(|_| closed())?
            .map_err(|e| StoreError::from(sqlx::Error::Protocol(e.to_string())))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn insert_messages(&self, messages: &[NewMessage]) -> Result<Vec<String>, StoreError> {
        self.inner.insert_messages(messages).await
    }

    async fn message_disposition(&self, id: &str) -> Result<Option<Disposition>, StoreError> {
        self.inner.message_disposition(id).await
    }

    async fn record_confirmation(
        &self,
        disposition: Disposition,
        reason: Option<&str>,
        subscription: &SubscriptionUpdate,
    ) -> Result<(), StoreError> {
        self.inner
            .record_confirmation(disposition, reason, subscription)
            .await
    }

    async fn claim_jobs(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        self.inner.claim_jobs(owner, now, lease, limit).await
    }

    async fn claim_job(
        &self,
        id: &str,
        owner: &str,
        now: DateTime<Utc>,
        lease: std::time::Duration,
    ) -> Result<Option<Job>, StoreError> {
        self.inner.claim_job(id, owner, now, lease).await
    }

    async fn start_execution(&self, execution: &NewExecution) -> Result<ExecutionLink, StoreError> {
        self.inner.start_execution(execution).await
    }

    async fn cancel_execution(
        &self,
        id: &str,
        now: DateTime<Utc>,
        notify: bool,
    ) -> Result<Cancelled, StoreError> {
        self.inner.cancel_execution(id, now, notify).await
    }

    async fn list_executions(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>, StoreError> {
        self.inner.list_executions(filter).await
    }

    async fn get_execution(
        &self,
        id: &str,
    ) -> Result<Option<(ExecutionRecord, Vec<StepRow>)>, StoreError> {
        self.inner.get_execution(id).await
    }

    async fn list_messages(
        &self,
        filter: &MessageFilter,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        self.inner.list_messages(filter).await
    }

    async fn get_message(&self, message_id: &str) -> Result<Option<MessageRecord>, StoreError> {
        self.inner.get_message(message_id).await
    }

    async fn list_subscriptions(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        self.inner.list_subscriptions().await
    }

    async fn execution_stats(&self, now: DateTime<Utc>) -> Result<ExecutionStats, StoreError> {
        self.inner.execution_stats(now).await
    }

    async fn complete_step(
        &self,
        job: &Job,
        step: &StepRecord,
        update: &JobUpdate,
    ) -> Result<bool, StoreError> {
        self.inner.complete_step(job, step, update).await
    }
}
