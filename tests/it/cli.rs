//! The `restop` binary as an operator runs it.

use std::process::{Command, Stdio};
use std::time::Duration;

fn restop() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_restop"));
    // Only what each test sets counts.
    for (key, _) in std::env::vars() {
        if key.starts_with("RESTOP_") || key == "DATABASE_URL" {
            command.env_remove(key);
        }
    }
    command
}

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
    ] {
        let output = restop().arg("serve").env(variable, value).output().unwrap();
        assert!(!output.status.success(), "{variable}={value} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

#[test]
fn migrate_creates_the_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let output = restop()
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = restop()
        .arg("serve")
        .env("RESTOP_LISTEN", format!("127.0.0.1:{port}"))
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let mut ready = false;
    for _ in 0..100 {
        if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "restop serve did not become ready");
    assert!(dir.path().join("restop.db").exists());

    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}");
}
