//! Who may deliver: the listed topics, a recent timestamp, a signing certificate URL of
//! SNS's own, and a signature over exactly the signed fields. Messages are signed by our
//! own test key, its certificate served by a local fake SNS.

use chrono::Utc;
use serde_json::json;

use super::{assert_refused, start};
use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::sns::{CERT_HASH, SnsStub, sns_timestamp};
use crate::support::{TestApp, config};

on_both_backends!(
    stale_and_future_timestamps_are_refused,
    disallowed_topic_is_refused_without_fetching,
    no_listed_topic_trusts_no_topic,
    every_refused_signing_cert_url,
    tampered_signed_fields_are_refused,
    unsupported_signature_versions_are_refused,
    a_minimum_signature_version_of_2_refuses_version_1,
);

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

async fn a_minimum_signature_version_of_2_refuses_version_1(db: TestDb) {
    let stub = SnsStub::start().await;
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.sns.sns_min_signature_version = 2;
    let app = TestApp::spawn(cfg).await;
    // A genuine version 1 signature, of a notification and of a confirmation: refused
    // before any certificate download, nothing stored, nothing confirmed.
    for mut msg in [
        stub.unsigned_notification("x"),
        stub.unsigned_confirmation("SubscriptionConfirmation", "tok"),
    ] {
        msg["SignatureVersion"] = "1".into();
        stub.signer.sign(&mut msg);
        assert_refused(&app, &db, &msg, 403, "signature_version_refused").await;
    }
    assert_eq!(stub.cert_fetches(), 0);
    assert!(stub.confirmations().is_empty());
    assert_eq!(db.count("SELECT COUNT(*) FROM sns_subscriptions").await, 0);
    assert!(
        app.metrics()
            .await
            .contains("restop_sns_refusals_total{reason=\"signature_version_refused\"} 2")
    );
    // Version 2 still passes.
    let mut v2 = stub.unsigned_notification("x");
    v2["SignatureVersion"] = "2".into();
    stub.signer.sign(&mut v2);
    assert_eq!(app.post_sns(&v2).await.0, 200);
}
