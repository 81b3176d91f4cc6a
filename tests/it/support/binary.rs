//! The `restop` binary, started as an operator starts it.

use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// `restop` with only the settings a test gives it: none of the caller's `RESTOP_*`,
/// `AWS_*` or `DATABASE_URL`, no AWS set-up at all, as on a new laptop, and no instance
/// metadata service to ask (nothing may leave this machine).
pub fn restop_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_restop"));
    for (key, _) in std::env::vars() {
        if key.starts_with("RESTOP_") || key.starts_with("AWS_") || key == "DATABASE_URL" {
            command.env_remove(key);
        }
    }
    command.env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

/// `restop serve` running as a child process; killed when dropped.
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    child: tokio::process::Child,
    log: tokio::task::JoinHandle<String>,
}

/// Runs `restop serve` with the settings of `command` (made by [`restop_command`]) on a
/// port of its own, and returns once `/readyz` answers 200.
pub async fn spawn_restop(mut command: Command) -> Served {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    command
        .arg("serve")
        .env("RESTOP_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .expect("restop starts");
    // Read all along, so that a chatty log never fills the pipe and blocks restop.
    let mut stdout = child.stdout.take().unwrap();
    let log = tokio::spawn(async move {
        let mut log = String::new();
        let _ = stdout.read_to_string(&mut log).await;
        log
    });
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..400 {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("restop serve exited before it was ready: {status}");
        }
        if reqwest::get(format!("{base}/readyz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Served { base, child, log };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("restop serve did not become ready");
}

impl Served {
    /// SIGKILL: no shutdown of any kind.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }

    /// SIGTERM, as a service manager stops it; the exit status and what it logged.
    pub async fn terminate(mut self) -> (ExitStatus, String) {
        let pid = self.child.id().expect("restop is running");
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(signalled.success());
        let status = self.child.wait().await.unwrap();
        (status, self.log.await.unwrap())
    }
}
