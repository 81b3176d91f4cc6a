//! Shared test helpers: databases, a fake SNS, and restop itself on a real socket.

pub mod binary;
pub mod db;
pub mod openapi;
pub mod proxy;
pub mod step_functions;
pub mod webhook;
pub mod world;

// The fakes shared with the benchmarks live in the library's test kit.
pub use restop::testing::{events, fake_aws, moto, sns};

use std::sync::Arc;
use std::time::Duration;

use restop::aws::Aws;
use restop::clock::{Clock, SystemClock};
use restop::config::{CommaList, ServeConfig};
use restop::{App, Deps};
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

/// An answer of `/v1`.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

/// `restop serve`'s defaults, changed only where tests need it: this database, the fake
/// SNS's topic and host (`extra_host`), test tokens, short polls and leases, and the
/// engine off (SNS tests look at what is stored, not at AWS).
pub fn config(database_url: &str, extra_host: Option<&str>) -> ServeConfig {
    let mut config = ServeConfig::defaults();
    config.database.database_url = database_url.parse().unwrap();
    config.database.db_max_connections = 8;
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.sns.topic_arns = CommaList(vec![sns::TOPIC.parse().unwrap()]);
    config.sns.sns_extra_hosts =
        CommaList(extra_host.map(|h| h.parse().unwrap()).into_iter().collect());
    config.api_tokens = CommaList(TOKENS.iter().map(|t| t.parse().unwrap()).collect());
    config.engine.poll_interval = Duration::from_secs(1);
    config.engine.start_grace = Duration::from_secs(5);
    config.engine.max_duration = Duration::from_secs(120);
    config.engine.job_lease = Duration::from_secs(10);
    config.engine.aws_timeout = Duration::from_secs(5);
    // The fakes have no request limit; the budget's own tests pace their calls.
    config.accounts.rds_max_rps = 1000.0;
    config.engine.engine_enabled = false;
    config
}

impl TestApp {
    /// With an in-process fake AWS (empty: every resource is unknown to it).
    pub async fn spawn(config: ServeConfig) -> Self {
        Self::spawn_with_clock(config, Arc::new(SystemClock)).await
    }

    pub async fn spawn_with_clock(config: ServeConfig, clock: Arc<dyn Clock>) -> Self {
        Self::spawn_with(config, clock, Some(Arc::new(fake_aws::FakeAws::default()))).await
    }

    /// Builds restop (database migrated when this returns) and serves it on a bound port.
    pub async fn spawn_with(
        config: ServeConfig,
        clock: Arc<dyn Clock>,
        aws: Option<Arc<dyn Aws>>,
    ) -> Self {
        let app = build(config, clock, aws).await;
        Self::serve(app, "http", reqwest::Client::new()).await
    }

    /// restop serving HTTPS with the files of `config.tls`, looking at them for changes
    /// every `reload_interval`; `client` (which must trust their issuer) is `self.client`.
    pub async fn spawn_tls(
        config: ServeConfig,
        reload_interval: Duration,
        client: reqwest::Client,
    ) -> Self {
        let aws: Arc<dyn Aws> = Arc::new(fake_aws::FakeAws::default());
        let app = build(config, Arc::new(SystemClock), Some(aws))
            .await
            .with_tls_reload_interval(reload_interval);
        Self::serve(app, "https", client).await
    }

    async fn serve(app: App, scheme: &str, client: reqwest::Client) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("{scheme}://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run(listener, async {
            let _ = rx.await;
        }));
        Self {
            base,
            client,
            shutdown: Some(tx),
            server: Some(server),
        }
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

    /// A `/v1` request with the first test token; the answer is checked against
    /// openapi.yaml.
    pub async fn v1(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(TOKENS[0]);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches restop");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        openapi::assert_conforms(method.as_str(), path, status, &headers, &bytes);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    /// A `/v1` GET that must answer 200; its body.
    pub async fn get_v1(&self, path: &str) -> Value {
        let answer = self.v1(reqwest::Method::GET, path, None).await;
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.text);
        answer.body
    }

    /// A manual trigger that must be accepted; the new execution's id.
    pub async fn trigger(&self, body: Value) -> String {
        let answer = self
            .v1(reqwest::Method::POST, "/v1/executions", Some(body))
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        answer.body["id"].as_str().unwrap().to_owned()
    }

    /// Cancels an active execution.
    pub async fn cancel(&self, id: &str) {
        let path = format!("/v1/executions/{id}/cancel");
        let answer = self.v1(reqwest::Method::POST, &path, None).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
    }

    /// Polls an execution until it has ended; returns it.
    pub async fn finished(&self, id: &str) -> Value {
        for _ in 0..200 {
            let execution = self.get_v1(&format!("/v1/executions/{id}")).await;
            if !matches!(execution["status"].as_str(), Some("pending" | "running")) {
                return execution;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("execution {id} did not finish");
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

async fn build(config: ServeConfig, clock: Arc<dyn Clock>, aws: Option<Arc<dyn Aws>>) -> App {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("restop=debug,info")
        .with_test_writer()
        .try_init();
    App::build(config, Deps { clock, aws })
        .await
        .expect("restop builds")
}

/// `RESTOP_PRICES` as restop reads it, from a CSV file of these `rows` (after the header).
pub fn prices(rows: &str) -> restop::prices::Prices {
    let file = tempfile::NamedTempFile::new().unwrap();
    let csv = format!("region,instance_class,engine,deployment,usd_per_hour\n{rows}");
    std::fs::write(file.path(), csv).unwrap();
    restop::prices::Prices::load(file.path()).unwrap()
}

/// The `error.code` of a JSON error answer.
pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}
