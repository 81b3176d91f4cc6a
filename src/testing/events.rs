//! Executions created the way the SNS endpoint creates them, straight through the store:
//! for engine tests and the engine benchmark, which need many without HTTP.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;

use crate::aws::arn::ResourceArn;
use crate::engine::{Launcher, Trigger};
use crate::execution::{Disposition, MessageType, Mode, TriggerKind};
use crate::store::{NewMessage, Store};

/// Stores an accepted RDS-EVENT-0154 for `arn`, as the SNS endpoint would.
pub async fn accept_event(store: &Arc<dyn Store>, arn: &str) -> String {
    let resource: ResourceArn = arn.parse().unwrap();
    let launcher = Launcher {
        mode: Mode::Internal,
        max_duration: Duration::from_secs(86_400),
        wakeup: Arc::new(Notify::new()),
        notify: false,
    };
    let message_id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let execution = launcher.execution(
        &resource,
        Trigger {
            kind: TriggerKind::Sns,
            message_id: Some(message_id.clone()),
            event_id: Some("RDS-EVENT-0154".into()),
            event_at: now,
            dry_run: false,
            skip_tag_check: false,
        },
        now,
    );
    let id = execution.id.clone();
    store
        .insert_message(
            &NewMessage {
                message_id,
                message_type: MessageType::Notification,
                topic_arn: "arn:aws:sns:us-east-1:123456789012:rds-events".into(),
                subject: None,
                sent_at: now,
                received_at: now,
                signature_version: "2".into(),
                disposition: Disposition::Accepted,
                disposition_reason: None,
                body: "{}".into(),
                event: None,
                execution: Some(execution),
                execution_id: None,
            },
            None,
        )
        .await
        .unwrap();
    id
}
