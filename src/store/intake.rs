//! Group commit for the common case: most SNS deliveries are events restop only records.
//! Concurrent ones are written together, one multi-row INSERT per batch, and each caller
//! hears back only after the batch is committed. If the database refuses the batch, each
//! message is written on its own, so one bad row fails only its own delivery.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Inserted, NewMessage, Store, StoreError};

/// Rows per INSERT at most (16 columns each: far below every backend's parameter limit).
const MAX_BATCH: usize = 128;

struct Pending {
    message: NewMessage,
    reply: oneshot::Sender<Result<Inserted, StoreError>>,
}

/// The writer of plain messages (no subscription change, no execution).
#[derive(Clone)]
pub struct Intake {
    queue: mpsc::Sender<Pending>,
}

impl Intake {
    /// Starts the writer task; it ends when the last `Intake` handle is dropped.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (queue, receiver) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write_batches(store, receiver));
        Self { queue }
    }

    /// Stores `message` with whatever else is waiting; answers once it is committed.
    pub async fn record(&self, message: NewMessage) -> Result<Inserted, StoreError> {
        debug_assert!(
            message.execution.is_none(),
            "the intake writes plain messages"
        );
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { message, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
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
                tracing::warn!(error = %e, size = batch.len(), "batch refused; writing its messages one by one");
                for pending in batch.drain(..) {
                    let result = store.insert_message(&pending.message, None).await;
                    let _ = pending.reply.send(result);
                }
            }
        }
    }
}

async fn redelivery(store: &dyn Store, message_id: &str) -> Result<Inserted, StoreError> {
    match store.message_disposition(message_id).await? {
        Some(disposition) => Ok(Inserted::Duplicate(disposition)),
        None => Err(StoreError::Inconsistent(format!(
            "message {message_id} was neither inserted nor found"
        ))),
    }
}
