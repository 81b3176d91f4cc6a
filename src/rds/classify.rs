//! What an RDS event means to restop: act on it, let it wake a waiting execution, or
//! ignore it (and why). Decided from the event and the topic that carried it alone, so the
//! SNS endpoint only has to carry out the answer.

use crate::aws::OwnAccount;
use crate::aws::arn::ResourceArn;
use crate::aws::arn::TopicArn;
use crate::rds::event::RdsEvent;

/// The settings that give events their meaning.
#[derive(Debug, Clone, Default)]
pub struct EventRules {
    /// RESTOP_EVENT_IDS: the forced-start events restop acts on.
    pub event_ids: Vec<String>,
    /// RESTOP_WAKE_EVENT_IDS: events that wake a waiting execution.
    pub wake_event_ids: Vec<String>,
    /// RESTOP_ACCOUNTS: accounts whose events a central topic may carry besides its own.
    pub member_accounts: Vec<String>,
    /// The account of restop's credentials: its topics are the central ones.
    pub own_account: OwnAccount,
}

/// What a notification is to restop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Meaning {
    /// An event restop acts on, about this resource.
    Act(ResourceArn),
    /// A "started" event about this resource: a waiting execution may look at it now.
    Wake(ResourceArn),
    /// An event about a resource outside its topic's region, or its account (and the
    /// accounts allowed to publish to it).
    Foreign(ResourceArn),
    /// Nothing to do, and why.
    Ignore(String),
}

impl EventRules {
    /// `event` is `None` when the message was not an RDS event at all.
    pub fn classify(&self, event: Option<&RdsEvent>, topic: &TopicArn) -> Meaning {
        let Some(event) = event else {
            return Meaning::Ignore("not an RDS event".into());
        };
        let resource = event.resource();
        if let Ok(resource) = &resource
            && !self.fits_topic(resource, topic)
        {
            return Meaning::Foreign(resource.clone());
        }
        let acts_on = self.event_ids.contains(&event.event_id);
        let wakes = self.wake_event_ids.contains(&event.event_id);
        if !acts_on && !wakes {
            return Meaning::Ignore(format!(
                "{} is not in RESTOP_EVENT_IDS or RESTOP_WAKE_EVENT_IDS",
                event.event_id
            ));
        }
        match resource {
            Ok(resource) if acts_on => Meaning::Act(resource),
            Ok(resource) => Meaning::Wake(resource),
            Err(reason) => Meaning::Ignore(reason),
        }
    }

    /// Whether `topic` may speak for `resource`. RDS publishes to topics in the database's
    /// own region; a topic speaks for its own account, and a central topic (one in
    /// restop's own account) also for the member accounts. A member's topic naming
    /// another member's database could be anyone in that member account publishing.
    pub fn fits_topic(&self, resource: &ResourceArn, topic: &TopicArn) -> bool {
        let central = self.own_account.get() == Some(topic.account());
        resource.region == topic.region()
            && (resource.account == topic.account()
                || central && self.member_accounts.contains(&resource.account))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rds::event::parse_rds_event;

    const TOPIC: &str = "arn:aws:sns:eu-west-1:111111111111:rds-events";

    fn rules() -> EventRules {
        EventRules {
            event_ids: vec!["RDS-EVENT-0154".into()],
            wake_event_ids: vec!["RDS-EVENT-0088".into()],
            member_accounts: vec!["222222222222".into()],
            own_account: OwnAccount::known("111111111111"),
        }
    }

    fn meaning(event_id: &str, source_arn: &str) -> Meaning {
        let topic: TopicArn = TOPIC.parse().unwrap();
        let id = source_arn.rsplit(':').next().unwrap();
        let body = serde_json::json!({
            "Event Source": "db-instance",
            "Event Time": "2026-12-01 10:00:00.000",
            "Identifier Link": "https://console.aws.amazon.com/rds/home",
            "Source ID": id,
            "Source ARN": source_arn,
            "Event ID": format!("http://docs.amazonwebservices.com/AmazonRDS/latest/UserGuide/USER_Events.html#{event_id}"),
            "Event Message": "DB instance is being started due to it exceeding the maximum allowed time being stopped.",
        });
        let event = parse_rds_event(&body.to_string(), &topic);
        assert!(event.is_some(), "{body}");
        rules().classify(event.as_ref(), &topic)
    }

    #[test]
    fn a_forced_start_in_the_topics_account_and_region_is_acted_on() {
        let arn = "arn:aws:rds:eu-west-1:111111111111:db:orders";
        assert_eq!(
            meaning("RDS-EVENT-0154", arn),
            Meaning::Act(arn.parse().unwrap())
        );
    }

    #[test]
    fn a_started_event_wakes() {
        let arn = "arn:aws:rds:eu-west-1:111111111111:db:orders";
        assert_eq!(
            meaning("RDS-EVENT-0088", arn),
            Meaning::Wake(arn.parse().unwrap())
        );
    }

    #[test]
    fn other_regions_and_unlisted_accounts_are_foreign() {
        for arn in [
            "arn:aws:rds:us-east-1:111111111111:db:orders",
            "arn:aws:rds:eu-west-1:333333333333:db:orders",
        ] {
            assert_eq!(
                meaning("RDS-EVENT-0154", arn),
                Meaning::Foreign(arn.parse().unwrap()),
                "{arn}"
            );
        }
    }

    #[test]
    fn a_listed_member_account_fits() {
        let arn = "arn:aws:rds:eu-west-1:222222222222:db:orders";
        assert_eq!(
            meaning("RDS-EVENT-0154", arn),
            Meaning::Act(arn.parse().unwrap())
        );
    }

    #[test]
    fn other_event_ids_and_other_messages_are_ignored_with_a_reason() {
        let arn = "arn:aws:rds:eu-west-1:111111111111:db:orders";
        assert_eq!(
            meaning("RDS-EVENT-0087", arn),
            Meaning::Ignore(
                "RDS-EVENT-0087 is not in RESTOP_EVENT_IDS or RESTOP_WAKE_EVENT_IDS".into()
            )
        );
        let topic: TopicArn = TOPIC.parse().unwrap();
        assert_eq!(
            rules().classify(None, &topic),
            Meaning::Ignore("not an RDS event".into())
        );
    }

    #[test]
    fn only_a_central_topic_speaks_for_members_and_only_once_the_own_account_is_known() {
        let resource: ResourceArn = "arn:aws:rds:eu-west-1:222222222222:db:orders"
            .parse()
            .unwrap();
        let central: TopicArn = TOPIC.parse().unwrap();
        let other_member: TopicArn = "arn:aws:sns:eu-west-1:333333333333:rds-events"
            .parse()
            .unwrap();
        assert!(rules().fits_topic(&resource, &central));
        assert!(!rules().fits_topic(&resource, &other_member));
        let unresolved = EventRules {
            own_account: OwnAccount::default(),
            ..rules()
        };
        assert!(!unresolved.fits_topic(&resource, &central));
    }
}
