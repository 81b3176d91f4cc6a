//! Never wait for a forced start: "started" events make a waiting execution look at once,
//! and cost nothing when nothing waits.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::world::{PROTECTED, World, world};

on_both_backends!(
    a_started_event_wakes_a_waiting_instance,
    an_aurora_member_start_wakes_its_cluster,
    a_started_event_with_nothing_waiting_costs_no_aws_call,
    a_deliberate_start_after_restops_stop_is_left_running,
);

/// A world polling every five minutes: only a wake-up can finish an execution in a test.
async fn slow_polling(db: TestDb) -> Option<World> {
    world(db, |c| c.engine.poll_interval = Duration::from_secs(300)).await
}

async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never happened");
}

async fn a_started_event_wakes_a_waiting_instance(db: TestDb) {
    let Some(w) = slow_polling(db).await else {
        return;
    };
    w.create_instance("sleepy", &[PROTECTED[0], ("moto:start-seconds", "2")])
        .await;
    w.stop_then_force_start("sleepy").await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "sleepy").await;
    w.wait_for_step(&execution, "wait_available/starting/")
        .await;
    wait_until("available", || async {
        w.instance_status("sleepy").await == "available"
    })
    .await;
    // RDS says the start has ended.
    let started = w
        .stub
        .rds_notification("RDS-EVENT-0088", "db-instance", "sleepy");
    let since = Instant::now();
    let (status, body) = w.app.post_sns(&started).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("wakeup")),
        "{body}"
    );
    assert_eq!(body["execution_id"], execution.as_str());
    // The stop follows at once, not at the next poll five minutes later.
    w.wait_for_step(&execution, "stop//stop requested").await;
    assert!(
        since.elapsed() < Duration::from_secs(10),
        "stop requested {:?} after the started event, with a 5-minute poll",
        since.elapsed()
    );
    wait_until("stopped", || async {
        w.instance_status("sleepy").await == "stopped"
    })
    .await;
}

async fn an_aurora_member_start_wakes_its_cluster(db: TestDb) {
    let Some(w) = slow_polling(db).await else {
        return;
    };
    w.create_cluster("galaxy", &[PROTECTED[0], ("moto:start-seconds", "2")])
        .await;
    w.rds
        .create_db_instance()
        .db_instance_identifier("galaxy-1")
        .db_cluster_identifier("galaxy")
        .engine("aurora-postgresql")
        .db_instance_class("db.r5.large")
        .send()
        .await
        .unwrap();
    w.stop_then_force_start_cluster("galaxy").await;
    let execution = w.event("RDS-EVENT-0153", "db-cluster", "galaxy").await;
    w.wait_for_step(&execution, "wait_available/starting/")
        .await;
    wait_until("available", || async {
        w.cluster_status("galaxy").await == "available"
    })
    .await;
    // The member instance's 0088 arrives before the cluster's 0151.
    let started = w
        .stub
        .rds_notification("RDS-EVENT-0088", "db-instance", "galaxy-1");
    let before = w.moto.count_calls("DescribeDBInstances").await;
    let (status, body) = w.app.post_sns(&started).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("wakeup")),
        "{body}"
    );
    assert_eq!(body["execution_id"], execution.as_str());
    assert_eq!(
        w.moto.count_calls("DescribeDBInstances").await - before,
        1,
        "one Describe of the member to find its cluster"
    );
    w.wait_for_step(&execution, "stop//stop requested").await;
    wait_until("stopped", || async {
        w.cluster_status("galaxy").await == "stopped"
    })
    .await;
}

async fn a_started_event_with_nothing_waiting_costs_no_aws_call(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    w.create_instance("manual-start", &[]).await;
    let calls = w.moto.calls().await.len();
    let started = w
        .stub
        .rds_notification("RDS-EVENT-0088", "db-instance", "manual-start");
    let (status, body) = w.app.post_sns(&started).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("ignored")),
        "{body}"
    );
    assert_eq!(body["execution_id"], Value::Null);
    // The EventBridge shape of a cluster's "started" event, likewise.
    let arn = "arn:aws:rds:us-east-1:123456789012:cluster:quiet";
    let eventbridge = json!({
        "version": "0", "id": "1c8bd7a1-9f31-4d6e-8f0e-6a1b2c3d4e5f",
        "detail-type": "RDS DB Cluster Event", "source": "aws.rds",
        "account": "123456789012", "time": "2026-11-29T07:22:41Z", "region": "us-east-1",
        "resources": [arn],
        "detail": {"EventCategories": ["notification"], "SourceType": "CLUSTER",
                   "SourceArn": arn, "Date": "2026-11-29T07:22:41.245Z",
                   "Message": "The DB cluster has been started.",
                   "SourceIdentifier": "quiet", "EventID": "RDS-EVENT-0151"}
    });
    let (status, body) = w
        .app
        .post_sns(&w.stub.notification(&eventbridge.to_string()))
        .await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("ignored")),
        "{body}"
    );
    assert_eq!(w.db.count("SELECT COUNT(*) FROM executions").await, 0);
    assert_eq!(w.moto.calls().await.len(), calls, "no AWS call");
}

/// restop stops once: someone starts the database right after restop's stop took effect.
/// A "stopped" event (RDS-EVENT-0087, added to the wake-up ids) makes the execution
/// waiting for `stopped` look at once; it sees `starting`, which only follows a completed
/// stop, and ends `stopped` without a second stop call.
async fn a_deliberate_start_after_restops_stop_is_left_running(db: TestDb) {
    let Some(w) = world(db, |c| {
        c.engine.poll_interval = Duration::from_secs(300);
        c.wake_event_ids.push("RDS-EVENT-0087".into());
    })
    .await
    else {
        return;
    };
    let arn = crate::support::moto::instance_arn("wanted");
    w.create_instance(
        "wanted",
        &[
            PROTECTED[0],
            ("moto:stop-seconds", "1"),
            ("moto:start-seconds", "0"),
        ],
    )
    .await;
    w.stop_then_force_start("wanted").await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "wanted").await;
    w.wait_for_step(&execution, "stop//stop requested").await;
    w.wait_for_instance("wanted", "stopped").await;
    // The on-call engineer starts it again at once (a start of some seconds).
    w.add_tags(&arn, &[("moto:start-seconds", "5")]).await;
    w.rds
        .start_db_instance()
        .db_instance_identifier("wanted")
        .send()
        .await
        .unwrap();
    let stopped = w
        .stub
        .rds_notification("RDS-EVENT-0087", "db-instance", "wanted");
    let (status, body) = w.app.post_sns(&stopped).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("wakeup")),
        "{body}"
    );
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "stopped"),
        "{reason}"
    );
    assert!(reason.contains("deliberate"), "{reason}");
    let steps = w.steps(&execution).await;
    assert!(
        steps
            .last()
            .is_some_and(|s| s.starts_with("wait_stopped/starting/finish: stopped (started again")),
        "{steps:?}"
    );
    wait_until("available", || async {
        w.instance_status("wanted").await == "available"
    })
    .await;
    // The test's own stop and restop's: no second one from restop.
    assert_eq!(w.count_calls_for("wanted", "StopDBInstance").await, 2);
}
