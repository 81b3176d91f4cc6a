//! Subscription and unsubscribe confirmations: confirmed once (by the SubscribeURL, or by
//! the SNS API where restop has credentials), retried when SNS does not answer, left to an
//! operator when auto-confirm is off, and never sent to a tampered URL.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{assert_refused, start};
use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::sns::{SnsStub, TOPIC};
use crate::support::world::{World, world};
use crate::support::{TestApp, config, error_code};

on_both_backends!(
    subscription_is_confirmed_exactly_once,
    failed_confirmation_answers_503_and_is_retried,
    auto_confirm_off_records_for_an_operator,
    unsubscribe_confirmation_is_never_visited,
    tampered_subscribe_urls_are_refused,
    a_subscription_is_confirmed_with_the_sns_api_where_restop_has_credentials,
    a_throttled_confirm_subscription_answers_503_and_never_visits_the_subscribe_url,
    no_permission_to_confirm_falls_back_to_the_subscribe_url_and_says_so,
    a_confirm_subscription_that_hangs_answers_503_before_the_deadline,
    without_any_aws_credentials_the_subscribe_url_confirms,
);

async fn subscription_is_confirmed_exactly_once(db: TestDb) {
    let (stub, app) = start(&db).await;
    let msg = stub.confirmation("SubscriptionConfirmation", "tok-123");
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("confirmed")),
        "{body}"
    );
    let seen = stub.confirmations();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0],
        format!("Action=ConfirmSubscription&TopicArn={TOPIC}&Token=tok-123")
    );

    let subscription = |c: &str| format!("SELECT {c} FROM sns_subscriptions WHERE topic_arn = $1");
    assert_eq!(
        db.text(&subscription("status"), TOPIC).await.as_deref(),
        Some("confirmed")
    );
    assert_eq!(
        db.text(&subscription("subscription_arn"), TOPIC).await,
        Some(format!("{TOPIC}:6f8b1a34-7d2c-4a5e-9b1d-2c3e4f5a6b7c"))
    );
    let id = msg["MessageId"].as_str().unwrap();
    assert_eq!(
        db.message_disposition(id).await.as_deref(),
        Some("confirmed")
    );

    // A redelivery does not confirm again.
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!((status, &body["duplicate"]), (200, &json!(true)));
    assert_eq!(stub.confirmations().len(), 1);
}

async fn failed_confirmation_answers_503_and_is_retried(db: TestDb) {
    let (stub, app) = start(&db).await;
    stub.set(|s| s.confirm_status = 403);
    let msg = stub.confirmation("SubscriptionConfirmation", "tok");
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!((status, error_code(&body)), (503, "confirmation_failed"));
    let id = msg["MessageId"].as_str().unwrap();
    assert_eq!(
        db.message_disposition(id).await.as_deref(),
        Some("confirmation_failed")
    );
    let status_sql = "SELECT status FROM sns_subscriptions WHERE topic_arn = $1";
    assert_eq!(
        db.text(status_sql, TOPIC).await.as_deref(),
        Some("confirmation_failed")
    );
    assert!(
        db.text(
            "SELECT last_error FROM sns_subscriptions WHERE topic_arn = $1",
            TOPIC
        )
        .await
        .is_some_and(|e| e.contains("403"))
    );

    // SNS delivers again; this time SNS answers.
    stub.set(|s| s.confirm_status = 200);
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("confirmed")),
        "{body}"
    );
    assert_eq!(stub.confirmations().len(), 2);
    assert_eq!(
        db.text(status_sql, TOPIC).await.as_deref(),
        Some("confirmed")
    );
    assert_eq!(db.message_count().await, 1);
}

async fn auto_confirm_off_records_for_an_operator(db: TestDb) {
    let stub = SnsStub::start().await;
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.sns.sns_auto_confirm = false;
    let app = TestApp::spawn(cfg).await;
    let msg = stub.confirmation("SubscriptionConfirmation", "tok");
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("pending_confirmation"))
    );
    assert!(stub.confirmations().is_empty());
    let row = |c: &str| format!("SELECT {c} FROM sns_subscriptions WHERE topic_arn = $1");
    assert_eq!(
        db.text(&row("status"), TOPIC).await.as_deref(),
        Some("pending_confirmation")
    );
    assert_eq!(
        db.text(&row("subscribe_url"), TOPIC).await,
        Some(stub.subscribe_url(TOPIC, "tok"))
    );
}

async fn unsubscribe_confirmation_is_never_visited(db: TestDb) {
    let (stub, app) = start(&db).await;
    let msg = stub.confirmation("UnsubscribeConfirmation", "tok");
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("unsubscribed"))
    );
    assert!(stub.confirmations().is_empty());
    let status_sql = "SELECT status FROM sns_subscriptions WHERE topic_arn = $1";
    assert_eq!(
        db.text(status_sql, TOPIC).await.as_deref(),
        Some("unsubscribed")
    );
}

async fn tampered_subscribe_urls_are_refused(db: TestDb) {
    let (stub, app) = start(&db).await;
    let good = stub.subscribe_url(TOPIC, "tok");
    let tampered = [
        good.replace("Token=tok", "Token=other"),
        good.replace("rds-events", "rds-events-2"),
        good.replace("ConfirmSubscription", "Subscribe"),
        format!("{good}&Endpoint=https://evil.example.com"),
        good.replace(&stub.host, "sns.us-east-1.amazonaws.com.evil.com"),
        good.replace("http://", "http://user@"),
        good.replace("/?", "/evil?"),
    ];
    for url in tampered {
        let mut msg = stub.unsigned_confirmation("SubscriptionConfirmation", "tok");
        msg["SubscribeURL"] = url.into();
        stub.signer.sign(&mut msg);
        assert_refused(&app, &db, &msg, 403, "invalid_subscribe_url").await;
    }
    assert!(stub.confirmations().is_empty());
    assert_eq!(db.count("SELECT COUNT(*) FROM sns_subscriptions").await, 0);
}

async fn a_subscription_is_confirmed_with_the_sns_api_where_restop_has_credentials(db: TestDb) {
    let Some(w) = world(db, |_| {}).await else {
        return;
    };
    // The topic lives in restop's own account (moto's), so restop may confirm it itself.
    w.moto
        .sns()
        .await
        .create_topic()
        .name("rds-events")
        .send()
        .await
        .unwrap();
    let msg = w.stub.confirmation("SubscriptionConfirmation", "tok-api");
    let (status, body) = w.app.post_sns(&msg).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("confirmed")),
        "{body}"
    );
    assert!(
        w.stub.confirmations().is_empty(),
        "the SubscribeURL was visited"
    );
    let calls = w.moto.call_params("ConfirmSubscription").await;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["AuthenticateOnUnsubscribe"], "true");
    assert_eq!(calls[0]["Token"], "tok-api");
}

/// A world whose topic lives in restop's own account (moto's): restop confirms with the API.
async fn own_topic_world(db: TestDb) -> Option<World> {
    let w = world(db, |_| {}).await?;
    let sns = w.moto.sns().await;
    sns.create_topic().name("rds-events").send().await.unwrap();
    Some(w)
}

/// The one subscription `GET /v1/subscriptions` lists.
async fn listed_subscription(w: &World) -> Value {
    let list = w.app.get_v1("/v1/subscriptions").await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    items[0].clone()
}

async fn a_throttled_confirm_subscription_answers_503_and_never_visits_the_subscribe_url(
    db: TestDb,
) {
    let Some(w) = own_topic_world(db).await else {
        return;
    };
    // More than the SDK's three attempts.
    w.moto
        .fault(json!({"action": "ConfirmSubscription", "count": 3, "code": "Throttling"}))
        .await;
    let msg = w.stub.confirmation("SubscriptionConfirmation", "tok-api");
    let (status, body) = w.app.post_sns(&msg).await;
    assert_eq!((status, error_code(&body)), (503, "confirmation_failed"));
    assert!(
        w.stub.confirmations().is_empty(),
        "a throttled API call fell back to the SubscribeURL"
    );
    let listed = listed_subscription(&w).await;
    assert_eq!(listed["status"], "confirmation_failed", "{listed}");
    assert_eq!(listed["confirmed_with"], Value::Null, "{listed}");

    // SNS delivers the confirmation again; now the API answers.
    w.moto.clear_faults().await;
    let (status, body) = w.app.post_sns(&msg).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("confirmed")),
        "{body}"
    );
    assert!(w.stub.confirmations().is_empty());
    let listed = listed_subscription(&w).await;
    assert_eq!(listed["status"], "confirmed", "{listed}");
    assert_eq!(listed["confirmed_with"], "sns_api", "{listed}");
    assert!(w.app.metrics().await.contains(&format!(
        "restop_sns_confirmation_fallbacks_total{{topic=\"{TOPIC}\"}} 0"
    )));
}

async fn no_permission_to_confirm_falls_back_to_the_subscribe_url_and_says_so(db: TestDb) {
    let Some(w) = own_topic_world(db).await else {
        return;
    };
    w.moto
        .fault(json!({"action": "ConfirmSubscription", "code": "AuthorizationError",
            "status": 403, "message": "User is not authorized to perform: SNS:ConfirmSubscription"}))
        .await;
    let msg = w.stub.confirmation("SubscriptionConfirmation", "tok-url");
    let (status, body) = w.app.post_sns(&msg).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("confirmed")),
        "{body}"
    );
    assert_eq!(
        w.stub.confirmations().len(),
        1,
        "the SubscribeURL was not visited"
    );
    let listed = listed_subscription(&w).await;
    assert_eq!(listed["status"], "confirmed", "{listed}");
    assert_eq!(listed["confirmed_with"], "subscribe_url", "{listed}");
    assert!(w.app.metrics().await.contains(&format!(
        "restop_sns_confirmation_fallbacks_total{{topic=\"{TOPIC}\"}} 1"
    )));
}

async fn a_confirm_subscription_that_hangs_answers_503_before_the_deadline(db: TestDb) {
    let Some(w) = own_topic_world(db).await else {
        return;
    };
    // Pure latency, far longer than the request deadline, on every attempt.
    w.moto
        .fault(
            json!({"action": "ConfirmSubscription", "count": 3, "code": null,
            "delay_seconds": 30}),
        )
        .await;
    let msg = w.stub.confirmation("SubscriptionConfirmation", "tok-slow");
    let started = Instant::now();
    let (status, body) = w.app.post_sns(&msg).await;
    let took = started.elapsed();
    assert_eq!(
        (status, error_code(&body)),
        (503, "confirmation_failed"),
        "{body}"
    );
    assert!(
        took < Duration::from_millis(4500),
        "answered after {took:?}"
    );
    assert!(w.stub.confirmations().is_empty());
}

/// A restop with no AWS credentials at all (none in the environment, no role) cannot call
/// the SNS API: it confirms by the SubscribeURL as before, instead of answering 503 to
/// every confirmation until SNS gives up.
async fn without_any_aws_credentials_the_subscribe_url_confirms(db: TestDb) {
    struct NoCredentials(crate::support::fake_aws::FakeAws);

    #[async_trait::async_trait]
    impl restop::aws::Aws for NoCredentials {
        async fn call(
            &self,
            request: restop::aws::AwsRequest<'_>,
        ) -> Result<restop::aws::AwsReply, restop::aws::AwsFailure> {
            match request {
                restop::aws::AwsRequest::ActsIn { .. } => {
                    Err(restop::aws::AwsFailure::NoCredentials)
                }
                other => self.0.call(other).await,
            }
        }

        fn member_role(&self, account: &str, partition: &str) -> Option<String> {
            self.0.member_role(account, partition)
        }
    }

    let stub = SnsStub::start().await;
    let app = TestApp::spawn_with(
        config(&db.url, Some(&stub.host)),
        std::sync::Arc::new(restop::clock::SystemClock),
        Some(std::sync::Arc::new(NoCredentials(Default::default()))),
    )
    .await;
    let msg = stub.confirmation("SubscriptionConfirmation", "tok-456");
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!(
        (status, &body["disposition"]),
        (200, &json!("confirmed")),
        "{body}"
    );
    assert_eq!(
        stub.confirmations().len(),
        1,
        "the SubscribeURL was visited"
    );
}
