//! Holds (`auto-restart-protection-hold-until`): a protected database's owner lets forced
//! starts run until a date. On moto, in internal mode (Step Functions mode: in
//! step_functions.rs).

use chrono::{Duration as Days, SecondsFormat, Utc};

use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::moto::instance_arn;
use crate::support::world::{PROTECTED, world};

const HOLD: &str = "auto-restart-protection-hold-until";

on_both_backends!(
    a_hold_in_the_future_lets_the_forced_start_run,
    a_hold_in_the_past_protects_as_usual,
    a_hold_that_is_not_a_date_protects_as_usual_and_says_why,
    a_hold_set_while_waiting_prevents_the_stop,
);

/// The date in `days` days, as an owner writes it.
fn date_in(days: i64) -> String {
    (Utc::now() + Days::days(days))
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

async fn a_hold_in_the_future_lets_the_forced_start_run(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    let until = date_in(3);
    w.create_instance("held", &[PROTECTED[0], (HOLD, &until)])
        .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "held").await;
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!((status.as_str(), outcome.as_str()), ("skipped", "held"));
    // A date means the end of that day, UTC.
    let end = format!("{}T00:00:00Z", date_in(4));
    assert_eq!(reason, format!("held until {end} (tag {HOLD})"));
    assert_eq!(
        w.moto.calls_for("held").await,
        ["CreateDBInstance", "ListTagsForResource"],
        "no stop, nor anything else, after the tags"
    );
    assert_eq!(w.instance_status("held").await, "available");
}

async fn a_hold_in_the_past_protects_as_usual(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    let ended = (Utc::now() - Days::minutes(5)).to_rfc3339_opts(SecondsFormat::Secs, true);
    w.create_instance("was-held", &[PROTECTED[0], (HOLD, &ended)])
        .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "was-held").await;
    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "stopped")
    );
    let steps = w.steps(&execution).await;
    assert!(
        steps[0].contains(&format!("the hold ended {ended}")),
        "{steps:?}"
    );
    assert_eq!(w.count_calls_for("was-held", "StopDBInstance").await, 1);
}

async fn a_hold_that_is_not_a_date_protects_as_usual_and_says_why(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    w.create_instance("typo", &[PROTECTED[0], (HOLD, "next friday")])
        .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "typo").await;
    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "stopped")
    );
    let steps = w.steps(&execution).await;
    assert!(
        steps[0].contains(&format!(
            "tag {HOLD} is 'next friday', not an ISO 8601 date or date-time: no hold"
        )),
        "{steps:?}"
    );
    assert_eq!(w.instance_status("typo").await, "stopped");
}

async fn a_hold_set_while_waiting_prevents_the_stop(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    w.create_instance(
        "late-hold",
        &[PROTECTED[0], ("moto:force-status", "backing-up:3")],
    )
    .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "late-hold").await;
    w.wait_for_step(&execution, "wait_available/backing-up/")
        .await;
    let until = (Utc::now() + Days::hours(2)).to_rfc3339_opts(SecondsFormat::Secs, true);
    w.add_tags(&instance_arn("late-hold"), &[(HOLD, &until)])
        .await;
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!((status.as_str(), outcome.as_str()), ("skipped", "held"));
    assert!(
        reason.starts_with(&format!("held until {until}")),
        "{reason}"
    );
    assert_eq!(w.count_calls_for("late-hold", "StopDBInstance").await, 0);
    assert_eq!(w.instance_status("late-hold").await, "available");
}
