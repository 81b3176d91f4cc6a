//! `POST /v1/executions/{id}/cancel`: an execution ends once, and the engine makes no
//! AWS call for it afterwards.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::api;
use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::moto::{Moto, instance_arn};
use crate::support::sns::SnsStub;
use crate::support::{TOKENS, TestApp, config, error_code};

on_both_backends!(
    cancel_ends_an_execution_once,
    cancel_during_a_wait_makes_no_further_aws_call,
);

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
