//! The protection engine in internal mode end to end: a signed RDS event over HTTP,
//! restop's engine with the real AWS SDK, and moto with statuses that change over time.
//! Every test runs on Postgres and on SQLite, each with a moto server of its own. The
//! forced-start scenario both modes share is in forced_start.rs.

use std::time::Duration;

use serde_json::json;

use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::moto::{cluster_arn, instance_arn};
use crate::support::world::{PROTECTED, world};

on_both_backends!(
    unprotected_databases_are_left_alone,
    the_tag_value_is_compared_case_insensitively,
    read_replicas_and_aurora_members_are_not_stoppable,
    an_instance_deleted_midway_ends_as_gone,
    stopped_during_the_grace_period_is_watched_then_stopped,
    stopped_by_someone_else_after_the_grace_period,
    a_busy_period_is_waited_out,
    throttling_beyond_the_sdk_retries_is_backed_off,
    missing_permission_fails_naming_the_action,
    timeout_ends_a_wait_that_never_ends,
    dry_run_never_stops,
    duplicate_and_second_events_join_one_execution,
    a_real_event_makes_a_dry_run_real,
    a_tag_removed_while_waiting_prevents_the_stop,
    stops_refused_again_and_again_end_not_stoppable,
    aurora_global_database_members_are_not_stoppable,
    a_stop_retried_past_the_deadline_is_not_made,
    every_rds_attempt_keeps_to_the_budget,
);

async fn unprotected_databases_are_left_alone(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    let cases: [(&str, &[(&str, &str)]); 4] = [
        ("untagged", &[]),
        ("tag-no", &[("auto-restart-protection", "no")]),
        ("other-key", &[("not-auto-restart-protection", "yes")]),
        ("substring-value", &[("auto-restart-protection", "yes-ish")]),
    ];
    for (id, tag_pairs) in cases {
        w.create_instance(id, tag_pairs).await;
        let execution = w.event("RDS-EVENT-0154", "db-instance", id).await;
        let (status, outcome, reason) = w.finished(&execution).await;
        assert_eq!(
            (status.as_str(), outcome.as_str()),
            ("skipped", "not_protected"),
            "{id}: {reason}"
        );
        // Nothing after the tag check.
        assert_eq!(
            w.moto.calls_for(id).await,
            ["CreateDBInstance", "ListTagsForResource"],
            "{id}"
        );
        assert_eq!(w.instance_status(id).await, "available");
    }
}

async fn the_tag_value_is_compared_case_insensitively(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    w.create_instance("shouting", &[("auto-restart-protection", "YES")])
        .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "shouting").await;
    assert_eq!(w.finished(&execution).await.1, "stopped");
}

async fn read_replicas_and_aurora_members_are_not_stoppable(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    w.create_unstoppable_databases().await;

    for (id, expected) in [
        ("replica", "read replica of primary"),
        ("primary", "has read replicas: replica"),
        ("aurora-member", "Aurora member instance of cluster aurora"),
    ] {
        let execution = w.event("RDS-EVENT-0154", "db-instance", id).await;
        let (status, outcome, reason) = w.finished(&execution).await;
        assert_eq!(
            (status.as_str(), outcome.as_str()),
            ("skipped", "not_stoppable"),
            "{id}"
        );
        assert!(reason.contains(expected), "{id}: {reason}");
        assert!(
            !w.moto
                .calls_for(id)
                .await
                .contains(&"StopDBInstance".to_owned()),
            "{id}"
        );
    }
}

async fn an_instance_deleted_midway_ends_as_gone(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    w.create_instance(
        "doomed",
        &[
            ("auto-restart-protection", "yes"),
            ("moto:start-seconds", "60"),
        ],
    )
    .await;
    w.stop_then_force_start("doomed").await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "doomed").await;
    // Let the engine see it starting, then delete it.
    for _ in 0..50 {
        if w.steps(&execution)
            .await
            .iter()
            .any(|s| s.starts_with("wait_available/starting"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.rds
        .delete_db_instance()
        .db_instance_identifier("doomed")
        .skip_final_snapshot(true)
        .send()
        .await
        .unwrap();
    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!((status.as_str(), outcome.as_str()), ("succeeded", "gone"));
}

async fn stopped_during_the_grace_period_is_watched_then_stopped(db: TestDb) {
    let Some(w) = world(db, |c| c.engine.start_grace = Duration::from_secs(8)).await else {
        return;
    };
    w.create_instance("late-start", PROTECTED).await;
    w.rds
        .stop_db_instance()
        .db_instance_identifier("late-start")
        .send()
        .await
        .unwrap();
    w.wait_for_instance("late-start", "stopped").await;
    // The event arrives before the start shows.
    let execution = w.event("RDS-EVENT-0154", "db-instance", "late-start").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        w.column(&execution, "status").await.as_deref(),
        Some("running")
    );
    w.rds
        .start_db_instance()
        .db_instance_identifier("late-start")
        .send()
        .await
        .unwrap();

    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "stopped"),
        "{:?}",
        w.steps(&execution).await
    );
    assert!(
        w.steps(&execution)
            .await
            .iter()
            .any(|s| s.starts_with("wait_available/stopped/stopped, but"))
    );
}

async fn stopped_by_someone_else_after_the_grace_period(db: TestDb) {
    let Some(w) = world(db, |c| c.engine.start_grace = Duration::from_secs(3)).await else {
        return;
    };
    w.create_instance("already", PROTECTED).await;
    w.rds
        .stop_db_instance()
        .db_instance_identifier("already")
        .send()
        .await
        .unwrap();
    w.wait_for_instance("already", "stopped").await;
    let started = std::time::Instant::now();
    let execution = w.event("RDS-EVENT-0154", "db-instance", "already").await;
    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "already_stopped")
    );
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "ended before the grace period"
    );
    assert!(
        !w.moto
            .calls_for("already")
            .await
            .iter()
            .skip(2)
            .any(|a| a == "StopDBInstance")
    );
}

async fn a_busy_period_is_waited_out(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    w.create_instance("busy", PROTECTED).await;
    w.add_tags(
        &instance_arn("busy"),
        &[("moto:force-status", "backing-up:3")],
    )
    .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "busy").await;
    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "stopped")
    );
    let steps = w.steps(&execution).await;
    assert!(
        steps
            .iter()
            .any(|s| s.starts_with("wait_available/backing-up/backing-up: wait")),
        "{steps:?}"
    );
}

async fn throttling_beyond_the_sdk_retries_is_backed_off(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    w.create_instance("throttled", PROTECTED).await;
    // Three attempts per call: five failures reach the engine's own backoff.
    w.moto
        .fault(json!({"action": "DescribeDBInstances", "count": 5, "code": "Throttling", "resource": "throttled"}))
        .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "throttled").await;
    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "stopped")
    );
    let steps = w.steps(&execution).await;
    assert!(
        steps.iter().any(
            |s| s.starts_with("wait_available//retry after transient error")
                && s.contains("Throttling")
        ),
        "{steps:?}"
    );
}

async fn missing_permission_fails_naming_the_action(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    w.create_instance("locked", PROTECTED).await;
    w.moto
        .fault(json!({"action": "StopDBInstance", "count": 1, "code": "AccessDenied", "status": 403,
                      "message": "User is not authorized to perform: rds:StopDBInstance", "resource": "locked"}))
        .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "locked").await;
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("failed", "access_denied")
    );
    assert!(reason.contains("rds:StopDBInstance"), "{reason}");
}

async fn timeout_ends_a_wait_that_never_ends(db: TestDb) {
    let Some(w) = world(db, |c| c.engine.max_duration = Duration::from_secs(3)).await else {
        return;
    };
    w.create_instance(
        "stuck",
        &[
            ("auto-restart-protection", "yes"),
            ("moto:force-status", "storage-optimization:600"),
        ],
    )
    .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "stuck").await;
    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!((status.as_str(), outcome.as_str()), ("failed", "timeout"));
}

async fn dry_run_never_stops(db: TestDb) {
    let Some(w) = world(db, |c| c.engine.dry_run = true).await else {
        return;
    };
    w.create_instance("rehearsal", PROTECTED).await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "rehearsal").await;
    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "dry_run")
    );
    assert_eq!(w.instance_status("rehearsal").await, "available");
    assert!(
        !w.moto
            .calls_for("rehearsal")
            .await
            .contains(&"StopDBInstance".to_owned())
    );
}

async fn duplicate_and_second_events_join_one_execution(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    w.create_instance(
        "twice",
        &[
            ("auto-restart-protection", "yes"),
            ("moto:force-status", "backing-up:3"),
        ],
    )
    .await;
    let first = w
        .stub
        .rds_notification("RDS-EVENT-0154", "db-instance", "twice");
    let execution = w.post(&first).await;
    // SNS redelivers the same message: stored once, no second execution.
    let (status, body) = w.app.post_sns(&first).await;
    assert_eq!((status, &body["duplicate"]), (200, &json!(true)));
    // A second event for the same resource while the first execution is active joins it.
    let second = w.event("RDS-EVENT-0154", "db-instance", "twice").await;
    assert_eq!(second, execution);
    assert_eq!(w.finished(&execution).await.1, "stopped");
    assert_eq!(w.db.count("SELECT COUNT(*) FROM executions").await, 1);
    assert_eq!(
        w.db.count(&format!(
            "SELECT COUNT(*) FROM sns_messages WHERE execution_id = '{execution}'"
        ))
        .await,
        2
    );
}

async fn a_real_event_makes_a_dry_run_real(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    let busy = ("moto:force-status", "backing-up:4");
    w.create_instance("rehearsed", &[PROTECTED[0], busy]).await;
    let (status, body) = w
        .trigger(json!({"resource_arn": instance_arn("rehearsed"), "dry_run": true}))
        .await;
    assert_eq!(status, 201, "{body}");
    let rehearsal = body["id"].as_str().unwrap().to_owned();
    // While the dry run waits, AWS force-starts the database for real.
    let real = w.event("RDS-EVENT-0154", "db-instance", "rehearsed").await;
    assert_eq!(real, rehearsal, "the event upgrades the active dry run");
    let (status, outcome, _) = w.finished(&real).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "stopped")
    );
    assert_eq!(w.instance_status("rehearsed").await, "stopped");
    let steps = w.steps(&real).await;
    assert!(
        steps
            .iter()
            .any(|s| s.starts_with("upgrade//upgraded to a real run by RDS-EVENT-0154")),
        "{steps:?}"
    );

    // An operator's explicit stop of an untagged database (skip_tag_check) is a real run
    // already: the forced start joins it and does not bring the tag check back.
    w.create_instance("untagged", &[busy]).await;
    let (status, body) = w
        .trigger(json!({"resource_arn": instance_arn("untagged"), "skip_tag_check": true}))
        .await;
    assert_eq!(status, 201, "{body}");
    let skipping = body["id"].as_str().unwrap().to_owned();
    let real = w.event("RDS-EVENT-0154", "db-instance", "untagged").await;
    assert_eq!(real, skipping);
    let (status, outcome, reason) = w.finished(&real).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "stopped"),
        "{reason}"
    );
    assert_eq!(w.instance_status("untagged").await, "stopped");

    // A real manual trigger that upgrades an active dry run answers with it, not 409.
    w.create_instance("retried", &[PROTECTED[0], busy]).await;
    let (status, body) = w
        .trigger(json!({"resource_arn": instance_arn("retried"), "dry_run": true}))
        .await;
    assert_eq!(status, 201, "{body}");
    let dry = body["id"].as_str().unwrap().to_owned();
    let (status, body) = w
        .trigger(json!({"resource_arn": instance_arn("retried")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], dry.as_str());
    assert_eq!(body["dry_run"], false, "{body}");
    // The plain "already active" case stays a conflict.
    let (status, body) = w
        .trigger(json!({"resource_arn": instance_arn("retried")}))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &json!("execution_active"))
    );
    assert_eq!(w.finished(&dry).await.1, "stopped");
}

async fn a_tag_removed_while_waiting_prevents_the_stop(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    w.create_instance(
        "fickle",
        &[PROTECTED[0], ("moto:force-status", "backing-up:3")],
    )
    .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "fickle").await;
    w.wait_for_step(&execution, "wait_available/backing-up/")
        .await;
    w.remove_tags(&instance_arn("fickle"), &["auto-restart-protection"])
        .await;
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("skipped", "not_protected")
    );
    assert!(reason.contains("removed while waiting"), "{reason}");
    assert!(
        !w.moto
            .calls_for("fickle")
            .await
            .contains(&"StopDBInstance".to_owned())
    );
    assert_eq!(w.instance_status("fickle").await, "available");
}

async fn stops_refused_again_and_again_end_not_stoppable(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    w.create_instance("stubborn", PROTECTED).await;
    // RDS says "invalid state" to every stop while the database reports `available`.
    w.moto
        .fault(json!({"action": "StopDBInstance", "count": 10, "code": "InvalidDBInstanceState",
                      "message": "Instance stubborn is not in available state", "resource": "stubborn"}))
        .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "stubborn").await;
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("skipped", "not_stoppable")
    );
    assert!(reason.contains("refused the stop 3 times"), "{reason}");
    let stops = w
        .moto
        .calls_for("stubborn")
        .await
        .iter()
        .filter(|a| *a == "StopDBInstance")
        .count();
    assert_eq!(stops, 3);
}

async fn aurora_global_database_members_are_not_stoppable(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    w.create_cluster("worldwide", PROTECTED).await;
    w.rds
        .create_global_cluster()
        .global_cluster_identifier("world")
        .source_db_cluster_identifier(cluster_arn("worldwide"))
        .send()
        .await
        .unwrap();
    let execution = w.event("RDS-EVENT-0153", "db-cluster", "worldwide").await;
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("skipped", "not_stoppable")
    );
    assert!(reason.contains("global database"), "{reason}");
    assert!(
        !w.moto
            .calls_for("worldwide")
            .await
            .contains(&"StopDBCluster".to_owned())
    );
}

/// Found by the property tests of decide(): a stop retried after throttling was made
/// even when its backoff ended after RESTOP_MAX_DURATION. The stop is throttled until
/// after the deadline; the step due past it makes no call and ends `timeout`.
async fn a_stop_retried_past_the_deadline_is_not_made(db: TestDb) {
    let Some(w) = world(db, |c| c.engine.max_duration = Duration::from_secs(4)).await else {
        return;
    };
    w.create_instance("late", PROTECTED).await;
    w.moto
        .fault(json!({"action": "StopDBInstance", "count": 1000, "code": "Throttling", "resource": "late"}))
        .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "late").await;
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!((status.as_str(), outcome.as_str()), ("failed", "timeout"));
    assert!(
        reason.contains("before the stop call: not stopped"),
        "{reason}"
    );
    let steps = w.steps(&execution).await;
    let last = steps.last().unwrap();
    // The last step made no call: no throttling error on it.
    assert!(
        last.starts_with("stop//finish: timeout") && !last.contains("Throttling"),
        "{steps:?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s.starts_with("stop//retry") && s.contains("Throttling")),
        "{steps:?}"
    );
    assert_eq!(w.instance_status("late").await, "available");
}

/// Found by the chaos soak: a replica made 27 RDS requests in one second against a budget
/// of 10 a second (at most 20 in any second). The bucket held two seconds of tokens, so a
/// second could hold three seconds' worth, and the SDK's retries went around the budget.
/// Here every database is protected, and 5xx answers make restop retry while many calls
/// wait for their tokens: no second, wherever it starts, holds more than twice the rate.
async fn every_rds_attempt_keeps_to_the_budget(db: TestDb) {
    const RATE: f64 = 2.0;
    let Some(w) = world(db, |c| c.accounts.rds_max_rps = RATE).await else {
        return;
    };
    let ids: Vec<String> = (0..4).map(|i| format!("paced-{i}")).collect();
    for id in &ids {
        w.create_instance(id, PROTECTED).await;
    }
    w.moto.clear_calls().await;
    for action in ["ListTagsForResource", "DescribeDBInstances"] {
        w.moto
            .fault(json!({"action": action, "count": 6, "code": "InternalFailure", "status": 500}))
            .await;
    }
    let mut executions = Vec::new();
    for id in &ids {
        executions.push(w.event("RDS-EVENT-0154", "db-instance", id).await);
    }
    for execution in &executions {
        let (status, outcome, _) = w.finished(execution).await;
        assert_eq!(
            (status.as_str(), outcome.as_str()),
            ("succeeded", "stopped")
        );
    }
    let log = w.moto.call_log().await;
    assert_eq!(
        log.iter().filter(|c| c["fault"] == true).count(),
        12,
        "every armed 5xx was answered, and retried"
    );
    let arrivals: Vec<f64> = log.iter().filter_map(|c| c["at"].as_f64()).collect();
    let busiest = arrivals
        .iter()
        .map(|&from| {
            arrivals
                .iter()
                .filter(|&&at| at >= from && at < from + 1.0)
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(
        busiest <= (2.0 * RATE) as usize,
        "{busiest} RDS requests in one second, budget {RATE}/s; arrivals {arrivals:?}"
    );
}
