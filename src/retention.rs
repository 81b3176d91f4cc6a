//! `RESTOP_RETENTION`: ignored SNS messages and finished executions older than the
//! retention period are deleted, a small batch per transaction, so the tables stay small
//! without long locks. Every replica may run it; deleting twice deletes nothing.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::{Store, StoreError};

/// Rows of each kind per transaction.
const BATCH: u32 = 500;
/// How often the expired rows are looked for.
const EVERY: Duration = Duration::from_secs(3600);

/// Deletes what is older than `retention`, batch by batch; returns how many rows went.
pub async fn sweep(
    store: &dyn Store,
    clock: &dyn Clock,
    retention: Duration,
) -> Result<u64, StoreError> {
    let before = clock.now() - retention;
    let mut total = 0;
    loop {
        let deleted = store.delete_expired(before, BATCH).await?;
        total += deleted;
        if deleted == 0 {
            return Ok(total);
        }
    }
}

/// Sweeps every hour until `stop` fires.
pub async fn run(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retention: Duration,
    stop: CancellationToken,
) {
    loop {
        match sweep(&*store, &*clock, retention).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "deleted rows past RESTOP_RETENTION"),
            Err(e) => tracing::warn!(error = %e, "could not delete rows past RESTOP_RETENTION"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
