//! The `restop` binary as an operator runs it.

use crate::support::binary::{restop_command, spawn_restop};

#[test]
fn an_invalid_setting_stops_start_up_and_is_named() {
    for (variable, value) in [
        ("RESTOP_SNS_MAX_AGE", "soon"),
        ("RESTOP_TOPIC_ARNS", "arn:aws:sqs:us-east-1:123456789012:q"),
        ("RESTOP_LISTEN", "nowhere"),
        ("RESTOP_SNS_EXTRA_HOSTS", "host/path"),
        ("RESTOP_SNS_BASIC_AUTH", "no-colon"),
        ("RESTOP_SNS_AUTO_CONFIRM", "maybe"),
        ("DATABASE_URL", "mysql://db"),
        ("RESTOP_RETENTION", "12h"),
        ("RESTOP_SNS_CONCURRENCY", "0"),
        ("RESTOP_NOTIFY_FORMAT", "discord"),
        ("RESTOP_LOG_FORMAT", "xml"),
    ] {
        let output = restop_command()
            .arg("serve")
            .env(variable, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{variable}={value} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

#[test]
fn settings_out_of_range_are_refused() {
    let refused: &[&[(&str, &str)]] = &[
        &[("RESTOP_POLL_INTERVAL", "0s")],
        &[("RESTOP_MAX_DURATION", "31d")],
        // The lease must outlast an AWS call (25 s by default).
        &[("RESTOP_JOB_LEASE", "20s")],
        &[("RESTOP_JOB_LEASE", "10s"), ("RESTOP_AWS_TIMEOUT", "10s")],
        // 2,880 polls of a state machine need more than its 25,000 history events.
        &[
            ("RESTOP_POLL_INTERVAL", "30s"),
            (
                "RESTOP_STATE_MACHINE_ARN",
                "arn:aws:states:us-east-1:123456789012:stateMachine:restop",
            ),
        ],
        // Start and stop events are never forced starts: restop would stop deliberate starts.
        &[("RESTOP_EVENT_IDS", "RDS-EVENT-0154,RDS-EVENT-0088")],
        &[("RESTOP_EVENT_IDS", "RDS-EVENT-0087")],
        &[("RESTOP_EVENT_IDS", "RDS-EVENT-0150")],
        &[("RESTOP_EVENT_IDS", "RDS-EVENT-0151")],
        // An id in both lists: acted on or a wake-up?
        &[
            ("RESTOP_EVENT_IDS", "RDS-EVENT-0154,RDS-EVENT-0009"),
            ("RESTOP_WAKE_EVENT_IDS", "RDS-EVENT-0088,RDS-EVENT-0009"),
        ],
    ];
    for settings in refused {
        let output = restop_command()
            .arg("serve")
            .envs(settings.iter().copied())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{settings:?} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(settings[0].0), "{settings:?}: {stderr}");
    }
}

#[test]
fn a_bad_secret_is_named_but_never_printed() {
    for (variable, value) in [
        ("RESTOP_API_TOKENS", "hunter2-short"),
        (
            "RESTOP_API_TOKENS",
            "a-long-enough-token-0123456789,hunter2",
        ),
        ("RESTOP_SNS_BASIC_AUTH", "hunter2"),
        ("DATABASE_URL", "mysql://restop:hunter2@db/restop"),
    ] {
        let output = restop_command()
            .arg("serve")
            .env(variable, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{variable} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{variable} printed: {stderr}");
    }
}

#[test]
fn migrate_creates_the_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let output = restop_command()
        .arg("migrate")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("restop.db").exists());
}

#[tokio::test]
async fn serve_runs_with_no_setup_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = restop_command();
    command.env("HOME", dir.path()).current_dir(dir.path());
    let restop = spawn_restop(command).await;
    assert!(dir.path().join("restop.db").exists());

    let (status, log) = restop.terminate().await;
    assert!(status.success(), "exit after SIGTERM: {status}");

    // What a new user sees in the log: a line per missing setting, no SDK internals.
    let lines = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(lines("RESTOP_TOPIC_ARNS is empty"), 1, "{log}");
    assert_eq!(lines("no AWS region configured"), 1, "{log}");
    assert_eq!(lines("imds"), 0, "{log}");
}

#[test]
fn a_bad_tls_key_is_refused_naming_the_setting_but_not_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let signing = crate::support::sns::SigningKey::generate(
        "localhost",
        now,
        now + chrono::Duration::days(30),
    );
    let cert = dir.path().join("fullchain.pem");
    std::fs::write(&cert, &signing.cert_pem).unwrap();
    let key = dir.path().join("privkey.pem");
    let serve = || {
        restop_command()
            .arg("serve")
            .env("RESTOP_LISTEN", "127.0.0.1:0")
            .env("RESTOP_TLS_CERT", &cert)
            .env("RESTOP_TLS_KEY", &key)
            .env("HOME", dir.path())
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    for content in [
        "hunter2",
        "-----BEGIN PRIVATE KEY-----\nhunter2hunter2\n-----END PRIVATE KEY-----\n",
        "-----BEGIN hunter2\n",
    ] {
        std::fs::write(&key, content).unwrap();
        let output = serve();
        assert!(!output.status.success(), "{content:?} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stderr.contains("RESTOP_TLS_KEY"), "{content:?}: {stderr}");
        assert!(
            !stderr.contains("hunter2") && !stdout.contains("hunter2"),
            "{content:?} printed: {stderr}{stdout}"
        );
    }
    // The key of another certificate.
    let other = crate::support::sns::SigningKey::sns_like();
    std::fs::write(&key, other.key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let output = serve();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("RESTOP_TLS_KEY"), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    // Refused before the database is touched.
    assert!(!dir.path().join("restop.db").exists());

    // A certificate without its key.
    let output = restop_command()
        .arg("serve")
        .env("RESTOP_TLS_CERT", &cert)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("RESTOP_TLS_KEY is not"));
}
