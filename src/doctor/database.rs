//! restop's own database: reachable, and migrated by this version.

use super::{Check, CheckStatus};
use crate::config::DatabaseConfig;
use crate::store;

/// Reads the migration state without changing anything (no migration, no file created).
pub(super) async fn check(database: &DatabaseConfig) -> Check {
    let (status, detail) = match store::schema_state(database).await {
        Err(e) => (
            CheckStatus::Fail,
            format!(
                "cannot read DATABASE_URL ({:?}): {e}",
                database.database_url
            ),
        ),
        Ok(state) if !state.unknown.is_empty() => (
            CheckStatus::Fail,
            format!(
                "migrated by a newer restop (unknown versions {:?}): run that version",
                state.unknown
            ),
        ),
        Ok(state) if !state.pending.is_empty() => (
            CheckStatus::Fail,
            format!(
                "{} migrations pending ({}): run `restop migrate` (restop serve applies them too)",
                state.pending.len(),
                state.pending.join(", ")
            ),
        ),
        Ok(state) => (
            CheckStatus::Ok,
            format!("reachable, all {} migrations applied", state.applied),
        ),
    };
    Check::new("database", status, detail)
}
