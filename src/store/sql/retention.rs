//! What is old enough to go: ignored messages, and finished executions with their steps.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{BEGIN_WRITE, SqlStore};
use crate::execution::Disposition;
use crate::store::{RetentionStore, StoreError};

const SELECT_FINISHED: &str = "
    SELECT id FROM executions
    WHERE finished_at < $1 AND next_run_at IS NULL
    ORDER BY finished_at LIMIT $2";

/// The messages that started an execution outlive it, unlinked.
const UNLINK_MESSAGES: &str = "UPDATE sns_messages SET execution_id = NULL WHERE execution_id = $1";

const DELETE_STEPS: &str = "DELETE FROM execution_steps WHERE execution_id = $1";

const DELETE_EXECUTION: &str = "DELETE FROM executions WHERE id = $1";

const DELETE_MESSAGES: &str = "
    DELETE FROM sns_messages WHERE message_id IN (
        SELECT message_id FROM sns_messages
        WHERE disposition = $1 AND received_at < $2
        ORDER BY received_at LIMIT $3)";

#[async_trait]
impl RetentionStore for SqlStore {
    async fn delete_expired(&self, before: DateTime<Utc>, batch: u32) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let executions: Vec<String> = sqlx::query_scalar(SELECT_FINISHED)
            .bind(before)
            .bind(i64::from(batch))
            .fetch_all(&mut *tx)
            .await?;
        let mut deleted = 0;
        for id in &executions {
            for statement in [UNLINK_MESSAGES, DELETE_STEPS] {
                sqlx::query(statement).bind(id).execute(&mut *tx).await?;
            }
            deleted += sqlx::query(DELETE_EXECUTION)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        deleted += sqlx::query(DELETE_MESSAGES)
            .bind(Disposition::Ignored.as_str())
            .bind(before)
            .bind(i64::from(batch))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }
}
