//! Never miss a forced start: forced starts SNS did not deliver are found in RDS's event
//! log, once per account and region between replicas.

use std::sync::Arc;
use std::time::{Duration, Instant};

use restop::config::{CommaList, Schedule};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::db::{Backend, TestDb};
use crate::support::fake_aws::FakeAws;
use crate::support::moto::instance_arn;
use crate::support::world::{PROTECTED, World, world};
use crate::support::{TestApp, config, sns};

on_both_backends!(
    a_forced_start_missed_while_restop_was_down_is_caught_up,
    sns_and_the_event_log_see_one_forced_start,
    a_late_sns_message_records_the_catch_up_execution,
    a_forced_start_older_than_the_maximum_is_recorded_expired,
    a_failing_sweep_is_retried_and_reported,
    one_sweep_records_every_forced_start_it_finds,
    a_restarted_restop_sweeps_at_once,
    sweeps_made_together_spread_over_the_interval,
    a_region_removed_from_the_topics_is_no_longer_swept,
    a_forced_start_stopped_since_is_superseded,
    a_forced_start_followed_only_by_its_own_started_event_is_stopped,
    the_catch_up_leaves_alone_forced_starts_not_in_the_event_ids,
);

/// A world whose catch-up reads the event log every second.
async fn sweeping(db: TestDb) -> Option<World> {
    world(db, |c| {
        c.engine.catchup_interval = Schedule::Every(Duration::from_secs(1));
    })
    .await
}

impl World {
    /// Adds an event to moto's RDS event log, `seconds_ago` before now.
    async fn log_event(&self, event_id: &str, source_type: &str, id: &str, seconds_ago: u64) {
        self.moto
            .rds_event(json!({
                "event_id": event_id, "source_type": source_type,
                "source_identifier": id, "seconds_ago": seconds_ago
            }))
            .await;
    }

    /// Waits for the execution the catch-up starts for `arn`.
    async fn caught_up(&self, arn: &str) -> String {
        for _ in 0..200 {
            if let Some(id) = self
                .db
                .text(
                    "SELECT id FROM executions WHERE resource_arn = $1 AND trigger = 'catchup'",
                    arn,
                )
                .await
            {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no catch-up execution for {arn}");
    }
}

async fn a_forced_start_missed_while_restop_was_down_is_caught_up(db: TestDb) {
    let Some(w) = sweeping(db).await else {
        return;
    };
    w.create_instance("forgotten", PROTECTED).await;
    w.stop_then_force_start("forgotten").await;
    // RDS announced it a minute ago; no SNS message ever reached restop.
    w.log_event("RDS-EVENT-0154", "db-instance", "forgotten", 60)
        .await;
    let execution = w.caught_up(&instance_arn("forgotten")).await;
    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "stopped")
    );
    assert_eq!(w.instance_status("forgotten").await, "stopped");
    let steps = w.steps(&execution).await;
    assert!(
        steps[0].starts_with("catchup//forced start (RDS-EVENT-0154 at ")
            && steps[0].contains("found in RDS's event log"),
        "{steps:?}"
    );
    // The API lists it by its trigger.
    let listed: Value = w
        .app
        .client
        .get(format!("{}/v1/executions?trigger=catchup", w.app.base))
        .bearer_auth(crate::support::TOKENS[0])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["id"], execution.as_str());
}

async fn sns_and_the_event_log_see_one_forced_start(db: TestDb) {
    let Some(w) = sweeping(db).await else {
        return;
    };
    w.create_instance("twice-seen", PROTECTED).await;
    w.stop_then_force_start("twice-seen").await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "twice-seen").await;
    w.log_event("RDS-EVENT-0154", "db-instance", "twice-seen", 0)
        .await;
    for _ in 0..200 {
        if w.app
            .metrics()
            .await
            .contains("restop_catchup_forced_starts_total{result=\"known\"}")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        w.app
            .metrics()
            .await
            .contains("restop_catchup_forced_starts_total{result=\"known\"}")
    );
    w.finished(&execution).await;
    assert_eq!(w.db.count("SELECT COUNT(*) FROM executions").await, 1);
}

async fn a_late_sns_message_records_the_catch_up_execution(db: TestDb) {
    let Some(w) = sweeping(db).await else {
        return;
    };
    w.create_instance("late", PROTECTED).await;
    w.stop_then_force_start("late").await;
    w.log_event("RDS-EVENT-0154", "db-instance", "late", 60)
        .await;
    let caught = w.caught_up(&instance_arn("late")).await;
    assert_eq!(w.finished(&caught).await.1, "stopped");
    // SNS's delivery arrives at last (restop was down past SNS's retries): it is recorded
    // with the execution that already handled its forced start.
    let msg = w
        .stub
        .rds_notification("RDS-EVENT-0154", "db-instance", "late");
    let (status, body) = w.app.post_sns(&msg).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["disposition"], "accepted");
    assert_eq!(body["execution_id"], caught.as_str());
    assert_eq!(w.db.count("SELECT COUNT(*) FROM executions").await, 1);
}

async fn a_forced_start_older_than_the_maximum_is_recorded_expired(db: TestDb) {
    // The test configuration's RESTOP_MAX_DURATION is 120 s.
    let Some(w) = sweeping(db).await else {
        return;
    };
    w.create_instance("bygone", PROTECTED).await;
    w.log_event("RDS-EVENT-0154", "db-instance", "bygone", 200)
        .await;
    let execution = w.caught_up(&instance_arn("bygone")).await;
    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!((status.as_str(), outcome.as_str()), ("skipped", "expired"));
    assert_eq!(
        w.moto.calls_for("bygone").await,
        ["CreateDBInstance"],
        "an expired forced start costs no AWS call"
    );
}

async fn a_failing_sweep_is_retried_and_reported(db: TestDb) {
    let Some(w) = sweeping(db).await else {
        return;
    };
    // The SDK tries each call three times: six faults fail two sweeps.
    w.moto
        .fault(json!({"action": "DescribeEvents", "count": 6, "code": "Throttling"}))
        .await;
    let mut metrics = String::new();
    for _ in 0..300 {
        metrics = w.app.metrics().await;
        if metrics.contains("restop_catchup_sweeps_total{result=\"failed\"} 2")
            && metrics.contains("restop_catchup_sweeps_total{result=\"ok\"}")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        metrics.contains("restop_catchup_sweeps_total{result=\"failed\"} 2")
            && metrics.contains("restop_catchup_sweeps_total{result=\"ok\"}"),
        "{metrics}"
    );
    // SNS intake never waited for the sweeps.
    let msg = w.stub.notification("hello");
    assert_eq!(w.app.post_sns(&msg).await.0, 200);
}

/// Several forced starts in one read of the log are all recorded by that sweep, while the
/// engine works the first ones (on SQLite, a write transaction that began as a reader used
/// to fail at once with "database is locked", one forced start per retried sweep).
async fn one_sweep_records_every_forced_start_it_finds(db: TestDb) {
    let Some(w) = sweeping(db).await else {
        return;
    };
    let ids: Vec<String> = (0..6).map(|i| format!("many-{i}")).collect();
    for id in &ids {
        w.create_instance(id, PROTECTED).await;
        w.stop_then_force_start(id).await;
    }
    // All in the log at once: the next sweep finds the six together.
    let events: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"event_id": "RDS-EVENT-0154", "source_type": "db-instance",
                   "source_identifier": id, "seconds_ago": 60})
        })
        .collect();
    w.moto.rds_event(Value::Array(events)).await;
    for id in &ids {
        w.caught_up(&instance_arn(id)).await;
    }
    let metrics = w.app.metrics().await;
    assert!(
        metrics.contains("restop_catchup_sweeps_total{result=\"failed\"} 0"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("restop_catchup_sweeps_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Deliveries may have been lost while restop was down: on start it reads the event log
/// at once, not an interval after its last sweep.
async fn a_restarted_restop_sweeps_at_once(db: TestDb) {
    let aws = Arc::new(FakeAws::default());
    let start = || {
        let mut cfg = config(&db.url, None);
        cfg.engine.engine_enabled = true;
        cfg.engine.catchup_interval = Schedule::Every(Duration::from_secs(3600));
        TestApp::spawn_with(cfg, Arc::new(restop::clock::SystemClock), Some(aws.clone()))
    };
    for restarts in 1..=2 {
        let app = start().await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while aws.requests() < restarts {
            assert!(Instant::now() < deadline, "no sweep at start {restarts}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        app.stop().await;
    }
}

/// After a start every place is swept at once; from then on each keeps to its own moment
/// of the interval, so 8,500 account-regions make an even trickle of sweeps (and of RDS
/// calls and writes), not a wave of 8,500 every interval. None waits longer than the
/// interval.
async fn sweeps_made_together_spread_over_the_interval(db: TestDb) {
    let aws = Arc::new(FakeAws::default());
    let members: Vec<String> = (1..=20)
        .map(|i| format!("{:012}", 200_000_000_000u64 + i))
        .collect();
    for member in &members {
        aws.add_member(member);
    }
    let mut cfg = config(&db.url, None);
    cfg.engine.engine_enabled = true;
    cfg.engine.catchup_interval = Schedule::Every(Duration::from_secs(3600));
    cfg.accounts.accounts = CommaList(members.iter().map(|m| m.parse().unwrap()).collect());
    let app =
        TestApp::spawn_with(cfg, Arc::new(restop::clock::SystemClock), Some(aws.clone())).await;
    let places = 1 + members.len() as i64;
    let deadline = Instant::now() + Duration::from_secs(20);
    while db
        .count("SELECT COUNT(*) FROM catchup_sweeps WHERE last_success_at IS NOT NULL")
        .await
        < places
    {
        assert!(
            Instant::now() < deadline,
            "not every place was swept at the start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
    let (spread, late) = match db.backend {
        Backend::Postgres => (
            "SELECT CAST(EXTRACT(EPOCH FROM MAX(next_run_at) - MIN(next_run_at)) AS BIGINT) \
             FROM catchup_sweeps",
            "SELECT COUNT(*) FROM catchup_sweeps \
             WHERE next_run_at > last_success_at + INTERVAL '3600 seconds'",
        ),
        Backend::Sqlite => (
            "SELECT CAST((julianday(MAX(next_run_at)) - julianday(MIN(next_run_at))) * 86400 \
             AS INTEGER) FROM catchup_sweeps",
            "SELECT COUNT(*) FROM catchup_sweeps \
             WHERE julianday(next_run_at) > julianday(last_success_at) + 3600.0 / 86400",
        ),
    };
    let spread = db.count(spread).await;
    assert!(
        spread >= 1800,
        "the next sweeps of {places} places fall within {spread} s of each other"
    );
    assert_eq!(
        db.count(late).await,
        0,
        "a next sweep more than an interval away"
    );
}

/// Two replicas on one Postgres read each account and region's log once per interval
/// between them, not once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_sweeps() {
    let Some(db) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let aws = Arc::new(FakeAws::default());
    let replica = || {
        let mut cfg = config(&db.url, None);
        cfg.engine.engine_enabled = true;
        cfg.engine.catchup_interval = Schedule::Every(Duration::from_secs(1));
        TestApp::spawn_with(cfg, Arc::new(restop::clock::SystemClock), Some(aws.clone()))
    };
    let (a, b) = (replica().await, replica().await);
    // Each start makes the sweep due at once (a restarted restop looks at what it missed).
    while aws.requests() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let swept = aws.requests();
    // Then one account-region swept every second between the two: four more sweeps take
    // over three seconds (the first may come early, to keep to the place's moment of the
    // second). Each replica on its own would make them in two.
    while aws.requests() < swept + 4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2500),
        "five sweeps in {elapsed:?}: the replicas did not share them"
    );
    a.stop().await;
    b.stop().await;
}

/// A topic removed from RESTOP_TOPIC_ARNS takes its region out of the catch-up: the next
/// restop forgets that region's sweep and never reads its event log again, although the
/// sweep it recorded before is due.
async fn a_region_removed_from_the_topics_is_no_longer_swept(db: TestDb) {
    const WEST_TOPIC: &str = "arn:aws:sns:us-west-2:123456789012:rds-events";
    let aws = Arc::new(FakeAws::default());
    let start = |topics: &[&str]| {
        let mut cfg = config(&db.url, None);
        cfg.engine.engine_enabled = true;
        cfg.engine.catchup_interval = Schedule::Every(Duration::from_secs(1));
        cfg.sns.topic_arns = CommaList(topics.iter().map(|t| t.parse().unwrap()).collect());
        TestApp::spawn_with(cfg, Arc::new(restop::clock::SystemClock), Some(aws.clone()))
    };
    let both = start(&[sns::TOPIC, WEST_TOPIC]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while aws.requests_in("us-east-1") == 0 || aws.requests_in("us-west-2") == 0 {
        assert!(Instant::now() < deadline, "the two regions were not swept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    both.stop().await;
    assert_eq!(db.count("SELECT COUNT(*) FROM catchup_sweeps").await, 2);

    let (east, west) = (aws.requests_in("us-east-1"), aws.requests_in("us-west-2"));
    let east_only = start(&[sns::TOPIC]).await;
    // Three more sweeps of us-east-1 take over two seconds: us-west-2's row is due by then.
    let deadline = Instant::now() + Duration::from_secs(15);
    while aws.requests_in("us-east-1") < east + 3 {
        assert!(Instant::now() < deadline, "us-east-1 was not swept");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        aws.requests_in("us-west-2"),
        west,
        "the removed region was swept"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM catchup_sweeps").await, 1);
    assert_eq!(db.count("SELECT COUNT(*) FROM executions").await, 0);
    east_only.stop().await;
}

/// The weekend night of the review: a forced start while restop was down, then someone
/// stopped the database, then someone started it again on purpose. The forced start is
/// over: no tag check, no stop.
async fn a_forced_start_stopped_since_is_superseded(db: TestDb) {
    let Some(w) = sweeping(db).await else {
        return;
    };
    w.create_instance("restarted", PROTECTED).await;
    // One read of the log sees all three (the test's RESTOP_MAX_DURATION is 120 s).
    w.moto
        .rds_event(json!([
            {"event_id": "RDS-EVENT-0154", "source_type": "db-instance",
             "source_identifier": "restarted", "seconds_ago": 90},
            {"event_id": "RDS-EVENT-0087", "source_type": "db-instance",
             "source_identifier": "restarted", "seconds_ago": 60},
            {"event_id": "RDS-EVENT-0088", "source_type": "db-instance",
             "source_identifier": "restarted", "seconds_ago": 30},
        ]))
        .await;
    let execution = w.caught_up(&instance_arn("restarted")).await;
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("skipped", "superseded"),
        "{reason}"
    );
    assert!(reason.contains("stopped at "), "{reason}");
    assert_eq!(
        w.moto.calls_for("restarted").await,
        ["CreateDBInstance"],
        "a superseded forced start costs no AWS call"
    );
    assert_eq!(w.instance_status("restarted").await, "available");
    let metrics = w.app.metrics().await;
    assert!(
        metrics.contains("restop_catchup_forced_starts_total{result=\"superseded\"} 1"),
        "{metrics}"
    );
}

/// Every start ends with RDS-EVENT-0088, the forced one too: that supersedes nothing.
async fn a_forced_start_followed_only_by_its_own_started_event_is_stopped(db: TestDb) {
    let Some(w) = sweeping(db).await else {
        return;
    };
    w.create_instance("started-only", PROTECTED).await;
    w.stop_then_force_start("started-only").await;
    w.moto
        .rds_event(json!([
            {"event_id": "RDS-EVENT-0154", "source_type": "db-instance",
             "source_identifier": "started-only", "seconds_ago": 60},
            {"event_id": "RDS-EVENT-0088", "source_type": "db-instance",
             "source_identifier": "started-only", "seconds_ago": 30},
        ]))
        .await;
    let execution = w.caught_up(&instance_arn("started-only")).await;
    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "stopped")
    );
    assert_eq!(w.instance_status("started-only").await, "stopped");
}

/// `RESTOP_EVENT_IDS=RDS-EVENT-0154` leaves Aurora clusters alone: in the catch-up too.
async fn the_catch_up_leaves_alone_forced_starts_not_in_the_event_ids(db: TestDb) {
    let Some(w) = world(db, |c| {
        c.engine.catchup_interval = Schedule::Every(Duration::from_secs(1));
        c.event_ids = vec!["RDS-EVENT-0154".into()];
    })
    .await
    else {
        return;
    };
    w.create_cluster("left-alone", PROTECTED).await;
    w.create_instance("acted-on", PROTECTED).await;
    w.moto
        .rds_event(json!([
            {"event_id": "RDS-EVENT-0153", "source_type": "db-cluster",
             "source_identifier": "left-alone", "seconds_ago": 60},
            {"event_id": "RDS-EVENT-0154", "source_type": "db-instance",
             "source_identifier": "acted-on", "seconds_ago": 60},
        ]))
        .await;
    // The instance's forced start comes from the same read as the cluster's.
    let execution = w.caught_up(&instance_arn("acted-on")).await;
    w.finished(&execution).await;
    assert_eq!(
        w.db.count("SELECT COUNT(*) FROM executions WHERE resource_type = 'db-cluster'")
            .await,
        0
    );
    assert_eq!(
        w.moto.calls_for("left-alone").await,
        ["CreateDBCluster"],
        "{:?}",
        w.moto.calls().await
    );
}
