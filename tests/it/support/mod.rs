//! Shared test helpers: databases, a fake SNS, and restop itself on a real socket.

pub mod db;
pub mod events;
pub mod fake_aws;
pub mod moto;
pub mod openapi;
pub mod proxy;
pub mod sns;
pub mod world;

use std::sync::Arc;
use std::time::Duration;

use restop::Runtime;
use restop::clock::{Clock, SystemClock};
use restop::config::{CommaList, DatabaseConfig, EngineConfig, LogFormat, ServeConfig, SnsConfig};
use restop::engine::aws::Aws;
use serde_json::Value;
use tokio::sync::oneshot;

/// Bearer tokens the test configuration accepts on /v1.
pub const TOKENS: [&str; 2] = [
    "test-token-0123456789-first",
    "test-token-0123456789-second",
];

/// restop running in this process on 127.0.0.1, port chosen by the OS.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Settings as an operator would leave them, trusting `extra_host` (the fake SNS), with
/// the engine off: SNS tests look at what is stored, not at AWS.
pub fn config(database_url: &str, extra_host: Option<&str>) -> ServeConfig {
    ServeConfig {
        database: DatabaseConfig {
            database_url: database_url.parse().unwrap(),
            db_max_connections: 8,
        },
        listen: "127.0.0.1:0".parse().unwrap(),
        sns: SnsConfig {
            topic_arns: CommaList(vec![sns::TOPIC.parse().unwrap()]),
            sns_auto_confirm: true,
            sns_max_age: Duration::from_secs(3600),
            sns_cert_dir: None,
            sns_extra_hosts: CommaList(
                extra_host.map(|h| h.parse().unwrap()).into_iter().collect(),
            ),
            sns_basic_auth: None,
        },
        api_tokens: CommaList(TOKENS.iter().map(|t| t.parse().unwrap()).collect()),
        engine: EngineConfig {
            tag_key: "auto-restart-protection".into(),
            tag_value: "yes".into(),
            poll_interval: Duration::from_secs(1),
            start_grace: Duration::from_secs(5),
            max_duration: Duration::from_secs(120),
            dry_run: false,
            state_machine_arn: None,
            notify_url: None,
            job_lease: Duration::from_secs(10),
            engine_enabled: false,
        },
        event_ids: vec!["RDS-EVENT-0154".into(), "RDS-EVENT-0153".into()],
        log_format: LogFormat::Text,
    }
}

impl TestApp {
    /// With an in-process fake AWS (empty: every resource is unknown to it).
    pub async fn spawn(config: ServeConfig) -> Self {
        Self::spawn_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn spawn_with_clock(config: ServeConfig, clock: Arc<dyn Clock>) -> Self {
        Self::spawn_with(config, clock, Some(Arc::new(fake_aws::FakeAws::default()))).await
    }

    pub async fn spawn_with(
        config: ServeConfig,
        clock: Arc<dyn Clock>,
        aws: Option<Arc<dyn Aws>>,
    ) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("restop=debug,info")
            .with_test_writer()
            .try_init();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(restop::serve(
            config,
            listener,
            Runtime { clock, aws },
            async {
                let _ = rx.await;
            },
        ));
        let app = Self {
            base,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            server: Some(server),
        };
        app.wait_ready().await;
        app
    }

    /// Migrations run before the server accepts: wait for /healthz.
    async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self
                .client
                .get(format!("{}/healthz", self.base))
                .send()
                .await
            {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("restop did not become healthy");
    }

    pub async fn post_sns(&self, body: &Value) -> (u16, Value) {
        self.post_raw(body.to_string(), &[]).await
    }

    pub async fn post_raw(&self, body: String, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = self
            .client
            .post(format!("{}/sns", self.base))
            .header("content-type", "text/plain; charset=UTF-8")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request reaches restop");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Graceful shutdown, and the server's own result.
    pub async fn stop(mut self) {
        self.shutdown.take().unwrap().send(()).ok();
        self.server.take().unwrap().await.unwrap().unwrap();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}

/// The `error.code` of a JSON error answer.
pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}
