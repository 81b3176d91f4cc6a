//! Many accounts: a member account's database is stopped through its role and only there,
//! an account nobody listed is refused, a role that cannot be assumed fails the execution
//! (not restop), waiting databases are described many per call, and a member's role is
//! assumed once for all its regions.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use restop::config::CommaList;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::binary::{restop_command, spawn_restop};
use crate::support::db::TestDb;
use crate::support::fake_aws::FakeAws;
use crate::support::moto::Moto;
use crate::support::sns::{self, SnsStub, TOPIC};
use crate::support::world::{PROTECTED, tags, world};
use crate::support::{TOKENS, TestApp, config, error_code};

use restop::aws::arn::ResourceArn;
use restop::aws::{Accounts, Aws, AwsFailure, AwsRequest, SdkAws};

on_both_backends!(
    a_member_account_database_is_stopped_through_its_role,
    an_account_nobody_listed_is_refused,
    waiting_databases_are_described_a_hundred_at_a_time,
    a_role_that_cannot_be_assumed_fails_the_execution_not_restop,
);

const MEMBER: &str = "222222222222";

async fn a_member_account_database_is_stopped_through_its_role(db: TestDb) {
    let Some(w) = world(db, |c| {
        c.accounts.accounts = CommaList(vec![MEMBER.parse().unwrap()]);
    })
    .await
    else {
        return;
    };
    // The same identifier in restop's own account and in the member account.
    w.create_instance("orders", PROTECTED).await;
    let member = w.moto.rds_in(MEMBER).await;
    member
        .create_db_instance()
        .db_instance_identifier("orders")
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("password123")
        .set_tags(Some(tags(PROTECTED)))
        .send()
        .await
        .unwrap();
    let member_status = || async {
        member
            .describe_db_instances()
            .db_instance_identifier("orders")
            .send()
            .await
            .unwrap()
            .db_instances()[0]
            .db_instance_status()
            .unwrap()
            .to_owned()
    };
    member
        .stop_db_instance()
        .db_instance_identifier("orders")
        .send()
        .await
        .unwrap();
    for _ in 0..100 {
        if member_status().await == "stopped" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    member
        .start_db_instance()
        .db_instance_identifier("orders")
        .send()
        .await
        .unwrap();

    // The member account publishes to restop's central topic.
    let arn = format!("arn:aws:rds:us-east-1:{MEMBER}:db:orders");
    let msg = w.stub.notification(&sns::rds_event_message_for(
        "RDS-EVENT-0154",
        "db-instance",
        "orders",
        &arn,
    ));
    let execution = w.post(&msg).await;
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "stopped"),
        "{reason}: {:?}",
        w.steps(&execution).await
    );
    assert_eq!(member_status().await, "stopped");
    assert_eq!(
        w.instance_status("orders").await,
        "available",
        "restop's own `orders` was left alone"
    );
    assert_eq!(
        w.column(&execution, "account_id").await.as_deref(),
        Some(MEMBER)
    );
}

async fn an_account_nobody_listed_is_refused(db: TestDb) {
    let stub = SnsStub::start().await;
    let aws = Arc::new(FakeAws::default());
    aws.add_member(MEMBER);
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.accounts.accounts = CommaList(vec![MEMBER.parse().unwrap()]);
    let app = TestApp::spawn_with(cfg, Arc::new(restop::clock::SystemClock), Some(aws)).await;
    let trigger = |arn: String| {
        app.client
            .post(format!("{}/v1/executions", app.base))
            .bearer_auth(TOKENS[0])
            .json(&json!({ "resource_arn": arn }))
            .send()
    };

    let response = trigger("arn:aws:rds:us-east-1:333333333333:db:orders".into())
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    crate::support::openapi::assert_conforms("POST", "/v1/executions", 403, &headers, &bytes);
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(error_code(&body), "account_not_allowed");
    assert_eq!(db.count("SELECT COUNT(*) FROM executions").await, 0);
    // A listed member account is fine.
    let response = trigger(format!("arn:aws:rds:us-east-1:{MEMBER}:db:orders"))
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // Through SNS: the topic may carry its listed members' events, nobody else's.
    for (account, disposition) in [(MEMBER, "accepted"), ("333333333333", "ignored")] {
        let arn = format!("arn:aws:rds:us-east-1:{account}:db:reports");
        let msg = stub.notification(&sns::rds_event_message_for(
            "RDS-EVENT-0154",
            "db-instance",
            "reports",
            &arn,
        ));
        let (status, body) = app.post_sns(&msg).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["disposition"], disposition, "{account}");
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM executions").await, 2);
}

async fn waiting_databases_are_described_a_hundred_at_a_time(db: TestDb) {
    let aws = Arc::new(FakeAws::default());
    aws.add_member(MEMBER);
    let mut cfg = config(&db.url, None);
    cfg.engine.engine_enabled = true;
    let app = restop::App::build(
        cfg,
        restop::Deps {
            clock: Arc::new(restop::clock::SystemClock),
            aws: Some(aws.clone()),
        },
    )
    .await
    .unwrap();
    // 250 waiting databases in one account and region, 50 in another account.
    let mut arns = Vec::new();
    for i in 0..300 {
        let account = if i < 250 { "123456789012" } else { MEMBER };
        let arn = format!("arn:aws:rds:us-east-1:{account}:db:waiting-{i}");
        aws.add(&arn, "starting", PROTECTED);
        crate::support::events::accept_event(app.store(), &arn).await;
        arns.push(arn);
    }
    let engine = app.engine().unwrap().clone();
    let describes = |n: usize| arns.iter().all(|arn| aws.calls("Describe", arn) >= n);
    // The tag check and a first look, one by one; then the waiting polls, together.
    while !describes(2) {
        engine.run_round().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = aws.requests();
    while !describes(5) {
        engine.run_round().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let polls: usize = arns
        .iter()
        .map(|arn| aws.calls("Describe", arn))
        .sum::<usize>();
    let requests = aws.requests() - before;
    // At least three polls each since `before`: 900 or more, in a few calls per round
    // (three for the 250, one for the 50).
    assert!(polls >= 5 * 300);
    let per_poll = requests as f64 / (3.0 * 300.0);
    assert!(
        per_poll <= 0.02,
        "{requests} describe calls for 3 polls of 300 databases: {per_poll:.3} a poll"
    );
}

/// An STS that knows restop's identity but refuses every AssumeRole.
async fn refusing_sts(request: Bytes) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let body = String::from_utf8_lossy(&request);
    let xml = [("content-type", "text/xml")];
    if body.contains("Action=GetCallerIdentity") {
        return (
            StatusCode::OK,
            xml,
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/restop</Arn>\
             <UserId>AIDARESTOP</UserId><Account>123456789012</Account></GetCallerIdentityResult>\
             <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
                .into(),
        );
    }
    (
        StatusCode::FORBIDDEN,
        xml,
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
         <Type>Sender</Type><Code>AccessDenied</Code><Message>User: \
         arn:aws:iam::123456789012:user/restop is not authorized to perform: sts:AssumeRole \
         on resource: arn:aws:iam::444444444444:role/restop-member</Message></Error>\
         <RequestId>2</RequestId></ErrorResponse>"
            .into(),
    )
}

async fn a_role_that_cannot_be_assumed_fails_the_execution_not_restop(db: TestDb) {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let sts = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sts_url = format!("http://{}", sts.local_addr().unwrap());
    tokio::spawn(async move {
        let app = axum::Router::new().route("/", axum::routing::post(refusing_sts));
        axum::serve(sts, app).await.unwrap();
    });
    let mut command = restop_command();
    command
        .env("DATABASE_URL", &db.url)
        .env("RESTOP_TOPIC_ARNS", TOPIC)
        .env("RESTOP_API_TOKENS", TOKENS[0])
        .env("RESTOP_ACCOUNTS", "444444444444")
        .env("RESTOP_POLL_INTERVAL", "1s")
        .env("RESTOP_JOB_LEASE", "10s")
        .env("RESTOP_AWS_TIMEOUT", "5s")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ENDPOINT_URL_STS", &sts_url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1");
    let restop = spawn_restop(command).await;
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/v1/executions", restop.base))
        .bearer_auth(TOKENS[0])
        .json(&json!({"resource_arn": "arn:aws:rds:us-east-1:444444444444:db:locked"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let execution = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut status = String::new();
    for _ in 0..300 {
        status = db
            .text("SELECT status FROM executions WHERE id = $1", &execution)
            .await
            .unwrap();
        if status != "pending" && status != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let column = |c: &str| format!("SELECT {c} FROM executions WHERE id = $1");
    let outcome = db.text(&column("outcome"), &execution).await;
    let reason = db
        .text(&column("reason"), &execution)
        .await
        .unwrap_or_default();
    assert_eq!(
        (status.as_str(), outcome.as_deref()),
        ("failed", Some("access_denied")),
        "{reason}"
    );
    assert!(
        reason.contains("arn:aws:iam::444444444444:role/restop-member"),
        "the role is named: {reason}"
    );
    // One account's broken role does not make restop unready.
    let ready = client
        .get(format!("{}/readyz", restop.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    restop.kill().await;
}

/// Credentials belong to an account, not to an account-region: a member's role is assumed
/// once and its credentials serve every region (until they expire, an hour by default), so
/// 500 accounts in 17 regions cost 500 AssumeRole calls an hour, not 8,500.
#[tokio::test]
async fn a_member_role_is_assumed_once_for_all_its_regions() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    // Every request restop makes, counted by action on its way to moto.
    let actions = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let counted = actions.clone();
    let proxy = restop::testing::moto::tap(&moto.url, move |_, body| {
        // The query protocol (RDS, STS) names the action in the form body.
        let action = url::form_urlencoded::parse(body)
            .find(|(key, _)| key == "Action")
            .map(|(_, action)| action.into_owned())
            .unwrap_or_default();
        *counted.lock().unwrap().entry(action).or_insert(0) += 1;
    })
    .await
    .unwrap();
    let count = |action: &str| actions.lock().unwrap().get(action).copied().unwrap_or(0);
    let base = SdkAws::loader(Duration::from_secs(5))
        .endpoint_url(&proxy)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "moto",
        ))
        .load()
        .await;
    let members = ["222222222222", "333333333333"];
    let aws = SdkAws::new(
        base,
        Accounts::new(
            members.map(|m| (m.to_owned(), None)),
            "restop-member".into(),
            None,
        ),
    );
    let regions = ["us-east-1", "eu-west-1", "ap-southeast-2"];
    for _round in 0..3 {
        for account in members {
            for region in regions {
                let arn: ResourceArn = format!("arn:aws:rds:{region}:{account}:db:absent")
                    .parse()
                    .unwrap();
                let answer = aws.call(AwsRequest::Describe(&arn)).await;
                assert!(matches!(answer, Err(AwsFailure::NotFound)), "{answer:?}");
            }
        }
    }
    assert_eq!(count("DescribeDBInstances"), 3 * 2 * 3);
    assert_eq!(count("AssumeRole"), members.len());
    assert_eq!(count("GetCallerIdentity"), 1);
}
