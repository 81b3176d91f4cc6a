//! `RESTOP_NOTIFY_URL`: a JSON summary POSTed when an execution ends. Delivery is a job
//! step like any other, retried with backoff; its failure is recorded on the execution and
//! never changes the execution's outcome.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Engine;
use crate::store::{Job, JobUpdate, StepRecord};

pub const PENDING: &str = "pending";
const SENT: &str = "sent";
const FAILED: &str = "failed";
/// Attempts before giving up: with the backoff below (the engine's retry base, doubling,
/// at most an hour apart) about two and a half hours of trying.
const MAX_ATTEMPTS: u32 = 12;
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("restop/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("TLS backend initialises")
}

/// The body POSTed to RESTOP_NOTIFY_URL.
pub fn summary(job: &Job) -> serde_json::Value {
    let duration = job
        .finished_at
        .map(|end| (end - job.created_at).num_milliseconds() as f64 / 1000.0);
    json!({
        "execution_id": job.id,
        "link": format!("/v1/executions/{}", job.id),
        "resource_type": job.kind.as_str(),
        "resource_id": job.resource_id,
        "resource_arn": job.resource_arn,
        "region": job.region,
        "account_id": job.account,
        "trigger": job.trigger,
        "message_id": job.message_id,
        "status": job.status.as_str(),
        "outcome": job.outcome.map(|o| o.as_str()),
        "reason": job.reason,
        "dry_run": job.dry_run,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "duration_seconds": duration,
    })
}

impl Engine {
    /// Delivers the end-of-execution notification once.
    pub(super) async fn notify_step(
        &self,
        job: &Job,
        now: DateTime<Utc>,
    ) -> (StepRecord, JobUpdate) {
        let mut update = JobUpdate {
            status: job.status,
            outcome: job.outcome,
            reason: job.reason.clone(),
            phase: job.phase,
            retries: job.retries,
            sfn_execution_arn: job.sfn_execution_arn.clone(),
            finished_at: job.finished_at,
            notify_state: Some(SENT.into()),
            notify_attempts: job.notify_attempts + 1,
            notify_error: None,
            next_run_at: None,
        };
        let result = match &self.settings.notify_url {
            Some(url) => self.http.post(url.clone()).json(&summary(job)).send().await,
            None => {
                update.notify_state = None;
                return (step(now, "notify not configured", None), update);
            }
        };
        let error = match result {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("answered {}", response.status())),
            Err(e) => Some(e.without_url().to_string()),
        };
        let Some(error) = error else {
            return (step(now, "sent", None), update);
        };
        update.notify_error = Some(error.clone());
        if update.notify_attempts >= MAX_ATTEMPTS {
            tracing::error!(error = %error, "notification abandoned after {MAX_ATTEMPTS} attempts");
            update.notify_state = Some(FAILED.into());
            (step(now, "gave up", Some(error)), update)
        } else {
            let delay = self
                .settings
                .policy
                .retry_base
                .saturating_mul(2u32.saturating_pow(job.notify_attempts))
                .min(LONGEST_WAIT);
            update.notify_state = Some(PENDING.into());
            update.next_run_at = Some(now + delay);
            (step(now, "retry", Some(error)), update)
        }
    }
}

fn step(at: DateTime<Utc>, action: &str, error: Option<String>) -> StepRecord {
    StepRecord {
        at,
        step: "notify".into(),
        rds_status: None,
        action: action.into(),
        error,
    }
}
