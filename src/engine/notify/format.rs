//! RESTOP_NOTIFY_FORMAT: the same two events as restop's own JSON, an incoming-webhook
//! message for Slack (`text` as the fallback Slack shows in notifications, `blocks` for the
//! message itself), or a Workflows webhook message with an Adaptive Card for Teams.

use serde_json::{Value, json};
use url::Url;

use super::{Summary, Unsubscribed};
use crate::config::NotifyFormat;

/// An event for RESTOP_NOTIFY_URL, before it takes a format.
pub(super) enum Event<'a> {
    Finished(&'a Summary<'a>),
    Unsubscribed(&'a Unsubscribed<'a>),
}

/// What a person reads of an event, whatever the format.
struct Message {
    /// One line: the fallback text, and the card's title.
    title: String,
    /// Label and value, in order.
    facts: Vec<(&'static str, String)>,
    /// The reason the execution ended, or what to do.
    detail: Option<String>,
    /// The console's view of the execution.
    link: Option<Url>,
}

/// The body to POST. `console` is the console's address (from RESTOP_PUBLIC_URL), for links.
pub(super) fn body(format: NotifyFormat, event: &Event<'_>, console: Option<&Url>) -> Value {
    match format {
        NotifyFormat::Json => match event {
            Event::Finished(summary) => json!(summary),
            Event::Unsubscribed(event) => json!(event),
        },
        NotifyFormat::Slack => slack(&message(event, console)),
        NotifyFormat::Teams => teams(&message(event, console)),
    }
}

/// The console's address for a public URL such as `https://restop.example.com/sns`.
pub fn console_url(public_url: &str) -> Option<Url> {
    Url::parse(public_url).ok()?.join("/ui").ok()
}

fn message(event: &Event<'_>, console: Option<&Url>) -> Message {
    match event {
        Event::Finished(s) => {
            let what = match (s.outcome, s.dry_run) {
                (Some(outcome), true) => format!("{outcome} (dry run)"),
                (Some(outcome), false) => outcome.to_string(),
                (None, _) => s.status.to_string(),
            };
            let link = console.map(|console| {
                let mut link = console.clone();
                link.set_fragment(Some(&format!("/executions/{}", s.execution_id)));
                link
            });
            Message {
                title: format!("restop: {} {} ended {what}", s.resource_type, s.resource_id),
                facts: vec![
                    ("Database", s.resource_id.to_owned()),
                    ("Outcome", what),
                    ("Account", s.account_id.to_owned()),
                    ("Region", s.region.to_owned()),
                    ("Trigger", s.trigger.to_string()),
                ],
                detail: s.reason.map(str::to_owned),
                link,
            }
        }
        Event::Unsubscribed(u) => Message {
            title: "restop was unsubscribed from an SNS topic".into(),
            facts: vec![("Topic", u.topic_arn.to_owned())],
            detail: Some(
                "No forced start will be delivered from this topic until restop is subscribed \
                 again (the catch-up still reads RDS's event log)."
                    .into(),
            ),
            link: console.cloned(),
        },
    }
}

/// Slack's mrkdwn gives `&`, `<` and `>` meaning: escaped, a reason reads as written.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Slack limits a section's text to 3,000 characters and a header to 150.
fn truncate(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit.saturating_sub(1)) {
        Some((end, _)) if text.chars().count() > limit => format!("{}…", &text[..end]),
        _ => text.to_owned(),
    }
}

fn slack(m: &Message) -> Value {
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&m.title, 150)}}),
        json!({"type": "section", "fields": m.facts.iter().map(|(label, value)| json!({
            "type": "mrkdwn",
            "text": truncate(&format!("*{label}*\n{}", slack_escape(value)), 2000),
        })).collect::<Vec<_>>()}),
    ];
    if let Some(detail) = &m.detail {
        blocks.push(json!({"type": "section", "text": {
            "type": "mrkdwn",
            "text": truncate(&slack_escape(detail), 3000),
        }}));
    }
    if let Some(link) = &m.link {
        blocks.push(json!({"type": "actions", "elements": [{
            "type": "button",
            "text": {"type": "plain_text", "text": "Open in restop"},
            "url": link.as_str(),
        }]}));
    }
    let text = match &m.detail {
        Some(detail) => format!("{}: {}", m.title, detail),
        None => m.title.clone(),
    };
    json!({"text": slack_escape(&text), "blocks": blocks})
}

fn teams(m: &Message) -> Value {
    let mut body = vec![
        json!({"type": "TextBlock", "text": m.title, "weight": "Bolder", "size": "Medium", "wrap": true}),
        json!({"type": "FactSet", "facts": m.facts.iter().map(|(label, value)| json!({
            "title": label,
            "value": value,
        })).collect::<Vec<_>>()}),
    ];
    if let Some(detail) = &m.detail {
        body.push(json!({"type": "TextBlock", "text": detail, "wrap": true}));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if let Some(link) = &m.link {
        card["actions"] =
            json!([{"type": "Action.OpenUrl", "title": "Open in restop", "url": link.as_str()}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::aws::arn::ResourceKind;
    use crate::execution::{Outcome, Status, TriggerKind};

    fn summary(reason: &'static str) -> Summary<'static> {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        Summary {
            event: "execution_finished",
            execution_id: "e-1",
            link: "/v1/executions/e-1".into(),
            resource_type: ResourceKind::DbInstance,
            resource_id: "orders",
            resource_arn: "arn:aws:rds:eu-west-1:111111111111:db:orders",
            region: "eu-west-1",
            account_id: "111111111111",
            trigger: TriggerKind::Sns,
            message_id: Some("m-1"),
            status: Status::Succeeded,
            outcome: Some(Outcome::Stopped),
            reason: Some(reason),
            dry_run: false,
            created_at: at,
            finished_at: Some(at),
            duration_seconds: Some(0.0),
        }
    }

    fn console() -> Url {
        console_url("https://restop.example.com/sns").unwrap()
    }

    #[test]
    fn the_console_link_opens_the_execution() {
        let s = summary("stopped");
        let m = message(&Event::Finished(&s), Some(&console()));
        assert_eq!(
            m.link.unwrap().as_str(),
            "https://restop.example.com/ui#/executions/e-1"
        );
    }

    #[test]
    fn slack_escapes_what_mrkdwn_would_read_as_markup() {
        let s = summary("<!channel> & friends");
        let body = body(NotifyFormat::Slack, &Event::Finished(&s), Some(&console()));
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("&lt;!channel&gt; &amp; friends"), "{text}");
        assert!(!body.to_string().contains("<!channel>"), "{body}");
    }

    #[test]
    fn long_reasons_stay_within_slacks_limits() {
        let long: &'static str = "x".repeat(5000).leak();
        let s = summary(long);
        let body = body(NotifyFormat::Slack, &Event::Finished(&s), None);
        for block in body["blocks"].as_array().unwrap() {
            if let Some(text) = block["text"]["text"].as_str() {
                assert!(text.chars().count() <= 3000, "{} chars", text.len());
            }
        }
    }

    #[test]
    fn without_a_public_url_there_is_no_link() {
        let s = summary("stopped");
        let slack = body(NotifyFormat::Slack, &Event::Finished(&s), None);
        assert!(!slack.to_string().contains("\"button\""), "{slack}");
        let teams = body(NotifyFormat::Teams, &Event::Finished(&s), None);
        assert!(teams["attachments"][0]["content"].get("actions").is_none());
    }

    #[test]
    fn json_is_restops_own_summary() {
        let s = summary("stopped");
        let json = body(NotifyFormat::Json, &Event::Finished(&s), Some(&console()));
        assert_eq!(json["event"], "execution_finished");
        assert_eq!(json["outcome"], "stopped");
        assert_eq!(json["link"], "/v1/executions/e-1");
    }
}
