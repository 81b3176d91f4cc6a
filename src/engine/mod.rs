//! The protection engine: durable jobs in the database, worked one step at a time.
//!
//! Each step is: claim a due job (with a lease), observe AWS once, ask [`decide`] what
//! next, then commit the step and the new state together, fenced by the lease token. A
//! crash anywhere loses at most an uncommitted step, which the next owner repeats.

pub mod aws;
pub mod decide;
mod notify;

pub use notify::PENDING as NOTIFY_PENDING;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::aws::Aws;
use self::decide::{
    AwsFailure, Decision, Observation, Outcome, Phase, Policy, Situation, StateMachineRun, Status,
    decide,
};
use crate::clock::Clock;
use crate::rds::resource::ResourceArn;
use crate::store::{Job, JobUpdate, Mode, NewExecution, StepRecord, Store};

/// How often an idle engine looks for due jobs; new executions wake it at once.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Jobs claimed per round (and worked concurrently).
const BATCH: u32 = 64;
/// A job that was due "now" again after a step is run straight away, this many times, so a
/// short chain (tags -> describe -> stop) does not wait for the next round.
const IMMEDIATE_STEPS: usize = 4;

#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub policy: Policy,
    pub max_duration: Duration,
    pub dry_run: bool,
    pub state_machine_arn: Option<String>,
    pub notify_url: Option<url::Url>,
    pub lease: Duration,
    /// Identifies this process in leases.
    pub owner: String,
}

/// Creates executions the way the engine expects them, and wakes it when one is new.
pub struct Launcher {
    pub mode: Mode,
    pub max_duration: Duration,
    pub wakeup: Arc<Notify>,
    /// RESTOP_NOTIFY_URL is set: ended executions (cancelled ones too) are notified.
    pub notify: bool,
}

/// Who asked for an execution.
#[derive(Debug, Clone)]
pub struct Trigger {
    /// `sns` or `manual`.
    pub kind: &'static str,
    pub message_id: Option<String>,
    pub event_id: Option<String>,
    /// When the event happened: the start grace period counts from here.
    pub event_at: DateTime<Utc>,
    pub dry_run: bool,
    pub skip_tag_check: bool,
}

impl Launcher {
    pub fn execution(
        &self,
        resource: &ResourceArn,
        trigger: Trigger,
        now: DateTime<Utc>,
    ) -> NewExecution {
        // Stored timestamps keep microseconds (Postgres' precision), so a pagination cursor
        // built from a row compares equal to the row on every backend.
        let now = now.trunc_subsecs(6);
        NewExecution {
            id: uuid::Uuid::new_v4().to_string(),
            kind: resource.kind,
            resource_id: resource.identifier.clone(),
            resource_arn: resource.arn.clone(),
            region: resource.region.clone(),
            account: resource.account.clone(),
            trigger: trigger.kind,
            message_id: trigger.message_id,
            event_id: trigger.event_id,
            mode: self.mode,
            dry_run: trigger.dry_run,
            skip_tag_check: trigger.skip_tag_check,
            event_at: trigger.event_at,
            created_at: now,
            deadline_at: now + self.max_duration,
        }
    }

    /// Tells the engine that a new execution is due now.
    pub fn wake(&self) {
        self.wakeup.notify_one();
    }
}

pub struct Engine {
    store: Arc<dyn Store>,
    aws: Arc<dyn Aws>,
    settings: EngineSettings,
    clock: Arc<dyn Clock>,
    wakeup: Arc<Notify>,
    http: reqwest::Client,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        aws: Arc<dyn Aws>,
        settings: EngineSettings,
        clock: Arc<dyn Clock>,
        wakeup: Arc<Notify>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            aws,
            settings,
            clock,
            wakeup,
            http: notify::client(),
        })
    }

    /// Works due jobs until `shutdown` fires; steps in flight are finished first.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        tracing::info!(owner = %self.settings.owner, "protection engine started");
        loop {
            let worked = match self.run_round().await {
                Ok(worked) => worked,
                Err(e) => {
                    tracing::error!(error = %e, "engine could not claim jobs; retrying");
                    0
                }
            };
            if worked as u32 == BATCH {
                continue; // more may be due
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wakeup.notified() => {}
                _ = tokio::time::sleep(IDLE_TICK) => {}
            }
        }
        tracing::info!("protection engine stopped");
    }

    /// Claims one batch of due jobs and works them concurrently. Returns how many.
    pub async fn run_round(self: &Arc<Self>) -> Result<usize, crate::store::StoreError> {
        let jobs = self
            .store
            .claim_jobs(
                &self.settings.owner,
                self.clock.now(),
                self.settings.lease,
                BATCH,
            )
            .await?;
        let count = jobs.len();
        let mut set = JoinSet::new();
        for job in jobs {
            let engine = self.clone();
            let span = tracing::info_span!(
                "execution",
                execution_id = %job.id,
                resource = %job.resource_arn,
                message_id = job.message_id.as_deref().unwrap_or(""),
            );
            set.spawn(async move { engine.work(job).await }.instrument(span));
        }
        while set.join_next().await.is_some() {}
        Ok(count)
    }

    /// Runs steps of one claimed job while it stays due right away.
    async fn work(&self, mut job: Job) {
        for _ in 0..IMMEDIATE_STEPS {
            let (step, update) = self.step(&job).await;
            match self.store.complete_step(&job, &step, &update).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!("job taken over or cancelled; step discarded");
                    return;
                }
                Err(e) => {
                    // The lease runs out and the step is repeated, by us or a peer.
                    tracing::warn!(error = %e, "could not commit step");
                    return;
                }
            }
            log_step(&job, &step, &update);
            let due_now = update.next_run_at.is_some_and(|at| at <= self.clock.now());
            if !due_now {
                return;
            }
            // Claim again for the next immediate step: keeps the fence strict.
            let Ok(mut claimed) = self
                .store
                .claim_job(
                    &job.id,
                    &self.settings.owner,
                    self.clock.now(),
                    self.settings.lease,
                )
                .await
            else {
                return;
            };
            match claimed.take() {
                Some(next) => job = next,
                None => return,
            }
        }
    }

    /// One observation and its consequence, not yet committed.
    async fn step(&self, job: &Job) -> (StepRecord, JobUpdate) {
        let now = self.clock.now();
        if job.status.is_active() {
            let (observation, rds_status) = self.observe(job).await;
            self.apply(job, now, &observation, rds_status)
        } else {
            self.notify_step(job, now).await
        }
    }

    /// Makes the one AWS call the job's phase needs.
    async fn observe(&self, job: &Job) -> (Observation, Option<String>) {
        let resource: ResourceArn = match job.resource_arn.parse() {
            Ok(resource) => resource,
            Err(e) => return (Observation::Failed(AwsFailure::Other(e)), None),
        };
        let observation = match job.phase {
            Phase::CheckProtection if job.skip_tag_check => Observation::ProtectionSkipped,
            Phase::CheckProtection => match self.aws.list_tags(&resource).await {
                Ok(tags) => Observation::Tags(tags),
                Err(e) => Observation::Failed(e),
            },
            Phase::WaitAvailable | Phase::WaitStopped => match self.aws.describe(&resource).await {
                Ok(facts) => {
                    let status = facts.status.clone();
                    return (Observation::Described(facts), Some(status));
                }
                Err(e) => Observation::Failed(e),
            },
            Phase::Stop if job.dry_run || self.settings.dry_run => Observation::StopSkipped,
            Phase::Stop => match self.aws.stop(&resource).await {
                Ok(()) => Observation::StopRequested,
                Err(e) => Observation::Failed(e),
            },
            Phase::StartStateMachine => self.start_state_machine(job, &resource).await,
            Phase::FollowStateMachine => match &job.sfn_execution_arn {
                Some(arn) => match self.aws.describe_state_machine_run(arn).await {
                    Ok(StateMachineRun::Running) if self.clock.now() >= job.deadline_at => {
                        // restop gives up now: the state machine must not stop the
                        // database behind its back later.
                        if let Err(e) = self.aws.stop_state_machine_run(arn).await {
                            tracing::warn!(error = ?e, "could not stop the timed-out state machine execution");
                        }
                        Observation::StateMachine(StateMachineRun::Running)
                    }
                    Ok(run) => Observation::StateMachine(run),
                    Err(e) => Observation::Failed(e),
                },
                None => Observation::Failed(AwsFailure::Other(
                    "no state machine execution recorded".into(),
                )),
            },
            Phase::Done => Observation::Failed(AwsFailure::Other("execution already done".into())),
        };
        (observation, None)
    }

    async fn start_state_machine(&self, job: &Job, resource: &ResourceArn) -> Observation {
        let Some(state_machine) = &self.settings.state_machine_arn else {
            return Observation::Failed(AwsFailure::Other(
                "RESTOP_STATE_MACHINE_ARN is not set".into(),
            ));
        };
        let machine_region = state_machine.split(':').nth(3).unwrap_or_default();
        if machine_region != resource.region {
            return Observation::Failed(AwsFailure::Other(format!(
                "unsupported: the state machine runs in {machine_region} and cannot stop a resource in {}",
                resource.region
            )));
        }
        let input = serde_json::json!({
            "resourceType": job.kind.as_str(),
            "resourceId": job.resource_id,
            "resourceArn": job.resource_arn,
            "region": job.region,
            "eventId": job.event_id,
            "messageId": job.message_id,
            "executionId": job.id,
            "dryRun": job.dry_run || self.settings.dry_run,
            "pollIntervalSeconds": self.settings.policy.poll_interval.as_secs().max(1),
            "startGraceSeconds": self.settings.policy.start_grace.as_secs(),
        })
        .to_string();
        let name = state_machine_execution_name(job.message_id.as_deref().unwrap_or(&job.id));
        match self
            .aws
            .start_state_machine(state_machine, &name, &input)
            .await
        {
            Ok(execution_arn) => Observation::StateMachineStarted { execution_arn },
            Err(e) => Observation::Failed(e),
        }
    }

    /// Turns an observation into the step to record and the job's next state.
    fn apply(
        &self,
        job: &Job,
        now: DateTime<Utc>,
        observation: &Observation,
        rds_status: Option<String>,
    ) -> (StepRecord, JobUpdate) {
        let situation = Situation {
            phase: job.phase,
            kind: job.kind,
            step_functions: job.mode == Mode::StepFunctions,
            dry_run: job.dry_run || self.settings.dry_run,
            since_event: (now - job.event_at).to_std().unwrap_or_default(),
            past_deadline: now >= job.deadline_at,
            retries: job.retries,
        };
        let decision = decide(
            &situation,
            observation,
            &self.settings.policy,
            rand::random(),
        );
        let error = match observation {
            Observation::Failed(failure) => Some(describe_failure(failure)),
            _ => None,
        };
        let step = StepRecord {
            at: now,
            step: job.phase.as_str().to_owned(),
            rds_status,
            action: decision.action(),
            error,
        };
        let mut update = JobUpdate {
            status: Status::Running,
            outcome: None,
            reason: None,
            phase: job.phase,
            retries: 0,
            sfn_execution_arn: job.sfn_execution_arn.clone(),
            finished_at: None,
            notify_state: None,
            notify_attempts: 0,
            notify_error: None,
            next_run_at: None,
        };
        if let Observation::StateMachineStarted { execution_arn } = observation {
            update.sfn_execution_arn = Some(execution_arn.clone());
        }
        match decision {
            Decision::Continue {
                phase,
                after,
                retry,
                ..
            } => {
                update.phase = phase;
                update.retries = if retry { job.retries + 1 } else { 0 };
                update.next_run_at = Some(now + after);
            }
            Decision::Finish { outcome, reason } => self.finish(&mut update, now, outcome, reason),
        }
        (step, update)
    }

    fn finish(&self, update: &mut JobUpdate, now: DateTime<Utc>, outcome: Outcome, reason: String) {
        update.status = outcome.status();
        update.outcome = Some(outcome);
        update.reason = Some(reason);
        update.phase = Phase::Done;
        update.finished_at = Some(now);
        if self.settings.notify_url.is_some() {
            update.notify_state = Some(notify::PENDING.into());
            update.next_run_at = Some(now);
        }
    }
}

/// Step Functions execution names: 1-80 of `[0-9A-Za-z_-]`. An SNS MessageId (a UUID)
/// already fits; anything else is reduced to fit, so a redelivery maps to the same name.
pub fn state_machine_execution_name(message_id: &str) -> String {
    message_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect()
}

fn describe_failure(failure: &AwsFailure) -> String {
    match failure {
        AwsFailure::Transient(m)
        | AwsFailure::InvalidState(m)
        | AwsFailure::InvalidParameterCombination(m)
        | AwsFailure::Other(m) => m.clone(),
        AwsFailure::NotFound => "not found".into(),
        AwsFailure::AccessDenied { message, .. } => message.clone(),
    }
}

/// Known limitations end as warnings; failures as errors; the rest is routine.
fn log_step(job: &Job, step: &StepRecord, update: &JobUpdate) {
    let phase = job.phase.as_str();
    match (update.status, update.outcome) {
        (Status::Failed, outcome) => tracing::error!(
            phase,
            outcome = outcome.map(|o| o.as_str()),
            reason = update.reason.as_deref(),
            "execution failed"
        ),
        (Status::Skipped, outcome) => tracing::warn!(
            phase,
            outcome = outcome.map(|o| o.as_str()),
            reason = update.reason.as_deref(),
            "execution skipped"
        ),
        (Status::Succeeded, outcome) if job.status.is_active() => tracing::info!(
            outcome = outcome.map(|o| o.as_str()),
            reason = update.reason.as_deref(),
            "execution succeeded"
        ),
        _ if step.error.is_some() => {
            tracing::warn!(phase, action = %step.action, error = step.error.as_deref(), "step")
        }
        _ => {
            tracing::debug!(phase, action = %step.action, rds_status = step.rds_status.as_deref(), "step")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_names_are_valid_and_stable() {
        let id = "f3f2fc87-c426-4c2f-9044-b55890c0939c";
        assert_eq!(state_machine_execution_name(id), id);
        let odd = state_machine_execution_name(&format!("{}:x y", "a".repeat(100)));
        assert_eq!(odd.len(), 80);
        assert!(
            odd.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
