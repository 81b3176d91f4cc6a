//! The history API (`/v1`) over real HTTP, on both backends, its contract `openapi.yaml`,
//! and `/metrics`. Every `/v1` answer is also checked against openapi.yaml.

mod access;
mod cancel;
mod executions;
mod messages;
mod metrics;
mod openapi;
mod savings;

use std::sync::Arc;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::support::db::TestDb;
use crate::support::fake_aws::FakeAws;
use crate::support::openapi::assert_conforms;
use crate::support::sns::SnsStub;
use crate::support::{TOKENS, TestApp, config};

/// restop with a fake SNS and an in-process fake AWS, called with the first test token.
struct Api {
    app: TestApp,
    stub: SnsStub,
    aws: Arc<FakeAws>,
    token: String,
}

/// An answer of restop, already checked against openapi.yaml.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
    text: String,
}

async fn api(db: &TestDb) -> Api {
    let stub = SnsStub::start().await;
    let aws = Arc::new(FakeAws::default());
    let app = TestApp::spawn_with(
        config(&db.url, Some(&stub.host)),
        Arc::new(restop::clock::SystemClock),
        Some(aws.clone()),
    )
    .await;
    Api {
        app,
        stub,
        aws,
        token: TOKENS[0].into(),
    }
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Answer {
        let mut request = self
            .app
            .client
            .request(method.clone(), format!("{}{path}", self.app.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        assert_conforms(method.as_str(), path, status, &headers, &bytes);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None, Some(&self.token.clone()))
            .await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body), Some(&self.token.clone()))
            .await
    }

    /// A manual trigger for a resource the fake AWS knows; returns the new execution.
    async fn trigger(&self, id: &str) -> Value {
        let arn = format!("arn:aws:rds:us-east-1:123456789012:db:{id}");
        self.aws.add(&arn, "available", &[]);
        let answer = self
            .post("/v1/executions", json!({"resource_arn": arn}))
            .await;
        assert_eq!(answer.status, 201, "{}", answer.text);
        answer.body
    }
}
