//! The `restop` binary as an operator runs it.

use std::time::{Duration, Instant};

use aws_sdk_rds::types::Tag;
use serde_json::json;

use crate::support::binary::{restop_command, spawn_restop};
use crate::support::db::{Backend, TestDb};
use crate::support::events::accept_event;
use crate::support::moto::{Moto, instance_arn, new_instance};

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
        // A price file that is missing, and one that is no price list (this crate's manifest).
        ("RESTOP_PRICES", "/nonexistent/prices.csv"),
        (
            "RESTOP_PRICES",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
        ),
        // A role in another account: restop would act there under this account's name.
        (
            "RESTOP_ACCOUNTS",
            "111111111111=arn:aws:iam::222222222222:role/x",
        ),
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
        // Every duration has a ceiling ("never expire" attempts overflow the clock).
        &[("RESTOP_JOB_LEASE", "100000000d")],
        &[("RESTOP_POLL_INTERVAL", "2h")],
        &[("RESTOP_START_GRACE", "2d")],
        &[("RESTOP_AWS_TIMEOUT", "10m")],
        &[("RESTOP_CATCHUP_INTERVAL", "2d")],
        &[("RESTOP_RETENTION", "4000d")],
        &[("RESTOP_SNS_MAX_AGE", "15d")],
        &[("RESTOP_CATCHUP_LOOKBACK", "15d")],
        // Retention shorter than what the engine and the catch-up still read.
        &[("RESTOP_RETENTION", "1d"), ("RESTOP_MAX_DURATION", "2d")],
        &[
            ("RESTOP_RETENTION", "2d"),
            ("RESTOP_CATCHUP_LOOKBACK", "3d"),
        ],
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

/// Seconds from SIGTERM to exit with 200 executions waiting to be worked and a
/// DescribeDBInstances that takes 0.6 s: budget waits and reads in flight are abandoned
/// (their leases run out and the next start takes over), so a service manager's stop
/// never has to wait for the backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_within_seconds_under_a_backlog_and_slow_aws() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let store = restop::store::connect_and_migrate(&restop::config::DatabaseConfig {
        database_url: db.url.parse().unwrap(),
        db_max_connections: 2,
    })
    .await
    .unwrap();
    let rds = moto.rds().await;
    let protected = Tag::builder()
        .key("auto-restart-protection")
        .value("yes")
        .build();
    for i in 0..200 {
        let id = format!("backlog-{i}");
        new_instance(&rds, &id)
            .tags(protected.clone())
            .send()
            .await
            .unwrap();
        accept_event(&store, &instance_arn(&id)).await;
    }
    drop(store);
    moto.fault(json!({
        "action": "DescribeDBInstances", "count": 1_000_000, "code": null, "delay_seconds": 0.6
    }))
    .await;

    let dir = tempfile::tempdir().unwrap();
    let mut command = restop_command();
    command
        .env("HOME", dir.path())
        .env("DATABASE_URL", &db.url)
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1");
    let restop = spawn_restop(command).await;
    // Busy: some steps are committed, most executions still wait.
    for _ in 0..400 {
        if db.count("SELECT COUNT(*) FROM execution_steps").await >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let waiting = db
        .count("SELECT COUNT(*) FROM executions WHERE status IN ('pending', 'running')")
        .await;
    assert!(waiting >= 100, "only {waiting} executions still waiting");

    let signalled = Instant::now();
    let (status, log) = restop.terminate().await;
    let took = signalled.elapsed();
    eprintln!("SIGTERM to exit: {:.2} s", took.as_secs_f64());
    assert!(status.success(), "exit after SIGTERM: {status}\n{log}");
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
    // What it abandoned is given back: the next start takes it at once.
    let held = db
        .count("SELECT COUNT(*) FROM executions WHERE lease_owner IS NOT NULL")
        .await;
    assert_eq!(held, 0, "jobs still leased to the restop that stopped");
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

/// A background task that dies (here the catch-up sweeper, on an AWS answer it cannot
/// handle) stops restop with an error naming it, instead of leaving it serving `/sns`
/// with nothing working what it records.
#[tokio::test]
async fn a_background_task_that_dies_stops_restop_with_an_error() {
    struct DiesOnEvents(crate::support::fake_aws::FakeAws);

    #[async_trait::async_trait]
    impl restop::aws::Aws for DiesOnEvents {
        async fn call(
            &self,
            request: restop::aws::AwsRequest<'_>,
        ) -> Result<restop::aws::AwsReply, restop::aws::AwsFailure> {
            if matches!(request, restop::aws::AwsRequest::DescribeEvents { .. }) {
                panic!("an answer the sweeper cannot handle");
            }
            self.0.call(request).await
        }

        fn member_role(&self, account: &str, partition: &str) -> Option<String> {
            self.0.member_role(account, partition)
        }
    }

    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let mut config = crate::support::config(&db.url, None);
    config.engine.engine_enabled = true;
    config.engine.catchup_interval = restop::config::Schedule::Every(Duration::from_secs(3600));
    let app = restop::App::build(
        config,
        restop::Deps {
            clock: std::sync::Arc::new(restop::clock::SystemClock),
            aws: Some(std::sync::Arc::new(DiesOnEvents(Default::default()))),
        },
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ran = tokio::time::timeout(
        Duration::from_secs(10),
        app.run(listener, std::future::pending()),
    )
    .await
    .expect("restop goes on without its catch-up sweeper");
    let error = format!("{:#}", ran.unwrap_err());
    assert!(error.contains("catch-up sweeper"), "{error}");
}

/// A Postgres URL's password is never printed, wherever it is written: in the userinfo,
/// in the query (libpq's `?password=`), or in a URL that does not parse. The database is
/// unreachable, so start-up fails and names it.
#[test]
fn a_database_password_is_never_printed() {
    for url in [
        "postgres://restop:hunter2@127.0.0.1:1/restop",
        "postgres://restop@127.0.0.1:1/restop?password=hunter2",
        "postgresql://restop:hunter2@127.0.0.1:notaport/restop",
    ] {
        for command in ["serve", "migrate"] {
            let output = restop_command()
                .arg(command)
                .env("DATABASE_URL", url)
                .env("RESTOP_LISTEN", "127.0.0.1:0")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(!output.status.success(), "{command} {url}: {stderr}");
            assert!(stderr.contains("DATABASE_URL"), "{stderr}");
            assert!(
                !stderr.contains("hunter2") && !stdout.contains("hunter2"),
                "{command} {url} printed the password: {stderr}{stdout}"
            );
        }
    }
}
