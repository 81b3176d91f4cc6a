//! The history API over real HTTP, on both backends. Every answer is also checked against
//! openapi.yaml.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::fake_aws::FakeAws;
use crate::support::moto::{Moto, instance_arn};
use crate::support::openapi::assert_conforms;
use crate::support::sns::SnsStub;
use crate::support::{TOKENS, TestApp, config, error_code};

on_both_backends!(
    every_v1_route_needs_a_valid_bearer_token,
    no_configured_token_refuses_everything,
    manual_triggers_validate_and_conflict,
    executions_list_filters_and_shows,
    pagination_never_repeats_or_skips_during_inserts,
    cancel_ends_an_execution_once,
    cancel_during_a_wait_makes_no_further_aws_call,
    messages_and_subscriptions_without_secrets,
    errors_share_one_shape,
    metrics_move,
    identifiers_are_one_resource_whatever_their_case,
);

struct Api {
    app: TestApp,
    stub: SnsStub,
    aws: Arc<FakeAws>,
    token: String,
}

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

async fn every_v1_route_needs_a_valid_bearer_token(db: TestDb) {
    let api = api(&db).await;
    let routes = [
        (Method::GET, "/v1/executions"),
        (Method::POST, "/v1/executions"),
        (
            Method::GET,
            "/v1/executions/00000000-0000-4000-8000-000000000000",
        ),
        (
            Method::POST,
            "/v1/executions/00000000-0000-4000-8000-000000000000/cancel",
        ),
        (Method::GET, "/v1/messages"),
        (Method::GET, "/v1/messages/m-1"),
        (Method::GET, "/v1/subscriptions"),
    ];
    for (method, path) in &routes {
        for token in [None, Some("wrong-token-0123456789"), Some(&TOKENS[0][1..])] {
            let answer = api.call(method.clone(), path, Some(json!({})), token).await;
            assert_eq!(answer.status, 401, "{method} {path} with {token:?}");
            assert_eq!(error_code(&answer.body), "unauthorized");
            assert_eq!(
                answer.headers["www-authenticate"],
                "Bearer realm=\"restop\""
            );
        }
    }
    for token in TOKENS {
        let answer = api
            .call(Method::GET, "/v1/executions", None, Some(token))
            .await;
        assert_eq!(answer.status, 200, "{token}");
    }
    // Health and metrics stay open.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            api.call(Method::GET, path, None, None).await.status,
            200,
            "{path}"
        );
    }
}

async fn no_configured_token_refuses_everything(db: TestDb) {
    let mut cfg = config(&db.url, None);
    cfg.api_tokens.0.clear();
    let app = TestApp::spawn(cfg).await;
    for token in [None, Some(TOKENS[0]), Some("")] {
        let mut request = app.client.get(format!("{}/v1/executions", app.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("RESTOP_API_TOKENS")
        );
    }
}

async fn manual_triggers_validate_and_conflict(db: TestDb) {
    let api = api(&db).await;
    // By ARN.
    let created = api.trigger("orders").await;
    assert_eq!(created["trigger"], "manual");
    assert_eq!(created["status"], "pending");
    assert_eq!(created["resource_id"], "orders");
    assert_eq!(created["message_id"], Value::Null);
    assert!(created["steps"].as_array().unwrap().is_empty());

    // By identifier and region: the ARN comes from RDS.
    api.aws.add(
        "arn:aws:rds:eu-west-1:123456789012:cluster:aurora-1",
        "available",
        &[],
    );
    let answer = api
        .post("/v1/executions", json!({"db_cluster_identifier": "aurora-1", "region": "eu-west-1", "dry_run": true, "skip_tag_check": true}))
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let id = answer.body["id"].as_str().unwrap();
    assert_eq!(
        answer.headers["location"],
        format!("/v1/executions/{id}").as_str()
    );
    assert_eq!(
        answer.body["resource_arn"],
        "arn:aws:rds:eu-west-1:123456789012:cluster:aurora-1"
    );
    assert_eq!(
        (&answer.body["dry_run"], &answer.body["skip_tag_check"]),
        (&json!(true), &json!(true))
    );

    // A second trigger while the first is active: 409 naming it.
    let again = api
        .post(
            "/v1/executions",
            json!({"resource_arn": created["resource_arn"]}),
        )
        .await;
    assert_eq!(
        (again.status, error_code(&again.body)),
        (409, "execution_active")
    );
    assert_eq!(again.body["error"]["execution_id"], created["id"]);

    let unknown = api
        .post(
            "/v1/executions",
            json!({"db_instance_identifier": "nobody", "region": "us-east-1"}),
        )
        .await;
    assert_eq!(
        (unknown.status, error_code(&unknown.body)),
        (404, "resource_not_found")
    );

    let count_before = db.count("SELECT COUNT(*) FROM executions").await;
    for (body, needle) in [
        (
            json!({"db_instance_identifier": "1bad", "region": "us-east-1"}),
            "begin with a letter",
        ),
        (
            json!({"db_instance_identifier": "bad--name", "region": "us-east-1"}),
            "consecutive hyphens",
        ),
        (
            json!({"db_instance_identifier": "trailing-", "region": "us-east-1"}),
            "hyphen",
        ),
        (
            json!({"db_instance_identifier": "a".repeat(64), "region": "us-east-1"}),
            "63",
        ),
        (
            json!({"db_instance_identifier": "under_score", "region": "us-east-1"}),
            "letters, digits and hyphens",
        ),
        (
            json!({"db_instance_identifier": "ok", "region": "mars-1"}),
            "region",
        ),
        (
            json!({"db_instance_identifier": "ok"}),
            "region is required",
        ),
        (
            json!({"resource_arn": "arn:aws:rds:us-east-1:123456789012:snapshot:s"}),
            "ARN",
        ),
        (
            json!({"resource_arn": "arn:aws:rds:us-east-1:123456789012:db:x", "db_instance_identifier": "x"}),
            "exactly one",
        ),
        (json!({}), "exactly one"),
        (
            json!({"resource_arn": "arn:aws:rds:us-east-1:123456789012:db:x", "force": true}),
            "force",
        ),
        (json!({"resource_arn": 7}), "resource_arn"),
        (
            json!({"resource_arn": "arn:aws:rds:us-east-1:123456789012:db:x", "region": null}),
            "region",
        ),
        (json!([1, 2]), ""),
    ] {
        let answer = api.post("/v1/executions", body.clone()).await;
        assert_eq!(
            (answer.status, error_code(&answer.body)),
            (400, "invalid_request"),
            "{body}"
        );
        assert!(
            answer.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{body}: {}",
            answer.text
        );
    }
    let malformed = api
        .app
        .client
        .post(format!("{}/v1/executions", api.app.base))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body("{\"resource_arn\":")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let wrong_type = api
        .app
        .client
        .post(format!("{}/v1/executions", api.app.base))
        .bearer_auth(&api.token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM executions").await,
        count_before,
        "bad input changed stored data"
    );
}

async fn executions_list_filters_and_shows(db: TestDb) {
    let api = api(&db).await;
    let first = api.trigger("alpha").await;
    let second = api.trigger("beta").await;
    // One from SNS, for the trigger filter.
    let (status, body) = api
        .app
        .post_sns(
            &api.stub
                .rds_notification("RDS-EVENT-0154", "db-instance", "gamma"),
        )
        .await;
    assert_eq!(status, 200);
    let from_sns = body["execution_id"].as_str().unwrap().to_owned();

    let ids = |answer: &Answer| -> Vec<String> {
        answer.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = api.get("/v1/executions").await;
    assert_eq!(
        ids(&all),
        [
            from_sns.clone(),
            second["id"].as_str().unwrap().into(),
            first["id"].as_str().unwrap().into()
        ],
        "newest first"
    );
    assert_eq!(all.body["next_cursor"], Value::Null);

    assert_eq!(
        ids(&api.get("/v1/executions?resource=alpha").await),
        [first["id"].as_str().unwrap()]
    );
    let by_arn = format!(
        "/v1/executions?resource={}",
        urlencode(first["resource_arn"].as_str().unwrap())
    );
    assert_eq!(
        ids(&api.get(&by_arn).await),
        [first["id"].as_str().unwrap()]
    );
    assert_eq!(
        ids(&api.get("/v1/executions?trigger=sns").await),
        [from_sns.as_str()]
    );
    assert_eq!(
        ids(&api.get("/v1/executions?trigger=manual").await).len(),
        2
    );
    assert_eq!(
        ids(&api.get("/v1/executions?status=pending").await).len(),
        3
    );
    assert!(ids(&api.get("/v1/executions?status=succeeded").await).is_empty());
    let created = first["created_at"].as_str().unwrap();
    assert_eq!(
        ids(&api
            .get(&format!("/v1/executions?until={}", urlencode(created)))
            .await)
        .len(),
        0
    );
    assert_eq!(
        ids(&api
            .get(&format!("/v1/executions?since={}", urlencode(created)))
            .await)
        .len(),
        3
    );
    assert_eq!(ids(&api.get("/v1/executions?limit=1").await).len(), 1);

    for bad in [
        "status=done",
        "trigger=cron",
        "since=yesterday",
        "limit=0",
        "limit=501",
        "cursor=abc",
        "limit=1&limit=2",
    ] {
        let answer = api.get(&format!("/v1/executions?{bad}")).await;
        assert_eq!(
            (answer.status, error_code(&answer.body)),
            (400, "invalid_parameter"),
            "{bad}"
        );
    }

    let shown = api.get(&format!("/v1/executions/{from_sns}")).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body["trigger"], "sns");
    assert_eq!(shown.body["event_id"], "RDS-EVENT-0154");
    assert!(shown.body["message_id"].is_string());
    for unknown in ["00000000-0000-4000-8000-000000000000", "not-a-uuid", "%20"] {
        let answer = api.get(&format!("/v1/executions/{unknown}")).await;
        assert_eq!(
            (answer.status, error_code(&answer.body)),
            (404, "not_found"),
            "{unknown}"
        );
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn pagination_never_repeats_or_skips_during_inserts(db: TestDb) {
    let api = Arc::new(api(&db).await);
    let mut existing = HashSet::new();
    for i in 0..23 {
        existing.insert(
            api.trigger(&format!("page-{i}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Keep inserting while the walk goes on.
    let inserter = {
        let api = api.clone();
        tokio::spawn(async move {
            for i in 0..15 {
                api.trigger(&format!("late-{i}")).await;
            }
        })
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/executions?limit=4&trigger=manual&cursor={c}"),
            None => "/v1/executions?limit=4&trigger=manual".into(),
        };
        let page = api.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.text);
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    inserter.await.unwrap();
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "an execution was listed twice");
    assert!(
        existing.is_subset(&unique),
        "an execution that existed before the walk was skipped"
    );
}

async fn cancel_ends_an_execution_once(db: TestDb) {
    let api = api(&db).await;
    let execution = api.trigger("to-cancel").await;
    let id = execution["id"].as_str().unwrap();
    let answer = api
        .post(&format!("/v1/executions/{id}/cancel"), json!(null))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        (&answer.body["status"], &answer.body["outcome"]),
        (&json!("cancelled"), &json!("cancelled"))
    );
    assert_eq!(answer.body["next_run_at"], Value::Null);
    assert!(
        answer.body["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["step"] == "cancel")
    );

    let again = api
        .post(&format!("/v1/executions/{id}/cancel"), json!(null))
        .await;
    assert_eq!(
        (again.status, error_code(&again.body)),
        (409, "execution_finished")
    );
    let unknown = api
        .post(
            "/v1/executions/00000000-0000-4000-8000-000000000000/cancel",
            json!(null),
        )
        .await;
    assert_eq!(
        (unknown.status, error_code(&unknown.body)),
        (404, "not_found")
    );
    // The resource is free again.
    let fresh = api
        .post(
            "/v1/executions",
            json!({"resource_arn": execution["resource_arn"]}),
        )
        .await;
    assert_eq!(fresh.status, 201);
}

async fn cancel_during_a_wait_makes_no_further_aws_call(db: TestDb) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let stub = SnsStub::start().await;
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.engine.engine_enabled = true;
    let app = TestApp::spawn_with(
        cfg,
        Arc::new(restop::clock::SystemClock),
        Some(moto.aws().await),
    )
    .await;
    let rds = moto.rds().await;
    let tags = [
        ("auto-restart-protection", "yes"),
        ("moto:force-status", "backing-up:600"),
    ]
    .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build());
    rds.create_db_instance()
        .db_instance_identifier("waiting")
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("password123")
        .set_tags(Some(tags.to_vec()))
        .send()
        .await
        .unwrap();
    let created = app
        .client
        .post(format!("{}/v1/executions", app.base))
        .bearer_auth(TOKENS[1])
        .json(&json!({"resource_arn": instance_arn("waiting")}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = serde_json::from_str::<Value>(&created.text().await.unwrap()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Wait until the engine polls the busy database at least twice.
    for _ in 0..100 {
        let polls = moto
            .calls_for("waiting")
            .await
            .iter()
            .filter(|a| *a == "DescribeDBInstances")
            .count();
        if polls >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cancelled = app
        .client
        .post(format!("{}/v1/executions/{id}/cancel", app.base))
        .bearer_auth(TOKENS[1])
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    // A call already in flight may still land; none may start afterwards.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after_cancel = moto.calls_for("waiting").await.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        moto.calls_for("waiting").await.len(),
        after_cancel,
        "AWS was called after the cancel"
    );
    assert_eq!(
        db.text("SELECT status FROM executions WHERE id = $1", &id)
            .await
            .as_deref(),
        Some("cancelled")
    );
}

async fn messages_and_subscriptions_without_secrets(db: TestDb) {
    let api = api(&db).await;
    let token = "secret-token-do-not-leak-4242";
    let confirmation = api.stub.confirmation("SubscriptionConfirmation", token);
    assert_eq!(api.app.post_sns(&confirmation).await.0, 200);
    let notification = api
        .stub
        .rds_notification("RDS-EVENT-0154", "db-instance", "orders");
    assert_eq!(api.app.post_sns(&notification).await.0, 200);
    let ignored = api
        .stub
        .rds_notification("RDS-EVENT-0006", "db-instance", "orders");
    assert_eq!(api.app.post_sns(&ignored).await.0, 200);

    let all = api.get("/v1/messages").await;
    assert_eq!(all.status, 200);
    assert_eq!(all.body["items"].as_array().unwrap().len(), 3);
    let accepted = api.get("/v1/messages?disposition=accepted").await;
    let items = accepted.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["event"]["event_id"], "RDS-EVENT-0154");
    assert!(items[0]["execution_id"].is_string());
    assert_eq!(
        api.get("/v1/messages?type=SubscriptionConfirmation")
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        api.get("/v1/messages?resource=orders").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        api.get("/v1/messages?limit=2").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(api.get("/v1/messages?type=Other").await.status, 400);

    let id = confirmation["MessageId"].as_str().unwrap();
    let shown = api.get(&format!("/v1/messages/{id}")).await;
    assert_eq!(
        (shown.status, &shown.body["disposition"]),
        (200, &json!("confirmed"))
    );
    assert_eq!(api.get("/v1/messages/no-such-message").await.status, 404);

    let subscriptions = api.get("/v1/subscriptions").await;
    assert_eq!(subscriptions.body["items"][0]["status"], "confirmed");
    // SNS's own Message text mentions "the SubscribeURL"; the URLs and the token must not appear.
    for answer in [all, shown, subscriptions] {
        for secret in [
            token,
            "Action=ConfirmSubscription",
            "Action=Unsubscribe",
            "\"Token\"",
            "\"SubscribeURL\"",
        ] {
            assert!(
                !answer.text.contains(secret),
                "{secret} leaked: {}",
                answer.text
            );
        }
    }
}

async fn errors_share_one_shape(db: TestDb) {
    let api = api(&db).await;
    let cases = [
        (Method::GET, "/nowhere", 404, "not_found"),
        (Method::GET, "/v1/nowhere", 404, "not_found"),
        (Method::DELETE, "/healthz", 405, "method_not_allowed"),
        (Method::GET, "/sns", 405, "method_not_allowed"),
        (Method::PUT, "/v1/executions", 405, "method_not_allowed"),
    ];
    for (method, path, status, code) in cases {
        let response = api
            .app
            .client
            .request(method.clone(), format!("{}{path}", api.app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_eq!(error_code(&body), code, "{method} {path}");
        assert!(body["error"]["message"].is_string());
    }
}

async fn metrics_move(db: TestDb) {
    let api = api(&db).await;
    api.trigger("counted").await;
    api.aws.add(
        "arn:aws:rds:us-east-1:123456789012:db:looked-up",
        "available",
        &[],
    );
    let by_name = api
        .post(
            "/v1/executions",
            json!({"db_instance_identifier": "looked-up", "region": "us-east-1"}),
        )
        .await;
    assert_eq!(by_name.status, 201);
    api.get("/v1/executions").await;
    let mut forged = api.stub.notification("x");
    forged["Message"] = "changed".into();
    assert_eq!(api.app.post_sns(&forged).await.0, 403);
    let metrics = api.app.metrics().await;
    for needle in [
        "restop_sns_refusals_total{reason=\"invalid_signature\"} 1",
        "restop_http_request_duration_seconds_count{route=\"/v1/executions\",method=\"GET\",status=\"200\"} 1",
        "restop_http_request_duration_seconds_count{route=\"/v1/executions\",method=\"POST\",status=\"201\"} 2",
        "restop_executions{status=\"pending\",outcome=\"\"} 2",
        "restop_active_jobs 2",
        "restop_aws_calls_total{operation=\"DescribeDBInstances\",account=\"123456789012\",region=\"us-east-1\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from\n{metrics}");
    }
}

async fn identifiers_are_one_resource_whatever_their_case(db: TestDb) {
    let api = api(&db).await;
    // The engine is off: the first run stays active.
    let first = api
        .post(
            "/v1/executions",
            json!({"resource_arn": "arn:aws:rds:us-east-1:123456789012:db:Orders"}),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.body["resource_id"], "orders");
    assert_eq!(
        first.body["resource_arn"],
        "arn:aws:rds:us-east-1:123456789012:db:orders"
    );
    let second = api
        .post(
            "/v1/executions",
            json!({"resource_arn": "arn:aws:rds:us-east-1:123456789012:db:ORDERS"}),
        )
        .await;
    assert_eq!(second.status, 409, "{}", second.text);
    assert_eq!(second.body["error"]["execution_id"], first.body["id"]);
}
