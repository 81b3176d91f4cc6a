//! moto, the AWS emulator, one server per test: tests/moto/launcher.py adds RDS status
//! transitions over time, fault injection and a call log.

use std::process::Stdio;
use std::sync::Arc;

use crate::aws::{Accounts, SdkAws};
use crate::config::AccountsConfig;
use aws_sdk_rds::config::{Credentials, Region};
use aws_sdk_rds::operation::create_db_instance::builders::CreateDBInstanceFluentBuilder;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

pub struct Moto {
    pub url: String,
    http: reqwest::Client,
    _server: Child,
}

impl Moto {
    /// Starts a server, or returns `None` outside CI when the test command did not set one
    /// up (in CI that is a failure).
    pub async fn start() -> Option<Self> {
        match std::env::var("RESTOP_TEST_MOTO_PYTHON") {
            Ok(python) => Some(Self::launch(&python).await),
            Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("RESTOP_TEST_MOTO_PYTHON is not set: run the tests with scripts/test")
            }
            Err(_) => {
                eprintln!("SKIPPED: RESTOP_TEST_MOTO_PYTHON is not set (run scripts/test)");
                None
            }
        }
    }

    /// Starts a server with `python`, which has moto installed (scripts/test makes
    /// target/moto-venv). RDS starts and stops take a second unless a resource's tags say
    /// otherwise.
    pub async fn launch(python: &str) -> Self {
        let launcher = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto/launcher.py");
        let mut server = Command::new(python)
            .args([launcher, "--host", "127.0.0.1", "--port", "0"])
            .env("MOTO_RDS_START_SECONDS", "1")
            .env("MOTO_RDS_STOP_SECONDS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the moto launcher");
        let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("moto exited before READY");
            if let Some(port) = line.strip_prefix("READY ") {
                break port.trim().to_owned();
            }
        };
        Self {
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _server: server,
        }
    }

    /// What restop is given: AWS calls that end within 5 s, so tests of slow answers are quick.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        self.config_with_timeout(std::time::Duration::from_secs(5))
            .await
    }

    /// What a test's own set-up and inspection clients use: on a loaded machine moto may take
    /// longer than restop's 5 s to create a state machine, and a set-up call that times out
    /// fails a test that has not started yet.
    async fn setup_config(&self) -> aws_config::SdkConfig {
        self.config_with_timeout(std::time::Duration::from_secs(60))
            .await
    }

    async fn config_with_timeout(&self, timeout: std::time::Duration) -> aws_config::SdkConfig {
        SdkAws::loader(timeout)
            .endpoint_url(&self.url)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .load()
            .await
    }

    /// What restop's engine uses: the real SDK client, pointed at this server.
    pub async fn aws(&self) -> Arc<SdkAws> {
        Arc::new(SdkAws::new(self.sdk_config().await, Accounts::default()))
    }

    /// The same, acting in the member accounts `config` lists.
    pub async fn aws_for(&self, config: &AccountsConfig) -> Arc<SdkAws> {
        Arc::new(SdkAws::new(self.sdk_config().await, Accounts::from(config)))
    }

    /// An RDS client acting in `account` through its `restop-member` role (moto grants
    /// every AssumeRole; what the credentials create lives in that account).
    pub async fn rds_in(&self, account: &str) -> aws_sdk_rds::Client {
        let base = self.setup_config().await;
        let assumed = aws_sdk_sts::Client::new(&base)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{account}:role/restop-member"))
            .role_session_name("test")
            .send()
            .await
            .unwrap();
        let c = assumed.credentials().unwrap();
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            None,
            "moto-assumed",
        );
        aws_sdk_rds::Client::from_conf(
            aws_sdk_rds::config::Builder::from(&base)
                .credentials_provider(credentials)
                .build(),
        )
    }

    /// An RDS client for setting up and inspecting resources.
    pub async fn rds(&self) -> aws_sdk_rds::Client {
        aws_sdk_rds::Client::new(&self.setup_config().await)
    }

    /// A Step Functions client for setting up and inspecting state machines.
    pub async fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(&self.setup_config().await)
    }

    /// Turns on moto's Step Functions interpreter: executions then really run (Wait states
    /// in real time, `aws-sdk:rds:*` tasks against this server). Call it before creating
    /// state machines: those created earlier are not visible afterwards.
    pub async fn run_state_machines(&self) {
        let response = self
            .http
            .post(format!("{}/moto-api/config", self.url))
            .json(&serde_json::json!({"stepfunctions": {"execute_state_machine": true}}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            201,
            "{}",
            response.text().await.unwrap()
        );
    }

    /// How many requests for `action` the server received (faulted ones included).
    pub async fn count_calls(&self, action: &str) -> usize {
        self.calls()
            .await
            .iter()
            .filter(|(a, _)| a == action)
            .count()
    }

    /// Arms faults: see tests/moto/README.md.
    pub async fn fault(&self, fault: Value) {
        self.control("faults", &fault).await;
    }

    /// Disarms every fault not used yet.
    pub async fn clear_faults(&self) {
        let response = self
            .http
            .delete(format!("{}/restop-test/faults", self.url))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
    }

    /// Makes SNS list the subscriptions to `endpoint` as pending confirmation (see
    /// tests/moto/README.md).
    pub async fn pending_subscriptions(&self, endpoint: &str) {
        self.control("sns-pending", &serde_json::json!({ "endpoint": endpoint }))
            .await;
    }

    /// POSTs `body` to the launcher's control route `/restop-test/<route>`.
    async fn control(&self, route: &str, body: &Value) {
        let response = self
            .http
            .post(format!("{}/restop-test/{route}", self.url))
            .json(body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{}",
            response.text().await.unwrap()
        );
    }

    /// The call log: every AWS request received, in order (see tests/moto/README.md).
    pub async fn call_log(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/restop-test/calls", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Every AWS action received, in order, with the resource it named.
    pub async fn calls(&self) -> Vec<(String, String)> {
        self.timed_calls()
            .await
            .into_iter()
            .map(|(action, resource, _)| (action, resource))
            .collect()
    }

    /// The same, with when each arrived (Unix seconds).
    pub async fn timed_calls(&self) -> Vec<(String, String, f64)> {
        self.call_log()
            .await
            .iter()
            .map(|c| {
                (
                    c["action"].as_str().unwrap_or_default().to_owned(),
                    c["resource"].as_str().unwrap_or_default().to_owned(),
                    c["at"].as_f64().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Empties the call log.
    pub async fn clear_calls(&self) {
        self.http
            .delete(format!("{}/restop-test/calls", self.url))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    }

    /// The parameters of every request for `action`, in order.
    pub async fn call_params(&self, action: &str) -> Vec<Value> {
        self.call_log()
            .await
            .into_iter()
            .filter(|c| c["action"] == action)
            .map(|c| c["params"].clone())
            .collect()
    }

    /// Adds events to RDS's event log (see tests/moto/README.md).
    pub async fn rds_event(&self, event: Value) {
        self.control("rds-events", &event).await;
    }

    /// An SNS client for setting up topics.
    pub async fn sns(&self) -> aws_sdk_sns::Client {
        aws_sdk_sns::Client::new(&self.setup_config().await)
    }

    pub async fn calls_for(&self, resource: &str) -> Vec<String> {
        self.calls()
            .await
            .into_iter()
            .filter(|(_, r)| r == resource || r.ends_with(&format!(":{resource}")))
            .map(|(action, _)| action)
            .collect()
    }
}

/// CreateDBInstance of a small PostgreSQL instance with the fields moto requires; add
/// tags (or anything else) and send it.
pub fn new_instance(rds: &aws_sdk_rds::Client, id: &str) -> CreateDBInstanceFluentBuilder {
    rds.create_db_instance()
        .db_instance_identifier(id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("password123")
}

pub fn instance_arn(id: &str) -> String {
    format!("arn:aws:rds:{REGION}:{ACCOUNT}:db:{id}")
}

pub fn cluster_arn(id: &str) -> String {
    format!("arn:aws:rds:{REGION}:{ACCOUNT}:cluster:{id}")
}

/// A reverse proxy in front of `upstream` (a moto server) that shows `observe` each request
/// before passing it on, for counting what restop sends where. Returns the proxy's URL, to
/// be the AWS endpoint of whatever is watched.
pub async fn tap<F>(upstream: &str, observe: F) -> std::io::Result<String>
where
    F: Fn(&axum::http::request::Parts, &[u8]) + Clone + Send + Sync + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let upstream = upstream.to_owned();
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let (upstream, client, observe) = (upstream.clone(), client.clone(), observe.clone());
        async move { forward(&client, &upstream, request, observe).await }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    request: axum::extract::Request,
    observe: impl Fn(&axum::http::request::Parts, &[u8]),
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 << 20).await else {
        return axum::http::StatusCode::BAD_REQUEST.into_response();
    };
    observe(&parts, &body);
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = parts.headers;
    headers.remove(axum::http::header::HOST);
    let answer = client
        .request(parts.method, format!("{upstream}{path}"))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(answer) = answer else {
        return axum::http::StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    for hop in ["transfer-encoding", "connection", "content-length"] {
        headers.remove(hop);
    }
    let body = answer.bytes().await.unwrap_or_default();
    (status, headers, body).into_response()
}
