//! AWS through the SDK: each resource is called in its own account (restop's own
//! credentials, or a member account's role) and in its own region, with one client per
//! service, account and region, made on first use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_rds::error::ProvideErrorMetadata;
use aws_sdk_rds::types::Filter;
use aws_sdk_sfn::types::ExecutionStatus;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

use super::accounts::Accounts;
use super::arn::{Arn, ResourceArn, ResourceKind, StateMachineArn, TopicArn};
use super::classify::{CREDENTIALS, failure};
use super::{
    Aws, AwsFailure, AwsReply, AwsRequest, EventPage, LoggedEvent, ResourceFacts, Scope,
    StateMachineRun,
};

/// An SDK client of one service, made from restop's settings for one region.
trait RegionalClient: Clone {
    fn in_region(config: &SdkConfig, region: &str) -> Self;
}

impl RegionalClient for aws_sdk_rds::Client {
    /// One attempt per call: the guard retries RDS calls, each attempt within the request
    /// budget, where the SDK's retries would go around it.
    fn in_region(config: &SdkConfig, region: &str) -> Self {
        let region = Region::new(region.to_owned());
        Self::from_conf(
            aws_sdk_rds::config::Builder::from(config)
                .region(region)
                .retry_config(RetryConfig::disabled())
                .build(),
        )
    }
}

impl RegionalClient for aws_sdk_sfn::Client {
    fn in_region(config: &SdkConfig, region: &str) -> Self {
        let region = Region::new(region.to_owned());
        Self::from_conf(
            aws_sdk_sfn::config::Builder::from(config)
                .region(region)
                .build(),
        )
    }
}

impl RegionalClient for aws_sdk_sns::Client {
    fn in_region(config: &SdkConfig, region: &str) -> Self {
        let region = Region::new(region.to_owned());
        Self::from_conf(
            aws_sdk_sns::config::Builder::from(config)
                .region(region)
                .build(),
        )
    }
}

/// Clients of one service by account and region.
type Clients<C> = Mutex<HashMap<(String, String), C>>;

/// The credentials a client calls with.
#[derive(Clone, Copy)]
enum Credentials<'a> {
    /// Those for acting in this account: restop's own there, else the member's role.
    In(&'a str),
    /// restop's own, without asking STS which account they act in.
    Own,
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
    rds: Clients<aws_sdk_rds::Client>,
    sfn: Clients<aws_sdk_sfn::Client>,
    sns: Clients<aws_sdk_sns::Client>,
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
    /// attempts per call (RDS clients make one: the guard retries them), and
    /// `call_timeout` for a call with its retries (a job's lease is
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
                    .and_then(Arn::parse)
                    .map_or("aws", |arn| arn.partition);
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

    /// The client of `cache`'s service acting as `credentials` in `region`.
    async fn client<C: RegionalClient>(
        &self,
        cache: &Clients<C>,
        credentials: Credentials<'_>,
        region: &str,
    ) -> Result<C, AwsFailure> {
        let account = match credentials {
            Credentials::In(account) => account,
            Credentials::Own => "",
        };
        let key = (account.to_owned(), region.to_owned());
        if let Some(client) = cache.lock().expect("client cache").get(&key) {
            return Ok(client.clone());
        }
        let config = match credentials {
            Credentials::In(account) => self.config_in(account).await?,
            Credentials::Own => self.base.clone(),
        };
        let client = C::in_region(&config, region);
        cache
            .lock()
            .expect("client cache")
            .insert(key, client.clone());
        Ok(client)
    }

    async fn rds(&self, account: &str, region: &str) -> Result<aws_sdk_rds::Client, AwsFailure> {
        self.client(&self.rds, Credentials::In(account), region)
            .await
    }

    /// Step Functions in restop's own account (where its state machine is).
    async fn sfn(&self, region: &str) -> Result<aws_sdk_sfn::Client, AwsFailure> {
        self.client(&self.sfn, Credentials::Own, region).await
    }

    async fn sns(&self, account: &str, region: &str) -> Result<aws_sdk_sns::Client, AwsFailure> {
        self.client(&self.sns, Credentials::In(account), region)
            .await
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

/// The calls, one method each.
impl SdkAws {
    async fn own_account_id(&self) -> Result<String, AwsFailure> {
        Ok(self.identity().await?.0.clone())
    }

    async fn holds_credentials_in(&self, account: &str) -> Result<bool, AwsFailure> {
        let (own, partition) = self.identity().await?;
        Ok(account == own || self.accounts.role(account, partition).is_some())
    }

    async fn tags(&self, r: &ResourceArn) -> Result<Vec<(String, String)>, AwsFailure> {
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

    async fn facts(&self, r: &ResourceArn) -> Result<ResourceFacts, AwsFailure> {
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

    async fn facts_of_many(
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

    async fn find_resource(
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

    async fn stop_resource(&self, r: &ResourceArn) -> Result<(), AwsFailure> {
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

    async fn start_run(
        &self,
        state_machine: &StateMachineArn,
        name: &str,
        input: &str,
    ) -> Result<String, AwsFailure> {
        let client = self.sfn(state_machine.region()).await?;
        let started = client
            .start_execution()
            .state_machine_arn(state_machine.as_str())
            .name(name)
            .input(input)
            .send()
            .await;
        match started {
            Ok(out) => Ok(out.execution_arn().to_owned()),
            // A redelivered event after the first execution closed: the same name and the
            // same input is the same execution.
            Err(e) if e.code() == Some("ExecutionAlreadyExists") => {
                let execution_arn = state_machine.execution(name);
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

    async fn run(&self, execution_arn: &str) -> Result<StateMachineRun, AwsFailure> {
        let region = Arn::parse(execution_arn).map_or("", |arn| arn.region);
        let out = self
            .sfn(region)
            .await?
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

    async fn stop_run(
        &self,
        execution_arn: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), AwsFailure> {
        let region = Arn::parse(execution_arn).map_or("", |arn| arn.region);
        self.sfn(region)
            .await?
            .stop_execution()
            .execution_arn(execution_arn)
            .error(error)
            .cause(cause)
            .send()
            .await
            .map(drop)
            .map_err(|e| failure(e, "states:StopExecution"))
    }

    async fn confirm(&self, topic: &TopicArn, token: &str) -> Result<String, AwsFailure> {
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

    async fn events(
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

#[async_trait]
impl Aws for SdkAws {
    async fn call(&self, request: AwsRequest<'_>) -> Result<AwsReply, AwsFailure> {
        Ok(match request {
            AwsRequest::OwnAccount => AwsReply::Text(self.own_account_id().await?),
            AwsRequest::ActsIn { account } => {
                AwsReply::Flag(self.holds_credentials_in(account).await?)
            }
            AwsRequest::ListTags(resource) => AwsReply::Tags(self.tags(resource).await?),
            AwsRequest::Describe(resource) => AwsReply::Facts(self.facts(resource).await?),
            AwsRequest::DescribeMany { scope, identifiers } => {
                AwsReply::ManyFacts(self.facts_of_many(scope, identifiers).await?)
            }
            AwsRequest::FindResource {
                account,
                kind,
                region,
                identifier,
            } => AwsReply::Text(
                self.find_resource(account, kind, region, identifier)
                    .await?,
            ),
            AwsRequest::Stop(resource) => {
                self.stop_resource(resource).await?;
                AwsReply::Done
            }
            AwsRequest::StartStateMachine {
                state_machine,
                name,
                input,
            } => AwsReply::Text(self.start_run(state_machine, name, input).await?),
            AwsRequest::DescribeStateMachineRun { execution } => {
                AwsReply::StateMachineRun(self.run(execution).await?)
            }
            AwsRequest::StopStateMachineRun {
                execution,
                error,
                cause,
            } => {
                self.stop_run(execution, error, cause).await?;
                AwsReply::Done
            }
            AwsRequest::ConfirmSubscription { topic, token } => {
                AwsReply::Text(self.confirm(topic, token).await?)
            }
            AwsRequest::DescribeEvents {
                account,
                region,
                start,
                end,
                marker,
            } => AwsReply::Events(self.events(account, region, start, end, marker).await?),
        })
    }

    fn member_role(&self, account: &str, partition: &str) -> Option<String> {
        self.accounts.role(account, partition)
    }
}

pub fn instance_facts(db: &aws_sdk_rds::types::DbInstance) -> ResourceFacts {
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
        instance_class: db.db_instance_class().map(str::to_owned),
        members: Vec::new(),
    }
}

pub fn cluster_facts(cluster: &aws_sdk_rds::types::DbCluster) -> ResourceFacts {
    ResourceFacts {
        status: cluster.status().unwrap_or_default().to_owned(),
        engine: cluster.engine().unwrap_or_default().to_owned(),
        multi_az: cluster.multi_az().unwrap_or(false),
        cluster_id: None,
        replica_source: cluster.replication_source_identifier().map(str::to_owned),
        replicas: cluster.read_replica_identifiers().to_vec(),
        engine_mode: cluster.engine_mode().map(str::to_owned),
        global_cluster_id: cluster.global_cluster_identifier().map(str::to_owned),
        instance_class: None,
        members: cluster
            .db_cluster_members()
            .iter()
            .filter_map(|m| m.db_instance_identifier().map(str::to_owned))
            .collect(),
    }
}
