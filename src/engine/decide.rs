//! The protection logic as a pure function: given where an execution is, what AWS just
//! said, and how much time has passed, what happens next. No I/O, no clock: the worker
//! gathers the inputs and carries out the decision.

pub mod hold;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};

use self::hold::{Hold, hold_rule};
use crate::aws::arn::ResourceKind;
use crate::aws::{AwsFailure, ResourceFacts, StateMachineRun};
use crate::execution::{Outcome, Phase};
use crate::rds::resource::not_stoppable_reason;
use crate::rds::status::{StatusClass, classify};

/// What the worker observed in this step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Tag check bypassed (manual trigger with `skip_tag_check`).
    ProtectionSkipped,
    Tags(Vec<(String, String)>),
    Described(ResourceFacts),
    StopRequested,
    /// Dry run: the stop call was deliberately not made.
    StopSkipped,
    /// RESTOP_MAX_DURATION passed before the stop call (a late worker, a retry backoff
    /// across the deadline): the call was not made.
    StopTooLate,
    StateMachineStarted {
        execution_arn: String,
    },
    StateMachine(StateMachineRun),
    /// restop cannot do this execution's work at all (e.g. a state machine in another region).
    Unsupported(String),
    Failed(AwsFailure),
}

/// RDS refusing a stop this many times in a row while the database reports `available`
/// means it will never stop it: the execution ends `not_stoppable` instead of looping.
pub const MAX_STOP_REFUSALS: u32 = 3;

/// After a "started" event wakes an execution, this many polls come quickly (1, 2, 4, 8,
/// 16 s): the event may come before the status says `available`. Then the poll interval.
pub const WAKE_POLLS: u32 = 5;

/// Waiting for `stopped`, polls come at least this often: a stop takes minutes, so a poll
/// sees it take effect (`stopping`, `stopped`) before anyone can start the database again,
/// which is the evidence that a later `available` is a deliberate start.
pub const WAIT_STOPPED_POLL: Duration = Duration::from_secs(30);

/// The settings decisions depend on.
#[derive(Debug, Clone)]
pub struct Policy {
    pub tag_key: String,
    pub tag_value: String,
    /// The tag whose date lets forced starts of a protected database run until then.
    pub hold_tag_key: String,
    pub poll_interval: Duration,
    pub start_grace: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
}

/// The execution as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Situation {
    pub phase: Phase,
    pub kind: ResourceKind,
    pub step_functions: bool,
    pub dry_run: bool,
    /// A manual run that bypasses the tag check.
    pub skip_tag_check: bool,
    /// restop asked RDS to stop this database earlier (the request may have been made
    /// just before a crash, so its answer was never recorded).
    pub stop_requested: bool,
    /// A poll of this execution's `wait_stopped` saw the database `stopping` or `stopped`:
    /// the stop took effect. Read from the execution's own step history (every poll is
    /// recorded with the status it saw), and only when it matters: `available` while
    /// waiting for `stopped`.
    pub stop_seen: bool,
    /// Consecutive stops RDS refused while the database reported `available`.
    pub stop_refusals: u32,
    /// Polls since a "started" event woke the execution (0: not woken, or long ago).
    pub wake_polls: u32,
    /// Time since the event (or the manual trigger).
    pub since_event: Duration,
    /// RESTOP_MAX_DURATION has passed.
    pub past_deadline: bool,
    /// Consecutive transient failures so far.
    pub retries: u32,
    /// The time of this step (a hold is compared with it).
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Record the step and run the next one after `after`.
    Continue {
        phase: Phase,
        after: Duration,
        /// A transient failure: counts towards the backoff.
        retry: bool,
        action: String,
    },
    Finish {
        outcome: Outcome,
        reason: String,
        /// Said in the step history besides the outcome.
        note: Option<String>,
    },
}

impl Decision {
    fn go(phase: Phase, after: Duration, action: impl Into<String>) -> Self {
        Self::Continue {
            phase,
            after,
            retry: false,
            action: action.into(),
        }
    }

    fn finish(outcome: Outcome, reason: impl Into<String>) -> Self {
        Self::Finish {
            outcome,
            reason: reason.into(),
            note: None,
        }
    }

    /// The words recorded as the step's action.
    pub fn action(&self) -> String {
        match self {
            Self::Continue { action, .. } => action.clone(),
            Self::Finish {
                outcome,
                note: Some(note),
                ..
            } => format!("finish: {outcome} ({note})"),
            Self::Finish { outcome, .. } => format!("finish: {outcome}"),
        }
    }
}

/// The next move. `jitter` in [0, 1) spreads retries; tests pass fixed values.
pub fn decide(
    situation: &Situation,
    observation: &Observation,
    policy: &Policy,
    jitter: f64,
) -> Decision {
    let decision = decide_ignoring_deadline(situation, observation, policy, jitter);
    match decision {
        Decision::Continue { .. } if situation.past_deadline => Decision::finish(
            Outcome::Timeout,
            format!(
                "not finished within RESTOP_MAX_DURATION (last step: {})",
                decision.action()
            ),
        ),
        decision => decision,
    }
}

fn decide_ignoring_deadline(
    s: &Situation,
    observation: &Observation,
    policy: &Policy,
    jitter: f64,
) -> Decision {
    let poll = policy.poll_interval;
    if let Observation::Failed(failure) = observation {
        return on_failure(s, failure, policy, jitter);
    }
    if let Observation::Unsupported(reason) = observation {
        return Decision::finish(Outcome::Unsupported, reason.clone());
    }
    match (s.phase, observation) {
        (Phase::CheckProtection, Observation::ProtectionSkipped) => {
            after_protection(s, "tag check skipped by request")
        }
        (Phase::CheckProtection, Observation::Tags(tags)) => {
            match protection(tags, policy, s.now) {
                Protection::Protected(why) => after_protection(s, &why),
                Protection::Held(reason) => Decision::finish(Outcome::Held, reason),
                Protection::Not(reason) => Decision::finish(Outcome::NotProtected, reason),
            }
        }
        // The wait can last hours: the tag may have been removed, or a hold set, meanwhile.
        (Phase::RecheckProtection, Observation::Tags(tags)) => {
            match protection(tags, policy, s.now) {
                Protection::Protected(why) => {
                    Decision::go(Phase::Stop, Duration::ZERO, format!("still {why}: stop it"))
                }
                Protection::Held(reason) => Decision::finish(Outcome::Held, reason),
                Protection::Not(reason) => Decision::finish(
                    Outcome::NotProtected,
                    format!("{reason} any more (removed while waiting)"),
                ),
            }
        }
        (Phase::RecheckProtection, Observation::ProtectionSkipped) => Decision::go(
            Phase::Stop,
            Duration::ZERO,
            "tag check skipped by request: stop it",
        ),
        (Phase::WaitAvailable | Phase::WaitStopped, Observation::Described(facts)) => {
            on_status(s, facts, policy)
        }
        (Phase::Stop, Observation::StopRequested) => Decision::go(
            Phase::WaitStopped,
            poll.min(WAIT_STOPPED_POLL),
            "stop requested",
        ),
        (Phase::Stop, Observation::StopSkipped) => Decision::finish(
            Outcome::DryRun,
            "dry run: the database is available and would have been stopped",
        ),
        (Phase::Stop, Observation::StopTooLate) => Decision::finish(
            Outcome::Timeout,
            "RESTOP_MAX_DURATION passed before the stop call: not stopped",
        ),
        (Phase::StartStateMachine, Observation::StateMachineStarted { .. }) => {
            Decision::go(Phase::FollowStateMachine, poll, "state machine started")
        }
        (Phase::FollowStateMachine, Observation::StateMachine(run)) => on_state_machine(run, poll),
        (phase, observation) => Decision::finish(
            Outcome::Error,
            format!("internal error: {observation:?} is not expected in phase {phase}"),
        ),
    }
}

/// What the tags say of a resource, with the words recorded for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protection {
    /// Stop it; why (a hold that is over or not a date is named).
    Protected(String),
    /// Protected, but held: let the forced start run.
    Held(String),
    /// Not protected: why.
    Not(String),
}

/// What the tags say of the resource as of `now`.
pub fn protection(tags: &[(String, String)], policy: &Policy, now: DateTime<Utc>) -> Protection {
    let pairs = || {
        tags.iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    };
    if let Err(reason) = tag_rule(pairs(), &policy.tag_key, &policy.tag_value) {
        return Protection::Not(reason);
    }
    let key = &policy.hold_tag_key;
    match hold_rule(pairs(), key, now) {
        Hold::None => Protection::Protected("protected".into()),
        Hold::Until(until) => {
            Protection::Held(format!("held until {} (tag {key})", hold_end(until)))
        }
        Hold::Over(until) => {
            Protection::Protected(format!("protected (the hold ended {})", hold_end(until)))
        }
        Hold::Invalid(value) => Protection::Protected(format!(
            "protected (tag {key} is '{value}', not an ISO 8601 date or date-time: no hold)"
        )),
    }
}

/// A hold's end as the reason names it (the console reads it back).
fn hold_end(until: DateTime<Utc>) -> String {
    until.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The tag rule, for the engine and `restop doctor` alike: the first tag with exactly
/// `key` protects when its value is `value` in any case.
pub fn tag_rule<'a>(
    mut tags: impl Iterator<Item = (&'a str, &'a str)>,
    key: &str,
    value: &str,
) -> Result<(), String> {
    match tags.find(|(tag, _)| *tag == key) {
        Some((_, found)) if found.eq_ignore_ascii_case(value) => Ok(()),
        Some((_, found)) => Err(format!("tag {key} is '{found}', not '{value}'")),
        None => Err(format!("no tag {key}")),
    }
}

/// The next step once a status says the database can be stopped now.
fn stop_now(s: &Situation, why: &str) -> Decision {
    if s.skip_tag_check {
        Decision::go(Phase::Stop, Duration::ZERO, format!("{why}: stop it"))
    } else {
        Decision::go(
            Phase::RecheckProtection,
            Duration::ZERO,
            format!("{why}: check the tag again, then stop it"),
        )
    }
}

fn after_protection(s: &Situation, why: &str) -> Decision {
    if s.step_functions {
        Decision::go(
            Phase::StartStateMachine,
            Duration::ZERO,
            format!("{why}: start the state machine"),
        )
    } else {
        Decision::go(
            Phase::WaitAvailable,
            Duration::ZERO,
            format!("{why}: check status"),
        )
    }
}

fn on_status(s: &Situation, facts: &ResourceFacts, policy: &Policy) -> Decision {
    // Soon after a wake-up, look again soon: the status may lag the event.
    let poll = match s.wake_polls {
        polls @ 1..=WAKE_POLLS if s.phase == Phase::WaitAvailable => {
            Duration::from_secs(1 << (polls - 1)).min(policy.poll_interval)
        }
        _ if s.phase == Phase::WaitStopped => policy.poll_interval.min(WAIT_STOPPED_POLL),
        _ => policy.poll_interval,
    };
    if s.phase == Phase::WaitAvailable
        && let Some(reason) = not_stoppable_reason(s.kind, facts)
    {
        return Decision::finish(Outcome::NotStoppable, reason);
    }
    let status = facts.status.as_str();
    // restop stops once. Waiting for `stopped`, a start means the stop completed (between
    // two polls) and somebody started the database again on purpose: `starting` can only
    // follow `stopped` (RDS refuses to start what is not stopped, and restop's stop was
    // accepted only while `available`); `available` counts only once this execution has
    // seen the stop take effect, since right after the stop call RDS may still say
    // `available`.
    if s.phase == Phase::WaitStopped
        && (status == "starting" || (classify(status) == StatusClass::Available && s.stop_seen))
    {
        let (outcome, stopped_by) = if s.stop_requested {
            (Outcome::Stopped, "restop stopped it")
        } else {
            (Outcome::AlreadyStopped, "stopped by someone else")
        };
        return Decision::Finish {
            outcome,
            reason: format!(
                "{stopped_by}; it was started again since (status {status}): a deliberate \
                 start, left running"
            ),
            note: Some("started again since the stop: left running".into()),
        };
    }
    match (classify(status), s.phase) {
        (StatusClass::Available, Phase::WaitAvailable) => stop_now(s, "available"),
        // The stop is not visible yet: stop again (RDS refuses it if it is under way).
        (StatusClass::Available, _) => stop_now(s, "available again"),
        (StatusClass::Stopping, _) => Decision::go(
            Phase::WaitStopped,
            poll.min(WAIT_STOPPED_POLL),
            "stopping: wait",
        ),
        (StatusClass::Stopped, Phase::WaitStopped) if s.stop_requested => {
            Decision::finish(Outcome::Stopped, "stopped")
        }
        // Waiting for `stopped` without restop's stop request: the wait began with someone
        // else's `stopping`, seen while waiting for `available`.
        (StatusClass::Stopped, Phase::WaitStopped) => Decision::finish(
            Outcome::AlreadyStopped,
            "stopped by someone else (it was stopping before restop asked)",
        ),
        // Our own stop request, made before a crash lost its answer.
        (StatusClass::Stopped, _) if s.stop_requested => {
            Decision::finish(Outcome::Stopped, "stopped (after restop's stop request)")
        }
        (StatusClass::Stopped, _) if s.since_event < policy.start_grace => Decision::go(
            Phase::WaitAvailable,
            poll,
            "stopped, but the forced start may not be visible yet: wait",
        ),
        (StatusClass::Stopped, _) => Decision::finish(
            Outcome::AlreadyStopped,
            "stopped by someone else after the start grace period",
        ),
        (StatusClass::Deleting, _) => Decision::finish(Outcome::Gone, format!("status {status}")),
        (StatusClass::Trouble, _) => Decision::finish(
            Outcome::Error,
            format!("status {status}: waiting will not make it stoppable"),
        ),
        (StatusClass::MayRecover, phase) => {
            Decision::go(phase, poll, format!("{status}: needs attention; wait"))
        }
        (StatusClass::Unknown, phase) => {
            Decision::go(phase, poll, format!("unknown status {status}: wait"))
        }
        (StatusClass::Transitional, phase) => Decision::go(phase, poll, format!("{status}: wait")),
    }
}

fn on_failure(s: &Situation, failure: &AwsFailure, policy: &Policy, jitter: f64) -> Decision {
    match failure {
        AwsFailure::Transient(message) | AwsFailure::Throttled(message) => Decision::Continue {
            phase: s.phase,
            after: backoff(s.retries, policy, jitter),
            retry: true,
            action: format!("retry after transient error: {message}"),
        },
        AwsFailure::NotFound => Decision::finish(Outcome::Gone, "not found"),
        AwsFailure::InvalidState(message)
            if s.phase == Phase::Stop && s.stop_refusals + 1 >= MAX_STOP_REFUSALS =>
        {
            Decision::finish(
                Outcome::NotStoppable,
                format!(
                    "RDS refused the stop {MAX_STOP_REFUSALS} times in a row while the database \
                     reported available: {message}"
                ),
            )
        }
        AwsFailure::InvalidState(message) if s.phase == Phase::Stop => Decision::go(
            Phase::WaitAvailable,
            policy.poll_interval,
            format!("status changed ({message}): wait"),
        ),
        AwsFailure::InvalidParameterCombination(message) if s.phase == Phase::Stop => {
            Decision::finish(Outcome::NotStoppable, message.clone())
        }
        AwsFailure::AccessDenied { .. } | AwsFailure::NoCredentials => {
            Decision::finish(Outcome::AccessDenied, failure.to_string())
        }
        AwsFailure::InvalidState(message)
        | AwsFailure::InvalidParameterCombination(message)
        | AwsFailure::Other(message) => Decision::finish(Outcome::Error, message.clone()),
    }
}

fn on_state_machine(run: &StateMachineRun, poll: Duration) -> Decision {
    match run {
        StateMachineRun::Running => Decision::go(
            Phase::FollowStateMachine,
            poll,
            "state machine running: wait",
        ),
        StateMachineRun::Succeeded { output } => {
            let parsed = output
                .as_deref()
                .and_then(|o| serde_json::from_str::<serde_json::Value>(o).ok());
            let field = |name: &str| {
                parsed
                    .as_ref()
                    .and_then(|v| v.get(name))
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            };
            match field("outcome").and_then(|o| o.parse::<Outcome>().ok()) {
                Some(outcome) => Decision::finish(
                    outcome,
                    field("reason").unwrap_or_else(|| "reported by the state machine".into()),
                ),
                None => {
                    Decision::finish(Outcome::Error, "state machine output has no known outcome")
                }
            }
        }
        StateMachineRun::Failed { error, cause } => {
            let error = error.as_deref().unwrap_or("unknown error");
            let outcome = match error {
                "States.Timeout" | "Timeout" => Outcome::Timeout,
                "AccessDenied" | "Rds.AccessDeniedException" | "States.AccessDenied" => {
                    Outcome::AccessDenied
                }
                _ => Outcome::Error,
            };
            Decision::finish(
                outcome,
                format!(
                    "state machine failed: {error}: {}",
                    cause.as_deref().unwrap_or("")
                ),
            )
        }
        StateMachineRun::TimedOut => Decision::finish(Outcome::Timeout, "state machine timed out"),
        StateMachineRun::Aborted => {
            Decision::finish(Outcome::Error, "state machine execution aborted")
        }
    }
}

/// The count of consecutive stop refusals after this observation: a refusal adds one,
/// `available` keeps the count (the next stop may be refused again), anything else resets it.
pub fn stop_refusals_after(s: &Situation, observation: &Observation) -> u32 {
    match (s.phase, observation) {
        (Phase::Stop, Observation::Failed(AwsFailure::InvalidState(_))) => s.stop_refusals + 1,
        (_, Observation::Described(facts)) if classify(&facts.status) == StatusClass::Available => {
            s.stop_refusals
        }
        (Phase::RecheckProtection, Observation::Tags(_) | Observation::ProtectionSkipped) => {
            s.stop_refusals
        }
        (_, Observation::Failed(AwsFailure::Transient(_) | AwsFailure::Throttled(_))) => {
            s.stop_refusals
        }
        _ => 0,
    }
}

/// The count of polls since a wake-up after this observation: it goes on while the
/// database is still getting ready, up to [`WAKE_POLLS`]; anything else ends it.
pub fn wake_polls_after(s: &Situation, observation: &Observation) -> u32 {
    match (s.phase, observation) {
        (Phase::WaitAvailable, Observation::Described(facts))
            if s.wake_polls > 0
                && s.wake_polls < WAKE_POLLS
                && classify(&facts.status) != StatusClass::Available =>
        {
            s.wake_polls + 1
        }
        _ => 0,
    }
}

/// Exponential backoff with jitter: base * 2^retries, capped, then scaled into [1/2, 1].
pub fn backoff(retries: u32, policy: &Policy, jitter: f64) -> Duration {
    let exponential = policy
        .retry_base
        .saturating_mul(2u32.saturating_pow(retries.min(20)));
    let capped = exponential.min(policy.retry_max);
    capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
