//! What survives: restop killed with SIGKILL mid-execution, and end-of-execution
//! notifications that fail before they succeed.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_rds::types::Tag;
use serde_json::Value;

use crate::on_both_backends;
use crate::support::binary::{Served, restop_command, spawn_restop};
use crate::support::db::TestDb;
use crate::support::moto::{Moto, new_instance};
use crate::support::sns::{SnsStub, TOPIC};
use crate::support::webhook::Webhook;
use crate::support::{TestApp, config};

on_both_backends!(
    sigkill_mid_execution_loses_nothing_and_repeats_no_step,
    a_failed_notification_is_retried_and_never_changes_the_outcome,
    a_crash_right_after_the_stop_call_still_ends_stopped,
    an_unsubscription_is_announced,
);

/// `restop serve` as a child process, on this database, fake SNS and moto.
async fn serve(db: &TestDb, stub: &SnsStub, moto: &Moto) -> Served {
    let mut command = restop_command();
    command
        .env("DATABASE_URL", &db.url)
        .env("RESTOP_TOPIC_ARNS", TOPIC)
        .env("RESTOP_SNS_EXTRA_HOSTS", &stub.host)
        .env("RESTOP_POLL_INTERVAL", "1s")
        .env("RESTOP_START_GRACE", "5s")
        .env("RESTOP_JOB_LEASE", "2s")
        .env("RESTOP_AWS_TIMEOUT", "1s")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "restop=debug");
    spawn_restop(command).await
}

async fn steps(db: &TestDb, execution: &str) -> Vec<String> {
    let count = db
        .count(&format!(
            "SELECT COUNT(*) FROM execution_steps WHERE execution_id = '{execution}'"
        ))
        .await;
    let mut out = Vec::new();
    for seq in 1..=count {
        let sql = |c: &str| {
            format!("SELECT {c} FROM execution_steps WHERE execution_id = $1 AND seq = {seq}")
        };
        out.push(format!(
            "{} {}",
            db.text(&sql("step"), execution).await.unwrap(),
            db.text(&sql("action"), execution).await.unwrap()
        ));
    }
    out
}

async fn wait_for_step(db: &TestDb, execution: &str, prefix: &str) {
    for _ in 0..200 {
        if steps(db, execution)
            .await
            .iter()
            .any(|s| s.starts_with(prefix))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no step {prefix}: {:?}", steps(db, execution).await);
}

async fn sigkill_mid_execution_loses_nothing_and_repeats_no_step(db: TestDb) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let stub = SnsStub::start().await;
    let rds = moto.rds().await;
    let tags = [
        ("auto-restart-protection", "yes"),
        ("moto:start-seconds", "3"),
        ("moto:stop-seconds", "4"),
    ]
    .map(|(k, v)| Tag::builder().key(k).value(v).build());
    rds.create_db_instance()
        .db_instance_identifier("survivor")
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("password123")
        .set_tags(Some(tags.to_vec()))
        .send()
        .await
        .unwrap();
    rds.stop_db_instance()
        .db_instance_identifier("survivor")
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    rds.start_db_instance()
        .db_instance_identifier("survivor")
        .send()
        .await
        .unwrap();

    // First process: killed while it waits for `available`.
    let first = serve(&db, &stub, &moto).await;
    let msg = stub.rds_notification("RDS-EVENT-0154", "db-instance", "survivor");
    let response = reqwest::Client::new()
        .post(format!("{}/sns", first.base))
        .body(msg.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let execution = response.json::<Value>().await.unwrap()["execution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for_step(&db, &execution, "wait_available starting").await;
    first.kill().await;

    // Second process: takes over after the lease, killed once the stop is under way.
    let second = serve(&db, &stub, &moto).await;
    wait_for_step(&db, &execution, "stop stop requested").await;
    second.kill().await;

    // Third process: finishes it.
    let third = serve(&db, &stub, &moto).await;
    for _ in 0..300 {
        let status = db
            .text("SELECT status FROM executions WHERE id = $1", &execution)
            .await
            .unwrap();
        if status == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    third.kill().await;

    let outcome = db
        .text("SELECT outcome FROM executions WHERE id = $1", &execution)
        .await;
    let history = steps(&db, &execution).await;
    assert_eq!(outcome.as_deref(), Some("stopped"), "{history:?}");
    let once = |prefix: &str| history.iter().filter(|s| s.starts_with(prefix)).count();
    assert_eq!(once("check_protection"), 1, "{history:?}");
    assert_eq!(once("stop stop requested"), 1, "{history:?}");
    assert_eq!(once("wait_stopped finish: stopped"), 1, "{history:?}");
    assert_eq!(history.last().unwrap(), "wait_stopped finish: stopped");
    // No row repeats its predecessor: identical observations are merged, never re-inserted.
    assert!(history.windows(2).all(|w| w[0] != w[1]), "{history:?}");
    assert_eq!(db.count("SELECT COUNT(*) FROM executions").await, 1);
}

async fn a_failed_notification_is_retried_and_never_changes_the_outcome(db: TestDb) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let stub = SnsStub::start().await;
    let webhook = Webhook::start(vec![500, 503]).await;

    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.engine.engine_enabled = true;
    cfg.engine.notify_url = Some(webhook.url.parse().unwrap());
    let app = TestApp::spawn_with(
        cfg,
        Arc::new(restop::clock::SystemClock),
        Some(moto.aws().await),
    )
    .await;

    // Untagged: the execution ends at once as skipped / not_protected.
    new_instance(&moto.rds().await, "plain")
        .send()
        .await
        .unwrap();
    let (_, body) = app
        .post_sns(&stub.rds_notification("RDS-EVENT-0154", "db-instance", "plain"))
        .await;
    let execution = body["execution_id"].as_str().unwrap().to_owned();

    for _ in 0..200 {
        if db
            .text(
                "SELECT notify_state FROM executions WHERE id = $1",
                &execution,
            )
            .await
            .as_deref()
            == Some("sent")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        db.text(
            "SELECT notify_state FROM executions WHERE id = $1",
            &execution
        )
        .await
        .as_deref(),
        Some("sent")
    );
    assert_eq!(
        db.text("SELECT status FROM executions WHERE id = $1", &execution)
            .await
            .as_deref(),
        Some("skipped")
    );
    assert_eq!(
        db.text("SELECT outcome FROM executions WHERE id = $1", &execution)
            .await
            .as_deref(),
        Some("not_protected")
    );
    assert_eq!(
        db.count(&format!(
            "SELECT CAST(notify_attempts AS BIGINT) FROM executions WHERE id = '{execution}'"
        ))
        .await,
        3
    );

    let received = webhook.received();
    assert_eq!(received.len(), 3);
    let summary = &received[2];
    assert_eq!(summary["event"], "execution_finished");
    assert_eq!(summary["execution_id"], execution.as_str());
    assert_eq!(summary["link"], format!("/v1/executions/{execution}"));
    assert_eq!(summary["resource_id"], "plain");
    assert_eq!(summary["status"], "skipped");
    assert_eq!(summary["outcome"], "not_protected");
    assert!(summary["duration_seconds"].as_f64().is_some());
    let history = steps(&db, &execution).await;
    assert_eq!(
        history
            .iter()
            .filter(|s| s.starts_with("notify retry"))
            .count(),
        2,
        "{history:?}"
    );
    assert!(
        history.last().unwrap().starts_with("notify sent"),
        "{history:?}"
    );
}

async fn a_crash_right_after_the_stop_call_still_ends_stopped(db: TestDb) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let stub = SnsStub::start().await;
    let rds = moto.rds().await;
    let tags =
        [("auto-restart-protection", "yes")].map(|(k, v)| Tag::builder().key(k).value(v).build());
    rds.create_db_instance()
        .db_instance_identifier("interrupted")
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("password123")
        .set_tags(Some(tags.to_vec()))
        .send()
        .await
        .unwrap();
    // The stop request reaches RDS two seconds after restop made it: restop dies meanwhile,
    // so the stop happens but its answer is never recorded.
    moto.fault(serde_json::json!({"action": "StopDBInstance", "code": null,
                                  "delay_seconds": 2, "resource": "interrupted"}))
        .await;
    let first = serve(&db, &stub, &moto).await;
    let msg = stub.rds_notification("RDS-EVENT-0154", "db-instance", "interrupted");
    let response = reqwest::Client::new()
        .post(format!("{}/sns", first.base))
        .body(msg.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let execution = response.json::<Value>().await.unwrap()["execution_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..200 {
        if moto.count_calls("StopDBInstance").await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().await;

    let second = serve(&db, &stub, &moto).await;
    let mut status = String::new();
    for _ in 0..300 {
        status = db
            .text("SELECT status FROM executions WHERE id = $1", &execution)
            .await
            .unwrap();
        if status != "pending" && status != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.kill().await;
    let outcome = db
        .text("SELECT outcome FROM executions WHERE id = $1", &execution)
        .await;
    let history = steps(&db, &execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_deref()),
        ("succeeded", Some("stopped")),
        "{history:?}"
    );
}

async fn an_unsubscription_is_announced(db: TestDb) {
    let stub = SnsStub::start().await;
    let webhook = Webhook::start(Vec::new()).await;
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.engine.notify_url = Some(webhook.url.parse().unwrap());
    let app = TestApp::spawn(cfg).await;

    let msg = stub.confirmation("UnsubscribeConfirmation", "tok-gone");
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &serde_json::json!("unsubscribed"))
    );
    let mut received = Vec::new();
    for _ in 0..100 {
        received = webhook.received();
        if !received.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["event"], "unsubscribed");
    assert_eq!(received[0]["topic_arn"], TOPIC);
    assert_eq!(received[0]["message_id"], msg["MessageId"]);
    assert!(received[0]["at"].as_str().is_some());
    assert!(app.metrics().await.contains(&format!(
        "restop_unsubscriptions_total{{topic=\"{TOPIC}\"}} 1"
    )));
    // A redelivery is no second announcement.
    app.post_sns(&msg).await;
    assert_eq!(webhook.received().len(), 1);
}
