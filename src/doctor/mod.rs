//! `restop doctor`: checks, without changing anything, that the whole chain from RDS to
//! restop works: the database, restop's credentials and member roles, each allowed topic
//! and its subscription to restop, the RDS event subscriptions of every watched account
//! and region, the permissions restop needs, and which protected databases RDS can never
//! stop. A mistake anywhere in that chain fails silently at run time (no event arrives), so
//! each check says what is wrong and what to do.

pub mod filter_policy;

use std::collections::BTreeSet;
use std::fmt;

use aws_config::SdkConfig;
use aws_sdk_rds::config::Region;
use serde::Serialize;
use serde_json::{Value, json};

use crate::aws::arn::ResourceKind;
use crate::aws::arn::TopicArn;
use crate::aws::{Accounts, AwsFailure, SdkAws, cluster_facts, explain, instance_facts};
use crate::config::DoctorConfig;
use crate::engine::EngineSettings;
use crate::engine::decide::{Policy, protection};
use crate::rds::resource::not_stoppable_reason;
use crate::store;

/// A delivery policy whose retries end sooner than this loses every event sent while
/// restop is down for longer; the catch-up sweep then has to find them (SNS's default for
/// HTTP/S: 3 retries 20 s apart, about a minute).
const SHORT_RETRY_WINDOW_SECONDS: u64 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that `{:<4}` lines the checks up.
        f.pad(match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
}

/// Every check, in the order they ran; `ok` is false when any failed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    /// One line per check: status, name, what was found and what to do.
    pub fn text(&self) -> String {
        self.checks
            .iter()
            .map(|c| format!("{:<4} {}: {}\n", c.status, c.name, c.detail))
            .collect()
    }
}

/// Runs every check with `base` as restop's own AWS settings (credentials, endpoint).
pub async fn examine(config: &DoctorConfig, base: SdkConfig) -> Report {
    let serve = &config.serve;
    let accounts = Accounts::from(&serve.accounts);
    let mut doctor = Doctor {
        config,
        sdk: SdkAws::new(base.clone(), accounts.clone()),
        base,
        policy: EngineSettings::from_config(&serve.engine, serve.accounts.rds_max_rps).policy,
        unusable_accounts: BTreeSet::new(),
        checks: Vec::new(),
    };
    doctor.database().await;
    doctor.settings();
    if let Some(own) = doctor.credentials().await {
        for account in accounts.members() {
            doctor.role(&account).await;
        }
        for topic in &serve.sns.topic_arns.0 {
            doctor.topic(topic, &own, &accounts).await;
        }
        for (account, region) in accounts.watched(&serve.sns.topic_arns.0) {
            if doctor.unusable_accounts.contains(&account) {
                continue;
            }
            doctor.event_subscriptions(&account, &region).await;
            doctor.permissions(&account, &region).await;
            doctor.protected(&account, &region).await;
        }
        doctor.state_machine(&accounts).await;
    }
    let ok = !doctor.checks.iter().any(|c| c.status == CheckStatus::Fail);
    Report {
        ok,
        checks: doctor.checks,
    }
}

struct Doctor<'a> {
    config: &'a DoctorConfig,
    base: SdkConfig,
    sdk: SdkAws,
    policy: Policy,
    /// Member accounts whose role could not be assumed: their checks are not attempted.
    unusable_accounts: BTreeSet<String>,
    checks: Vec<Check>,
}

impl Doctor<'_> {
    fn report(&mut self, name: impl Into<String>, status: CheckStatus, detail: impl Into<String>) {
        self.checks.push(Check {
            name: name.into(),
            status,
            detail: detail.into(),
        });
    }

    async fn database(&mut self) {
        let database = &self.config.serve.database;
        let (status, detail) = match store::schema_state(database).await {
            Err(e) => (
                CheckStatus::Fail,
                format!(
                    "cannot read DATABASE_URL ({:?}): {e}",
                    database.database_url
                ),
            ),
            Ok(state) if !state.unknown.is_empty() => (
                CheckStatus::Fail,
                format!(
                    "migrated by a newer restop (unknown versions {:?}): run that version",
                    state.unknown
                ),
            ),
            Ok(state) if !state.pending.is_empty() => (
                CheckStatus::Fail,
                format!(
                    "{} migrations pending ({}): run `restop migrate` (restop serve applies them too)",
                    state.pending.len(),
                    state.pending.join(", ")
                ),
            ),
            Ok(state) => (
                CheckStatus::Ok,
                format!("reachable, all {} migrations applied", state.applied),
            ),
        };
        self.report("database", status, detail);
    }

    fn settings(&mut self) {
        if let Err(e) = self.config.serve.validate() {
            self.report(
                "settings",
                CheckStatus::Fail,
                format!("{e}: restop serve refuses to start"),
            );
        }
        let (status, detail) = match self.config.public_url.as_deref() {
            None => (
                CheckStatus::Fail,
                "RESTOP_PUBLIC_URL is not set: set it to the URL SNS posts to (e.g. \
                 https://restop.example.com/sns) so the subscriptions can be checked"
                    .to_owned(),
            ),
            Some(url) if url.starts_with("http://") => (
                CheckStatus::Warn,
                format!(
                    "{url} is plain HTTP: anyone on the path can read and delay deliveries; use HTTPS"
                ),
            ),
            Some(url) => (CheckStatus::Ok, url.to_owned()),
        };
        self.report("public_url", status, detail);
        let topics = &self.config.serve.sns.topic_arns.0;
        if topics.is_empty() {
            self.report(
                "topics",
                CheckStatus::Fail,
                "RESTOP_TOPIC_ARNS is empty: restop refuses every SNS delivery; list the topics \
                 RDS publishes to (deploy/cloudformation/member-events.yaml outputs TopicArn)",
            );
        } else {
            let names: Vec<&str> = topics.iter().map(TopicArn::as_str).collect();
            self.report("topics", CheckStatus::Ok, names.join(", "));
        }
    }

    /// restop's own account, from its default credentials.
    async fn credentials(&mut self) -> Option<String> {
        match aws_sdk_sts::Client::new(&self.base)
            .get_caller_identity()
            .send()
            .await
        {
            Ok(identity) => {
                let account = identity.account().unwrap_or_default().to_owned();
                self.report(
                    "credentials",
                    CheckStatus::Ok,
                    format!(
                        "account {account} as {}",
                        identity.arn().unwrap_or_default()
                    ),
                );
                Some(account)
            }
            Err(e) => {
                self.report(
                    "credentials",
                    CheckStatus::Fail,
                    format!(
                        "sts:GetCallerIdentity failed: {}; no AWS check can run",
                        explain(&e)
                    ),
                );
                None
            }
        }
    }

    async fn role(&mut self, account: &str) {
        let name = format!("role {account}");
        let result = async {
            let config = self
                .sdk
                .config_in(account)
                .await
                .map_err(|e| unusable(&e))?;
            aws_sdk_sts::Client::new(&config)
                .get_caller_identity()
                .send()
                .await
                .map_err(|e| explain(&e))
        }
        .await;
        match result {
            Ok(identity) => self.report(
                name,
                CheckStatus::Ok,
                format!("assumed as {}", identity.arn().unwrap_or_default()),
            ),
            Err(e) => {
                self.unusable_accounts.insert(account.to_owned());
                self.report(
                    name,
                    CheckStatus::Fail,
                    format!(
                        "cannot assume restop's role there: {e}; deploy \
                         deploy/cloudformation/member-role.yaml in {account} trusting restop's \
                         role (and RESTOP_EXTERNAL_ID, if set); the account's other checks \
                         are skipped"
                    ),
                );
            }
        }
    }

    /// The settings for calls in `account`, or why there are none.
    async fn config_in(&self, account: &str) -> Result<SdkConfig, String> {
        if self.unusable_accounts.contains(account) {
            return Err(format!(
                "cannot act in account {account} (see its role check)"
            ));
        }
        self.sdk.config_in(account).await.map_err(|e| unusable(&e))
    }

    async fn topic(&mut self, topic: &TopicArn, own: &str, accounts: &Accounts) {
        let name = format!("topic {}", topic.as_str());
        if topic.account() != own && !accounts.members().iter().any(|m| m == topic.account()) {
            self.report(
                name,
                CheckStatus::Warn,
                format!(
                    "restop has no credentials in account {} (neither its own nor in \
                     RESTOP_ACCOUNTS): check this topic and its subscription by hand",
                    topic.account()
                ),
            );
            return;
        }
        let sns = match self.config_in(topic.account()).await {
            Ok(config) => aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(&config)
                    .region(Region::new(topic.region().to_owned()))
                    .build(),
            ),
            Err(e) => return self.report(name, CheckStatus::Fail, e),
        };
        if let Err(e) = sns
            .get_topic_attributes()
            .topic_arn(topic.as_str())
            .send()
            .await
        {
            let detail = match e.as_service_error().map(|s| s.is_not_found_exception()) {
                Some(true) => {
                    "does not exist: create it (deploy/cloudformation/member-events.yaml) \
                               or correct RESTOP_TOPIC_ARNS"
                        .to_owned()
                }
                _ => format!("sns:GetTopicAttributes failed: {}", explain(&e)),
            };
            return self.report(name, CheckStatus::Fail, detail);
        }
        self.report(name, CheckStatus::Ok, "exists");
        let Some(url) = self.config.public_url.clone() else {
            return;
        };
        let name = format!("subscription {}", topic.as_str());
        let mut subscription_arn = None;
        let mut next_token = None;
        loop {
            let page = match sns
                .list_subscriptions_by_topic()
                .topic_arn(topic.as_str())
                .set_next_token(next_token)
                .send()
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    let detail = format!("sns:ListSubscriptionsByTopic failed: {}", explain(&e));
                    return self.report(name, CheckStatus::Fail, detail);
                }
            };
            subscription_arn = subscription_arn.or_else(|| {
                page.subscriptions()
                    .iter()
                    .find(|s| {
                        s.endpoint().map(without_credentials) == Some(without_credentials(&url))
                    })
                    .map(|s| s.subscription_arn().unwrap_or_default().to_owned())
            });
            next_token = page.next_token().map(str::to_owned);
            if next_token.is_none() {
                break;
            }
        }
        let subscription_arn = match subscription_arn {
            None => {
                let detail = format!(
                    "no subscription to {url}: subscribe it (protocol https, \
                     deploy/cloudformation/member-events.yaml does) while restop runs"
                );
                return self.report(name, CheckStatus::Fail, detail);
            }
            Some(arn) if arn == "PendingConfirmation" || !arn.starts_with("arn:") => {
                let detail = format!(
                    "the subscription to {url} is pending confirmation: restop confirms it when \
                     SNS can reach it and RESTOP_TOPIC_ARNS lists the topic; then subscribe again \
                     (a confirmation link is valid for two days)"
                );
                return self.report(name, CheckStatus::Fail, detail);
            }
            Some(arn) => arn,
        };
        let attributes = match sns
            .get_subscription_attributes()
            .subscription_arn(&subscription_arn)
            .send()
            .await
        {
            Ok(answer) => answer.attributes().cloned().unwrap_or_default(),
            Err(e) => {
                let detail = format!("sns:GetSubscriptionAttributes failed: {}", explain(&e));
                return self.report(name, CheckStatus::Fail, detail);
            }
        };
        self.report(name, CheckStatus::Ok, format!("{url}, confirmed"));
        let attribute = |key: &str| attributes.get(key).map(String::as_str);
        self.filter_policy(
            topic,
            attribute("FilterPolicy"),
            attribute("FilterPolicyScope"),
        );
        let raw = attribute("RawMessageDelivery") == Some("true");
        self.report(
            format!("raw_delivery {}", topic.as_str()),
            if raw {
                CheckStatus::Fail
            } else {
                CheckStatus::Ok
            },
            if raw {
                "raw message delivery is on: SNS then sends the bare message without its \
                 signature and restop refuses it; set RawMessageDelivery to false"
            } else {
                "off"
            },
        );
        let policy = attribute("DeliveryPolicy").or(attribute("EffectiveDeliveryPolicy"));
        self.delivery_policy(topic, policy);
    }

    fn filter_policy(&mut self, topic: &TopicArn, policy: Option<&str>, scope: Option<&str>) {
        let name = format!("filter_policy {}", topic.as_str());
        let Some(policy) = policy.filter(|p| !p.trim().is_empty()) else {
            return self.report(
                name,
                CheckStatus::Ok,
                "none: every event reaches restop (a policy on EventID spares it the rest)",
            );
        };
        let policy: Value = match serde_json::from_str(policy) {
            Ok(policy) => policy,
            Err(e) => return self.report(name, CheckStatus::Fail, format!("not JSON: {e}")),
        };
        let body = scope == Some("MessageBody");
        let serve = &self.config.serve;
        let mut dropped_forced = Vec::new();
        let mut dropped_wake = Vec::new();
        for (id, forced) in serve
            .event_ids
            .iter()
            .map(|id| (id, true))
            .chain(serve.wake_event_ids.iter().map(|id| (id, false)))
        {
            let sample = sample_event(id, topic, body);
            match filter_policy::passes(&policy, &sample) {
                Ok(true) => {}
                Ok(false) if forced => dropped_forced.push(id.as_str()),
                Ok(false) => dropped_wake.push(id.as_str()),
                Err(e) => {
                    return self.report(
                        name,
                        CheckStatus::Warn,
                        format!("cannot be checked ({e}): make sure it lets {id} through"),
                    );
                }
            }
        }
        let (status, detail) = if !dropped_forced.is_empty() {
            (
                CheckStatus::Fail,
                format!(
                    "drops the forced-start events {}: restop never hears of them; \
                     use {{\"EventID\": [{}]}} (scope MessageAttributes)",
                    dropped_forced.join(", "),
                    self.wanted_ids()
                ),
            )
        } else if !dropped_wake.is_empty() {
            (
                CheckStatus::Warn,
                format!(
                    "drops the \"started\" events {}: restop then learns that a database is \
                     available only at its next poll; use {{\"EventID\": [{}]}}",
                    dropped_wake.join(", "),
                    self.wanted_ids()
                ),
            )
        } else {
            (
                CheckStatus::Ok,
                format!("lets {} through", self.wanted_ids()),
            )
        };
        self.report(name, status, detail);
    }

    fn wanted_ids(&self) -> String {
        let serve = &self.config.serve;
        serve
            .event_ids
            .iter()
            .chain(&serve.wake_event_ids)
            .map(|id| format!("\"{id}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn delivery_policy(&mut self, topic: &TopicArn, policy: Option<&str>) {
        let name = format!("delivery_policy {}", topic.as_str());
        let window = policy
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .and_then(|p| retry_window_seconds(&p));
        let (status, detail) = match window {
            Some(seconds) if seconds >= SHORT_RETRY_WINDOW_SECONDS => (
                CheckStatus::Ok,
                format!("SNS retries a failed delivery for up to {seconds} s"),
            ),
            window => (
                CheckStatus::Warn,
                format!(
                    "SNS retries a failed delivery for only about {} s (its default): events \
                     sent while restop is down longer wait for the catch-up sweep; use \
                     deploy/cloudformation/member-events.yaml's policy (one hour)",
                    window.unwrap_or(60)
                ),
            ),
        };
        self.report(name, status, detail);
    }

    async fn rds(&self, account: &str, region: &str) -> Result<aws_sdk_rds::Client, String> {
        let config = self.config_in(account).await?;
        Ok(aws_sdk_rds::Client::from_conf(
            aws_sdk_rds::config::Builder::from(&config)
                .region(Region::new(region.to_owned()))
                .build(),
        ))
    }

    /// An enabled RDS event subscription of this account and region must publish the
    /// `notification` events of instances and of clusters to an allowed topic.
    async fn event_subscriptions(&mut self, account: &str, region: &str) {
        let name = format!("event_subscriptions {account}/{region}");
        let rds = match self.rds(account, region).await {
            Ok(rds) => rds,
            Err(e) => return self.report(name, CheckStatus::Fail, e),
        };
        let topics: Vec<&str> = self
            .config
            .serve
            .sns
            .topic_arns
            .0
            .iter()
            .filter(|t| t.region() == region)
            .map(TopicArn::as_str)
            .collect();
        let mut subscriptions = Vec::new();
        let mut marker = None;
        loop {
            match rds
                .describe_event_subscriptions()
                .set_marker(marker)
                .send()
                .await
            {
                Ok(page) => {
                    subscriptions.extend(page.event_subscriptions_list().iter().cloned());
                    marker = page.marker().map(str::to_owned);
                    if marker.is_none() {
                        break;
                    }
                }
                Err(e) => {
                    let detail = format!("rds:DescribeEventSubscriptions failed: {}", explain(&e));
                    return self.report(name, CheckStatus::Fail, detail);
                }
            }
        }
        let mut missing = Vec::new();
        let mut notes = Vec::new();
        for source_type in [ResourceKind::DbInstance, ResourceKind::DbCluster] {
            let source_type = source_type.as_str();
            let mut covered = false;
            for s in &subscriptions {
                let label = s.cust_subscription_id().unwrap_or_default();
                let to_topic = s.sns_topic_arn().is_some_and(|t| topics.contains(&t));
                let of_type = s.source_type().is_none_or(|t| t == source_type);
                if !to_topic || !of_type {
                    continue;
                }
                let categories = s.event_categories_list();
                if !categories.is_empty() && !categories.iter().any(|c| c == "notification") {
                    notes.push(format!("{label} lacks the category notification"));
                } else if s.enabled() != Some(true) {
                    notes.push(format!("{label} is disabled"));
                } else if s.status().is_some_and(|status| status != "active") {
                    notes.push(format!(
                        "{label} is {} (RDS cannot publish to the topic: check its policy)",
                        s.status().unwrap_or_default()
                    ));
                } else {
                    covered = true;
                }
            }
            if !covered {
                missing.push(source_type);
            }
        }
        notes.dedup();
        let (status, detail) = if missing.is_empty() {
            (
                CheckStatus::Ok,
                "db-instance and db-cluster notification events reach the topic".to_owned(),
            )
        } else {
            let mut detail = format!(
                "no enabled event subscription sends the notification events of {} to {}",
                missing.join(" and "),
                if topics.is_empty() {
                    "an allowed topic".to_owned()
                } else {
                    topics.join(" or ")
                }
            );
            if !notes.is_empty() {
                detail.push_str(&format!(" ({})", notes.join("; ")));
            }
            detail.push_str(": deploy deploy/cloudformation/member-events.yaml here");
            (CheckStatus::Fail, detail)
        };
        self.report(name, status, detail);
    }

    /// The calls the engine and the catch-up make, each tried in a way that changes
    /// nothing: a tag read of a database that does not exist answers "not found" when
    /// allowed and "access denied" when not.
    async fn permissions(&mut self, account: &str, region: &str) {
        let name = format!("permissions {account}/{region}");
        let rds = match self.rds(account, region).await {
            Ok(rds) => rds,
            Err(e) => return self.report(name, CheckStatus::Fail, e),
        };
        // restop works in one partition: that of its topics.
        let partition = self
            .config
            .serve
            .sns
            .topic_arns
            .0
            .first()
            .map(|t| t.partition().to_owned())
            .unwrap_or_else(|| "aws".into());
        let probe = format!("arn:{partition}:rds:{region}:{account}:db:restop-doctor-probe");
        let now = aws_sdk_rds::primitives::DateTime::from_secs(chrono::Utc::now().timestamp());
        let denied = [
            (
                "rds:DescribeDBInstances",
                rds.describe_db_instances()
                    .max_records(20)
                    .send()
                    .await
                    .err()
                    .map(|e| explain(&e)),
            ),
            (
                "rds:DescribeDBClusters",
                rds.describe_db_clusters()
                    .max_records(20)
                    .send()
                    .await
                    .err()
                    .map(|e| explain(&e)),
            ),
            (
                "rds:ListTagsForResource",
                rds.list_tags_for_resource()
                    .resource_name(&probe)
                    .send()
                    .await
                    .err()
                    .filter(|e| {
                        !e.as_service_error()
                            .is_some_and(|s| s.is_db_instance_not_found_fault())
                    })
                    .map(|e| explain(&e)),
            ),
            (
                "rds:DescribeEvents",
                rds.describe_events()
                    .end_time(now)
                    .duration(60)
                    .max_records(20)
                    .send()
                    .await
                    .err()
                    .map(|e| explain(&e)),
            ),
        ];
        let failed: Vec<String> = denied
            .into_iter()
            .filter_map(|(action, error)| error.map(|e| format!("{action}: {e}")))
            .collect();
        if failed.is_empty() {
            self.report(
                name,
                CheckStatus::Ok,
                "DescribeDBInstances, DescribeDBClusters, ListTagsForResource, DescribeEvents allowed",
            );
        } else {
            let detail = format!(
                "{}; grant deploy/iam/'s policy (deploy/cloudformation/{})",
                failed.join("; "),
                if self
                    .config
                    .serve
                    .accounts
                    .accounts
                    .0
                    .iter()
                    .any(|m| m.account == account)
                {
                    "member-role.yaml"
                } else {
                    "restop.yaml"
                }
            );
            self.report(name, CheckStatus::Fail, detail);
        }
    }

    /// How many databases carry the protection tag, and which of them RDS can never stop.
    async fn protected(&mut self, account: &str, region: &str) {
        let name = format!("protected {account}/{region}");
        let rds = match self.rds(account, region).await {
            Ok(rds) => rds,
            Err(e) => return self.report(name, CheckStatus::Fail, e),
        };
        let mut protected = Vec::new();
        let mut never = Vec::new();
        let mut marker = None;
        loop {
            let page = match rds.describe_db_instances().set_marker(marker).send().await {
                Ok(page) => page,
                Err(e) => {
                    let detail = format!("rds:DescribeDBInstances failed: {}", explain(&e));
                    return self.report(name, CheckStatus::Fail, detail);
                }
            };
            for db in page.db_instances() {
                if self.protects(db.tag_list().iter().map(|t| (t.key(), t.value()))) {
                    let id = db.db_instance_identifier().unwrap_or_default().to_owned();
                    if let Some(why) =
                        not_stoppable_reason(ResourceKind::DbInstance, &instance_facts(db))
                    {
                        never.push(format!("instance {id}: {why}"));
                    }
                    protected.push(id);
                }
            }
            marker = page.marker().map(str::to_owned);
            if marker.is_none() {
                break;
            }
        }
        let instances = protected.len();
        let mut marker = None;
        loop {
            let page = match rds.describe_db_clusters().set_marker(marker).send().await {
                Ok(page) => page,
                Err(e) => {
                    let detail = format!("rds:DescribeDBClusters failed: {}", explain(&e));
                    return self.report(name, CheckStatus::Fail, detail);
                }
            };
            for cluster in page.db_clusters() {
                if self.protects(cluster.tag_list().iter().map(|t| (t.key(), t.value()))) {
                    let id = cluster
                        .db_cluster_identifier()
                        .unwrap_or_default()
                        .to_owned();
                    if let Some(why) =
                        not_stoppable_reason(ResourceKind::DbCluster, &cluster_facts(cluster))
                    {
                        never.push(format!("cluster {id}: {why}"));
                    }
                    protected.push(id);
                }
            }
            marker = page.marker().map(str::to_owned);
            if marker.is_none() {
                break;
            }
        }
        let counts = format!(
            "{instances} instances and {} clusters tagged {}={}",
            protected.len() - instances,
            self.policy.tag_key,
            self.policy.tag_value
        );
        if never.is_empty() {
            self.report(name, CheckStatus::Ok, counts);
        } else {
            let detail = format!(
                "{counts}; RDS can never stop {}: {}",
                never.len(),
                never.join("; ")
            );
            self.report(name, CheckStatus::Warn, detail);
        }
    }

    fn protects<'t>(&self, tags: impl Iterator<Item = (Option<&'t str>, Option<&'t str>)>) -> bool {
        let tags: Vec<(String, String)> = tags
            .map(|(k, v)| {
                (
                    k.unwrap_or_default().to_owned(),
                    v.unwrap_or_default().to_owned(),
                )
            })
            .collect();
        protection(&tags, &self.policy).is_ok()
    }

    /// Step Functions mode: the state machine exists, and in the region of every watched
    /// database (its tasks call RDS in their own region).
    async fn state_machine(&mut self, accounts: &Accounts) {
        let Some(arn) = self.config.serve.engine.state_machine_arn.clone() else {
            return;
        };
        let region = arn.region().to_owned();
        let sfn = aws_sdk_sfn::Client::from_conf(
            aws_sdk_sfn::config::Builder::from(&self.base)
                .region(Region::new(region.clone()))
                .build(),
        );
        if let Err(e) = sfn
            .describe_state_machine()
            .state_machine_arn(arn.as_str())
            .send()
            .await
        {
            let detail = format!(
                "states:DescribeStateMachine failed for {arn}: {}; deploy it \
                 (deploy/cloudformation/restop.yaml) or correct RESTOP_STATE_MACHINE_ARN",
                explain(&e)
            );
            return self.report("state_machine", CheckStatus::Fail, detail);
        }
        let elsewhere: BTreeSet<String> = accounts
            .watched(&self.config.serve.sns.topic_arns.0)
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| *r != region)
            .collect();
        if elsewhere.is_empty() {
            self.report(
                "state_machine",
                CheckStatus::Ok,
                format!("{arn} in {region}"),
            );
        } else {
            let detail = format!(
                "{arn} runs in {region} and cannot stop databases in {}: run restop in internal \
                 mode, or one restop with a state machine per region",
                elsewhere.into_iter().collect::<Vec<_>>().join(", ")
            );
            self.report("state_machine", CheckStatus::Fail, detail);
        }
    }
}

/// What SNS would deliver for event `id` from a database in the topic's account and region:
/// its message attributes, or (filter policy scope `MessageBody`) its message.
fn sample_event(id: &str, topic: &TopicArn, body: bool) -> Value {
    // RDS-EVENT-0153 (forced start) and 0151 (started) are a cluster's; the rest an instance's.
    let kind = match id {
        "RDS-EVENT-0153" | "RDS-EVENT-0151" => ResourceKind::DbCluster,
        _ => ResourceKind::DbInstance,
    };
    let arn = format!(
        "arn:{}:rds:{}:{}:{}:restop-doctor",
        topic.partition(),
        topic.region(),
        topic.account(),
        kind.arn_segment()
    );
    if body {
        json!({
            "Event Source": kind.as_str(),
            "Event Time": "2026-01-01 00:00:00.000",
            "Source ID": "restop-doctor",
            "Source ARN": arn,
            "Event ID": format!("http://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_Events.html#{id}"),
        })
    } else {
        json!({"EventID": id, "Resource": arn})
    }
}

/// An endpoint URL without its Basic auth user and password: SNS lists the password
/// masked, and `RESTOP_PUBLIC_URL` may carry it or not.
fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
}

/// The longest an HTTP/S delivery policy keeps retrying, in seconds: every delay lies
/// between `minDelayTarget` and `maxDelayTarget`. Takes a subscription's policy
/// (`healthyRetryPolicy`) or a topic's (`http.defaultHealthyRetryPolicy`).
fn retry_window_seconds(policy: &Value) -> Option<u64> {
    let retry = policy
        .get("healthyRetryPolicy")
        .or_else(|| policy.pointer("/http/defaultHealthyRetryPolicy"))?;
    let number =
        |key: &str, default: u64| retry.get(key).and_then(Value::as_u64).unwrap_or(default);
    let retries = number("numRetries", 3);
    let no_delay = number("numNoDelayRetries", 0);
    let min_delay = number("minDelayTarget", 20);
    let max_delay = number("maxDelayTarget", 20);
    let at_min = number("numMinDelayRetries", 0);
    let at_max = number("numMaxDelayRetries", 0);
    let backoff = retries.saturating_sub(no_delay + at_min + at_max);
    Some(at_min * min_delay + (backoff + at_max) * max_delay)
}

/// Why restop has no credentials for an account.
fn unusable(failure: &AwsFailure) -> String {
    match failure {
        AwsFailure::AccessDenied { action, message } => format!("{action}: {message}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_compare_without_their_credentials() {
        assert_eq!(
            without_credentials("https://restop:****@restop.example.com/sns"),
            without_credentials("https://restop.example.com/sns")
        );
        assert_ne!(
            without_credentials("https://restop.example.com/sns"),
            without_credentials("https://restop.example.com/other")
        );
    }

    #[test]
    fn the_retry_window_of_the_default_and_of_the_kits_policy() {
        let default = json!({"http": {"defaultHealthyRetryPolicy": {
            "minDelayTarget": 20, "maxDelayTarget": 20, "numRetries": 3,
            "numMaxDelayRetries": 0, "numNoDelayRetries": 0, "numMinDelayRetries": 0,
            "backoffFunction": "linear"}}});
        assert_eq!(retry_window_seconds(&default), Some(60));
        let kit = json!({"healthyRetryPolicy": {
            "numRetries": 17, "numNoDelayRetries": 0, "numMinDelayRetries": 6,
            "minDelayTarget": 20, "maxDelayTarget": 300, "numMaxDelayRetries": 8,
            "backoffFunction": "exponential"}});
        assert_eq!(retry_window_seconds(&kit), Some(3420));
        assert_eq!(retry_window_seconds(&json!({"throttlePolicy": {}})), None);
    }

    #[test]
    fn a_report_fails_as_text_one_line_per_check() {
        let report = Report {
            ok: false,
            checks: vec![
                Check {
                    name: "database".into(),
                    status: CheckStatus::Ok,
                    detail: "fine".into(),
                },
                Check {
                    name: "topics".into(),
                    status: CheckStatus::Fail,
                    detail: "empty".into(),
                },
            ],
        };
        assert_eq!(report.text(), "ok   database: fine\nfail topics: empty\n");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["checks"][1],
            json!({"name": "topics", "status": "fail", "detail": "empty"})
        );
    }
}
