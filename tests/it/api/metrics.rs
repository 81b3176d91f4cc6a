//! `/metrics` follows what happens: requests, AWS calls, executions ending (engine,
//! cancel), subscriptions, executions past their deadline; series an alert watches exist
//! at 0 from start-up; and the metrics may have a listener of their own.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use restop::clock::{Clock, ManualClock, SystemClock};
use serde_json::json;

use super::api;
use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::fake_aws::FakeAws;
use crate::support::sns::{SnsStub, TOPIC};
use crate::support::{TestApp, config};

on_both_backends!(
    finished_executions_are_counted_by_outcome,
    overdue_executions_and_subscriptions_are_gauges,
    metrics_move,
    metrics_can_have_a_listener_of_their_own,
);

const PROTECTED: &[(&str, &str)] = &[("auto-restart-protection", "yes")];

fn arn(id: &str) -> String {
    format!("arn:aws:rds:us-east-1:123456789012:db:{id}")
}

/// The value of one series in a scrape; `None` when it is not there.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

fn finished(outcome: &str, status: &str) -> String {
    format!("restop_executions_finished_total{{status=\"{status}\",outcome=\"{outcome}\"}}")
}

async fn finished_executions_are_counted_by_outcome(db: TestDb) {
    let aws = Arc::new(FakeAws::default());
    aws.add(&arn("kept"), "available", PROTECTED);
    aws.add(&arn("open"), "available", &[]);
    aws.add(&arn("waiting"), "starting", PROTECTED);
    let mut cfg = config(&db.url, None);
    cfg.engine.engine_enabled = true;
    let app = TestApp::spawn_with(cfg, Arc::new(SystemClock), Some(aws)).await;

    let before = app.metrics().await;
    for (outcome, status) in [
        ("stopped", "succeeded"),
        ("not_protected", "skipped"),
        ("cancelled", "cancelled"),
        ("timeout", "failed"),
    ] {
        assert_eq!(sample(&before, &finished(outcome, status)), Some(0.0));
    }
    for series in [
        format!("restop_unsubscriptions_total{{topic=\"{TOPIC}\"}}"),
        "restop_sns_refusals_total{reason=\"invalid_signature\"}".to_owned(),
        "restop_notifications_total{result=\"failed\"}".to_owned(),
    ] {
        assert_eq!(sample(&before, &series), Some(0.0), "{series}");
    }

    let stopped = app.trigger(json!({"resource_arn": arn("kept")})).await;
    let skipped = app.trigger(json!({"resource_arn": arn("open")})).await;
    let waiting = app.trigger(json!({"resource_arn": arn("waiting")})).await;
    assert_eq!(app.finished(&stopped).await["outcome"], "stopped");
    assert_eq!(app.finished(&skipped).await["outcome"], "not_protected");
    app.cancel(&waiting).await;

    let after = app.metrics().await;
    for (outcome, status) in [
        ("stopped", "succeeded"),
        ("not_protected", "skipped"),
        ("cancelled", "cancelled"),
    ] {
        assert_eq!(
            sample(&after, &finished(outcome, status)),
            Some(1.0),
            "{outcome}:\n{after}"
        );
    }
    assert_eq!(sample(&after, &finished("timeout", "failed")), Some(0.0));
}

async fn overdue_executions_and_subscriptions_are_gauges(db: TestDb) {
    let stub = SnsStub::start().await;
    let now = Utc::now();
    let clock = Arc::new(ManualClock::new(now));
    // The engine is off: the execution stays pending, whatever the clock says.
    let app = TestApp::spawn_with_clock(
        config(&db.url, Some(&stub.host)),
        clock.clone() as Arc<dyn Clock>,
    )
    .await;
    let confirmation = stub.confirmation("SubscriptionConfirmation", "metrics-token-4242");
    assert_eq!(app.post_sns(&confirmation).await.0, 200);
    let subscription =
        |status: &str| format!("restop_subscriptions{{topic=\"{TOPIC}\",status=\"{status}\"}}");
    let metrics = app.metrics().await;
    assert_eq!(
        sample(&metrics, &subscription("confirmed")),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, &subscription("pending_confirmation")),
        Some(0.0)
    );

    let id = app.trigger(json!({"resource_arn": arn("late")})).await;
    assert_eq!(
        sample(&app.metrics().await, "restop_executions_overdue"),
        Some(0.0)
    );
    // Past RESTOP_MAX_DURATION (120 s in tests) after the forced start.
    clock.set(now + Duration::from_secs(121));
    assert_eq!(
        sample(&app.metrics().await, "restop_executions_overdue"),
        Some(1.0)
    );
    app.cancel(&id).await;
    assert_eq!(
        sample(&app.metrics().await, "restop_executions_overdue"),
        Some(0.0)
    );
}

async fn metrics_move(db: TestDb) {
    let api = api(&db).await;
    api.trigger("counted").await;
    api.aws.add(
        "arn:aws:rds:us-east-1:123456789012:db:looked-up",
        "available",
        &[],
    );
    let by_name = api
        .post(
            "/v1/executions",
            json!({"db_instance_identifier": "looked-up", "region": "us-east-1"}),
        )
        .await;
    assert_eq!(by_name.status, 201);
    api.get("/v1/executions").await;
    let mut forged = api.stub.notification("x");
    forged["Message"] = "changed".into();
    assert_eq!(api.app.post_sns(&forged).await.0, 403);
    let metrics = api.app.metrics().await;
    for needle in [
        "restop_sns_refusals_total{reason=\"invalid_signature\"} 1",
        "restop_http_request_duration_seconds_count{route=\"/v1/executions\",method=\"GET\",status=\"200\"} 1",
        "restop_http_request_duration_seconds_count{route=\"/v1/executions\",method=\"POST\",status=\"201\"} 2",
        "restop_executions{status=\"pending\",outcome=\"\"} 2",
        "restop_active_jobs 2",
        "restop_aws_calls_total{operation=\"DescribeDBInstances\",account=\"123456789012\",region=\"us-east-1\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
}

async fn metrics_can_have_a_listener_of_their_own(db: TestDb) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = config(&db.url, None);
    cfg.metrics_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let app = TestApp::spawn(cfg).await;
    let main = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), 404);
    let mut apart = None;
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            apart = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let apart = apart.expect("the metrics listener answers");
    assert_eq!(apart.status(), 200);
    assert!(
        apart
            .text()
            .await
            .unwrap()
            .contains("# TYPE restop_sns_messages_total counter")
    );
}
