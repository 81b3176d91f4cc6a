//! Group commit for the common case: most SNS deliveries are events restop only records,
//! or "started" events that wake a waiting execution. Concurrent ones are written
//! together, one INSERT (of one shape whatever the batch's size) and their wake-ups in one
//! transaction per batch, and each caller hears back only after the batch is committed.
//! If the database refuses the batch, each message is written on its own, so one bad row
//! fails only its own delivery.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Inserted, Recorded, Recording, Store, StoreError};

/// Messages per batch at most.
const MAX_BATCH: usize = 128;

struct Pending {
    recording: Recording,
    reply: oneshot::Sender<Result<Recorded, StoreError>>,
}

/// The writer of plain messages (no subscription change, no execution to start).
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

    /// Stores `recording` with whatever else is waiting; answers once it is committed.
    pub async fn record(&self, recording: Recording) -> Result<Recorded, StoreError> {
        debug_assert!(
            recording.message.execution.is_none(),
            "the intake writes plain messages"
        );
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { recording, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// Takes whatever is waiting (at least one), writes it, answers each caller.
async fn write_batches(store: Arc<dyn Store>, mut receiver: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut recordings = Vec::with_capacity(MAX_BATCH);
    loop {
        if receiver.is_empty() {
            store.end_of_batches().await;
        }
        if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
            break;
        }
        let replies: Vec<_> = batch
            .drain(..)
            .map(|p: Pending| {
                recordings.push(p.recording);
                p.reply
            })
            .collect();
        match store.record_batch(&recordings).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, size = recordings.len(), "batch refused; writing its messages one by one");
                for (reply, recording) in replies.into_iter().zip(&recordings) {
                    let _ = reply.send(alone(&*store, recording).await);
                }
            }
        }
        recordings.clear();
    }
    store.end_of_batches().await;
}

/// A recording written on its own; a wake-up is left to its caller.
async fn alone(store: &dyn Store, recording: &Recording) -> Result<Recorded, StoreError> {
    if recording.wake.is_some() {
        return Ok(Recorded::Deferred);
    }
    Ok(
        match store.insert_message(&recording.message, None).await? {
            Inserted::New { .. } => Recorded::New { woken: None },
            Inserted::Duplicate(disposition) => Recorded::Duplicate {
                disposition,
                woken: None,
            },
        },
    )
}
