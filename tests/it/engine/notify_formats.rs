//! RESTOP_NOTIFY_FORMAT: what a Slack incoming webhook and a Teams Workflows webhook
//! receive, checked against the shape each accepts, for an ended execution and an
//! unsubscription.

use std::sync::Arc;

use restop::config::NotifyFormat;
use serde_json::Value;

use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::moto::{Moto, new_instance};
use crate::support::sns::SnsStub;
use crate::support::webhook::Webhook;
use crate::support::{TestApp, config};

on_both_backends!(
    slack_gets_text_and_blocks_with_a_link_to_the_execution,
    teams_gets_an_adaptive_card_with_a_link_to_the_execution,
    an_unsubscription_reads_well_in_slack,
);

const PUBLIC_URL: &str = "https://restop.example.com/sns";

/// An untagged database's forced start, notified in `format`: the execution ends at once
/// (skipped / not_protected). Returns the body and the execution id.
async fn ended_execution(db: &TestDb, format: NotifyFormat) -> Option<(Value, String)> {
    let moto = Moto::start().await?;
    let stub = SnsStub::start().await;
    let webhook = Webhook::start(Vec::new()).await;
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.engine.engine_enabled = true;
    cfg.engine.notify_url = Some(webhook.url.parse().unwrap());
    cfg.engine.notify_format = format;
    cfg.engine.public_url = Some(PUBLIC_URL.into());
    let app = TestApp::spawn_with(
        cfg,
        Arc::new(restop::clock::SystemClock),
        Some(moto.aws().await),
    )
    .await;
    new_instance(&moto.rds().await, "plain")
        .send()
        .await
        .unwrap();
    let (_, answer) = app
        .post_sns(&stub.rds_notification("RDS-EVENT-0154", "db-instance", "plain"))
        .await;
    let execution = answer["execution_id"].as_str().unwrap().to_owned();
    Some((webhook.first().await, execution))
}

fn console_link(execution: &str) -> String {
    format!("https://restop.example.com/ui#/executions/{execution}")
}

/// Slack's incoming webhooks: `text` is what notifications show, `blocks` the message;
/// each block has a known type, and mrkdwn sections stay under 3,000 characters.
fn assert_slack_shape(body: &Value) {
    assert!(
        body["text"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    let blocks = body["blocks"].as_array().expect("blocks");
    assert!(!blocks.is_empty() && blocks.len() <= 50, "{body}");
    for block in blocks {
        let kind = block["type"].as_str().unwrap();
        assert!(
            ["header", "section", "actions", "context", "divider"].contains(&kind),
            "{block}"
        );
        if kind == "header" {
            assert_eq!(block["text"]["type"], "plain_text", "{block}");
            assert!(block["text"]["text"].as_str().unwrap().chars().count() <= 150);
        }
        if kind == "section" {
            let texts = block["fields"]
                .as_array()
                .map(|fields| fields.iter().collect::<Vec<_>>())
                .unwrap_or_else(|| vec![&block["text"]]);
            assert!(texts.len() <= 10, "{block}");
            for text in texts {
                assert_eq!(text["type"], "mrkdwn", "{block}");
                assert!(text["text"].as_str().unwrap().chars().count() <= 3000);
            }
        }
    }
}

async fn slack_gets_text_and_blocks_with_a_link_to_the_execution(db: TestDb) {
    let Some((body, execution)) = ended_execution(&db, NotifyFormat::Slack).await else {
        return;
    };
    assert_slack_shape(&body);
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("plain") && text.contains("not_protected"),
        "{text}"
    );
    let button = body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "actions")
        .map(|b| &b["elements"][0])
        .expect("a button to the console");
    assert_eq!(button["type"], "button");
    assert_eq!(button["url"], console_link(&execution).as_str());
    // The reason is in the message, not only in the console.
    assert!(
        body.to_string().contains("no tag auto-restart-protection"),
        "{body}"
    );
}

async fn teams_gets_an_adaptive_card_with_a_link_to_the_execution(db: TestDb) {
    let Some((body, execution)) = ended_execution(&db, NotifyFormat::Teams).await else {
        return;
    };
    assert_eq!(body["type"], "message");
    let attachments = body["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1, "{body}");
    assert_eq!(
        attachments[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachments[0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert!(card["version"].as_str().is_some(), "{card}");
    let body_items = card["body"].as_array().unwrap();
    assert!(
        body_items
            .iter()
            .all(|item| ["TextBlock", "FactSet"].contains(&item["type"].as_str().unwrap())),
        "{card}"
    );
    let facts = body_items
        .iter()
        .find(|item| item["type"] == "FactSet")
        .unwrap()["facts"]
        .as_array()
        .unwrap();
    let fact = |title: &str| {
        facts
            .iter()
            .find(|f| f["title"] == title)
            .map(|f| f["value"].as_str().unwrap().to_owned())
    };
    assert_eq!(fact("Database").as_deref(), Some("plain"));
    assert_eq!(fact("Outcome").as_deref(), Some("not_protected"));
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(card["actions"][0]["url"], console_link(&execution).as_str());
}

async fn an_unsubscription_reads_well_in_slack(db: TestDb) {
    let stub = SnsStub::start().await;
    let webhook = Webhook::start(Vec::new()).await;
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.engine.notify_url = Some(webhook.url.parse().unwrap());
    cfg.engine.notify_format = NotifyFormat::Slack;
    let app = TestApp::spawn(cfg).await;
    app.post_sns(&stub.confirmation("UnsubscribeConfirmation", "tok-gone"))
        .await;
    let body = webhook.first().await;
    assert_slack_shape(&body);
    assert!(
        body["text"].as_str().unwrap().contains("unsubscribed"),
        "{body}"
    );
    assert!(
        body.to_string().contains(crate::support::sns::TOPIC),
        "{body}"
    );
}
