use super::*;
use chrono::DateTime;

use crate::execution::Status;

const MIN: Duration = Duration::from_secs(60);

fn policy() -> Policy {
    Policy {
        tag_key: "auto-restart-protection".into(),
        tag_value: "yes".into(),
        hold_tag_key: "auto-restart-protection-hold-until".into(),
        poll_interval: 5 * MIN,
        start_grace: 15 * MIN,
        retry_base: Duration::from_secs(2),
        retry_max: 5 * MIN,
    }
}

fn situation(phase: Phase) -> Situation {
    Situation {
        phase,
        kind: ResourceKind::DbInstance,
        step_functions: false,
        dry_run: false,
        skip_tag_check: false,
        stop_requested: false,
        stop_seen: false,
        stop_refusals: 0,
        wake_polls: 0,
        since_event: MIN,
        past_deadline: false,
        retries: 0,
        now: DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z")
            .unwrap()
            .to_utc(),
    }
}

fn described(status: &str) -> Observation {
    Observation::Described(ResourceFacts {
        status: status.into(),
        engine: "postgres".into(),
        ..ResourceFacts::default()
    })
}

fn tags(pairs: &[(&str, &str)]) -> Observation {
    Observation::Tags(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn run(s: &Situation, o: &Observation) -> Decision {
    decide(s, o, &policy(), 0.5)
}

fn next_phase(d: &Decision) -> Option<(Phase, Duration)> {
    match d {
        Decision::Continue { phase, after, .. } => Some((*phase, *after)),
        Decision::Finish { .. } => None,
    }
}

fn outcome(d: &Decision) -> Option<Outcome> {
    match d {
        Decision::Finish { outcome, .. } => Some(*outcome),
        Decision::Continue { .. } => None,
    }
}

#[test]
fn protection_needs_the_exact_key_and_a_case_insensitive_value() {
    let s = situation(Phase::CheckProtection);
    for value in ["yes", "YES", "Yes"] {
        let d = run(&s, &tags(&[("auto-restart-protection", value)]));
        assert_eq!(
            next_phase(&d),
            Some((Phase::WaitAvailable, Duration::ZERO)),
            "{value}"
        );
    }
    for t in [
        tags(&[]),
        tags(&[("auto-restart-protection", "no")]),
        tags(&[("auto-restart-protection", "yes please")]),
        tags(&[("auto-restart-protection", "")]),
        tags(&[("not-auto-restart-protection", "yes")]),
        tags(&[("auto-restart-protection-x", "yes")]),
        tags(&[("Auto-Restart-Protection", "yes")]),
    ] {
        assert_eq!(outcome(&run(&s, &t)), Some(Outcome::NotProtected), "{t:?}");
    }
    let sfn = Situation {
        step_functions: true,
        ..s.clone()
    };
    let d = run(&sfn, &tags(&[("auto-restart-protection", "yes")]));
    assert_eq!(
        next_phase(&d),
        Some((Phase::StartStateMachine, Duration::ZERO))
    );
    let d = run(&s, &Observation::ProtectionSkipped);
    assert_eq!(next_phase(&d), Some((Phase::WaitAvailable, Duration::ZERO)));
}

#[test]
fn waiting_for_available() {
    let s = situation(Phase::WaitAvailable);
    let poll = policy().poll_interval;
    assert_eq!(
        next_phase(&run(&s, &described("available"))),
        Some((Phase::RecheckProtection, Duration::ZERO))
    );
    for busy in [
        "starting",
        "backing-up",
        "modifying",
        "storage-optimization",
        "configuring-log-exports",
    ] {
        assert_eq!(
            next_phase(&run(&s, &described(busy))),
            Some((Phase::WaitAvailable, poll)),
            "{busy}"
        );
    }
    for recoverable in [
        "incompatible-network",
        "incompatible-parameters",
        "brand-new-status",
    ] {
        assert_eq!(
            next_phase(&run(&s, &described(recoverable))),
            Some((Phase::WaitAvailable, poll))
        );
    }
    assert_eq!(
        next_phase(&run(&s, &described("stopping"))),
        Some((Phase::WaitStopped, WAIT_STOPPED_POLL))
    );
    assert_eq!(
        outcome(&run(&s, &described("deleting"))),
        Some(Outcome::Gone)
    );
    for trouble in [
        "failed",
        "storage-full",
        "inaccessible-encryption-credentials",
        "restore-error",
    ] {
        let d = run(&s, &described(trouble));
        assert_eq!(outcome(&d), Some(Outcome::Error), "{trouble}");
        let Decision::Finish { reason, .. } = d else {
            unreachable!()
        };
        assert!(reason.contains(trouble), "the status is named: {reason}");
    }
}

#[test]
fn stopped_within_the_grace_period_is_not_yet_the_end() {
    let early = Situation {
        since_event: 14 * MIN,
        ..situation(Phase::WaitAvailable)
    };
    assert_eq!(
        next_phase(&run(&early, &described("stopped"))),
        Some((Phase::WaitAvailable, 5 * MIN))
    );
    let late = Situation {
        since_event: 15 * MIN,
        ..early.clone()
    };
    assert_eq!(
        outcome(&run(&late, &described("stopped"))),
        Some(Outcome::AlreadyStopped)
    );
    // Once restop has asked for the stop, `stopped` is success whenever it shows.
    let ours = Situation {
        phase: Phase::WaitStopped,
        stop_requested: true,
        ..early
    };
    assert_eq!(
        outcome(&run(&ours, &described("stopped"))),
        Some(Outcome::Stopped)
    );
}

#[test]
fn waiting_for_stopped() {
    let s = situation(Phase::WaitStopped);
    assert_eq!(
        next_phase(&run(&s, &described("stopping"))),
        Some((Phase::WaitStopped, WAIT_STOPPED_POLL))
    );
    assert_eq!(
        next_phase(&run(&s, &described("available"))),
        Some((Phase::RecheckProtection, Duration::ZERO))
    );
    assert_eq!(
        next_phase(&run(&s, &described("backing-up"))),
        Some((Phase::WaitStopped, WAIT_STOPPED_POLL))
    );
    assert_eq!(
        outcome(&run(&s, &Observation::Failed(AwsFailure::NotFound))),
        Some(Outcome::Gone)
    );
}

#[test]
fn stop_results() {
    let s = situation(Phase::Stop);
    assert_eq!(
        next_phase(&run(&s, &Observation::StopRequested)),
        Some((Phase::WaitStopped, WAIT_STOPPED_POLL))
    );
    assert_eq!(
        outcome(&run(&s, &Observation::StopSkipped)),
        Some(Outcome::DryRun)
    );
    let moved = Observation::Failed(AwsFailure::InvalidState("InvalidDBInstanceState".into()));
    assert_eq!(
        next_phase(&run(&s, &moved)),
        Some((Phase::WaitAvailable, 5 * MIN))
    );
    let member = Observation::Failed(AwsFailure::InvalidParameterCombination(
        "member of a cluster".into(),
    ));
    assert_eq!(outcome(&run(&s, &member)), Some(Outcome::NotStoppable));
    let denied = Observation::Failed(AwsFailure::AccessDenied {
        action: "rds:StopDBInstance".into(),
        message: "not authorized".into(),
    });
    let d = run(&s, &denied);
    assert_eq!(outcome(&d), Some(Outcome::AccessDenied));
    assert!(
        matches!(d, Decision::Finish { ref reason, .. } if reason.contains("rds:StopDBInstance"))
    );
    assert_eq!(
        outcome(&run(
            &s,
            &Observation::Failed(AwsFailure::Other("boom".into()))
        )),
        Some(Outcome::Error)
    );
}

#[test]
fn not_stoppable_resources_are_skipped_before_any_stop() {
    let s = situation(Phase::WaitAvailable);
    let replica = Observation::Described(ResourceFacts {
        status: "available".into(),
        replica_source: Some("primary".into()),
        ..ResourceFacts::default()
    });
    let d = run(&s, &replica);
    assert_eq!(outcome(&d), Some(Outcome::NotStoppable));
    assert_eq!(Outcome::NotStoppable.status(), Status::Skipped);
}

#[test]
fn transient_failures_back_off_in_every_phase() {
    for phase in Phase::ALL.iter().copied().filter(|p| *p != Phase::Done) {
        for retries in 0..12 {
            let s = Situation {
                retries,
                ..situation(phase)
            };
            let d = run(
                &s,
                &Observation::Failed(AwsFailure::Transient("Throttling".into())),
            );
            let Decision::Continue {
                phase: next,
                after,
                retry,
                ..
            } = d
            else {
                panic!("{phase:?}: transient failure ended the execution");
            };
            assert_eq!(next, phase);
            assert!(retry);
            assert!(
                after >= Duration::from_secs(1) && after <= policy().retry_max,
                "{after:?}"
            );
        }
    }
}

#[test]
fn backoff_grows_and_is_capped_and_jittered() {
    let p = policy();
    assert_eq!(backoff(0, &p, 1.0), Duration::from_secs(2));
    assert_eq!(backoff(1, &p, 1.0), Duration::from_secs(4));
    assert_eq!(backoff(3, &p, 1.0), Duration::from_secs(16));
    assert_eq!(backoff(30, &p, 1.0), p.retry_max);
    assert_eq!(backoff(3, &p, 0.0), Duration::from_secs(8));
    assert!(backoff(3, &p, 0.5) > backoff(3, &p, 0.0));
}

#[test]
fn the_deadline_turns_any_further_wait_into_a_timeout() {
    for &phase in Phase::ALL {
        for observation in [
            described("starting"),
            described("stopping"),
            described("available"),
            Observation::Failed(AwsFailure::Transient("503".into())),
            Observation::StateMachine(StateMachineRun::Running),
            Observation::StopRequested,
        ] {
            let s = Situation {
                past_deadline: true,
                ..situation(phase)
            };
            let d = run(&s, &observation);
            assert!(
                next_phase(&d).is_none(),
                "{phase:?} {observation:?} continued past the deadline"
            );
        }
    }
    // A final answer still counts at the deadline.
    let s = Situation {
        past_deadline: true,
        stop_requested: true,
        ..situation(Phase::WaitStopped)
    };
    assert_eq!(
        outcome(&run(&s, &described("stopped"))),
        Some(Outcome::Stopped)
    );
}

/// Found by the property tests: a database someone else was already stopping ended
/// `stopped` ("restop stopped it") although restop never asked RDS to stop it.
#[test]
fn someone_elses_stop_seen_while_waiting_for_available_is_not_restops() {
    let s = situation(Phase::WaitAvailable);
    let d = run(&s, &described("stopping"));
    assert_eq!(
        next_phase(&d),
        Some((Phase::WaitStopped, WAIT_STOPPED_POLL))
    );
    let waiting = Situation {
        phase: Phase::WaitStopped,
        ..s
    };
    assert_eq!(
        outcome(&run(&waiting, &described("stopped"))),
        Some(Outcome::AlreadyStopped)
    );
    let ours = Situation {
        stop_requested: true,
        ..waiting
    };
    assert_eq!(
        outcome(&run(&ours, &described("stopped"))),
        Some(Outcome::Stopped)
    );
}

#[test]
fn step_functions_results() {
    let s = situation(Phase::StartStateMachine);
    let started = Observation::StateMachineStarted {
        execution_arn: "arn:x".into(),
    };
    assert_eq!(
        next_phase(&run(&s, &started)),
        Some((Phase::FollowStateMachine, 5 * MIN))
    );

    let s = situation(Phase::FollowStateMachine);
    let sm = |run: StateMachineRun| Observation::StateMachine(run);
    assert_eq!(
        next_phase(&run(&s, &sm(StateMachineRun::Running))),
        Some((Phase::FollowStateMachine, 5 * MIN))
    );
    for (output, expected) in [
        (r#"{"outcome":"stopped"}"#, Outcome::Stopped),
        (
            r#"{"outcome":"not_stoppable","reason":"read replica"}"#,
            Outcome::NotStoppable,
        ),
        (r#"{"outcome":"gone"}"#, Outcome::Gone),
        (r#"{"outcome":"made-up"}"#, Outcome::Error),
        ("not json", Outcome::Error),
    ] {
        let d = run(
            &s,
            &sm(StateMachineRun::Succeeded {
                output: Some(output.into()),
            }),
        );
        assert_eq!(outcome(&d), Some(expected), "{output}");
    }
    let failed = |error: &str| {
        sm(StateMachineRun::Failed {
            error: Some(error.into()),
            cause: None,
        })
    };
    assert_eq!(
        outcome(&run(&s, &failed("States.Timeout"))),
        Some(Outcome::Timeout)
    );
    assert_eq!(
        outcome(&run(&s, &failed("Rds.AccessDeniedException"))),
        Some(Outcome::AccessDenied)
    );
    assert_eq!(
        outcome(&run(&s, &failed("States.TaskFailed"))),
        Some(Outcome::Error)
    );
    assert_eq!(
        outcome(&run(&s, &sm(StateMachineRun::TimedOut))),
        Some(Outcome::Timeout)
    );
    assert_eq!(
        outcome(&run(&s, &sm(StateMachineRun::Aborted))),
        Some(Outcome::Error)
    );
}

#[test]
fn an_observation_that_cannot_happen_in_a_phase_ends_in_error_not_a_loop() {
    let s = situation(Phase::CheckProtection);
    assert_eq!(
        outcome(&run(&s, &Observation::StopRequested)),
        Some(Outcome::Error)
    );
}

/// Every phase, every status class, grace and deadline on both sides: the decision is
/// always defined, never continues past the deadline, and only stops from `available`.
#[test]
fn exhaustive_over_phases_statuses_and_times() {
    let statuses = [
        "available",
        "starting",
        "stopping",
        "stopped",
        "deleting",
        "failed",
        "storage-full",
        "incompatible-network",
        "backing-up",
        "whatever",
    ];
    for phase in [Phase::WaitAvailable, Phase::WaitStopped] {
        for status in statuses {
            for since_event in [Duration::ZERO, 14 * MIN, 15 * MIN, 48 * 60 * MIN] {
                for past_deadline in [false, true] {
                    for kind in [ResourceKind::DbInstance, ResourceKind::DbCluster] {
                        let s = Situation {
                            since_event,
                            past_deadline,
                            kind,
                            ..situation(phase)
                        };
                        let d = run(&s, &described(status));
                        if past_deadline {
                            assert!(next_phase(&d).is_none());
                        }
                        if next_phase(&d).is_some_and(|(p, _)| {
                            matches!(p, Phase::Stop | Phase::RecheckProtection)
                        }) {
                            assert_eq!(status, "available", "stop requested from {status}");
                        }
                        if let Some(o) = outcome(&d) {
                            assert_ne!(o.status(), Status::Running);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn the_tag_is_checked_again_right_before_the_stop() {
    let s = situation(Phase::RecheckProtection);
    let d = run(&s, &tags(&[("auto-restart-protection", "yes")]));
    assert_eq!(next_phase(&d), Some((Phase::Stop, Duration::ZERO)));
    let d = run(&s, &tags(&[("auto-restart-protection", "no")]));
    assert_eq!(outcome(&d), Some(Outcome::NotProtected));
    let d = run(&s, &tags(&[]));
    let Decision::Finish { reason, .. } = d else {
        unreachable!()
    };
    assert!(reason.contains("removed while waiting"), "{reason}");
    // A run told to skip the tag check skips it here too.
    let skipping = Situation {
        skip_tag_check: true,
        ..situation(Phase::WaitAvailable)
    };
    assert_eq!(
        next_phase(&run(&skipping, &described("available"))),
        Some((Phase::Stop, Duration::ZERO))
    );
}

#[test]
fn stopped_after_our_own_stop_request_is_our_success() {
    // The stop was requested, then restop died before recording its answer; the next
    // owner finds the database stopped, well after the grace period.
    let s = Situation {
        stop_requested: true,
        since_event: 60 * MIN,
        ..situation(Phase::WaitAvailable)
    };
    assert_eq!(
        outcome(&run(&s, &described("stopped"))),
        Some(Outcome::Stopped)
    );
    let not_ours = Situation {
        stop_requested: false,
        ..s
    };
    assert_eq!(
        outcome(&run(&not_ours, &described("stopped"))),
        Some(Outcome::AlreadyStopped)
    );
}

#[test]
fn a_stop_refused_again_and_again_ends_not_stoppable() {
    let refused = Observation::Failed(AwsFailure::InvalidState(
        "InvalidDBClusterStateFault".into(),
    ));
    let mut s = situation(Phase::Stop);
    for _ in 1..MAX_STOP_REFUSALS {
        let d = run(&s, &refused);
        assert_eq!(next_phase(&d).map(|(p, _)| p), Some(Phase::WaitAvailable));
        s.stop_refusals = stop_refusals_after(&s, &refused);
        // The database says `available` again: the count holds.
        let waiting = Situation {
            phase: Phase::WaitAvailable,
            ..s.clone()
        };
        assert_eq!(
            stop_refusals_after(&waiting, &described("available")),
            s.stop_refusals
        );
    }
    assert_eq!(s.stop_refusals, MAX_STOP_REFUSALS - 1);
    assert_eq!(outcome(&run(&s, &refused)), Some(Outcome::NotStoppable));
    // Anything but `available` in between resets the count.
    let waiting = Situation {
        phase: Phase::WaitAvailable,
        ..s.clone()
    };
    assert_eq!(stop_refusals_after(&waiting, &described("backing-up")), 0);
    assert_eq!(stop_refusals_after(&s, &Observation::StopRequested), 0);
}

#[test]
fn unsupported_work_is_skipped() {
    let s = Situation {
        step_functions: true,
        ..situation(Phase::StartStateMachine)
    };
    let d = run(&s, &Observation::Unsupported("another region".into()));
    assert_eq!(outcome(&d), Some(Outcome::Unsupported));
    assert_eq!(Outcome::Unsupported.status(), Status::Skipped);
}

#[test]
fn a_woken_execution_looks_again_soon_then_at_the_interval() {
    let poll = policy().poll_interval;
    let mut s = Situation {
        wake_polls: 1,
        ..situation(Phase::WaitAvailable)
    };
    let mut waits = Vec::new();
    loop {
        let d = run(&s, &described("starting"));
        let (phase, after) = next_phase(&d).unwrap();
        assert_eq!(phase, Phase::WaitAvailable);
        waits.push(after);
        s.wake_polls = wake_polls_after(&s, &described("starting"));
        if s.wake_polls == 0 {
            waits.push(next_phase(&run(&s, &described("starting"))).unwrap().1);
            break;
        }
    }
    let seconds = |n| Duration::from_secs(n);
    assert_eq!(
        waits,
        [
            seconds(1),
            seconds(2),
            seconds(4),
            seconds(8),
            seconds(16),
            poll
        ]
    );
    // Available after a wake-up: stop it, and the short polls end.
    let woken = Situation {
        wake_polls: 1,
        ..situation(Phase::WaitAvailable)
    };
    assert_eq!(
        next_phase(&run(&woken, &described("available"))),
        Some((Phase::RecheckProtection, Duration::ZERO))
    );
    assert_eq!(wake_polls_after(&woken, &described("available")), 0);
}

#[test]
fn a_start_after_restops_stop_is_deliberate_and_left_running() {
    let waiting = Situation {
        stop_requested: true,
        ..situation(Phase::WaitStopped)
    };
    // `starting` can only follow a completed stop.
    let d = run(&waiting, &described("starting"));
    assert_eq!(outcome(&d), Some(Outcome::Stopped), "{d:?}");
    assert!(d.action().contains("started again"), "{}", d.action());
    let Decision::Finish { reason, .. } = &d else {
        unreachable!()
    };
    assert!(reason.contains("deliberate"), "{reason}");
    // `available` after the stop was seen to take effect: the same.
    let seen = Situation {
        stop_seen: true,
        ..waiting.clone()
    };
    assert_eq!(
        outcome(&run(&seen, &described("available"))),
        Some(Outcome::Stopped)
    );
    // Stopped by someone else, then started: restop made no stop.
    let theirs = Situation {
        stop_requested: false,
        ..seen
    };
    assert_eq!(
        outcome(&run(&theirs, &described("starting"))),
        Some(Outcome::AlreadyStopped)
    );
}

#[test]
fn available_right_after_the_stop_call_is_stopped_again() {
    // The stop is not visible yet: no `stopping` or `stopped` seen.
    let waiting = Situation {
        stop_requested: true,
        ..situation(Phase::WaitStopped)
    };
    let d = run(&waiting, &described("available"));
    assert_eq!(
        next_phase(&d),
        Some((Phase::RecheckProtection, Duration::ZERO)),
        "{d:?}"
    );
    // Other busy statuses in wait_stopped are waited out as before.
    assert_eq!(
        next_phase(&run(&waiting, &described("backing-up"))),
        Some((Phase::WaitStopped, WAIT_STOPPED_POLL))
    );
    // Waiting for `available`, `starting` is the forced start itself: wait.
    assert_eq!(
        next_phase(&run(
            &situation(Phase::WaitAvailable),
            &described("starting")
        )),
        Some((Phase::WaitAvailable, policy().poll_interval))
    );
}

#[test]
fn a_hold_in_the_future_lets_the_forced_start_run() {
    let hold = "auto-restart-protection-hold-until";
    for phase in [Phase::CheckProtection, Phase::RecheckProtection] {
        let s = situation(phase);
        let d = run(
            &s,
            &tags(&[("auto-restart-protection", "yes"), (hold, "2026-12-05")]),
        );
        assert_eq!(
            d,
            Decision::Finish {
                outcome: Outcome::Held,
                reason: format!("held until 2026-12-06T00:00:00Z (tag {hold})"),
                note: None,
            },
            "{phase}"
        );
        assert_eq!(Outcome::Held.status(), Status::Skipped);
        // The hold needs the protection tag: without it, not protected.
        let d = run(&s, &tags(&[(hold, "2026-12-05")]));
        assert_eq!(outcome(&d), Some(Outcome::NotProtected), "{phase}");
    }
}

#[test]
fn a_hold_that_is_over_or_not_a_date_protects_as_usual() {
    let hold = "auto-restart-protection-hold-until";
    let s = situation(Phase::CheckProtection);
    let past = run(
        &s,
        &tags(&[
            ("auto-restart-protection", "yes"),
            (hold, "2026-12-03T11:59:59Z"),
        ]),
    );
    assert_eq!(
        next_phase(&past),
        Some((Phase::WaitAvailable, Duration::ZERO))
    );
    assert!(
        past.action().contains("hold ended 2026-12-03T11:59:59Z"),
        "{past:?}"
    );
    let invalid = run(
        &s,
        &tags(&[("auto-restart-protection", "yes"), (hold, "next friday")]),
    );
    assert_eq!(
        next_phase(&invalid),
        Some((Phase::WaitAvailable, Duration::ZERO))
    );
    assert!(
        invalid
            .action()
            .contains("'next friday', not an ISO 8601 date"),
        "the step says why: {invalid:?}"
    );
    let recheck = run(
        &situation(Phase::RecheckProtection),
        &tags(&[("auto-restart-protection", "yes"), (hold, "next friday")]),
    );
    assert_eq!(next_phase(&recheck), Some((Phase::Stop, Duration::ZERO)));
}

/// Found by the property tests: a stop decided before the deadline but due after it (a
/// worker running late, a retry's backoff across the deadline) was still made.
#[test]
fn no_stop_once_the_deadline_has_passed() {
    let s = Situation {
        past_deadline: true,
        ..situation(Phase::Stop)
    };
    let d = run(&s, &Observation::StopTooLate);
    assert_eq!(outcome(&d), Some(Outcome::Timeout));
    let Decision::Finish { reason, .. } = d else {
        unreachable!()
    };
    assert!(reason.contains("not stopped"), "{reason}");
}
