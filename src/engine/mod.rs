//! The protection engine: durable jobs in the database, worked one step at a time.
//!
//! Each step is: claim a due job (with a lease), observe AWS once, ask [`decide`] what
//! next, then commit the step and the new state together, fenced by the lease token. A
//! crash anywhere loses at most an uncommitted step, which the next owner repeats.

pub mod catchup;
pub mod decide;
mod launcher;
mod notify;
mod settings;
mod wakeup;

pub use launcher::{Launcher, Trigger};
pub use notify::Notifier;
pub use settings::EngineSettings;
pub use wakeup::{CLUSTER_LOOKUP_TIMEOUT, Wakeups};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::decide::{
    Decision, Observation, Situation, decide, stop_refusals_after, wake_polls_after,
};
use crate::aws::arn::ResourceKind;
use crate::aws::{Aws, AwsFailure, DESCRIBE_BATCH, Scope, StateMachineRun};
use crate::clock::Clock;
use crate::execution::{Mode, NotifyState, Outcome, Phase, Status};
use crate::metrics::Metrics;
use crate::rds;
use crate::store::{Claim, Job, JobUpdate, NewStep, Sizing, Store, StoreError};

/// How often an idle engine looks for due jobs; new executions wake it at once.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Jobs other than polls claimed per round (and worked concurrently), at most.
const STEP_BATCH: u32 = 64;
/// Polls claimed per round: they are described together, up to a hundred per call, so
/// many at once make few calls.
const POLL_BATCH: u32 = 1000;
/// A job that was due "now" again after a step is run straight away, this many times, so a
/// short chain (tags -> describe -> stop) does not wait for the next round.
const IMMEDIATE_STEPS: usize = 4;
/// A job claimed this many times without completing a step (its step panics, hangs past
/// the lease, or kills the process) is given up instead of claimed for ever.
const MAX_CLAIMS_WITHOUT_PROGRESS: u32 = 5;
/// At shutdown, how long a step that writes (a stop, a state machine run, a notification)
/// may still take before it is abandoned too; reads and budget waits are abandoned at once.
/// An abandoned step is given back at the end (or, if that fails, its lease runs out, as
/// after a crash) and repeated by the next owner, so a stop never waits for the backlog or
/// for a slow AWS.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// At shutdown, how long giving back the abandoned jobs may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(1);

/// What one round of the engine did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Jobs worked.
    pub worked: usize,
    /// A claim came back full: more may be due at once.
    pub full: bool,
}

pub struct Engine {
    store: Arc<dyn Store>,
    aws: Arc<dyn Aws>,
    settings: EngineSettings,
    clock: Arc<dyn Clock>,
    wakeup: Arc<Notify>,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    /// Fired by [`Engine::run`]'s shutdown: rounds claim nothing more and steps in flight
    /// are abandoned (see [`SHUTDOWN_GRACE`]).
    stopping: CancellationToken,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        aws: Arc<dyn Aws>,
        settings: EngineSettings,
        clock: Arc<dyn Clock>,
        wakeup: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            aws,
            settings,
            clock,
            wakeup,
            http: notify::client(),
            metrics,
            stopping: CancellationToken::new(),
        })
    }

    /// Works due jobs until `shutdown` fires. Then the round in flight ends within
    /// [`SHUTDOWN_GRACE`] or so: no more claims, reads and budget waits abandoned, steps
    /// already decided committed.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        tracing::info!(owner = %self.settings.owner, "protection engine started");
        loop {
            let round = self.run_round();
            tokio::pin!(round);
            let round = tokio::select! {
                round = &mut round => round,
                _ = shutdown.cancelled() => {
                    self.stopping.cancel();
                    round.await
                }
            };
            let full = match round {
                Ok(round) => round.full,
                Err(e) => {
                    tracing::error!(error = %e, "engine could not claim jobs; retrying");
                    false
                }
            };
            if shutdown.is_cancelled() {
                break;
            }
            if full {
                continue; // more may be due
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wakeup.notified() => {}
                _ = tokio::time::sleep(IDLE_TICK) => {}
            }
        }
        // The round in flight has ended: what this engine still holds was abandoned.
        let released = self.store.release_jobs(&self.settings.owner);
        match tokio::time::timeout(RELEASE_TIMEOUT, released).await {
            Ok(Ok(0)) => {}
            Ok(Ok(jobs)) => tracing::info!(jobs, "abandoned jobs given back for the next owner"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not give back the abandoned jobs; their leases run out")
            }
            Err(_) => {
                tracing::warn!("giving back the abandoned jobs took too long; their leases run out")
            }
        }
        tracing::info!("protection engine stopped");
    }

    /// Claims the due jobs and works them concurrently: polls of one account, region and
    /// kind described together (a call per hundred), every other job on its own.
    pub async fn run_round(self: &Arc<Self>) -> Result<Round, StoreError> {
        let idle = Round {
            worked: 0,
            full: false,
        };
        if self.stopping.is_cancelled() {
            return Ok(idle);
        }
        let now = self.clock.now();
        let (owner, lease) = (&self.settings.owner, self.settings.lease);
        // Sized by the share of the RDS budget in force: a throttled account-region serves
        // fewer steps within a lease.
        let share = self.aws.rds_share().clamp(0.0, 1.0);
        let step_batch = ((f64::from(self.settings.step_batch) * share).ceil() as u32).max(1);
        let steps = self
            .store
            .claim_jobs(owner, now, lease, Claim::Steps, step_batch)
            .await?;
        if self.stopping.is_cancelled() {
            return Ok(idle); // claimed but abandoned: the leases run out
        }
        let polls = self
            .store
            .claim_jobs(owner, now, lease, Claim::Polls, POLL_BATCH)
            .await?;
        let round = Round {
            worked: steps.len() + polls.len(),
            full: steps.len() == step_batch as usize || polls.len() == POLL_BATCH as usize,
        };

        let mut groups: BTreeMap<Scope, Vec<Job>> = BTreeMap::new();
        for job in polls {
            groups
                .entry(Scope::of(&job.resource))
                .or_default()
                .push(job);
        }
        let mut described = JoinSet::new();
        for (scope, jobs) in groups {
            let mut jobs = jobs.into_iter().peekable();
            while jobs.peek().is_some() {
                let chunk: Vec<Job> = jobs.by_ref().take(DESCRIBE_BATCH).collect();
                let engine = self.clone();
                let scope = scope.clone();
                described.spawn(async move { engine.poll_together(&scope, chunk).await });
            }
        }

        let mut work = JoinSet::new();
        let mut executions = HashMap::new();
        let mut start = |job: Job, first: Option<(NewStep, JobUpdate)>| {
            let engine = self.clone();
            let span = tracing::info_span!(
                "execution",
                execution_id = %job.id,
                resource = %job.resource.arn,
                message_id = job.message_id.as_deref().unwrap_or(""),
            );
            let id = job.id.clone();
            let task = work.spawn(async move { engine.work(job, first).await }.instrument(span));
            executions.insert(task.id(), id);
        };
        for job in steps {
            start(job, None);
        }
        while let Some(chunk) = described.join_next().await {
            match chunk {
                Ok(observed) => {
                    for (job, first) in observed {
                        start(job, Some(first));
                    }
                }
                Err(e) => tracing::error!(error = %e, "a batched poll panicked"),
            }
        }
        while let Some(joined) = work.join_next_with_id().await {
            if let Err(e) = joined {
                // The lease runs out and the job is claimed again; after a few claims
                // without progress it is given up.
                let execution_id = executions.get(&e.id()).map(String::as_str).unwrap_or("?");
                tracing::error!(execution_id, error = %e, "a step panicked");
            }
        }
        Ok(round)
    }

    /// Describes the databases of waiting jobs of one scope in one call, and decides each
    /// job's step from what it says. A database absent from the answer is gone.
    async fn poll_together(
        &self,
        scope: &Scope,
        jobs: Vec<Job>,
    ) -> Vec<(Job, (NewStep, JobUpdate))> {
        let identifiers: Vec<String> = jobs.iter().map(|j| j.resource.identifier.clone()).collect();
        // A read: abandoned at shutdown, repeated by the next owner.
        let described = tokio::select! {
            described = self.aws.describe_many(scope, &identifiers) => described,
            _ = self.stopping.cancelled() => return Vec::new(),
        };
        let now = self.clock.now();
        let mut decided = Vec::with_capacity(jobs.len());
        for job in jobs {
            let first = if job.attempts > MAX_CLAIMS_WITHOUT_PROGRESS {
                self.give_up(&job, now)
            } else {
                let (observation, rds_status) = match &described {
                    Ok(found) => match found.get(&job.resource.identifier) {
                        Some(facts) => (
                            Observation::Described(facts.clone()),
                            Some(facts.status.clone()),
                        ),
                        None => (Observation::Failed(AwsFailure::NotFound), None),
                    },
                    Err(failure) => (Observation::Failed(failure.clone()), None),
                };
                let stop_seen = self.stop_seen(&job, &observation).await;
                self.apply(&job, now, &observation, rds_status, stop_seen)
            };
            decided.push((job, first));
        }
        decided
    }

    /// Whether this execution saw its stop take effect, asked of the step history only
    /// when the answer matters: `available` while waiting for `stopped` (see
    /// [`Situation::stop_seen`]). Unknown counts as not seen: stop again, as before.
    async fn stop_seen(&self, job: &Job, observation: &Observation) -> bool {
        let Observation::Described(facts) = observation else {
            return false;
        };
        if job.phase != Phase::WaitStopped
            || rds::status::classify(&facts.status) != rds::status::StatusClass::Available
        {
            return false;
        }
        match self.store.saw_stop_take_effect(&job.id).await {
            Ok(seen) => seen,
            Err(e) => {
                tracing::warn!(error = %e, "could not read whether the stop took effect");
                false
            }
        }
    }

    /// Runs steps of one claimed job while it stays due right away; the first step may
    /// have been decided already (from a batched poll).
    async fn work(&self, mut job: Job, mut first: Option<(NewStep, JobUpdate)>) {
        for _ in 0..IMMEDIATE_STEPS {
            let (step, update) = match first.take() {
                Some(decided) => decided,
                None => match self.step_unless_stopping(&job).await {
                    Some(decided) => decided,
                    None => {
                        tracing::info!("shutting down: step abandoned until the lease runs out");
                        return;
                    }
                },
            };
            match self.store.complete_step(&job, &step, &update).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::info!("job taken over or cancelled; step discarded");
                    self.stop_orphaned_run(&job, &update).await;
                    return;
                }
                Err(e) => {
                    // The lease runs out and the step is repeated, by us or a peer.
                    tracing::warn!(error = %e, "could not commit step");
                    return;
                }
            }
            log_step(&job, &step, &update);
            if job.status.is_active()
                && !update.status.is_active()
                && let Some(outcome) = update.outcome
            {
                self.metrics.execution_finished(outcome);
            }
            let due_now = update.next_run_at.is_some_and(|at| at <= self.clock.now());
            if !due_now || self.stopping.is_cancelled() {
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

    /// [`Engine::step`], unless shutdown comes first: a read is then abandoned at once, a
    /// write (stop, state machine, notification) after [`SHUTDOWN_GRACE`]. `None` when
    /// abandoned.
    async fn step_unless_stopping(&self, job: &Job) -> Option<(NewStep, JobUpdate)> {
        let step = self.step(job);
        tokio::pin!(step);
        tokio::select! {
            decided = &mut step => return Some(decided),
            _ = self.stopping.cancelled() => {}
        }
        let writes = !job.status.is_active()
            || matches!(
                job.phase,
                Phase::Stop | Phase::StartStateMachine | Phase::AbortStateMachine
            );
        if !writes {
            return None;
        }
        tokio::time::timeout(SHUTDOWN_GRACE, step).await.ok()
    }

    /// One observation and its consequence, not yet committed.
    async fn step(&self, job: &Job) -> (NewStep, JobUpdate) {
        let now = self.clock.now();
        if job.attempts > MAX_CLAIMS_WITHOUT_PROGRESS {
            let decided = self.give_up(job, now);
            self.end_state_machine_run(job, &decided.1).await;
            return decided;
        }
        if job.status.is_active() {
            let (observation, rds_status) = self.observe(job).await;
            let stop_seen = self.stop_seen(job, &observation).await;
            let decided = self.apply(job, now, &observation, rds_status, stop_seen);
            // A run that answered for itself ended (or was stopped at the deadline).
            if !matches!(observation, Observation::StateMachine(_)) {
                self.end_state_machine_run(job, &decided.1).await;
            }
            decided
        } else if job.phase == Phase::AbortStateMachine {
            self.abort_step(job, now).await
        } else {
            self.notify_step(job, now).await
        }
    }

    /// restop finishes a Step Functions execution the run did not end (given up, access
    /// denied, unsupported...): stops the run, by its recorded ARN or its deterministic
    /// name, so that it never stops the database behind restop's back. Best effort.
    async fn end_state_machine_run(&self, job: &Job, update: &JobUpdate) {
        let following = matches!(
            job.phase,
            Phase::StartStateMachine | Phase::FollowStateMachine
        );
        if job.mode != Mode::StepFunctions
            || !following
            || !job.status.is_active()
            || update.status.is_active()
        {
            return;
        }
        let Some(arn) = update.sfn_execution_arn.clone().or_else(|| {
            self.settings
                .state_machine_arn
                .as_ref()
                .map(|machine| machine.execution(&run_name(job, self.dry_run(job))))
        }) else {
            return;
        };
        let cause = format!(
            "restop ended this execution: {}",
            update.reason.as_deref().unwrap_or("finished")
        );
        match self
            .aws
            .stop_state_machine_run(&arn, "restop.Finished", &cause)
            .await
        {
            Ok(()) | Err(AwsFailure::NotFound) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not stop the state machine run of a finished execution")
            }
        }
    }

    /// A cancel that came while this step was starting a state machine run could not stop
    /// the run (it did not exist yet, or its ARN was not recorded): stop it now.
    async fn stop_orphaned_run(&self, job: &Job, update: &JobUpdate) {
        let Some(arn) = update.sfn_execution_arn.as_deref() else {
            return;
        };
        if job.sfn_execution_arn.is_some() {
            return; // not started by this step
        }
        let cancelled = matches!(
            self.store.get_execution(&job.id).await,
            Ok(Some((execution, _))) if execution.status == Status::Cancelled
        );
        if cancelled {
            match self
                .aws
                .stop_state_machine_run(arn, "restop.Cancelled", "cancelled by an operator")
                .await
            {
                Ok(()) => tracing::info!("stopped the state machine run of a cancelled execution"),
                Err(e) => {
                    tracing::error!(error = %e, "could not stop the state machine run of a cancelled execution")
                }
            }
        }
    }

    /// A cancelled Step Functions execution: stops its state machine run, found by its
    /// recorded ARN or its deterministic name.
    async fn abort_step(&self, job: &Job, now: DateTime<Utc>) -> (NewStep, JobUpdate) {
        let mut update = self.unchanged(job);
        let arn = job.sfn_execution_arn.clone().or_else(|| {
            self.settings
                .state_machine_arn
                .as_ref()
                .map(|machine| machine.execution(&run_name(job, self.dry_run(job))))
        });
        let result = match &arn {
            Some(arn) => {
                self.aws
                    .stop_state_machine_run(arn, "restop.Cancelled", "cancelled by an operator")
                    .await
            }
            None => Err(AwsFailure::NotFound),
        };
        let (action, error) = match result {
            Ok(()) => ("state machine run stopped", None),
            Err(AwsFailure::NotFound) => ("no state machine run to stop", None),
            Err(AwsFailure::Transient(e) | AwsFailure::Throttled(e)) if now < job.deadline_at => {
                update.retries = job.retries + 1;
                update.next_run_at =
                    Some(now + decide::backoff(job.retries, &self.settings.policy, rand::random()));
                let step = NewStep {
                    at: now,
                    step: job.phase.as_str().to_owned(),
                    rds_status: None,
                    action: "retry stopping the state machine run".into(),
                    error: Some(e),
                };
                return (step, update);
            }
            Err(e) => {
                tracing::error!(error = %e, "could not stop the state machine run of a cancelled execution");
                ("could not stop the state machine run", Some(e.detail()))
            }
        };
        update.phase = Phase::Done;
        update.retries = 0;
        update.next_run_at = (job.notification.state == Some(NotifyState::Pending)).then_some(now);
        let step = NewStep {
            at: now,
            step: job.phase.as_str().to_owned(),
            rds_status: None,
            action: action.into(),
            error,
        };
        (step, update)
    }

    /// Ends a job whose steps never complete, rather than claiming it for ever.
    fn give_up(&self, job: &Job, now: DateTime<Utc>) -> (NewStep, JobUpdate) {
        let reason = format!(
            "claimed {} times without completing a step (a step crashed, hung or was killed)",
            job.attempts - 1
        );
        let step = NewStep {
            at: now,
            step: job.phase.as_str().to_owned(),
            rds_status: None,
            action: "give up".into(),
            error: Some(reason.clone()),
        };
        let mut update = self.unchanged(job);
        if job.status.is_active() {
            let outcome = if now >= job.deadline_at {
                Outcome::Timeout
            } else {
                Outcome::Error
            };
            self.finish(&mut update, now, outcome, reason);
        } else {
            update.notify_state = Some(NotifyState::Failed);
            update.notify_error = Some(reason);
            update.next_run_at = None;
        }
        (step, update)
    }

    /// The job's state as it is: the base of an update that changes only some of it.
    fn unchanged(&self, job: &Job) -> JobUpdate {
        JobUpdate {
            status: job.status,
            outcome: job.outcome,
            reason: job.reason.clone(),
            phase: job.phase,
            retries: job.retries,
            stop_refusals: job.stop_refusals,
            wake_polls: job.wake_polls,
            sfn_execution_arn: job.sfn_execution_arn.clone(),
            finished_at: job.finished_at,
            notify_state: job.notification.state,
            notify_attempts: job.notification.attempts,
            notify_error: job.notification.error.clone(),
            next_run_at: None,
            sizing: None,
        }
    }

    /// Makes the one AWS call the job's phase needs.
    async fn observe(&self, job: &Job) -> (Observation, Option<String>) {
        let resource = &job.resource;
        let observation = match job.phase {
            Phase::CheckProtection | Phase::RecheckProtection if job.skip_tag_check => {
                Observation::ProtectionSkipped
            }
            Phase::CheckProtection | Phase::RecheckProtection => {
                match self.aws.list_tags(resource).await {
                    Ok(tags) => Observation::Tags(tags),
                    Err(e) => Observation::Failed(e),
                }
            }
            Phase::WaitAvailable | Phase::WaitStopped => match self.aws.describe(resource).await {
                Ok(facts) => {
                    let status = facts.status.clone();
                    return (Observation::Described(facts), Some(status));
                }
                Err(e) => Observation::Failed(e),
            },
            Phase::Stop if self.dry_run(job) => Observation::StopSkipped,
            // The stop was decided before the deadline, but past it whatever runs may be
            // a deliberate start: never stop then.
            Phase::Stop if self.clock.now() >= job.deadline_at => Observation::StopTooLate,
            Phase::Stop => match self.store.record_stop_intent(job, self.clock.now()).await {
                // Recorded first: if restop dies after the call, the next owner knows
                // that a `stopped` database is restop's own doing.
                Ok(true) => match self.aws.stop(resource).await {
                    Ok(()) => Observation::StopRequested,
                    Err(e) => Observation::Failed(e),
                },
                Ok(false) => Observation::Failed(AwsFailure::Transient(
                    "the job was taken over or cancelled before the stop".into(),
                )),
                Err(e) => Observation::Failed(AwsFailure::Transient(format!(
                    "could not record the stop before making it: {e}"
                ))),
            },
            Phase::StartStateMachine => self.start_state_machine(job).await,
            Phase::FollowStateMachine => match &job.sfn_execution_arn {
                Some(arn) => match self.aws.describe_state_machine_run(arn).await {
                    Ok(StateMachineRun::Running) if self.clock.now() >= job.deadline_at => {
                        // restop gives up now: the state machine must not stop the
                        // database behind its back later.
                        let cause =
                            "RESTOP_MAX_DURATION passed; restop stopped following this execution";
                        if let Err(e) = self
                            .aws
                            .stop_state_machine_run(arn, "restop.Timeout", cause)
                            .await
                        {
                            tracing::warn!(error = %e, "could not stop the timed-out state machine execution");
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
            Phase::AbortStateMachine | Phase::Done => {
                Observation::Failed(AwsFailure::Other("execution already done".into()))
            }
        };
        (observation, None)
    }

    async fn start_state_machine(&self, job: &Job) -> Observation {
        let resource = &job.resource;
        let Some(state_machine) = &self.settings.state_machine_arn else {
            return Observation::Failed(AwsFailure::Other(
                "RESTOP_STATE_MACHINE_ARN is not set".into(),
            ));
        };
        let machine_region = state_machine.region();
        if machine_region != resource.region {
            return Observation::Unsupported(format!(
                "the state machine runs in {machine_region} and cannot stop a resource in {}",
                resource.region
            ));
        }
        let input = StateMachineInput {
            resource_type: resource.kind,
            resource_id: &resource.identifier,
            resource_arn: &resource.arn,
            region: &resource.region,
            event_id: job.event_id.as_deref(),
            message_id: job.message_id.as_deref(),
            execution_id: &job.id,
            role_arn: self.aws.member_role(&resource.account, &resource.partition),
            dry_run: self.dry_run(job),
            poll_interval_seconds: self.settings.policy.poll_interval.as_secs().max(1),
            start_grace_seconds: self.settings.policy.start_grace.as_secs(),
            skip_tag_check: job.skip_tag_check,
            tag_key: &self.settings.policy.tag_key,
            tag_value: &self.settings.policy.tag_value,
            protection_tags: protection_tags(
                &self.settings.policy.tag_key,
                &self.settings.policy.tag_value,
            ),
        };
        let input = serde_json::to_string(&input).expect("the input serialises");
        let name = run_name(job, self.dry_run(job));
        match self
            .aws
            .start_state_machine(state_machine, &name, &input)
            .await
        {
            Ok(execution_arn) => Observation::StateMachineStarted { execution_arn },
            Err(e) => Observation::Failed(e),
        }
    }

    /// Whether the job only rehearses (its own flag, or RESTOP_DRY_RUN).
    fn dry_run(&self, job: &Job) -> bool {
        job.dry_run || self.settings.dry_run
    }

    /// Turns an observation into the step to record and the job's next state.
    fn apply(
        &self,
        job: &Job,
        now: DateTime<Utc>,
        observation: &Observation,
        rds_status: Option<String>,
        stop_seen: bool,
    ) -> (NewStep, JobUpdate) {
        let situation = Situation {
            phase: job.phase,
            kind: job.resource.kind,
            step_functions: job.mode == Mode::StepFunctions,
            dry_run: self.dry_run(job),
            skip_tag_check: job.skip_tag_check,
            stop_requested: job.stop_requested_at.is_some(),
            stop_seen,
            stop_refusals: job.stop_refusals,
            wake_polls: job.wake_polls,
            since_event: (now - job.event_at).to_std().unwrap_or_default(),
            past_deadline: now >= job.deadline_at,
            retries: job.retries,
            now,
        };
        let decision = decide(
            &situation,
            observation,
            &self.settings.policy,
            rand::random(),
        );
        let error = match observation {
            Observation::Failed(failure) => Some(failure.detail()),
            _ => None,
        };
        let step = NewStep {
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
            stop_refusals: stop_refusals_after(&situation, observation),
            wake_polls: wake_polls_after(&situation, observation),
            sfn_execution_arn: job.sfn_execution_arn.clone(),
            finished_at: None,
            notify_state: None,
            notify_attempts: 0,
            notify_error: None,
            next_run_at: None,
            sizing: match observation {
                Observation::Described(facts) => Some(Sizing::of(job.resource.kind, facts)),
                _ => None,
            },
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
                let poll = self.settings.policy.poll_interval;
                let waiting = matches!(phase, Phase::WaitAvailable | Phase::WaitStopped);
                update.next_run_at = Some(if waiting && !retry && after >= poll {
                    next_poll(now + after, poll, &Scope::of(&job.resource))
                } else {
                    now + after
                });
            }
            Decision::Finish {
                outcome, reason, ..
            } => self.finish(&mut update, now, outcome, reason),
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
            update.notify_state = Some(NotifyState::Pending);
            update.next_run_at = Some(now);
        }
    }
}

/// What a state machine run is given (`deploy/state-machine.asl.json` reads these keys).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StateMachineInput<'a> {
    resource_type: ResourceKind,
    resource_id: &'a str,
    resource_arn: &'a str,
    region: &'a str,
    event_id: Option<&'a str>,
    message_id: Option<&'a str>,
    execution_id: &'a str,
    /// The member account's role the state machine's tasks assume; absent for resources
    /// in restop's own account.
    #[serde(skip_serializing_if = "Option::is_none")]
    role_arn: Option<String>,
    dry_run: bool,
    poll_interval_seconds: u64,
    start_grace_seconds: u64,
    /// An operator's stop of a database restop need not find protected: the machine does
    /// not read the tag again either.
    skip_tag_check: bool,
    /// The protection tag, for the machine's reason when it is gone.
    tag_key: &'a str,
    tag_value: &'a str,
    /// The tags that protect, as ListTagsForResource lists them: the machine reads the
    /// tags again before it stops and stops only if one of these is there.
    protection_tags: Vec<Tag<'a>>,
}

/// A tag as RDS lists it.
#[derive(Serialize, PartialEq, Eq, Debug)]
#[serde(rename_all = "PascalCase")]
struct Tag<'a> {
    key: &'a str,
    value: String,
}

/// The protection tag with the spellings of its value the state machine accepts. restop
/// compares values without case; JSONPath cannot, so the machine gets the value as set,
/// in lower case, in upper case and capitalised (another mixed spelling ends
/// `not_protected` there, without a stop).
fn protection_tags<'a>(key: &'a str, value: &str) -> Vec<Tag<'a>> {
    let mut capitalised = value.to_ascii_lowercase();
    if let Some(first) = capitalised.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    let mut tags: Vec<Tag<'a>> = Vec::new();
    for value in [
        value.to_owned(),
        value.to_ascii_lowercase(),
        value.to_ascii_uppercase(),
        capitalised,
    ] {
        let tag = Tag { key, value };
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    tags
}

/// When a waiting database is polled next, at the latest `due`: see [`on_own_grid`]. All
/// the databases of one account, region and kind then fall due at the same moment and are
/// described in one call (databases that started waiting at different times would
/// otherwise each make their own), while the scopes' moments spread over the interval
/// instead of all falling together. A poll comes early once, when a database joins its
/// scope's grid, and never later than `due`.
fn next_poll(due: DateTime<Utc>, poll: Duration, scope: &Scope) -> DateTime<Utc> {
    on_own_grid(
        due,
        poll,
        &[&scope.account, &scope.region, scope.kind.arn_segment()],
    )
}

/// The last point at or before `due` of a grid of points `step` apart, at an offset that is
/// `key`'s own (the same in every replica and after a restart): what shares a key falls due
/// together, and different keys spread over the step.
fn on_own_grid(due: DateTime<Utc>, step: Duration, key: &[&str]) -> DateTime<Utc> {
    let step = i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1);
    let offset = (stable_hash(key) % step.unsigned_abs()) as i64;
    let millis = due.timestamp_millis();
    let point = (millis - offset).div_euclid(step) * step + offset;
    DateTime::from_timestamp_millis(point).unwrap_or(due)
}

/// FNV-1a over the names joined by `/`: stable across processes and builds, unlike `Hash`.
fn stable_hash(names: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in names.join("/").bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The name of a job's state machine run: from the SNS MessageId, so that a redelivery is
/// the same run, or from the execution's id. A dry run's run has a name of its own: once
/// the job is upgraded to a real run, its real run must not find (and adopt) the dry one.
fn run_name(job: &Job, dry_run: bool) -> String {
    let base = job.message_id.as_deref().unwrap_or(&job.id);
    if dry_run {
        let mut name = state_machine_execution_name(base);
        name.truncate(80 - DRY_RUN_SUFFIX.len());
        name + DRY_RUN_SUFFIX
    } else {
        state_machine_execution_name(base)
    }
}

const DRY_RUN_SUFFIX: &str = "-dry-run";

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

/// Known limitations end as warnings; failures as errors; the rest is routine.
fn log_step(job: &Job, step: &NewStep, update: &JobUpdate) {
    let phase = job.phase.as_str();
    match (update.status, update.outcome) {
        (Status::Failed, outcome) => tracing::error!(
            phase,
            outcome = outcome.map(Outcome::as_str),
            reason = update.reason.as_deref(),
            "execution failed"
        ),
        (Status::Skipped, outcome) => tracing::warn!(
            phase,
            outcome = outcome.map(Outcome::as_str),
            reason = update.reason.as_deref(),
            "execution skipped"
        ),
        (Status::Succeeded, outcome) if job.status.is_active() => tracing::info!(
            outcome = outcome.map(Outcome::as_str),
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
    fn the_state_machine_accepts_the_usual_spellings_of_the_tag_value() {
        let values = |value: &str| -> Vec<String> {
            protection_tags("protect", value)
                .into_iter()
                .map(|t| t.value)
                .collect()
        };
        assert_eq!(values("yes"), ["yes", "YES", "Yes"]);
        assert_eq!(values("On"), ["On", "on", "ON"]);
        assert_eq!(values(""), [""]);
        assert_eq!(
            serde_json::to_value(protection_tags("protect", "yes")).unwrap()[0],
            serde_json::json!({"Key": "protect", "Value": "yes"})
        );
    }

    fn scope(account: &str, region: &str) -> Scope {
        Scope {
            account: account.into(),
            region: region.into(),
            kind: ResourceKind::DbInstance,
        }
    }

    #[test]
    fn a_scope_s_polls_fall_due_together_never_late() {
        let poll = Duration::from_secs(300);
        let orders = scope("123456789012", "us-east-1");
        let start = DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z")
            .unwrap()
            .to_utc();
        let point = next_poll(start, poll, &orders);
        assert!(point <= start && point > start - poll, "{point}");
        // Polls due anywhere within an interval after one of the scope's points are all
        // made at that point: never later than due, and together.
        for later_ms in [0, 1_200, 150_000, 299_999] {
            let due = point + chrono::Duration::milliseconds(later_ms);
            assert_eq!(next_poll(due, poll, &orders), point, "due {due}");
        }
        // Once on the grid, a database stays there: polled at its point (the round a
        // little late), due again one interval later.
        let polled = point + chrono::Duration::milliseconds(800);
        assert_eq!(next_poll(polled + poll, poll, &orders), point + poll);
        // Another scope has its moment of its own, the same in every process.
        let elsewhere = scope("123456789012", "eu-west-1");
        assert_ne!(next_poll(start, poll, &elsewhere), point);
        assert_eq!(next_poll(start, poll, &orders), point, "stable");
        assert_eq!(
            stable_hash(&["123456789012", "us-east-1", "db"]),
            0x0dc8_0f9b_ddfd_3083,
            "FNV-1a of 123456789012/us-east-1/db"
        );
    }

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
