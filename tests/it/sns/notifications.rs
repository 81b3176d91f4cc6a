//! Notifications over real HTTP: RDS events stored with what restop read from them,
//! everything else stored as ignored, and no message stored twice. Every test runs on
//! Postgres and on SQLite.

use serde_json::{Value, json};

use super::start;
use crate::on_both_backends;
use crate::support::db::{Backend, TestDb};
use crate::support::sns::{self, SnsStub};
use crate::support::{TestApp, config, error_code};
use restop::config::CommaList;

on_both_backends!(
    accepted_instance_and_cluster_events_are_stored,
    other_events_and_non_rds_messages_are_ignored,
    redelivery_is_stored_once,
    concurrent_redeliveries_are_stored_once,
    events_about_other_accounts_or_regions_are_not_acted_on,
    a_member_topic_speaks_only_for_its_own_account,
    a_nul_character_is_kept_and_spoils_no_batch,
);

async fn accepted_instance_and_cluster_events_are_stored(db: TestDb) {
    let (stub, app) = start(&db).await;
    let instance = stub.rds_notification("RDS-EVENT-0154", "db-instance", "orders-db");
    let (status, body) = app.post_sns(&instance).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["disposition"], "accepted");
    assert_eq!(body["duplicate"], false);

    let id = instance["MessageId"].as_str().unwrap();
    assert_eq!(
        db.message_disposition(id).await.as_deref(),
        Some("accepted")
    );
    let column = |c: &str| format!("SELECT {c} FROM sns_messages WHERE message_id = $1");
    assert_eq!(
        db.text(&column("event_id"), id).await.as_deref(),
        Some("RDS-EVENT-0154")
    );
    assert_eq!(
        db.text(&column("source_type"), id).await.as_deref(),
        Some("db-instance")
    );
    assert_eq!(
        db.text(&column("source_id"), id).await.as_deref(),
        Some("orders-db")
    );
    assert_eq!(
        db.text(&column("source_arn"), id).await.as_deref(),
        Some("arn:aws:rds:us-east-1:123456789012:db:orders-db")
    );
    assert_eq!(
        db.text(&column("account_id"), id).await.as_deref(),
        Some("123456789012")
    );

    let cluster = stub.rds_notification("RDS-EVENT-0153", "db-cluster", "aurora-main");
    let (status, body) = app.post_sns(&cluster).await;
    assert_eq!((status, &body["disposition"]), (200, &json!("accepted")));
    let id = cluster["MessageId"].as_str().unwrap();
    assert_eq!(
        db.text(&column("source_type"), id).await.as_deref(),
        Some("db-cluster")
    );
    assert!(
        app.metrics()
            .await
            .contains("restop_sns_messages_total{type=\"Notification\",result=\"accepted\"} 2")
    );
}

async fn other_events_and_non_rds_messages_are_ignored(db: TestDb) {
    let (stub, app) = start(&db).await;
    for msg in [
        stub.rds_notification("RDS-EVENT-0088", "db-instance", "orders-db"),
        stub.rds_notification("RDS-EVENT-0154", "db-snapshot", "snap-1"),
        stub.notification("plain text, not JSON"),
        stub.notification(r#"{"notificationType":"Bounce"}"#),
    ] {
        let (status, body) = app.post_sns(&msg).await;
        assert_eq!(
            (status, &body["disposition"]),
            (200, &json!("ignored")),
            "{msg}"
        );
        let id = msg["MessageId"].as_str().unwrap();
        assert_eq!(db.message_disposition(id).await.as_deref(), Some("ignored"));
        let reason = db
            .text(
                "SELECT disposition_reason FROM sns_messages WHERE message_id = $1",
                id,
            )
            .await;
        assert!(reason.is_some_and(|r| !r.is_empty()));
    }
    assert_eq!(db.message_count().await, 4);
}

async fn redelivery_is_stored_once(db: TestDb) {
    let (stub, app) = start(&db).await;
    let msg = stub.rds_notification("RDS-EVENT-0154", "db-instance", "orders-db");
    assert_eq!(app.post_sns(&msg).await.0, 200);
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!(status, 200);
    assert_eq!(body["duplicate"], true);
    assert_eq!(body["disposition"], "accepted");
    assert_eq!(db.message_count().await, 1);
}

/// SNS may retry while the first delivery is still being written: the copies land in one
/// batch, and exactly one of them is the new message.
async fn concurrent_redeliveries_are_stored_once(db: TestDb) {
    let (stub, app) = start(&db).await;
    let msg = stub.rds_notification("RDS-EVENT-0006", "db-instance", "orders-db");
    let others: Vec<Value> = (0..12)
        .map(|_| stub.rds_notification("RDS-EVENT-0006", "db-instance", "x"))
        .collect();
    let posts = (0..8)
        .map(|_| app.post_sns(&msg))
        .chain(others.iter().map(|m| app.post_sns(m)));
    let answers = futures::future::join_all(posts).await;
    assert!(
        answers.iter().all(|(status, _)| *status == 200),
        "{answers:?}"
    );
    let fresh = answers[..8]
        .iter()
        .filter(|(_, body)| body["duplicate"] == false)
        .count();
    assert_eq!(fresh, 1, "{answers:?}");
    assert!(
        answers[..8]
            .iter()
            .all(|(_, body)| body["disposition"] == "ignored")
    );
    assert_eq!(db.message_count().await, 13);
}

async fn events_about_other_accounts_or_regions_are_not_acted_on(db: TestDb) {
    let (stub, app) = start(&db).await;
    let other_account = "arn:aws:rds:us-east-1:999999999999:db:orders";
    let other_region = "arn:aws:rds:eu-west-1:123456789012:db:orders";
    let eventbridge = json!({
        "version": "0", "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "RDS DB Instance Event", "source": "aws.rds",
        "account": "999999999999", "time": "2026-11-26T07:22:41Z", "region": "us-east-1",
        "resources": [other_account],
        "detail": {"EventCategories": ["notification"], "SourceType": "DB_INSTANCE",
                   "SourceArn": other_account, "Date": "2026-11-26T07:22:41.245Z",
                   "Message": "DB instance is being started due to it exceeding the maximum allowed time being stopped.",
                   "SourceIdentifier": "orders", "EventID": "RDS-EVENT-0154"}
    });
    for message in [
        sns::rds_event_message_for("RDS-EVENT-0154", "db-instance", "orders", other_account),
        sns::rds_event_message_for("RDS-EVENT-0154", "db-instance", "orders", other_region),
        eventbridge.to_string(),
    ] {
        let msg = stub.notification(&message);
        let (status, body) = app.post_sns(&msg).await;
        // 2xx: SNS must not deliver it again.
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["disposition"], "ignored", "{message}");
        assert_eq!(body["execution_id"], Value::Null);
        let id = msg["MessageId"].as_str().unwrap();
        assert_eq!(
            db.text(
                "SELECT disposition_reason FROM sns_messages WHERE message_id = $1",
                id
            )
            .await
            .as_deref(),
            Some("foreign_resource")
        );
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM executions").await, 0);
    assert!(app.metrics().await.contains(
        "restop_sns_messages_total{type=\"Notification\",result=\"foreign_resource\"} 3"
    ));
}

/// Member B's topic could carry anyone's publish in B: it may not name C's database. The
/// central topic, in restop's own account, speaks for every member.
async fn a_member_topic_speaks_only_for_its_own_account(db: TestDb) {
    let stub = SnsStub::start().await;
    let (member_b, member_c) = ("222222222222", "333333333333");
    let topic_of = |account: &str| format!("arn:aws:sns:us-east-1:{account}:rds-events");
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.sns.topic_arns = CommaList(
        [
            sns::TOPIC.to_owned(),
            topic_of(member_b),
            topic_of(member_c),
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect(),
    );
    cfg.accounts.accounts = CommaList(vec![member_b.parse().unwrap(), member_c.parse().unwrap()]);
    let app = TestApp::spawn(cfg).await;
    let c_database = format!("arn:aws:rds:us-east-1:{member_c}:db:orders");
    let event = sns::rds_event_message_for("RDS-EVENT-0154", "db-instance", "orders", &c_database);

    let from_b = stub.notification_on(&topic_of(member_b), &event);
    let (status, body) = app.post_sns(&from_b).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("ignored")),
        "{body}"
    );
    let reason = "SELECT disposition_reason FROM sns_messages WHERE message_id = $1";
    assert_eq!(
        db.text(reason, from_b["MessageId"].as_str().unwrap())
            .await
            .as_deref(),
        Some("foreign_resource")
    );

    let from_central = stub.notification_on(sns::TOPIC, &event);
    let (status, body) = app.post_sns(&from_central).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("accepted")),
        "{body}"
    );
}

async fn a_nul_character_is_kept_and_spoils_no_batch(db: TestDb) {
    let (stub, app) = start(&db).await;
    // U+0000 is legal JSON, so a legal SNS Message, and illegal in a Postgres TEXT.
    let with_nul = stub.notification("before\u{0}after");
    let mut plain: Vec<Value> = (0..20)
        .map(|i| stub.notification(&format!("m{i}")))
        .collect();
    plain.push(with_nul.clone());
    let posts = plain.iter().map(|m| app.post_sns(m));
    for (status, body) in futures::future::join_all(posts).await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(db.message_count().await, 21);
    let id = with_nul["MessageId"].as_str().unwrap();
    let stored: Value = app
        .client
        .get(format!("{}/v1/messages/{id}", app.base))
        .bearer_auth(crate::support::TOKENS[0])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["message"], "before\u{0}after");

    // A row the database does refuse fails its own delivery only: on Postgres, U+0000 in
    // a Subject (a TEXT column; SNS itself never sends one).
    let mut bad = stub.unsigned_notification("x");
    bad["Subject"] = "bad\u{0}subject".into();
    stub.signer.sign(&mut bad);
    let good: Vec<Value> = (0..20)
        .map(|i| stub.notification(&format!("g{i}")))
        .collect();
    let posts = good.iter().chain([&bad]).map(|m| app.post_sns(m));
    let answers = futures::future::join_all(posts).await;
    for (status, body) in &answers[..20] {
        assert_eq!(*status, 200, "{body}");
    }
    let (status, body) = &answers[20];
    match db.backend {
        Backend::Postgres => assert_eq!((*status, error_code(body)), (503, "storage_unavailable")),
        Backend::Sqlite => assert_eq!(*status, 200, "{body}"),
    }
    for msg in &good {
        let id = msg["MessageId"].as_str().unwrap();
        assert!(db.message_disposition(id).await.is_some(), "{id} lost");
    }
}
