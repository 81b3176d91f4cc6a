//! `/metrics` follows what happens: executions ending (engine, cancel), subscriptions,
//! executions past their deadline; series an alert watches exist at 0 from start-up.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use restop::clock::{Clock, ManualClock, SystemClock};
use serde_json::json;

use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::fake_aws::FakeAws;
use crate::support::sns::{SnsStub, TOPIC};
use crate::support::{TestApp, config};

on_both_backends!(
    finished_executions_are_counted_by_outcome,
    overdue_executions_and_subscriptions_are_gauges,
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
