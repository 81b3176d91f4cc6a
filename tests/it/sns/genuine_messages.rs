//! The genuine AWS-signed messages in `shared/fixtures/sns/`: every valid one verifies with
//! the clock set to its own Timestamp (its certificate has long expired), any change to a
//! signed field is refused, and changes to unsigned fields are not.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use restop::aws::arn::TopicArn;
use restop::clock::ManualClock;
use restop::config::SnsConfig;
use restop::sns::Rejection;
use restop::sns::certs::CertStore;
use restop::sns::message::SnsMessage;
use restop::sns::verify::Verifier;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::{TestApp, config};

on_both_backends!(genuine_messages_are_accepted_over_http);

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/sns")
}

struct Fixture {
    file: String,
    json: Value,
    lambda_shaped: bool,
}

fn fixtures() -> Vec<Fixture> {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(fixtures_dir().join("manifest.json")).unwrap())
            .unwrap();
    let fixtures: Vec<Fixture> = manifest["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let file = entry["file"].as_str().unwrap().to_owned();
            assert_eq!(entry["expected"], "valid", "{file}");
            let json = serde_json::from_slice(&std::fs::read(fixtures_dir().join(&file)).unwrap())
                .unwrap();
            Fixture {
                lambda_shaped: file.contains("lambda-format"),
                file,
                json,
            }
        })
        .collect();
    assert_eq!(fixtures.len(), 20, "the fixture README lists 20 messages");
    fixtures
}

/// The topics the fixtures come from: restop accepts messages of listed topics only.
fn fixture_topics() -> Vec<TopicArn> {
    let mut topics: Vec<TopicArn> = fixtures()
        .iter()
        .filter_map(|f| f.json["TopicArn"].as_str())
        .filter_map(|arn| arn.parse().ok())
        .collect();
    topics.dedup();
    topics
}

/// The fixture certificates under the names restop looks up: `SimpleNotificationService-<hash>.pem`.
fn cert_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixtures_dir().join("certs")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        let (_, official) = name.split_once('_').unwrap();
        std::fs::copy(&path, dir.path().join(official)).unwrap();
    }
    dir
}

fn verifier(cert_dir: &tempfile::TempDir, clock: Arc<ManualClock>) -> Verifier {
    Verifier {
        allowed_topics: fixture_topics(),
        extra_hosts: Vec::new(),
        max_age: Duration::from_secs(3600),
        max_future_skew: Duration::from_secs(300),
        min_signature_version: SnsConfig::DEFAULT_MIN_SIGNATURE_VERSION,
        // No network: a certificate missing from the directory would be a test failure.
        certs: CertStore::new(
            Some(cert_dir.path().to_owned()),
            reqwest::Client::new(),
            clock.clone(),
        ),
        clock,
    }
}

/// Parses and verifies with the clock at the message's own Timestamp.
async fn check(verifier: &Verifier, clock: &ManualClock, body: &Value) -> Result<(), Rejection> {
    let msg = SnsMessage::parse(body.to_string().as_bytes()).map_err(Rejection::Malformed)?;
    clock.set(msg.timestamp);
    verifier.verify(&msg).await
}

#[tokio::test]
async fn every_genuine_message_verifies_and_lambda_shapes_are_refused() {
    let dir = cert_dir();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let verifier = verifier(&dir, clock.clone());
    for fixture in fixtures() {
        // Parse the file's own bytes, not a re-serialisation.
        let raw = std::fs::read(fixtures_dir().join(&fixture.file)).unwrap();
        let parsed = SnsMessage::parse(&raw);
        if fixture.lambda_shaped {
            assert!(parsed.is_err(), "{} accepted", fixture.file);
            continue;
        }
        let msg = parsed.unwrap_or_else(|e| panic!("{}: {e}", fixture.file));
        clock.set(msg.timestamp);
        verifier
            .verify(&msg)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", fixture.file));
    }
}

#[tokio::test]
async fn changing_any_signed_field_is_refused() {
    let dir = cert_dir();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let verifier = verifier(&dir, clock.clone());
    for fixture in fixtures().into_iter().filter(|f| !f.lambda_shaped) {
        let signed: &[&str] = match fixture.json["Type"].as_str().unwrap() {
            "Notification" => &[
                "Message",
                "MessageId",
                "Subject",
                "Timestamp",
                "TopicArn",
                "Type",
            ],
            _ => &[
                "Message",
                "MessageId",
                "SubscribeURL",
                "Timestamp",
                "Token",
                "TopicArn",
                "Type",
            ],
        };
        for field in signed {
            let Some(value) = fixture.json.get(*field).and_then(Value::as_str) else {
                continue;
            };
            let changed = match *field {
                // One millisecond later: still parseable, fresh and inside the certificate's life.
                "Timestamp" => {
                    let t = chrono::DateTime::parse_from_rfc3339(value).unwrap()
                        + chrono::Duration::milliseconds(1);
                    t.to_utc()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                }
                "Type" if value == "SubscriptionConfirmation" => "UnsubscribeConfirmation".into(),
                "Type" => "SubscriptionConfirmation".into(),
                "TopicArn" => format!("{value}x"),
                _ => format!("{value} "),
            };
            let mut body = fixture.json.clone();
            body[*field] = changed.into();
            assert!(
                check(&verifier, &clock, &body).await.is_err(),
                "{}: changed {field} accepted",
                fixture.file
            );
        }
        // Removing the optional Subject changes the signed text too.
        if fixture.json.get("Subject").is_some() {
            let mut body = fixture.json.clone();
            body.as_object_mut().unwrap().remove("Subject");
            assert!(
                check(&verifier, &clock, &body).await.is_err(),
                "{}: no Subject accepted",
                fixture.file
            );
        }
    }
}

#[tokio::test]
async fn changing_unsigned_fields_is_not_refused() {
    let dir = cert_dir();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let verifier = verifier(&dir, clock.clone());
    for fixture in fixtures().into_iter().filter(|f| !f.lambda_shaped) {
        let mut body = fixture.json.clone();
        body["MessageAttributes"] =
            json!({"EventID": {"Type": "String", "Value": "RDS-EVENT-0154"}});
        body["SomethingNew"] = json!({"nested": [1, 2]});
        if body.get("UnsubscribeURL").is_some() {
            body["UnsubscribeURL"] = "https://example.com/changed".into();
        }
        check(&verifier, &clock, &body)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", fixture.file));
    }
}

/// The same messages through the whole server, with auto-confirm off (a confirmation would
/// need the internet).
async fn genuine_messages_are_accepted_over_http(db: TestDb) {
    let dir = cert_dir();
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let mut cfg = config(&db.url, None);
    cfg.sns.topic_arns.0 = fixture_topics();
    // The clock goes back years, message by message: retention would delete the earlier ones.
    cfg.retention = restop::config::Retention::Forever;
    cfg.sns.sns_auto_confirm = false;
    cfg.sns.sns_cert_dir = Some(dir.path().to_owned());
    let app = TestApp::spawn_with_clock(cfg, clock.clone()).await;

    let mut stored = 0;
    for fixture in fixtures() {
        let raw =
            String::from_utf8(std::fs::read(fixtures_dir().join(&fixture.file)).unwrap()).unwrap();
        let timestamp = fixture.json["Timestamp"].as_str().unwrap();
        clock.set(
            chrono::DateTime::parse_from_rfc3339(timestamp)
                .unwrap()
                .to_utc(),
        );
        let (status, body) = app.post_raw(raw, &[]).await;
        if fixture.lambda_shaped {
            assert_eq!(status, 400, "{}: {body}", fixture.file);
            continue;
        }
        assert_eq!(status, 200, "{}: {body}", fixture.file);
        let expected = match fixture.json["Type"].as_str().unwrap() {
            "Notification" => "ignored",
            "SubscriptionConfirmation" => "pending_confirmation",
            _ => "unsubscribed",
        };
        assert_eq!(body["disposition"], expected, "{}", fixture.file);
        stored += 1;
    }
    assert_eq!(db.message_count().await, stored);
}
