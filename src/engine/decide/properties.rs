//! Properties of [`decide`] over whole executions: a generated world (tags, statuses,
//! AWS failures of every kind, state machine runs, settings, deadlines, late workers) is
//! fed through `decide()` step by step the way the engine does it (`Engine::observe`
//! picks what is observed in each phase, `Engine::apply` turns the decision into the
//! next situation), and every step is checked:
//!
//! - a stop call is only ever made for a database whose tags, read right before the call,
//!   protect it without a hold in force (or whose run skips the tag check), that is not
//!   in a dry run, not past its deadline, not known to be unstoppable, never after this
//!   execution saw its stop take effect (what runs then was started deliberately), and
//!   never by restop itself in Step Functions mode;
//! - every execution reaches an outcome within the steps and the time its settings imply
//!   (RESTOP_MAX_DURATION, the poll interval, the retry backoff);
//! - a job never moves backwards, except by the two loops the design has (a refused stop
//!   waits for `available` again; a stop not visible yet is made again), and never into
//!   a phase of the other mode;
//! - the outcome tells the truth: `stopped` only after restop's stop call, `dry_run` only
//!   in a dry run, `held` / `not_protected` only when the tags said so.
//!
//! The expected answers (is it protected? is a hold in force?) are computed here from
//! what was generated, not with `protection()`.

use std::time::Duration;

use chrono::{DateTime, Days, NaiveDate, SecondsFormat, Utc};
use proptest::prelude::*;

use super::*;
use crate::execution::Phase;

const TAG: &str = "auto-restart-protection";
const HOLD: &str = "auto-restart-protection-hold-until";

/// What a resource's tags say, as generated.
#[derive(Debug, Clone)]
enum Tags {
    Protected,
    /// The value in another case: still protected.
    ProtectedShouting,
    Untagged,
    WrongValue,
    /// The key in another case: not the tag.
    KeyInOtherCase,
    /// Protected, with a hold until this moment; `date_only` writes the date alone, which
    /// holds until the next midnight.
    Hold {
        until_offset: i64,
        date_only: bool,
    },
    /// Protected, with a hold tag that is not a date.
    HoldInvalid(String),
}

impl Tags {
    /// The tags as AWS lists them, for an execution that started at `t0`.
    fn pairs(&self, t0: DateTime<Utc>) -> Vec<(String, String)> {
        let mut pairs = vec![("team".to_owned(), "data".to_owned())];
        let mut tag = |k: &str, v: &str| pairs.push((k.to_owned(), v.to_owned()));
        match self {
            Self::Protected => tag(TAG, "yes"),
            Self::ProtectedShouting => tag(TAG, "YES"),
            Self::Untagged => {}
            Self::WrongValue => tag(TAG, "no"),
            Self::KeyInOtherCase => tag("Auto-Restart-Protection", "yes"),
            Self::Hold {
                until_offset,
                date_only,
            } => {
                tag(TAG, "yes");
                let at = t0 + chrono::Duration::seconds(*until_offset);
                let value = if *date_only {
                    at.format("%Y-%m-%d").to_string()
                } else {
                    at.to_rfc3339_opts(SecondsFormat::Secs, true)
                };
                tag(HOLD, &value);
            }
            Self::HoldInvalid(value) => {
                tag(TAG, "yes");
                tag(HOLD, value);
            }
        }
        pairs
    }

    fn protected(&self) -> bool {
        !matches!(
            self,
            Self::Untagged | Self::WrongValue | Self::KeyInOtherCase
        )
    }

    /// Whether a hold is in force at `now`, for an execution that started at `t0`.
    fn held(&self, t0: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        let Self::Hold {
            until_offset,
            date_only,
        } = self
        else {
            return false;
        };
        let at = t0 + chrono::Duration::seconds(*until_offset);
        let until = if *date_only {
            let day = NaiveDate::from(at.naive_utc());
            day.checked_add_days(Days::new(1))
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
        } else {
            DateTime::from_timestamp(at.timestamp(), 0).unwrap()
        };
        now < until
    }
}

/// What AWS answers in one step; the phase picks the part it asks about.
#[derive(Debug, Clone)]
struct Answer {
    failure: Option<AwsFailure>,
    tags: Tags,
    status: String,
    /// The resource is of a kind restop cannot stop (replica, Aurora member, ...).
    unstoppable: bool,
    run: StateMachineRun,
    /// How late the worker runs the step after it was due.
    late: Duration,
    jitter: f64,
}

#[derive(Debug, Clone)]
struct Case {
    kind: ResourceKind,
    step_functions: bool,
    dry_run: bool,
    skip_tag_check: bool,
    /// Every call fails as it does for an account restop has no role in.
    foreign: bool,
    poll: Duration,
    start_grace: Duration,
    max_duration: Duration,
    /// How long after the event the first step runs.
    first_step: Duration,
    woken: bool,
    answers: Vec<Answer>,
}

fn failure() -> impl Strategy<Value = AwsFailure> {
    prop_oneof![
        3 => Just(AwsFailure::Transient("HTTP 503".into())),
        3 => Just(AwsFailure::Throttled("Rate exceeded".into())),
        2 => Just(AwsFailure::InvalidState("InvalidDBInstanceState".into())),
        1 => Just(AwsFailure::NotFound),
        1 => Just(AwsFailure::InvalidParameterCombination("member of a cluster".into())),
        1 => Just(AwsFailure::AccessDenied {
            action: "rds:StopDBInstance".into(),
            message: "not authorized".into()
        }),
        1 => Just(AwsFailure::NoCredentials),
        1 => Just(AwsFailure::Other("ValidationError".into())),
    ]
}

/// Every status restop knows, the ones that matter most weighted up, and unknown ones.
fn status() -> impl Strategy<Value = String> {
    const KNOWN: &[&str] = &[
        "starting",
        "backing-up",
        "backtracking",
        "configuring-enhanced-monitoring",
        "converting-to-vpc",
        "maintenance",
        "modifying",
        "rebooting",
        "renaming",
        "upgrading",
        "creating",
        "failing-over",
        "deleting",
        "deleted",
        "failed",
        "incompatible-restore",
        "storage-full",
        "insufficient-capacity",
        "incompatible-network",
        "incompatible-parameters",
        "inaccessible-encryption-credentials-recoverable",
    ];
    prop_oneof![
        4 => Just("available".to_owned()),
        3 => Just("stopping".to_owned()),
        3 => Just("stopped".to_owned()),
        3 => prop::sample::select(KNOWN).prop_map(str::to_owned),
        1 => "[a-z-]{1,12}",
    ]
}

fn tags() -> impl Strategy<Value = Tags> {
    prop_oneof![
        6 => Just(Tags::Protected),
        1 => Just(Tags::ProtectedShouting),
        2 => Just(Tags::Untagged),
        1 => Just(Tags::WrongValue),
        1 => Just(Tags::KeyInOtherCase),
        // From three days before the first step to three days after it.
        3 => (-259_200i64..259_200, any::<bool>())
            .prop_map(|(until_offset, date_only)| Tags::Hold { until_offset, date_only }),
        1 => prop_oneof![
            Just("tomorrow".to_owned()),
            Just("2026-13-01".to_owned()),
            Just(String::new()),
            "[0-9T:-]{1,20}",
        ]
        .prop_map(Tags::HoldInvalid),
    ]
}

fn run() -> impl Strategy<Value = StateMachineRun> {
    prop_oneof![
        6 => Just(StateMachineRun::Running),
        2 => prop::sample::select(&["stopped", "already_stopped", "not_protected", "held", "bogus"][..])
            .prop_map(|o| StateMachineRun::Succeeded {
                output: Some(format!(r#"{{"outcome":"{o}","reason":"r"}}"#))
            }),
        1 => Just(StateMachineRun::Succeeded { output: None }),
        1 => prop::sample::select(&["States.Timeout", "States.TaskFailed", "Rds.AccessDeniedException"][..])
            .prop_map(|e| StateMachineRun::Failed { error: Some(e.into()), cause: None }),
        1 => Just(StateMachineRun::TimedOut),
        1 => Just(StateMachineRun::Aborted),
    ]
}

fn answer() -> impl Strategy<Value = Answer> {
    (
        prop::option::weighted(0.25, failure()),
        tags(),
        status(),
        prop::bool::weighted(0.1),
        run(),
        prop_oneof![3 => Just(0u64), 1 => 0u64..5_000],
        0.0f64..1.0,
    )
        .prop_map(
            |(failure, tags, status, unstoppable, run, late_ms, jitter)| Answer {
                failure,
                tags,
                status,
                unstoppable,
                run,
                late: Duration::from_millis(late_ms),
                jitter,
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    (
        (
            prop_oneof![
                Just(ResourceKind::DbInstance),
                Just(ResourceKind::DbCluster)
            ],
            prop::bool::weighted(0.2),
            prop::bool::weighted(0.15),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.05),
            any::<bool>(),
        ),
        // RESTOP_POLL_INTERVAL from 1 s to 1 h; RESTOP_START_GRACE up to 1 d;
        // RESTOP_MAX_DURATION from one poll to 100 polls (capped at 30 d).
        prop_oneof![1u64..=60, 60u64..=3_600],
        prop_oneof![Just(900u64), 0u64..=86_400],
        1u64..=100,
        0u64..=3_600,
        0.0f64..1.2,
        prop::collection::vec(answer(), 1..40),
    )
        .prop_map(
            |(
                (kind, step_functions, dry_run, skip_tag_check, foreign, woken),
                poll,
                grace,
                polls,
                extra,
                first,
                answers,
            )| {
                let max_duration = (poll * polls + extra).min(30 * 86_400);
                Case {
                    kind,
                    step_functions,
                    dry_run,
                    skip_tag_check,
                    foreign,
                    poll: Duration::from_secs(poll),
                    start_grace: Duration::from_secs(grace),
                    max_duration: Duration::from_secs(max_duration),
                    first_step: Duration::from_secs_f64(max_duration as f64 * first),
                    woken,
                    answers,
                }
            },
        )
}

fn facts(case: &Case, answer: &Answer) -> ResourceFacts {
    let engine = match case.kind {
        ResourceKind::DbInstance => "postgres",
        ResourceKind::DbCluster => "aurora-postgresql",
    };
    ResourceFacts {
        status: answer.status.clone(),
        engine: engine.into(),
        replica_source: answer.unstoppable.then(|| "source-db".into()),
        ..ResourceFacts::default()
    }
}

/// Where a job may go from where it is. Staying is always allowed; the two backward moves
/// are the designed loops, checked further by the caller.
fn allowed(from: Phase, to: Phase, step_functions: bool, skip_tag_check: bool) -> bool {
    use Phase::*;
    if from == to {
        return true;
    }
    if step_functions {
        return matches!(
            (from, to),
            (CheckProtection, StartStateMachine) | (StartStateMachine, FollowStateMachine)
        );
    }
    // A run that skips the tag check goes to the stop without reading the tags again.
    if skip_tag_check && matches!((from, to), (WaitAvailable | WaitStopped, Stop)) {
        return true;
    }
    matches!(
        (from, to),
        (CheckProtection, WaitAvailable)
            | (WaitAvailable, RecheckProtection | WaitStopped)
            | (RecheckProtection, Stop)
            | (Stop, WaitStopped)
            // RDS refused the stop: wait for `available` again.
            | (Stop, WaitAvailable)
            // Still `available` after the stop, and no sign of it yet: stop again.
            | (WaitStopped, RecheckProtection)
    )
}

/// What one execution did, for the report of a failing case.
#[derive(Debug, Default)]
struct Run {
    steps: usize,
    stop_calls: u32,
    outcome: Option<Outcome>,
}

/// Runs one execution through `decide()` like the engine does, checking every step.
fn execute(case: &Case) -> Result<Run, TestCaseError> {
    let policy = Policy {
        tag_key: TAG.into(),
        tag_value: "yes".into(),
        hold_tag_key: HOLD.into(),
        poll_interval: case.poll,
        start_grace: case.start_grace,
        // As `EngineSettings` derives them from the poll interval.
        retry_base: Duration::from_secs(2).min(case.poll),
        retry_max: case.poll.min(Duration::from_secs(300)),
    };
    let event_at = DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z")
        .unwrap()
        .to_utc();
    let deadline = event_at + case.max_duration;
    let t0 = event_at + case.first_step;
    let mut now = t0;
    let mut s = Situation {
        phase: Phase::CheckProtection,
        kind: case.kind,
        step_functions: case.step_functions,
        dry_run: case.dry_run,
        skip_tag_check: case.skip_tag_check,
        stop_requested: false,
        stop_seen: false,
        stop_refusals: 0,
        wake_polls: u32::from(case.woken),
        since_event: Duration::ZERO,
        past_deadline: false,
        retries: 0,
        now,
    };
    // The smallest wait between two steps that do wait: a wake-up poll (1 s), a retry
    // (half the backoff base at the least), a poll.
    let min_gap = Duration::from_secs(1)
        .min(policy.retry_base / 2)
        .min(policy.poll_interval);
    let max_gap = policy.poll_interval.max(policy.retry_max);
    let max_late = Duration::from_secs(5);
    // At most three steps in a row run at once (check, recheck, stop); the others wait at
    // least `min_gap`, and past the deadline the next step finishes.
    let waits = (case.max_duration.as_secs_f64() / min_gap.as_secs_f64()).ceil() as usize + 1;
    let max_steps = 4 * (waits + 1);

    let mut done = Run::default();
    // The protection read right before a stop: what the tags said, when.
    let mut cleared_by: Option<Tags> = None;
    // A poll of this execution's wait for `stopped` saw `stopping` or `stopped`.
    let mut saw_stop_take_effect = false;
    let mut unstoppable_seen = false;
    let mut last_tags: Option<Tags> = None;

    for step in 0.. {
        prop_assert!(
            step < max_steps,
            "no outcome after {step} steps (bound {max_steps})"
        );
        done.steps = step + 1;
        s.now = now;
        s.since_event = (now - event_at).to_std().unwrap_or_default();
        s.past_deadline = now >= deadline;
        let answer = &case.answers[step % case.answers.len()];
        let failure = if case.foreign {
            Some(AwsFailure::AccessDenied {
                action: "sts:AssumeRole".into(),
                message: "no role in this account".into(),
            })
        } else {
            answer.failure.clone()
        };

        // Engine::observe: the one call this phase makes.
        let observation = match s.phase {
            Phase::CheckProtection | Phase::RecheckProtection if s.skip_tag_check => {
                Observation::ProtectionSkipped
            }
            Phase::CheckProtection | Phase::RecheckProtection => match failure {
                Some(f) => Observation::Failed(f),
                None => {
                    last_tags = Some(answer.tags.clone());
                    Observation::Tags(answer.tags.pairs(t0))
                }
            },
            Phase::WaitAvailable | Phase::WaitStopped => match failure {
                Some(f) => Observation::Failed(f),
                None => Observation::Described(facts(case, answer)),
            },
            Phase::Stop if s.dry_run => Observation::StopSkipped,
            // Engine::observe makes no stop call once the deadline has passed.
            Phase::Stop if now >= deadline => Observation::StopTooLate,
            Phase::Stop => {
                // The stop call. The intent is recorded first, so a crash after the call
                // still knows restop made it.
                prop_assert!(
                    !s.step_functions,
                    "restop stopped a database itself in Step Functions mode"
                );
                prop_assert!(
                    now < deadline,
                    "stop call at {now}, past the deadline {deadline}"
                );
                prop_assert!(
                    !saw_stop_take_effect,
                    "stopped again after the stop took effect"
                );
                prop_assert!(
                    !unstoppable_seen,
                    "stop call for a database restop cannot stop"
                );
                match &cleared_by {
                    _ if s.skip_tag_check => {}
                    Some(tags) => {
                        prop_assert!(
                            tags.protected(),
                            "stop call for an unprotected database ({tags:?})"
                        );
                        prop_assert!(!tags.held(t0, now), "stop call during a hold ({tags:?})");
                    }
                    None => {
                        return Err(TestCaseError::fail(
                            "stop call without a protection check right before it",
                        ));
                    }
                }
                done.stop_calls += 1;
                s.stop_requested = true;
                match failure {
                    Some(f) => Observation::Failed(f),
                    None => Observation::StopRequested,
                }
            }
            Phase::StartStateMachine => match failure {
                Some(f) => Observation::Failed(f),
                None => Observation::StateMachineStarted {
                    execution_arn: "arn:aws:states:us-east-1:123456789012:execution:m:r".into(),
                },
            },
            Phase::FollowStateMachine => match failure {
                Some(f) => Observation::Failed(f),
                None => Observation::StateMachine(answer.run.clone()),
            },
            Phase::AbortStateMachine | Phase::Done => {
                return Err(TestCaseError::fail(format!(
                    "an active job in phase {}",
                    s.phase
                )));
            }
        };
        // Engine::stop_seen: asked of the step history when `available` comes while
        // waiting for `stopped`.
        s.stop_seen = match &observation {
            Observation::Described(facts) if s.phase == Phase::WaitStopped => {
                classify(&facts.status) == StatusClass::Available && saw_stop_take_effect
            }
            _ => false,
        };

        let decision = decide(&s, &observation, &policy, answer.jitter);

        if let Observation::Described(facts) = &observation {
            if s.phase == Phase::WaitStopped
                && matches!(
                    classify(&facts.status),
                    StatusClass::Stopping | StatusClass::Stopped
                )
            {
                saw_stop_take_effect = true;
            }
            if s.phase == Phase::WaitAvailable && not_stoppable_reason(s.kind, facts).is_some() {
                unstoppable_seen = true;
            }
        }

        match decision {
            Decision::Finish { outcome, .. } => {
                let stopped_by_restop = matches!(outcome, Outcome::Stopped) && !s.step_functions;
                prop_assert!(
                    !stopped_by_restop || s.stop_requested,
                    "outcome stopped, but restop never asked RDS to stop it"
                );
                prop_assert!(
                    outcome != Outcome::DryRun || s.dry_run,
                    "dry_run outside a dry run"
                );
                if observation == Observation::StopTooLate {
                    prop_assert_eq!(outcome, Outcome::Timeout);
                }
                if matches!(observation, Observation::Tags(_)) {
                    let tags = last_tags.as_ref().unwrap();
                    match outcome {
                        Outcome::Held => prop_assert!(tags.protected() && tags.held(t0, now)),
                        Outcome::NotProtected => prop_assert!(!tags.protected()),
                        Outcome::Timeout => prop_assert!(s.past_deadline),
                        other => {
                            return Err(TestCaseError::fail(format!("{other} from a tag check")));
                        }
                    }
                }
                prop_assert!(
                    outcome != Outcome::Timeout
                        || s.past_deadline
                        || matches!(observation, Observation::StateMachine(_)),
                    "timeout before the deadline"
                );
                // The execution ends in time: at the first step due after the deadline.
                prop_assert!(
                    now <= deadline.max(t0) + max_gap + max_late,
                    "finished at {now}, long after the deadline {deadline}"
                );
                done.outcome = Some(outcome);
                return Ok(done);
            }
            Decision::Continue {
                phase,
                after,
                retry,
                ..
            } => {
                prop_assert!(!s.past_deadline, "continued past the deadline");
                prop_assert!(
                    allowed(s.phase, phase, s.step_functions, s.skip_tag_check),
                    "moved from {} to {phase}",
                    s.phase
                );
                prop_assert!(!retry || phase == s.phase, "a retry moved the job");
                if (s.phase, phase) == (Phase::Stop, Phase::WaitAvailable) {
                    prop_assert!(matches!(
                        observation,
                        Observation::Failed(AwsFailure::InvalidState(_))
                    ));
                }
                if s.phase == Phase::WaitStopped
                    && matches!(phase, Phase::RecheckProtection | Phase::Stop)
                {
                    prop_assert!(
                        !saw_stop_take_effect,
                        "asked to stop again after the stop took effect"
                    );
                }
                prop_assert!(
                    after <= max_gap,
                    "waits {after:?}, longer than a poll or the backoff cap"
                );
                cleared_by = match (s.phase, phase) {
                    (Phase::RecheckProtection, Phase::Stop) => last_tags.clone(),
                    (Phase::Stop, Phase::Stop) => cleared_by.take(),
                    _ => None,
                };
                if phase == Phase::Stop && !s.skip_tag_check {
                    prop_assert!(
                        cleared_by.is_some(),
                        "into the stop without a fresh tag check"
                    );
                }

                // Engine::apply: the next situation.
                let stop_refusals = stop_refusals_after(&s, &observation);
                prop_assert!(stop_refusals < MAX_STOP_REFUSALS);
                s.stop_refusals = stop_refusals;
                s.wake_polls = wake_polls_after(&s, &observation);
                s.retries = if retry { s.retries + 1 } else { 0 };
                s.phase = phase;
                now = now + after + answer.late;
            }
        }
    }
    unreachable!()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn executions_never_stop_what_they_must_not_and_always_end(case in case()) {
        execute(&case)?;
    }
}
