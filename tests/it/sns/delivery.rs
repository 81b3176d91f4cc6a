//! `POST /sns` end to end over real HTTP, with messages signed by our own test key and the
//! certificate served by a local fake SNS. Every test runs on Postgres and on SQLite.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use restop::clock::{Clock, ManualClock};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::db::{Backend, TestDb};
use crate::support::proxy::CuttableProxy;
use crate::support::sns::{self, CERT_HASH, SigningKey, SnsStub, TOPIC, sns_timestamp};
use crate::support::{TestApp, config, error_code};

on_both_backends!(
    accepted_instance_and_cluster_events_are_stored,
    other_events_and_non_rds_messages_are_ignored,
    redelivery_is_stored_once,
    concurrent_redeliveries_are_stored_once,
    stale_and_future_timestamps_are_refused,
    disallowed_topic_is_refused_without_fetching,
    every_refused_signing_cert_url,
    tampered_signed_fields_are_refused,
    unsupported_signature_versions_are_refused,
    certificate_problems_are_refused,
    certificate_trouble_answers_503_and_is_tried_again_after_a_pause,
    an_unreadable_certificate_file_answers_503,
    certificate_is_fetched_once,
    certificate_directory_avoids_the_fetch,
    subscription_is_confirmed_exactly_once,
    failed_confirmation_answers_503_and_is_retried,
    auto_confirm_off_records_for_an_operator,
    unsubscribe_confirmation_is_never_visited,
    tampered_subscribe_urls_are_refused,
    basic_auth_is_required_when_configured,
    oversized_malformed_and_raw_bodies_are_refused,
    database_down_answers_503_and_loses_nothing,
    no_listed_topic_trusts_no_topic,
    events_about_other_accounts_or_regions_are_not_acted_on,
    a_nul_character_is_kept_and_spoils_no_batch,
    long_topic_arns_and_bad_paths_answer_the_error_shape,
    a_full_sns_door_answers_503_so_sns_retries,
    metrics_can_have_a_listener_of_their_own,
);

async fn start(db: &TestDb) -> (SnsStub, TestApp) {
    let stub = SnsStub::start().await;
    let app = TestApp::spawn(config(&db.url, Some(&stub.host))).await;
    (stub, app)
}

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

async fn assert_refused(app: &TestApp, db: &TestDb, msg: &Value, status: u16, code: &str) {
    let before = db.message_count().await;
    let (got, body) = app.post_sns(msg).await;
    assert_eq!((got, error_code(&body)), (status, code), "{msg} -> {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(
        db.message_count().await,
        before,
        "a refused message changed stored data"
    );
}

async fn stale_and_future_timestamps_are_refused(db: TestDb) {
    let (stub, app) = start(&db).await;
    for (age_minutes, code) in [(61, "stale_message"), (-6, "future_message")] {
        let mut msg = stub.unsigned_notification("x");
        msg["Timestamp"] =
            sns_timestamp(Utc::now() - chrono::Duration::minutes(age_minutes)).into();
        stub.signer.sign(&mut msg);
        assert_refused(&app, &db, &msg, 403, code).await;
    }
    // Inside the window on both sides.
    for age_minutes in [59, -4] {
        let mut msg = stub.unsigned_notification("x");
        msg["Timestamp"] =
            sns_timestamp(Utc::now() - chrono::Duration::minutes(age_minutes)).into();
        stub.signer.sign(&mut msg);
        assert_eq!(app.post_sns(&msg).await.0, 200);
    }
}

async fn disallowed_topic_is_refused_without_fetching(db: TestDb) {
    let (stub, app) = start(&db).await;
    let mut msg = stub.unsigned_notification("x");
    msg["TopicArn"] = "arn:aws:sns:us-east-1:123456789012:someone-else".into();
    stub.signer.sign(&mut msg);
    assert_refused(&app, &db, &msg, 403, "topic_not_allowed").await;
    assert_eq!(stub.cert_fetches(), 0);
}

async fn every_refused_signing_cert_url(db: TestDb) {
    let (stub, app) = start(&db).await;
    let path = format!("/SimpleNotificationService-{CERT_HASH}.pem");
    let host = &stub.host;
    let forms = [
        format!("https://sns.us-east-1.amazonaws.com.evil.com{path}"),
        format!("https://sns.us-east-1.amazonaws.com.{path}"),
        format!("https://mybucket.s3.amazonaws.com{path}"),
        format!("https://sns-bucket.s3-website-us-east-1.amazonaws.com{path}"),
        format!("https://sqs.us-east-1.amazonaws.com{path}"),
        format!("https://54.239.28.85{path}"),
        format!("https://sns.us-east-1.amazonaws.com@evil.com{path}"),
        "https://evil.com/x?.pem".to_owned(),
        format!("https://evil.com/?u=https://sns.us-east-1.amazonaws.com{path}"),
        format!("https://sns.us-east-1.amazonaws.com\\@evil.com{path}"),
        format!("http://sns.us-east-1.amazonaws.com{path}"),
        format!("https://sns.us-east-1.amazonaws.com:444{path}"),
        format!("https://sns.eu-west-1.amazonaws.com{path}"),
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem".to_owned(),
        // The trusted test host itself, bent: other path, userinfo, query, fragment, port.
        format!("http://{host}/other.pem"),
        format!("http://user@{host}{path}"),
        format!("http://{host}{path}?x=1"),
        format!("http://{host}{path}#x"),
        format!(
            "http://127.0.0.2:{}{path}",
            host.rsplit(':').next().unwrap()
        ),
    ];
    for url in forms {
        let mut msg = stub.unsigned_notification("x");
        msg["SigningCertURL"] = url.clone().into();
        stub.signer.sign(&mut msg);
        assert_refused(&app, &db, &msg, 403, "invalid_signing_cert_url").await;
    }
    assert_eq!(stub.cert_fetches(), 0, "a refused URL was fetched");
    assert!(
        app.metrics()
            .await
            .contains("restop_sns_refusals_total{reason=\"invalid_signing_cert_url\"} 19")
    );
}

async fn tampered_signed_fields_are_refused(db: TestDb) {
    let (stub, app) = start(&db).await;
    let mut with_subject = stub.unsigned_notification("x");
    with_subject["Subject"] = "RDS Notification Message".into();
    stub.signer.sign(&mut with_subject);
    for field in ["Message", "MessageId", "Subject", "Timestamp"] {
        let mut msg = with_subject.clone();
        msg[field] = match field {
            "Timestamp" => sns_timestamp(Utc::now() - chrono::Duration::seconds(1)).into(),
            _ => format!("{}!", msg[field].as_str().unwrap()).into(),
        };
        assert_refused(&app, &db, &msg, 403, "invalid_signature").await;
    }
    let mut no_subject = with_subject.clone();
    no_subject.as_object_mut().unwrap().remove("Subject");
    assert_refused(&app, &db, &no_subject, 403, "invalid_signature").await;

    // Unsigned fields may change.
    let mut msg = with_subject.clone();
    msg["UnsubscribeURL"] = "https://example.com/elsewhere".into();
    msg["MessageAttributes"] = json!({"EventID": {"Type": "String", "Value": "RDS-EVENT-0154"}});
    assert_eq!(app.post_sns(&msg).await.0, 200);
}

async fn unsupported_signature_versions_are_refused(db: TestDb) {
    let (stub, app) = start(&db).await;
    for version in ["3", "0", ""] {
        let mut msg = stub.notification("x");
        msg["SignatureVersion"] = version.into();
        assert_refused(&app, &db, &msg, 403, "invalid_signature").await;
    }
    // Version 1 signed with SHA-1 but claimed as version 2, and the reverse.
    let mut v1 = stub.unsigned_notification("x");
    v1["SignatureVersion"] = "1".into();
    stub.signer.sign(&mut v1);
    let mut claimed_v2 = v1.clone();
    claimed_v2["SignatureVersion"] = "2".into();
    assert_refused(&app, &db, &claimed_v2, 403, "invalid_signature").await;
    assert_eq!(app.post_sns(&v1).await.0, 200);

    let mut garbage = stub.notification("x");
    garbage["Signature"] = "not base64!".into();
    assert_refused(&app, &db, &garbage, 403, "invalid_signature").await;
}

async fn certificate_problems_are_refused(db: TestDb) {
    let now = Utc::now();
    let day = chrono::Duration::days(1);
    let cases = [
        SigningKey::generate("evil.example.com", now - day, now + day),
        SigningKey::generate("sns.amazonaws.com.evil.com", now - day, now + day),
        SigningKey::generate("sns.amazonaws.com", now - day * 10, now - day),
        SigningKey::generate("sns.amazonaws.com", now + day, now + day * 10),
    ];
    for signer in cases {
        let stub = SnsStub::start_with(signer).await;
        let app = TestApp::spawn(config(&db.url, Some(&stub.host))).await;
        assert_refused(
            &app,
            &db,
            &stub.notification("x"),
            403,
            "invalid_certificate",
        )
        .await;
        app.stop().await;
    }

    // A genuine certificate wrapped in other text, and two certificates, are refused.
    let (stub, app) = start(&db).await;
    let pem = stub.signer.cert_pem.clone();
    for body in [
        format!("<html>{pem}</html>"),
        format!("{pem}{pem}"),
        "junk".to_owned(),
    ] {
        stub.set(|s| s.cert_body = body);
        let msg = stub.notification("x");
        assert_refused(&app, &db, &msg, 403, "invalid_certificate").await;
    }
    // A signature by a different key than the certificate's.
    stub.set(|s| s.cert_body = pem);
    let mut msg = stub.unsigned_notification("x");
    SigningKey::sns_like().sign(&mut msg);
    assert_refused(&app, &db, &msg, 403, "invalid_signature").await;
}

async fn certificate_trouble_answers_503_and_is_tried_again_after_a_pause(db: TestDb) {
    let stub = SnsStub::start().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = TestApp::spawn_with_clock(config(&db.url, Some(&stub.host)), clock.clone()).await;
    let msg = stub.notification("x");
    let later = |seconds| clock.set(clock.now() + chrono::Duration::seconds(seconds));

    stub.set(|s| s.cert_status = 500);
    assert_refused(&app, &db, &msg, 503, "certificate_unavailable").await;
    // SNS's next try, at once: the failure is remembered, the host is not asked again.
    assert_refused(&app, &db, &msg, 503, "certificate_unavailable").await;
    assert_eq!(stub.cert_fetches(), 1);
    // What a host answers while a certificate is being published passes too.
    for status in [403, 404, 408, 429] {
        later(11);
        stub.set(|s| s.cert_status = status);
        assert_refused(&app, &db, &msg, 503, "certificate_unavailable").await;
    }
    assert_eq!(stub.cert_fetches(), 5);
    // Anything else is a refusal for good.
    later(11);
    stub.set(|s| s.cert_status = 400);
    assert_refused(&app, &db, &msg, 403, "invalid_certificate").await;
    later(11);
    stub.set(|s| s.cert_status = 200);
    assert_eq!(app.post_sns(&msg).await.0, 200);
    assert_eq!(stub.cert_fetches(), 7);

    // Nobody listening at all.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead_host = format!("127.0.0.1:{port}");
    let app = TestApp::spawn(config(&db.url, Some(&dead_host))).await;
    let mut msg = stub.unsigned_notification("x");
    msg["SigningCertURL"] =
        format!("http://{dead_host}/SimpleNotificationService-{CERT_HASH}.pem").into();
    stub.signer.sign(&mut msg);
    assert_refused(&app, &db, &msg, 503, "certificate_unavailable").await;
}

async fn certificate_is_fetched_once(db: TestDb) {
    let (stub, app) = start(&db).await;
    let messages: Vec<Value> = (0..16).map(|_| stub.notification("x")).collect();
    let posts = messages.iter().map(|m| app.post_sns(m));
    for (status, body) in futures::future::join_all(posts).await {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(stub.cert_fetches(), 1);
    assert_eq!(db.message_count().await, 16);
}

async fn an_unreadable_certificate_file_answers_503(db: TestDb) {
    let stub = SnsStub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join(format!("SimpleNotificationService-{CERT_HASH}.pem"));
    // A directory where the file should be: reading it fails, even as root.
    std::fs::create_dir(&path).unwrap();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.sns.sns_cert_dir = Some(dir.path().to_owned());
    let app = TestApp::spawn_with_clock(cfg, clock.clone()).await;
    let msg = stub.notification("x");
    assert_refused(&app, &db, &msg, 503, "certificate_unavailable").await;
    // The operator fixes the file; SNS's retry goes through.
    std::fs::remove_dir(&path).unwrap();
    std::fs::write(&path, &stub.signer.cert_pem).unwrap();
    clock.set(clock.now() + chrono::Duration::seconds(11));
    assert_eq!(app.post_sns(&msg).await.0, 200);
    assert_eq!(
        stub.cert_fetches(),
        0,
        "the directory was used, not the network"
    );
}

async fn certificate_directory_avoids_the_fetch(db: TestDb) {
    let stub = SnsStub::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path()
            .join(format!("SimpleNotificationService-{CERT_HASH}.pem")),
        &stub.signer.cert_pem,
    )
    .unwrap();
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.sns.sns_cert_dir = Some(dir.path().to_owned());
    let app = TestApp::spawn(cfg).await;
    assert_eq!(app.post_sns(&stub.notification("x")).await.0, 200);
    assert_eq!(stub.cert_fetches(), 0);
}

async fn subscription_is_confirmed_exactly_once(db: TestDb) {
    let (stub, app) = start(&db).await;
    let msg = stub.confirmation("SubscriptionConfirmation", "tok-123");
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("confirmed")),
        "{body}"
    );
    let seen = stub.confirmations();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0],
        format!("Action=ConfirmSubscription&TopicArn={TOPIC}&Token=tok-123")
    );

    let subscription = |c: &str| format!("SELECT {c} FROM sns_subscriptions WHERE topic_arn = $1");
    assert_eq!(
        db.text(&subscription("status"), TOPIC).await.as_deref(),
        Some("confirmed")
    );
    assert_eq!(
        db.text(&subscription("subscription_arn"), TOPIC).await,
        Some(format!("{TOPIC}:6f8b1a34-7d2c-4a5e-9b1d-2c3e4f5a6b7c"))
    );
    let id = msg["MessageId"].as_str().unwrap();
    assert_eq!(
        db.message_disposition(id).await.as_deref(),
        Some("confirmed")
    );

    // A redelivery does not confirm again.
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!((status, &body["duplicate"]), (200, &json!(true)));
    assert_eq!(stub.confirmations().len(), 1);
}

async fn failed_confirmation_answers_503_and_is_retried(db: TestDb) {
    let (stub, app) = start(&db).await;
    stub.set(|s| s.confirm_status = 403);
    let msg = stub.confirmation("SubscriptionConfirmation", "tok");
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!((status, error_code(&body)), (503, "confirmation_failed"));
    let id = msg["MessageId"].as_str().unwrap();
    assert_eq!(
        db.message_disposition(id).await.as_deref(),
        Some("confirmation_failed")
    );
    let status_sql = "SELECT status FROM sns_subscriptions WHERE topic_arn = $1";
    assert_eq!(
        db.text(status_sql, TOPIC).await.as_deref(),
        Some("confirmation_failed")
    );
    assert!(
        db.text(
            "SELECT last_error FROM sns_subscriptions WHERE topic_arn = $1",
            TOPIC
        )
        .await
        .is_some_and(|e| e.contains("403"))
    );

    // SNS delivers again; this time SNS answers.
    stub.set(|s| s.confirm_status = 200);
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("confirmed")),
        "{body}"
    );
    assert_eq!(stub.confirmations().len(), 2);
    assert_eq!(
        db.text(status_sql, TOPIC).await.as_deref(),
        Some("confirmed")
    );
    assert_eq!(db.message_count().await, 1);
}

async fn auto_confirm_off_records_for_an_operator(db: TestDb) {
    let stub = SnsStub::start().await;
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.sns.sns_auto_confirm = false;
    let app = TestApp::spawn(cfg).await;
    let msg = stub.confirmation("SubscriptionConfirmation", "tok");
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("pending_confirmation"))
    );
    assert!(stub.confirmations().is_empty());
    let row = |c: &str| format!("SELECT {c} FROM sns_subscriptions WHERE topic_arn = $1");
    assert_eq!(
        db.text(&row("status"), TOPIC).await.as_deref(),
        Some("pending_confirmation")
    );
    assert_eq!(
        db.text(&row("subscribe_url"), TOPIC).await,
        Some(stub.subscribe_url(TOPIC, "tok"))
    );
}

async fn unsubscribe_confirmation_is_never_visited(db: TestDb) {
    let (stub, app) = start(&db).await;
    let msg = stub.confirmation("UnsubscribeConfirmation", "tok");
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("unsubscribed"))
    );
    assert!(stub.confirmations().is_empty());
    let status_sql = "SELECT status FROM sns_subscriptions WHERE topic_arn = $1";
    assert_eq!(
        db.text(status_sql, TOPIC).await.as_deref(),
        Some("unsubscribed")
    );
}

async fn tampered_subscribe_urls_are_refused(db: TestDb) {
    let (stub, app) = start(&db).await;
    let good = stub.subscribe_url(TOPIC, "tok");
    let tampered = [
        good.replace("Token=tok", "Token=other"),
        good.replace("rds-events", "rds-events-2"),
        good.replace("ConfirmSubscription", "Subscribe"),
        format!("{good}&Endpoint=https://evil.example.com"),
        good.replace(&stub.host, "sns.us-east-1.amazonaws.com.evil.com"),
        good.replace("http://", "http://user@"),
        good.replace("/?", "/evil?"),
    ];
    for url in tampered {
        let mut msg = stub.unsigned_confirmation("SubscriptionConfirmation", "tok");
        msg["SubscribeURL"] = url.into();
        stub.signer.sign(&mut msg);
        assert_refused(&app, &db, &msg, 403, "invalid_subscribe_url").await;
    }
    assert!(stub.confirmations().is_empty());
    assert_eq!(db.count("SELECT COUNT(*) FROM sns_subscriptions").await, 0);
}

async fn basic_auth_is_required_when_configured(db: TestDb) {
    let stub = SnsStub::start().await;
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.sns.sns_basic_auth = Some("sns:s3cret-pass".parse().unwrap());
    let app = TestApp::spawn(cfg).await;
    let msg = stub.notification("x").to_string();
    let url = format!("{}/sns", app.base);

    let response = app
        .client
        .post(&url)
        .body(msg.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(error_code(&body), "unauthorized");

    for (user, password) in [
        ("sns", "wrong"),
        ("other", "s3cret-pass"),
        ("sns", "s3cret-pass-"),
    ] {
        let response = app
            .client
            .post(&url)
            .basic_auth(user, Some(password))
            .body(msg.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{user}:{password}");
    }
    assert_eq!(db.message_count().await, 0);

    let response = app
        .client
        .post(&url)
        .basic_auth("sns", Some("s3cret-pass"))
        .body(msg)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(db.message_count().await, 1);
}

async fn oversized_malformed_and_raw_bodies_are_refused(db: TestDb) {
    let (stub, app) = start(&db).await;
    let (status, body) = post_announcing_length(&app, 3 * 1024 * 1024).await;
    assert_eq!((status, error_code(&body)), (413, "body_too_large"));
    let (status, body) = post_chunked(&app, 3 * 1024 * 1024).await;
    assert_eq!((status, error_code(&body)), (413, "body_too_large"));

    let signed = stub.notification("x").to_string();
    let malformed = [
        "".to_owned(),
        "not json".to_owned(),
        "[]".to_owned(),
        signed[..signed.len() - 1].to_owned(),
        signed.replacen("{", "{\"Type\":\"Notification\",", 1),
        signed.replacen("\"Message\":\"x\"", "\"Message\":7", 1),
        json!({"Type": "Notification"}).to_string(),
    ];
    for body in malformed {
        let (status, answer) = app.post_raw(body.clone(), &[]).await;
        assert_eq!(
            (status, error_code(&answer)),
            (400, "malformed_message"),
            "{body}"
        );
    }

    let (status, body) = app
        .post_raw(signed.clone(), &[("x-amz-sns-rawdelivery", "true")])
        .await;
    assert_eq!((status, error_code(&body)), (400, "raw_delivery"));
    assert_eq!(db.message_count().await, 0);

    // Content-Type does not matter.
    let (status, _) = app
        .post_raw(signed, &[("content-type", "application/xml")])
        .await;
    assert_eq!(status, 200);
}

async fn database_down_answers_503_and_loses_nothing(db: TestDb) {
    let stub = SnsStub::start().await;
    // Postgres goes through a proxy that can cut the line; SQLite is held locked by another writer.
    let proxy = match db.backend {
        Backend::Postgres => {
            let url = url::Url::parse(&db.url).unwrap();
            let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
            Some(CuttableProxy::start(upstream).await)
        }
        Backend::Sqlite => None,
    };
    let app_url = match &proxy {
        Some(proxy) => {
            let mut url = url::Url::parse(&db.url).unwrap();
            let (host, port) = proxy.addr.split_once(':').unwrap();
            url.set_host(Some(host)).unwrap();
            url.set_port(Some(port.parse().unwrap())).unwrap();
            url.to_string()
        }
        None => db.url.clone(),
    };
    let app = TestApp::spawn(config(&app_url, Some(&stub.host))).await;
    let first = stub.rds_notification("RDS-EVENT-0154", "db-instance", "a");
    assert_eq!(app.post_sns(&first).await.0, 200);

    let mut lock = None;
    match &proxy {
        Some(proxy) => proxy.cut(),
        None => {
            let mut tx = db.sqlite_pool().begin().await.unwrap();
            sqlx::query("INSERT INTO sns_subscriptions (topic_arn, status, last_message_id, first_seen_at, updated_at) VALUES ('lock', 'x', 'x', 'x', 'x')")
                .execute(&mut *tx)
                .await
                .unwrap();
            lock = Some(tx);
        }
    }
    let msg = stub.rds_notification("RDS-EVENT-0154", "db-instance", "b");
    let started = Instant::now();
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!(
        (status, error_code(&body)),
        (503, "storage_unavailable"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    if proxy.is_some() {
        assert_eq!(ready.status(), 503);
    }

    match &proxy {
        Some(proxy) => proxy.restore(),
        None => lock.take().unwrap().rollback().await.unwrap(),
    }
    // SNS retries the same message; it is stored now, once.
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!((status, &body["duplicate"]), (200, &json!(false)), "{body}");
    let id = msg["MessageId"].as_str().unwrap();
    assert_eq!(
        db.message_disposition(id).await.as_deref(),
        Some("accepted")
    );
    assert_eq!(db.message_count().await, 2);
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

/// Announces a body of `length` bytes but sends only its start, the way a client does that
/// has not finished uploading: restop must answer from the announced length alone. (A client
/// that keeps writing after the answer sees the connection close, so reqwest cannot be used.)
async fn post_announcing_length(app: &TestApp, length: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /sns HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b' '; 64 * 1024]).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Streams `length` bytes in chunks, without announcing a length: restop reads up to its
/// limit, then refuses. The upload may be cut off once the answer is out.
async fn post_chunked(app: &TestApp, length: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let upload = tokio::spawn(async move {
        let head =
            format!("POST /sns HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n");
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..length / chunk.len() {
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the headers and the JSON body are in.
    while !String::from_utf8_lossy(&answer).contains("}}") {
        let n = reader.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    upload.abort();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let json = body
        .find('{')
        .map(|start| &body[start..])
        .unwrap_or_default();
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

async fn no_listed_topic_trusts_no_topic(db: TestDb) {
    let stub = SnsStub::start().await;
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.sns.topic_arns.0.clear();
    let app = TestApp::spawn(cfg).await;
    let event = stub.rds_notification("RDS-EVENT-0154", "db-instance", "orders");
    assert_refused(&app, &db, &event, 403, "topic_not_allowed").await;
    let confirmation = stub.confirmation("SubscriptionConfirmation", "tok-1");
    assert_refused(&app, &db, &confirmation, 403, "topic_not_allowed").await;
    assert!(
        stub.confirmations().is_empty(),
        "a subscription was confirmed"
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM executions").await, 0);
    assert_eq!(db.count("SELECT COUNT(*) FROM sns_subscriptions").await, 0);
    // The API still works.
    let health = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
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

async fn long_topic_arns_and_bad_paths_answer_the_error_shape(db: TestDb) {
    let (stub, app) = start(&db).await;
    let mut msg = stub.unsigned_notification("x");
    msg["TopicArn"] = format!("arn:aws:sns:us-east-1:123456789012:{}", "t".repeat(5000)).into();
    stub.signer.sign(&mut msg);
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!((status, error_code(&body)), (400, "malformed_message"));
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.chars().count() < 200, "{message}");

    let response = app
        .client
        .get(format!("{}/v1/executions/%FF", app.base))
        .bearer_auth(crate::support::TOKENS[0])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "invalid_parameter");
}

async fn a_full_sns_door_answers_503_so_sns_retries(db: TestDb) {
    let stub = SnsStub::start().await;
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.sns.sns_concurrency = 1;
    let app = TestApp::spawn(cfg).await;
    // The first delivery holds the only slot while its certificate downloads slowly.
    stub.set(|s| s.cert_delay = Duration::from_millis(1500));
    let slow = stub.notification("slow");
    let second = stub.notification("second");
    let (first, refused) = tokio::join!(app.post_sns(&slow), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.post_sns(&second).await
    });
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!((refused.0, error_code(&refused.1)), (503, "overloaded"));
    // The slot is free again: SNS's retry is accepted.
    assert_eq!(app.post_sns(&second).await.0, 200);
    assert!(
        app.metrics()
            .await
            .contains("restop_sns_refusals_total{reason=\"overloaded\"} 1")
    );
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
