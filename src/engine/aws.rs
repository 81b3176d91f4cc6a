//! The AWS calls restop makes, behind a trait so the engine can be driven by a fake in
//! tests and benchmarks. The real implementation calls each resource in its own account
//! (restop's own credentials, or a member account's role) and in its own region, with one
//! client per account and region, made on first use. Decorators count the calls
//! ([`Metered`]) and keep them within the RDS request budget ([`Paced`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_rds::config::http::HttpResponse;
use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_rds::types::Filter;
use aws_sdk_sfn::types::ExecutionStatus;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

use super::budget::{Budget, Priority};
use super::decide::{AwsFailure, StateMachineRun};
use crate::config::AccountsConfig;
use crate::metrics::Metrics;
use crate::rds::resource::{ResourceArn, ResourceFacts, ResourceKind};
use crate::sns::message::TopicArn;

/// Identifiers one filtered Describe call names at most.
pub const DESCRIBE_BATCH: usize = 100;

/// One event of RDS's event log, as `DescribeEvents` lists it (it carries no event id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// `db-instance`, `db-cluster`, ...
    pub source_type: String,
    pub source_identifier: String,
    pub source_arn: Option<String>,
    pub message: String,
    pub date: DateTime<Utc>,
}

/// One page of RDS's event log, and where the next one starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventPage {
    pub events: Vec<LoggedEvent>,
    pub marker: Option<String>,
}

/// Databases of one kind in one account and region, described together.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    pub account: String,
    pub region: String,
    pub kind: ResourceKind,
}

impl Scope {
    pub fn of(resource: &ResourceArn) -> Self {
        Self {
            account: resource.account.clone(),
            region: resource.region.clone(),
            kind: resource.kind,
        }
    }
}

#[async_trait]
pub trait Aws: Send + Sync + 'static {
    /// restop's own account (where its default credentials act).
    async fn own_account(&self) -> Result<String, AwsFailure>;
    /// Whether restop holds credentials in `account`: its own account, or a listed member.
    async fn acts_in(&self, account: &str) -> Result<bool, AwsFailure>;
    async fn list_tags(&self, resource: &ResourceArn) -> Result<Vec<(String, String)>, AwsFailure>;
    async fn describe(&self, resource: &ResourceArn) -> Result<ResourceFacts, AwsFailure>;
    /// Describes up to [`DESCRIBE_BATCH`] databases of one scope in one call (following
    /// its pages). Identifiers RDS does not know are absent from the answer.
    async fn describe_many(
        &self,
        scope: &Scope,
        identifiers: &[String],
    ) -> Result<HashMap<String, ResourceFacts>, AwsFailure>;
    /// The ARN of a DB instance or cluster named by identifier (for manual triggers).
    async fn resource_arn(
        &self,
        account: &str,
        kind: ResourceKind,
        region: &str,
        identifier: &str,
    ) -> Result<String, AwsFailure>;
    async fn stop(&self, resource: &ResourceArn) -> Result<(), AwsFailure>;
    /// Starts (or, for the same name and input, finds) a state machine execution; returns its ARN.
    async fn start_state_machine(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &str,
    ) -> Result<String, AwsFailure>;
    async fn describe_state_machine_run(
        &self,
        execution_arn: &str,
    ) -> Result<StateMachineRun, AwsFailure>;
    /// Stops a state machine execution restop no longer follows; `error` and `cause` say why.
    async fn stop_state_machine_run(
        &self,
        execution_arn: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), AwsFailure>;
    /// Confirms a subscription with the SNS API and `AuthenticateOnUnsubscribe`, so that
    /// only the topic's owner can unsubscribe it; returns the subscription's ARN.
    async fn confirm_subscription(
        &self,
        topic: &TopicArn,
        token: &str,
    ) -> Result<String, AwsFailure>;
    /// The role restop assumes for calls in `account`, if it is a member account. Step
    /// Functions mode passes it to the state machine.
    fn member_role(&self, account: &str, partition: &str) -> Option<String>;
    /// One page of the `notification` events RDS logged in `account` and `region` between
    /// `start` and `end`; `marker` is the previous page's.
    async fn describe_events(
        &self,
        account: &str,
        region: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        marker: Option<String>,
    ) -> Result<EventPage, AwsFailure>;
}

/// The accounts restop may act in besides its own (`RESTOP_ACCOUNTS`), and how.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    /// Member account -> the role named for it, if one was.
    members: BTreeMap<String, Option<String>>,
    role_name: String,
    external_id: Option<String>,
}

impl Accounts {
    pub fn from_config(config: &AccountsConfig) -> Self {
        Self {
            members: config
                .accounts
                .0
                .iter()
                .map(|m| (m.account.clone(), m.role_arn.clone()))
                .collect(),
            role_name: config.role_name.clone(),
            external_id: config.external_id.clone(),
        }
    }

    /// The account-regions restop watches (whose event log the catch-up reads): those of
    /// the allowed topics, and the member accounts in the topics' regions.
    pub fn watched(&self, topics: &[TopicArn]) -> Vec<(String, String)> {
        let mut places: Vec<(String, String)> = Vec::new();
        for topic in topics {
            let accounts = std::iter::once(topic.account().to_owned()).chain(self.members());
            for account in accounts {
                let place = (account, topic.region().to_owned());
                if !places.contains(&place) {
                    places.push(place);
                }
            }
        }
        places
    }

    /// The member accounts' ids.
    pub fn members(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    /// The role assumed in a member account: the one named for it, else
    /// `arn:<partition>:iam::<account>:role/<RESTOP_ROLE_NAME>`.
    pub fn role(&self, account: &str, partition: &str) -> Option<String> {
        self.members.get(account).map(|named| {
            named.clone().unwrap_or_else(|| {
                format!("arn:{partition}:iam::{account}:role/{}", self.role_name)
            })
        })
    }
}

/// Counts every call and failure in the metrics, by operation, account and region.
pub struct Metered {
    inner: Arc<dyn Aws>,
    metrics: Arc<Metrics>,
}

impl Metered {
    pub fn new(inner: Arc<dyn Aws>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    fn record<T>(
        &self,
        operation: &'static str,
        account: &str,
        region: &str,
        result: Result<T, AwsFailure>,
    ) -> Result<T, AwsFailure> {
        let kind = result.as_ref().err().map(failure_kind);
        self.metrics.aws_call(operation, account, region, kind);
        result
    }
}

/// The `kind` label of a failed call.
fn failure_kind(failure: &AwsFailure) -> &'static str {
    match failure {
        AwsFailure::Transient(_) => "transient",
        AwsFailure::Throttled(_) => "throttled",
        AwsFailure::InvalidState(_) => "invalid_state",
        AwsFailure::NotFound => "not_found",
        AwsFailure::InvalidParameterCombination(_) => "invalid_parameter_combination",
        AwsFailure::AccessDenied { .. } => "access_denied",
        AwsFailure::Other(_) => "other",
    }
}

fn describe_operation(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::DbInstance => "DescribeDBInstances",
        ResourceKind::DbCluster => "DescribeDBClusters",
    }
}

fn stop_operation(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::DbInstance => "StopDBInstance",
        ResourceKind::DbCluster => "StopDBCluster",
    }
}

/// The account and region of an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:...`).
fn arn_account_region(arn: &str) -> (&str, &str) {
    let mut parts = arn.split(':').skip(3);
    let region = parts.next().unwrap_or_default();
    (parts.next().unwrap_or_default(), region)
}

#[async_trait]
impl Aws for Metered {
    async fn own_account(&self) -> Result<String, AwsFailure> {
        self.inner.own_account().await
    }

    async fn acts_in(&self, account: &str) -> Result<bool, AwsFailure> {
        self.inner.acts_in(account).await
    }

    async fn list_tags(&self, r: &ResourceArn) -> Result<Vec<(String, String)>, AwsFailure> {
        let result = self.inner.list_tags(r).await;
        self.record("ListTagsForResource", &r.account, &r.region, result)
    }

    async fn describe(&self, r: &ResourceArn) -> Result<ResourceFacts, AwsFailure> {
        let result = self.inner.describe(r).await;
        self.record(describe_operation(r.kind), &r.account, &r.region, result)
    }

    async fn describe_many(
        &self,
        scope: &Scope,
        identifiers: &[String],
    ) -> Result<HashMap<String, ResourceFacts>, AwsFailure> {
        let result = self.inner.describe_many(scope, identifiers).await;
        self.record(
            describe_operation(scope.kind),
            &scope.account,
            &scope.region,
            result,
        )
    }

    async fn resource_arn(
        &self,
        account: &str,
        kind: ResourceKind,
        region: &str,
        id: &str,
    ) -> Result<String, AwsFailure> {
        let result = self.inner.resource_arn(account, kind, region, id).await;
        self.record(describe_operation(kind), account, region, result)
    }

    async fn stop(&self, r: &ResourceArn) -> Result<(), AwsFailure> {
        let result = self.inner.stop(r).await;
        self.record(stop_operation(r.kind), &r.account, &r.region, result)
    }

    async fn start_state_machine(
        &self,
        arn: &str,
        name: &str,
        input: &str,
    ) -> Result<String, AwsFailure> {
        let (account, region) = arn_account_region(arn);
        let result = self.inner.start_state_machine(arn, name, input).await;
        self.record("StartExecution", account, region, result)
    }

    async fn describe_state_machine_run(&self, arn: &str) -> Result<StateMachineRun, AwsFailure> {
        let (account, region) = arn_account_region(arn);
        let result = self.inner.describe_state_machine_run(arn).await;
        self.record("DescribeExecution", account, region, result)
    }

    async fn stop_state_machine_run(
        &self,
        arn: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), AwsFailure> {
        let (account, region) = arn_account_region(arn);
        let result = self.inner.stop_state_machine_run(arn, error, cause).await;
        self.record("StopExecution", account, region, result)
    }

    async fn confirm_subscription(
        &self,
        topic: &TopicArn,
        token: &str,
    ) -> Result<String, AwsFailure> {
        let result = self.inner.confirm_subscription(topic, token).await;
        self.record(
            "ConfirmSubscription",
            topic.account(),
            topic.region(),
            result,
        )
    }

    fn member_role(&self, account: &str, partition: &str) -> Option<String> {
        self.inner.member_role(account, partition)
    }

    async fn describe_events(
        &self,
        account: &str,
        region: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        marker: Option<String>,
    ) -> Result<EventPage, AwsFailure> {
        let result = self
            .inner
            .describe_events(account, region, start, end, marker)
            .await;
        self.record("DescribeEvents", account, region, result)
    }
}

/// Keeps RDS calls within the request budget of their account and region.
pub struct Paced {
    inner: Arc<dyn Aws>,
    budget: Budget,
    metrics: Arc<Metrics>,
}

impl Paced {
    /// `rate`: RDS requests per second per account and region.
    pub fn new(inner: Arc<dyn Aws>, rate: f64, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            budget: Budget::new(rate),
            metrics,
        }
    }

    /// Waits for the budget, makes the call, and slows down if RDS throttled it.
    async fn paced<T>(
        &self,
        account: &str,
        region: &str,
        priority: Priority,
        call: impl std::future::Future<Output = Result<T, AwsFailure>>,
    ) -> Result<T, AwsFailure> {
        if self.budget.acquire(account, region, priority).await {
            self.metrics.budget_wait(account, region);
        }
        let result = call.await;
        if let Err(AwsFailure::Throttled(_)) = &result {
            self.metrics.throttled(account, region);
            self.budget.throttled(account, region);
        }
        result
    }
}

#[async_trait]
impl Aws for Paced {
    async fn own_account(&self) -> Result<String, AwsFailure> {
        self.inner.own_account().await
    }

    async fn acts_in(&self, account: &str) -> Result<bool, AwsFailure> {
        self.inner.acts_in(account).await
    }

    async fn list_tags(&self, r: &ResourceArn) -> Result<Vec<(String, String)>, AwsFailure> {
        self.paced(
            &r.account,
            &r.region,
            Priority::Other,
            self.inner.list_tags(r),
        )
        .await
    }

    async fn describe(&self, r: &ResourceArn) -> Result<ResourceFacts, AwsFailure> {
        self.paced(
            &r.account,
            &r.region,
            Priority::Other,
            self.inner.describe(r),
        )
        .await
    }

    async fn describe_many(
        &self,
        scope: &Scope,
        identifiers: &[String],
    ) -> Result<HashMap<String, ResourceFacts>, AwsFailure> {
        let call = self.inner.describe_many(scope, identifiers);
        self.paced(&scope.account, &scope.region, Priority::Other, call)
            .await
    }

    async fn resource_arn(
        &self,
        account: &str,
        kind: ResourceKind,
        region: &str,
        id: &str,
    ) -> Result<String, AwsFailure> {
        let call = self.inner.resource_arn(account, kind, region, id);
        self.paced(account, region, Priority::Other, call).await
    }

    async fn stop(&self, r: &ResourceArn) -> Result<(), AwsFailure> {
        self.paced(&r.account, &r.region, Priority::Stop, self.inner.stop(r))
            .await
    }

    // Step Functions and SNS have budgets of their own, far from restop's use.
    async fn start_state_machine(
        &self,
        arn: &str,
        name: &str,
        input: &str,
    ) -> Result<String, AwsFailure> {
        self.inner.start_state_machine(arn, name, input).await
    }

    async fn describe_state_machine_run(&self, arn: &str) -> Result<StateMachineRun, AwsFailure> {
        self.inner.describe_state_machine_run(arn).await
    }

    async fn stop_state_machine_run(
        &self,
        arn: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), AwsFailure> {
        self.inner.stop_state_machine_run(arn, error, cause).await
    }

    async fn confirm_subscription(
        &self,
        topic: &TopicArn,
        token: &str,
    ) -> Result<String, AwsFailure> {
        self.inner.confirm_subscription(topic, token).await
    }

    fn member_role(&self, account: &str, partition: &str) -> Option<String> {
        self.inner.member_role(account, partition)
    }

    async fn describe_events(
        &self,
        account: &str,
        region: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        marker: Option<String>,
    ) -> Result<EventPage, AwsFailure> {
        let call = self
            .inner
            .describe_events(account, region, start, end, marker);
        self.paced(account, region, Priority::Other, call).await
    }
}

/// AWS through the SDK.
pub struct SdkAws {
    /// restop's own credentials and settings.
    base: SdkConfig,
    accounts: Accounts,
    /// restop's own account and partition, from `sts:GetCallerIdentity` (asked until it
    /// succeeds, then never again).
    identity: OnceCell<(String, String)>,
    /// A member account's settings: the base with that account's role's credentials
    /// (assumed, cached and refreshed before they expire by the SDK).
    members: Mutex<HashMap<String, SdkConfig>>,
    rds: Mutex<HashMap<(String, String), aws_sdk_rds::Client>>,
    sfn: Mutex<HashMap<String, aws_sdk_sfn::Client>>,
    sns: Mutex<HashMap<(String, String), aws_sdk_sns::Client>>,
}

impl SdkAws {
    /// Loads credentials and endpoint settings the standard way (environment, profile,
    /// container or instance role). Regions come from each resource's ARN.
    pub async fn from_environment(call_timeout: Duration, accounts: Accounts) -> Self {
        let base = Self::loader(call_timeout).load().await;
        if base.region().is_none() {
            tracing::warn!(
                "no AWS region configured: set AWS_REGION (restop calls each database in its \
                 own region; the default region is for STS)"
            );
        }
        Self::new(base, accounts)
    }

    /// The configuration restop uses: its own HTTP client (rustls with ring), three
    /// attempts per call, and `call_timeout` for a call with its retries (a job's lease is
    /// longer: a peer must not take a job over while its call is under way).
    pub fn loader(call_timeout: Duration) -> aws_config::ConfigLoader {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5).min(call_timeout))
                    .operation_attempt_timeout(Duration::from_secs(10).min(call_timeout))
                    .operation_timeout(call_timeout)
                    .build(),
            )
    }

    pub fn new(base: SdkConfig, accounts: Accounts) -> Self {
        Self {
            base,
            accounts,
            identity: OnceCell::new(),
            members: Mutex::default(),
            rds: Mutex::default(),
            sfn: Mutex::default(),
            sns: Mutex::default(),
        }
    }

    /// restop's own account and partition.
    async fn identity(&self) -> Result<&(String, String), AwsFailure> {
        self.identity
            .get_or_try_init(|| async {
                let identity = aws_sdk_sts::Client::new(&self.base)
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| failure(e, "sts:GetCallerIdentity"))?;
                let account = identity.account().ok_or_else(|| {
                    AwsFailure::Other("GetCallerIdentity named no account".into())
                })?;
                let partition = identity
                    .arn()
                    .and_then(|arn| arn.split(':').nth(1))
                    .unwrap_or("aws");
                Ok((account.to_owned(), partition.to_owned()))
            })
            .await
    }

    /// The settings for calls in `account`: restop's own credentials there, a member's
    /// role elsewhere; an account that is neither is refused.
    pub async fn config_in(&self, account: &str) -> Result<SdkConfig, AwsFailure> {
        let (own, partition) = self.identity().await?;
        if account == own {
            return Ok(self.base.clone());
        }
        let Some(role) = self.accounts.role(account, partition) else {
            return Err(AwsFailure::AccessDenied {
                action: "sts:AssumeRole".into(),
                message: format!("account {account} is not in RESTOP_ACCOUNTS"),
            });
        };
        if let Some(config) = self.members.lock().expect("member cache").get(account) {
            return Ok(config.clone());
        }
        let mut provider = AssumeRoleProvider::builder(role)
            .session_name("restop")
            .configure(&self.base);
        if let Some(external_id) = &self.accounts.external_id {
            provider = provider.external_id(external_id);
        }
        let config = self
            .base
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(provider.build().await))
            .build();
        self.members
            .lock()
            .expect("member cache")
            .insert(account.to_owned(), config.clone());
        Ok(config)
    }

    /// Names the role when credentials for a member account could not be had.
    fn in_account<T>(&self, account: &str, result: Result<T, AwsFailure>) -> Result<T, AwsFailure> {
        result.map_err(|failure| match failure {
            AwsFailure::AccessDenied { action, message } if action == CREDENTIALS => {
                let partition = self
                    .identity
                    .get()
                    .map(|(_, partition)| partition.as_str())
                    .unwrap_or("aws");
                let role = self
                    .accounts
                    .role(account, partition)
                    .unwrap_or_else(|| "restop's own credentials".into());
                AwsFailure::AccessDenied {
                    action: "sts:AssumeRole".into(),
                    message: format!("cannot act in account {account} as {role}: {message}"),
                }
            }
            other => other,
        })
    }

    async fn rds(&self, account: &str, region: &str) -> Result<aws_sdk_rds::Client, AwsFailure> {
        let key = (account.to_owned(), region.to_owned());
        if let Some(client) = self.rds.lock().expect("client cache").get(&key) {
            return Ok(client.clone());
        }
        let config = aws_sdk_rds::config::Builder::from(&self.config_in(account).await?)
            .region(aws_sdk_rds::config::Region::new(region.to_owned()))
            .build();
        let client = aws_sdk_rds::Client::from_conf(config);
        self.rds
            .lock()
            .expect("client cache")
            .insert(key, client.clone());
        Ok(client)
    }

    /// Step Functions in restop's own account (where its state machine is).
    fn sfn(&self, region: &str) -> aws_sdk_sfn::Client {
        self.sfn
            .lock()
            .expect("client cache")
            .entry(region.to_owned())
            .or_insert_with(|| {
                let config = aws_sdk_sfn::config::Builder::from(&self.base)
                    .region(aws_sdk_sfn::config::Region::new(region.to_owned()))
                    .build();
                aws_sdk_sfn::Client::from_conf(config)
            })
            .clone()
    }

    async fn sns(&self, account: &str, region: &str) -> Result<aws_sdk_sns::Client, AwsFailure> {
        let key = (account.to_owned(), region.to_owned());
        if let Some(client) = self.sns.lock().expect("client cache").get(&key) {
            return Ok(client.clone());
        }
        let config = aws_sdk_sns::config::Builder::from(&self.config_in(account).await?)
            .region(aws_sdk_sns::config::Region::new(region.to_owned()))
            .build();
        let client = aws_sdk_sns::Client::from_conf(config);
        self.sns
            .lock()
            .expect("client cache")
            .insert(key, client.clone());
        Ok(client)
    }

    async fn describe_instances(
        &self,
        client: &aws_sdk_rds::Client,
        filter: Option<Filter>,
        identifier: Option<&str>,
    ) -> Result<Vec<aws_sdk_rds::types::DbInstance>, AwsFailure> {
        let mut found = Vec::new();
        let mut marker = None;
        loop {
            let page = client
                .describe_db_instances()
                .set_filters(filter.clone().map(|f| vec![f]))
                .set_db_instance_identifier(identifier.map(str::to_owned))
                .set_marker(marker)
                .max_records(100)
                .send()
                .await
                .map_err(|e| failure(e, "rds:DescribeDBInstances"))?;
            found.extend(page.db_instances().iter().cloned());
            marker = page.marker().map(str::to_owned);
            if marker.is_none() {
                return Ok(found);
            }
        }
    }

    async fn describe_clusters(
        &self,
        client: &aws_sdk_rds::Client,
        filter: Option<Filter>,
        identifier: Option<&str>,
    ) -> Result<Vec<aws_sdk_rds::types::DbCluster>, AwsFailure> {
        let mut found = Vec::new();
        let mut marker = None;
        loop {
            let page = client
                .describe_db_clusters()
                .set_filters(filter.clone().map(|f| vec![f]))
                .set_db_cluster_identifier(identifier.map(str::to_owned))
                .set_marker(marker)
                .max_records(100)
                .send()
                .await
                .map_err(|e| failure(e, "rds:DescribeDBClusters"))?;
            found.extend(page.db_clusters().iter().cloned());
            marker = page.marker().map(str::to_owned);
            if marker.is_none() {
                return Ok(found);
            }
        }
    }
}

/// The `action` of a failure to get credentials, until [`SdkAws::in_account`] names the role.
const CREDENTIALS: &str = "credentials";

/// The region in an ARN (`arn:PARTITION:SERVICE:REGION:...`).
fn arn_region(arn: &str) -> &str {
    arn.split(':').nth(3).unwrap_or_default()
}

#[async_trait]
impl Aws for SdkAws {
    async fn own_account(&self) -> Result<String, AwsFailure> {
        Ok(self.identity().await?.0.clone())
    }

    async fn acts_in(&self, account: &str) -> Result<bool, AwsFailure> {
        let (own, partition) = self.identity().await?;
        Ok(account == own || self.accounts.role(account, partition).is_some())
    }

    async fn list_tags(&self, r: &ResourceArn) -> Result<Vec<(String, String)>, AwsFailure> {
        let result = async {
            let out = self
                .rds(&r.account, &r.region)
                .await?
                .list_tags_for_resource()
                .resource_name(&r.arn)
                .send()
                .await
                .map_err(|e| failure(e, "rds:ListTagsForResource"))?;
            Ok(out
                .tag_list()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_owned(),
                        t.value().unwrap_or_default().to_owned(),
                    )
                })
                .collect())
        }
        .await;
        self.in_account(&r.account, result)
    }

    async fn describe(&self, r: &ResourceArn) -> Result<ResourceFacts, AwsFailure> {
        let result = async {
            let client = self.rds(&r.account, &r.region).await?;
            match r.kind {
                ResourceKind::DbInstance => {
                    let found = self
                        .describe_instances(&client, None, Some(&r.identifier))
                        .await?;
                    found
                        .first()
                        .map(instance_facts)
                        .ok_or(AwsFailure::NotFound)
                }
                ResourceKind::DbCluster => {
                    let found = self
                        .describe_clusters(&client, None, Some(&r.identifier))
                        .await?;
                    found.first().map(cluster_facts).ok_or(AwsFailure::NotFound)
                }
            }
        }
        .await;
        self.in_account(&r.account, result)
    }

    async fn describe_many(
        &self,
        scope: &Scope,
        identifiers: &[String],
    ) -> Result<HashMap<String, ResourceFacts>, AwsFailure> {
        let result = async {
            let client = self.rds(&scope.account, &scope.region).await?;
            let filter_name = match scope.kind {
                ResourceKind::DbInstance => "db-instance-id",
                ResourceKind::DbCluster => "db-cluster-id",
            };
            // With a filter, identifiers RDS does not know are left out of the answer
            // (the identifier parameter would fault the whole call).
            let filter = Filter::builder()
                .name(filter_name)
                .set_values(Some(identifiers.to_vec()))
                .build();
            Ok(match scope.kind {
                ResourceKind::DbInstance => self
                    .describe_instances(&client, Some(filter), None)
                    .await?
                    .iter()
                    .filter_map(|db| {
                        let id = db.db_instance_identifier()?.to_ascii_lowercase();
                        Some((id, instance_facts(db)))
                    })
                    .collect(),
                ResourceKind::DbCluster => self
                    .describe_clusters(&client, Some(filter), None)
                    .await?
                    .iter()
                    .filter_map(|c| {
                        let id = c.db_cluster_identifier()?.to_ascii_lowercase();
                        Some((id, cluster_facts(c)))
                    })
                    .collect(),
            })
        }
        .await;
        self.in_account(&scope.account, result)
    }

    async fn resource_arn(
        &self,
        account: &str,
        kind: ResourceKind,
        region: &str,
        identifier: &str,
    ) -> Result<String, AwsFailure> {
        let result = async {
            let client = self.rds(account, region).await?;
            let arn = match kind {
                ResourceKind::DbInstance => self
                    .describe_instances(&client, None, Some(identifier))
                    .await?
                    .first()
                    .and_then(|db| db.db_instance_arn().map(str::to_owned)),
                ResourceKind::DbCluster => self
                    .describe_clusters(&client, None, Some(identifier))
                    .await?
                    .first()
                    .and_then(|c| c.db_cluster_arn().map(str::to_owned)),
            };
            arn.ok_or(AwsFailure::NotFound)
        }
        .await;
        self.in_account(account, result)
    }

    async fn stop(&self, r: &ResourceArn) -> Result<(), AwsFailure> {
        let result = async {
            let client = self.rds(&r.account, &r.region).await?;
            match r.kind {
                ResourceKind::DbInstance => client
                    .stop_db_instance()
                    .db_instance_identifier(&r.identifier)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| failure(e, "rds:StopDBInstance")),
                ResourceKind::DbCluster => client
                    .stop_db_cluster()
                    .db_cluster_identifier(&r.identifier)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| failure(e, "rds:StopDBCluster")),
            }
        }
        .await;
        self.in_account(&r.account, result)
    }

    async fn start_state_machine(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &str,
    ) -> Result<String, AwsFailure> {
        let client = self.sfn(arn_region(state_machine_arn));
        let started = client
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await;
        match started {
            Ok(out) => Ok(out.execution_arn().to_owned()),
            // A redelivered event after the first execution closed: the same name and the
            // same input is the same execution.
            Err(e) if e.code() == Some("ExecutionAlreadyExists") => {
                let execution_arn = execution_arn_for(state_machine_arn, name);
                let existing = client
                    .describe_execution()
                    .execution_arn(&execution_arn)
                    .send()
                    .await
                    .map_err(|e| failure(e, "states:DescribeExecution"))?;
                // Names are unique per message (or per execution), so an execution with
                // this name is restop's own, started before a crash; settings such as the
                // poll interval may have changed since, so only the execution id must match.
                let execution_id = |json: Option<&str>| {
                    json.and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
                        .and_then(|v| v.get("executionId").cloned())
                };
                if execution_id(existing.input()) == execution_id(Some(input)) {
                    Ok(execution_arn)
                } else {
                    Err(AwsFailure::Other(format!(
                        "a different execution named {name} already exists"
                    )))
                }
            }
            Err(e) => Err(failure(e, "states:StartExecution")),
        }
    }

    async fn describe_state_machine_run(
        &self,
        execution_arn: &str,
    ) -> Result<StateMachineRun, AwsFailure> {
        let out = self
            .sfn(arn_region(execution_arn))
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| failure(e, "states:DescribeExecution"))?;
        Ok(match out.status() {
            ExecutionStatus::Succeeded => StateMachineRun::Succeeded {
                output: out.output().map(str::to_owned),
            },
            ExecutionStatus::Failed => StateMachineRun::Failed {
                error: out.error().map(str::to_owned),
                cause: out.cause().map(str::to_owned),
            },
            ExecutionStatus::TimedOut => StateMachineRun::TimedOut,
            ExecutionStatus::Aborted => StateMachineRun::Aborted,
            _ => StateMachineRun::Running,
        })
    }

    async fn stop_state_machine_run(
        &self,
        execution_arn: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), AwsFailure> {
        self.sfn(arn_region(execution_arn))
            .stop_execution()
            .execution_arn(execution_arn)
            .error(error)
            .cause(cause)
            .send()
            .await
            .map(drop)
            .map_err(|e| failure(e, "states:StopExecution"))
    }

    async fn confirm_subscription(
        &self,
        topic: &TopicArn,
        token: &str,
    ) -> Result<String, AwsFailure> {
        let out = self
            .sns(topic.account(), topic.region())
            .await?
            .confirm_subscription()
            .topic_arn(topic.as_str())
            .token(token)
            .authenticate_on_unsubscribe("true")
            .send()
            .await
            .map_err(|e| failure(e, "sns:ConfirmSubscription"))?;
        out.subscription_arn()
            .map(str::to_owned)
            .ok_or_else(|| AwsFailure::Other("ConfirmSubscription named no subscription".into()))
    }

    fn member_role(&self, account: &str, partition: &str) -> Option<String> {
        self.accounts.role(account, partition)
    }

    async fn describe_events(
        &self,
        account: &str,
        region: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        marker: Option<String>,
    ) -> Result<EventPage, AwsFailure> {
        let result = async {
            // No source type: one call covers instances and clusters (the caller keeps
            // what it needs); the notification category holds forced starts and starts.
            let page = self
                .rds(account, region)
                .await?
                .describe_events()
                .start_time(aws_sdk_rds::primitives::DateTime::from_millis(
                    start.timestamp_millis(),
                ))
                .end_time(aws_sdk_rds::primitives::DateTime::from_millis(
                    end.timestamp_millis(),
                ))
                .event_categories("notification")
                .max_records(100)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| failure(e, "rds:DescribeEvents"))?;
            let events = page
                .events()
                .iter()
                .filter_map(|e| {
                    Some(LoggedEvent {
                        source_type: e.source_type()?.as_str().to_owned(),
                        source_identifier: e.source_identifier()?.to_owned(),
                        source_arn: e.source_arn().map(str::to_owned),
                        message: e.message().unwrap_or_default().to_owned(),
                        date: DateTime::from_timestamp_millis(e.date()?.to_millis().ok()?)?,
                    })
                })
                .collect();
            Ok(EventPage {
                events,
                marker: page.marker().map(str::to_owned),
            })
        }
        .await;
        self.in_account(account, result)
    }
}

pub(crate) fn instance_facts(db: &aws_sdk_rds::types::DbInstance) -> ResourceFacts {
    let mut replicas: Vec<String> = db.read_replica_db_instance_identifiers().to_vec();
    replicas.extend(db.read_replica_db_cluster_identifiers().iter().cloned());
    ResourceFacts {
        status: db.db_instance_status().unwrap_or_default().to_owned(),
        engine: db.engine().unwrap_or_default().to_owned(),
        multi_az: db.multi_az().unwrap_or(false),
        cluster_id: db.db_cluster_identifier().map(str::to_owned),
        replica_source: db
            .read_replica_source_db_instance_identifier()
            .or(db.read_replica_source_db_cluster_identifier())
            .map(str::to_owned),
        replicas,
        engine_mode: None,
        global_cluster_id: None,
    }
}

pub(crate) fn cluster_facts(cluster: &aws_sdk_rds::types::DbCluster) -> ResourceFacts {
    ResourceFacts {
        status: cluster.status().unwrap_or_default().to_owned(),
        engine: cluster.engine().unwrap_or_default().to_owned(),
        multi_az: cluster.multi_az().unwrap_or(false),
        cluster_id: None,
        replica_source: cluster.replication_source_identifier().map(str::to_owned),
        replicas: cluster.read_replica_identifiers().to_vec(),
        engine_mode: cluster.engine_mode().map(str::to_owned),
        global_cluster_id: cluster.global_cluster_identifier().map(str::to_owned),
    }
}

/// `arn:aws:states:R:A:stateMachine:SM` + name -> `arn:aws:states:R:A:execution:SM:name`.
pub fn execution_arn_for(state_machine_arn: &str, name: &str) -> String {
    format!(
        "{}:{name}",
        state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
    )
}

/// Sorts an SDK error by what the engine should do about it. `action` names the IAM
/// action, for AccessDenied messages.
fn failure<E>(error: SdkError<E, HttpResponse>, action: &str) -> AwsFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(credentials) = credentials_failure(&error) {
        return credentials;
    }
    if matches!(
        error,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    ) {
        return AwsFailure::Transient(format!("{action}: {}", error_chain(&error)));
    }
    let http_status = error.raw_response().map(|r| r.status().as_u16());
    let message = error.message().unwrap_or_default();
    let Some(code) = error.code() else {
        return match http_status {
            Some(status) if status >= 500 => {
                AwsFailure::Transient(format!("{action}: HTTP {status}"))
            }
            _ => AwsFailure::Other(format!("{action}: {}", error_chain(&error))),
        };
    };
    classify_code(
        code,
        http_status,
        action,
        format!("{action}: {code}: {message}"),
    )
}

/// A call that failed because its credentials could not be had: none at all, or a role
/// that refused to be assumed, is for an operator to fix; anything else passes.
fn credentials_failure(error: &(dyn std::error::Error + 'static)) -> Option<AwsFailure> {
    use aws_credential_types::provider::error::CredentialsError;
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(credentials) = e.downcast_ref::<CredentialsError>() {
            let text = error_chain(credentials);
            let refused = match credentials {
                CredentialsError::CredentialsNotLoaded(_)
                | CredentialsError::InvalidConfiguration(_) => true,
                CredentialsError::ProviderError(_) => {
                    text.contains("AccessDenied") || text.contains("not authorized")
                }
                _ => false,
            };
            return Some(if refused {
                AwsFailure::AccessDenied {
                    action: CREDENTIALS.into(),
                    message: text,
                }
            } else {
                AwsFailure::Transient(format!("credentials: {text}"))
            });
        }
        source = e.source();
    }
    None
}

/// What an AWS error code means for restop.
fn classify_code(
    code: &str,
    http_status: Option<u16>,
    action: &str,
    described: String,
) -> AwsFailure {
    match code {
        "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException" => {
            AwsFailure::Throttled(described)
        }
        // Credentials that expired or a clock that drifted: the SDK refreshes
        // credentials and re-signs on the next attempt, so these pass.
        "ExpiredToken"
        | "ExpiredTokenException"
        | "RequestExpired"
        | "SignatureDoesNotMatch"
        | "InvalidClientTokenId"
        // Step Functions' limit on open executions: others will finish.
        | "ExecutionLimitExceeded" => AwsFailure::Transient(described),
        "InvalidDBInstanceState" | "InvalidDBInstanceStateFault" | "InvalidDBClusterStateFault" => {
            AwsFailure::InvalidState(described)
        }
        "DBInstanceNotFound"
        | "DBInstanceNotFoundFault"
        | "DBClusterNotFoundFault"
        | "DBClusterNotFound"
        | "ExecutionDoesNotExist" => AwsFailure::NotFound,
        "InvalidParameterCombination" => AwsFailure::InvalidParameterCombination(described),
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation"
        | "AuthorizationError" => AwsFailure::AccessDenied {
            action: action.to_owned(),
            message: described,
        },
        _ if http_status.is_some_and(|s| s >= 500) => AwsFailure::Transient(described),
        _ => AwsFailure::Other(described),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_arns_follow_the_state_machine() {
        assert_eq!(
            execution_arn_for(
                "arn:aws:states:us-east-1:123456789012:stateMachine:restop",
                "m-1"
            ),
            "arn:aws:states:us-east-1:123456789012:execution:restop:m-1"
        );
        assert_eq!(
            arn_region("arn:aws:states:eu-west-1:123456789012:stateMachine:x"),
            "eu-west-1"
        );
    }

    #[test]
    fn credential_clock_and_limit_errors_pass() {
        for code in [
            "ExpiredToken",
            "RequestExpired",
            "SignatureDoesNotMatch",
            "InvalidClientTokenId",
            "ExecutionLimitExceeded",
        ] {
            assert!(
                matches!(
                    classify_code(code, Some(400), "rds:StopDBInstance", code.into()),
                    AwsFailure::Transient(_)
                ),
                "{code}"
            );
        }
        for code in ["Throttling", "ThrottlingException"] {
            assert!(matches!(
                classify_code(code, Some(400), "rds:DescribeDBInstances", code.into()),
                AwsFailure::Throttled(_)
            ));
        }
        assert!(matches!(
            classify_code(
                "AccessDenied",
                Some(403),
                "rds:StopDBInstance",
                String::new()
            ),
            AwsFailure::AccessDenied { .. }
        ));
        assert_eq!(
            classify_code(
                "ExecutionDoesNotExist",
                Some(400),
                "states:StopExecution",
                String::new()
            ),
            AwsFailure::NotFound
        );
        assert!(matches!(
            classify_code("SomethingElse", Some(400), "x", String::new()),
            AwsFailure::Other(_)
        ));
    }
}
