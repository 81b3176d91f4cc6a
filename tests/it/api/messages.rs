//! Stored SNS messages and subscriptions over `/v1`, filtered, without their secrets.

use serde_json::json;

use super::api;
use crate::on_both_backends;
use crate::support::db::TestDb;

on_both_backends!(
    messages_and_subscriptions_without_secrets,
    large_messages_are_paged_by_size,
);

/// A page holds at most about 4 MiB of message bodies, whatever `limit` says; the cursor
/// leads to the rest, and paging sees every message once.
async fn large_messages_are_paged_by_size(db: TestDb) {
    let api = api(&db).await;
    let body = "x".repeat(250 * 1024);
    let mut posted = Vec::new();
    for i in 0..24 {
        let msg = api.stub.notification(&format!("{i} {body}"));
        assert_eq!(api.app.post_sns(&msg).await.0, 200);
        posted.push(msg["MessageId"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut path = "/v1/messages?limit=500".to_owned();
    loop {
        let page = api.get(&path).await;
        assert_eq!(page.status, 200);
        let items = page.body["items"].as_array().unwrap();
        assert!(!items.is_empty());
        assert!(
            page.text.len() < 5 * 1024 * 1024,
            "{} bytes",
            page.text.len()
        );
        pages.push(items.len());
        seen.extend(
            items
                .iter()
                .map(|m| m["message_id"].as_str().unwrap().to_owned()),
        );
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/messages?limit=500&cursor={cursor}"),
            None => break,
        }
    }
    // 16 bodies of 250 KiB fit in 4 MiB: 16, then the other 8.
    assert_eq!(pages, [16, 8]);
    seen.sort();
    posted.sort();
    assert_eq!(seen, posted);
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
