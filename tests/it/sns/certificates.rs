//! The signing certificate: refused when it is not SNS's or not valid now, fetched once,
//! a failing fetch answered 503 (SNS retries) and tried again after a pause, and read
//! from RESTOP_SNS_CERT_DIR instead of the network when given.

use std::sync::Arc;

use chrono::Utc;
use restop::clock::{Clock, ManualClock};
use serde_json::Value;

use super::{assert_refused, start};
use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::sns::{CERT_HASH, SigningKey, SnsStub};
use crate::support::{TestApp, config};

on_both_backends!(
    certificate_problems_are_refused,
    certificate_trouble_answers_503_and_is_tried_again_after_a_pause,
    certificate_is_fetched_once,
    an_unreadable_certificate_file_answers_503,
    an_unparseable_certificate_file_answers_503,
    certificate_directory_avoids_the_fetch,
);

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
    let (_, body) = app.post_sns(&msg).await;
    let told = body["error"]["message"].as_str().unwrap();
    assert!(
        !told.contains(dir.path().to_str().unwrap()) && !told.contains("directory"),
        "the sender learns no path or OS error: {told}"
    );
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

async fn an_unparseable_certificate_file_answers_503(db: TestDb) {
    let stub = SnsStub::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join(format!("SimpleNotificationService-{CERT_HASH}.pem"));
    // Half copied: SNS must retry, not drop every message signed with this certificate.
    let pem = &stub.signer.cert_pem;
    std::fs::write(&path, &pem[..pem.len() / 2]).unwrap();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.sns.sns_cert_dir = Some(dir.path().to_owned());
    let app = TestApp::spawn_with_clock(cfg, clock.clone()).await;
    let msg = stub.notification("x");
    assert_refused(&app, &db, &msg, 503, "certificate_unavailable").await;
    std::fs::write(&path, pem).unwrap();
    clock.set(clock.now() + chrono::Duration::seconds(11));
    assert_eq!(app.post_sns(&msg).await.0, 200);
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
