//! The engine's settings, derived once from `restop serve`'s.

use std::time::Duration;

use super::decide::Policy;
use super::{STEP_BATCH, notify};
use crate::aws::arn::StateMachineArn;
use crate::config::{EngineConfig, NotifyFormat};
use crate::execution::Mode;

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub policy: Policy,
    pub max_duration: Duration,
    pub dry_run: bool,
    pub state_machine_arn: Option<StateMachineArn>,
    pub notify_url: Option<url::Url>,
    pub notify_format: NotifyFormat,
    /// The console at RESTOP_PUBLIC_URL's host, for links in notifications.
    pub console_url: Option<url::Url>,
    pub lease: Duration,
    /// Jobs other than polls claimed per round: no more than the RDS budget can serve
    /// within half a lease, even if all are in one account and region.
    pub step_batch: u32,
    /// Identifies this process in leases.
    pub owner: String,
}

impl EngineSettings {
    /// The engine's settings, from `restop serve`'s.
    pub fn from_config(config: &EngineConfig, rds_max_rps: f64) -> Self {
        let affordable = rds_max_rps * config.job_lease.as_secs_f64() / 2.0;
        Self {
            policy: Policy {
                tag_key: config.tag_key.clone(),
                tag_value: config.tag_value.clone(),
                hold_tag_key: config.hold_tag_key.clone(),
                poll_interval: config.poll_interval,
                start_grace: config.start_grace,
                retry_base: Duration::from_secs(2).min(config.poll_interval),
                retry_max: config.poll_interval.min(Duration::from_secs(300)),
            },
            max_duration: config.max_duration,
            dry_run: config.dry_run,
            state_machine_arn: config.state_machine_arn.clone(),
            notify_url: config.notify_url.clone(),
            notify_format: config.notify_format,
            console_url: config.public_url.as_deref().and_then(notify::console_url),
            lease: config.job_lease,
            step_batch: (affordable as u32).clamp(1, STEP_BATCH),
            owner: process_identity(),
        }
    }

    pub fn mode(&self) -> Mode {
        match self.state_machine_arn {
            Some(_) => Mode::StepFunctions,
            None => Mode::Internal,
        }
    }
}

/// This process as leases name it: host, process id, and a random part, because a
/// restarted container may get the same host name and process id.
fn process_identity() -> String {
    format!(
        "{}-{}-{}",
        std::env::var("HOSTNAME").unwrap_or_else(|_| "restop".into()),
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}
