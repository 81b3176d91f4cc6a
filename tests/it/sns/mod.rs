//! `POST /sns` end to end over real HTTP: what SNS delivers, and what restop makes of it.

mod certificates;
mod delivery;
mod flood;
mod genuine_messages;
mod notifications;
mod signatures;
mod subscriptions;

use serde_json::Value;

use crate::support::db::TestDb;
use crate::support::sns::SnsStub;
use crate::support::{TestApp, config, error_code};

/// A fake SNS, and restop trusting its topic and certificate host.
async fn start(db: &TestDb) -> (SnsStub, TestApp) {
    let stub = SnsStub::start().await;
    let app = TestApp::spawn(config(&db.url, Some(&stub.host))).await;
    (stub, app)
}

/// Posts `msg`, expects the refusal `status` and `code` with a message, and nothing stored.
async fn assert_refused(app: &TestApp, db: &TestDb, msg: &Value, status: u16, code: &str) {
    let before = db.message_count().await;
    let (got, body) = app.post_sns(msg).await;
    assert_eq!((got, error_code(&body)), (status, code), "{msg} -> {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(
        db.message_count().await,
        before,
        "a refused message changed stored data"
    );
}
