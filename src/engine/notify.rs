//! `RESTOP_NOTIFY_URL`: JSON events POSTed to the operator. `execution_finished` when an
//! execution ends: delivered as a job step like any other, retried with backoff, its
//! failure recorded on the execution and never changing its outcome. `unsubscribed` when
//! SNS says a topic no longer delivers to restop: a few tries in the background. Either
//! takes the shape RESTOP_NOTIFY_FORMAT asks for (`format`).

mod format;

pub use format::console_url;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use self::format::Event;
use super::Engine;
use crate::aws::arn::{ResourceKind, TopicArn};
use crate::config::NotifyFormat;
use crate::execution::{NotifyState, Outcome, Status, TriggerKind};
use crate::metrics::{Metrics, NotificationResult};
use crate::store::{Job, JobUpdate, NewStep};

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

/// The body POSTed to RESTOP_NOTIFY_URL when an execution ends.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    /// Always `execution_finished`, so receivers can tell the events apart.
    pub event: &'static str,
    pub execution_id: &'a str,
    pub link: String,
    pub resource_type: ResourceKind,
    pub resource_id: &'a str,
    pub resource_arn: &'a str,
    pub region: &'a str,
    pub account_id: &'a str,
    pub trigger: TriggerKind,
    pub message_id: Option<&'a str>,
    pub status: Status,
    pub outcome: Option<Outcome>,
    pub reason: Option<&'a str>,
    pub dry_run: bool,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
}

impl<'a> From<&'a Job> for Summary<'a> {
    fn from(job: &'a Job) -> Self {
        let resource = &job.resource;
        Self {
            event: "execution_finished",
            execution_id: &job.id,
            link: format!("/v1/executions/{}", job.id),
            resource_type: resource.kind,
            resource_id: &resource.identifier,
            resource_arn: &resource.arn,
            region: &resource.region,
            account_id: &resource.account,
            trigger: job.trigger,
            message_id: job.message_id.as_deref(),
            status: job.status,
            outcome: job.outcome,
            reason: job.reason.as_deref(),
            dry_run: job.dry_run,
            created_at: job.created_at,
            finished_at: job.finished_at,
            duration_seconds: job
                .finished_at
                .map(|end| (end - job.created_at).num_milliseconds() as f64 / 1000.0),
        }
    }
}

/// The body POSTed to RESTOP_NOTIFY_URL when SNS confirms an unsubscription.
#[derive(Debug, Serialize)]
pub struct Unsubscribed<'a> {
    /// Always `unsubscribed`.
    pub event: &'static str,
    pub topic_arn: &'a str,
    pub message_id: &'a str,
    pub at: DateTime<Utc>,
}

/// Tries for an event that belongs to no execution.
const EVENT_ATTEMPTS: u32 = 3;

/// Sends events that belong to no execution to RESTOP_NOTIFY_URL.
#[derive(Clone)]
pub struct Notifier {
    url: url::Url,
    format: NotifyFormat,
    /// The console, for links (from RESTOP_PUBLIC_URL).
    console: Option<url::Url>,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
}

impl Notifier {
    pub fn new(
        url: url::Url,
        format: NotifyFormat,
        console: Option<url::Url>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            url,
            format,
            console,
            http: client(),
            metrics,
        }
    }

    /// Says that the endpoint was unsubscribed from `topic`, in the background.
    pub fn unsubscribed(&self, topic: &TopicArn, message_id: &str, at: DateTime<Utc>) {
        let event = Unsubscribed {
            event: "unsubscribed",
            topic_arn: topic.as_str(),
            message_id,
            at,
        };
        let body = format::body(
            self.format,
            &Event::Unsubscribed(&event),
            self.console.as_ref(),
        )
        .to_string();
        let (url, http, metrics) = (self.url.clone(), self.http.clone(), self.metrics.clone());
        tokio::spawn(async move {
            for attempt in 1..=EVENT_ATTEMPTS {
                let sent = http
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {
                        metrics.notification(NotificationResult::Sent);
                        return;
                    }
                    Ok(response) => {
                        tracing::warn!(status = %response.status(), attempt, "RESTOP_NOTIFY_URL refused the unsubscribed event")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.without_url(), attempt, "could not send the unsubscribed event")
                    }
                }
                if attempt < EVENT_ATTEMPTS {
                    metrics.notification(NotificationResult::Retried);
                    tokio::time::sleep(Duration::from_secs(2u64.pow(attempt))).await;
                }
            }
            metrics.notification(NotificationResult::Failed);
            tracing::error!("the unsubscribed event could not be delivered to RESTOP_NOTIFY_URL");
        });
    }
}

impl Engine {
    /// Delivers the end-of-execution notification once.
    pub(super) async fn notify_step(&self, job: &Job, now: DateTime<Utc>) -> (NewStep, JobUpdate) {
        let mut update = JobUpdate {
            notify_state: Some(NotifyState::Sent),
            notify_attempts: job.notification.attempts + 1,
            notify_error: None,
            ..self.unchanged(job)
        };
        let result = match &self.settings.notify_url {
            Some(url) => {
                self.http
                    .post(url.clone())
                    .json(&format::body(
                        self.settings.notify_format,
                        &Event::Finished(&Summary::from(job)),
                        self.settings.console_url.as_ref(),
                    ))
                    .send()
                    .await
            }
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
            self.metrics.notification(NotificationResult::Sent);
            return (step(now, "sent", None), update);
        };
        update.notify_error = Some(error.clone());
        if update.notify_attempts >= MAX_ATTEMPTS {
            tracing::error!(error = %error, "notification abandoned after {MAX_ATTEMPTS} attempts");
            update.notify_state = Some(NotifyState::Failed);
            self.metrics.notification(NotificationResult::Failed);
            (step(now, "gave up", Some(error)), update)
        } else {
            let delay = self
                .settings
                .policy
                .retry_base
                .saturating_mul(2u32.saturating_pow(job.notification.attempts))
                .min(LONGEST_WAIT);
            update.notify_state = Some(NotifyState::Pending);
            update.next_run_at = Some(now + delay);
            self.metrics.notification(NotificationResult::Retried);
            (step(now, "retry", Some(error)), update)
        }
    }
}

fn step(at: DateTime<Utc>, action: &str, error: Option<String>) -> NewStep {
    NewStep {
        at,
        step: "notify".into(),
        rds_status: None,
        action: action.into(),
        error,
    }
}
