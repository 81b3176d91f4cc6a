//! Executions over `/v1`: manual triggers (validated, one active run per resource),
//! the list with its filters and pages, and one execution shown.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Answer, api};
use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::error_code;
use crate::support::world::world;

on_both_backends!(
    manual_triggers_validate_and_conflict,
    executions_list_filters_and_shows,
    pagination_never_repeats_or_skips_during_inserts,
    identifiers_are_one_resource_whatever_their_case,
    a_trigger_by_identifier_gives_up_on_a_slow_rds_in_time,
);

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

async fn a_trigger_by_identifier_gives_up_on_a_slow_rds_in_time(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    // RDS answers every attempt of the lookup 30 s late: far past the request deadline.
    w.moto
        .fault(
            json!({"action": "DescribeDBInstances", "count": 3, "code": null,
            "delay_seconds": 30}),
        )
        .await;
    let started = std::time::Instant::now();
    let answer = w
        .app
        .v1(
            reqwest::Method::POST,
            "/v1/executions",
            Some(json!({"db_instance_identifier": "orders", "region": "us-east-1"})),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(
        (answer.status, error_code(&answer.body)),
        (503, "aws_unavailable"),
        "{}",
        answer.text
    );
    assert!(
        took < Duration::from_millis(4500),
        "answered after {took:?}"
    );
}
