//! The AWS calls restop makes, behind a trait so the engine can be driven by a fake in
//! tests and benchmarks. The real implementation calls each resource in its own account
//! (restop's own credentials, or a member account's role) and in its own region, with one
//! client per account and region, made on first use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_rds::config::http::HttpResponse;
use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sfn::types::ExecutionStatus;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use tokio::sync::OnceCell;

use super::decide::{AwsFailure, StateMachineRun};
use crate::metrics::Metrics;
use crate::rds::resource::{ResourceArn, ResourceFacts, ResourceKind};
use crate::sns::message::TopicArn;

#[async_trait]
pub trait Aws: Send + Sync + 'static {
    /// Whether restop holds credentials in `account`: its own account's, or a member
    /// account's role.
    async fn acts_in(&self, account: &str) -> bool;
    async fn list_tags(&self, resource: &ResourceArn) -> Result<Vec<(String, String)>, AwsFailure>;
    async fn describe(&self, resource: &ResourceArn) -> Result<ResourceFacts, AwsFailure>;
    /// The ARN of a DB instance or cluster in restop's own account, named by identifier
    /// (for manual triggers).
    async fn resource_arn(
        &self,
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
}

/// Counts every call and failure in the metrics, by operation.
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
        result: Result<T, AwsFailure>,
    ) -> Result<T, AwsFailure> {
        let kind = result.as_ref().err().map(|failure| match failure {
            AwsFailure::Transient(_) => "transient",
            AwsFailure::InvalidState(_) => "invalid_state",
            AwsFailure::NotFound => "not_found",
            AwsFailure::InvalidParameterCombination(_) => "invalid_parameter_combination",
            AwsFailure::AccessDenied { .. } => "access_denied",
            AwsFailure::Other(_) => "other",
        });
        self.metrics.aws_call(operation, kind);
        result
    }
}

fn describe_operation(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::DbInstance => "DescribeDBInstances",
        ResourceKind::DbCluster => "DescribeDBClusters",
    }
}

#[async_trait]
impl Aws for Metered {
    async fn acts_in(&self, account: &str) -> bool {
        self.inner.acts_in(account).await
    }

    async fn list_tags(&self, r: &ResourceArn) -> Result<Vec<(String, String)>, AwsFailure> {
        self.record("ListTagsForResource", self.inner.list_tags(r).await)
    }

    async fn describe(&self, r: &ResourceArn) -> Result<ResourceFacts, AwsFailure> {
        self.record(describe_operation(r.kind), self.inner.describe(r).await)
    }

    async fn resource_arn(
        &self,
        kind: ResourceKind,
        region: &str,
        id: &str,
    ) -> Result<String, AwsFailure> {
        self.record(
            describe_operation(kind),
            self.inner.resource_arn(kind, region, id).await,
        )
    }

    async fn stop(&self, r: &ResourceArn) -> Result<(), AwsFailure> {
        let operation = match r.kind {
            ResourceKind::DbInstance => "StopDBInstance",
            ResourceKind::DbCluster => "StopDBCluster",
        };
        self.record(operation, self.inner.stop(r).await)
    }

    async fn start_state_machine(
        &self,
        arn: &str,
        name: &str,
        input: &str,
    ) -> Result<String, AwsFailure> {
        self.record(
            "StartExecution",
            self.inner.start_state_machine(arn, name, input).await,
        )
    }

    async fn describe_state_machine_run(&self, arn: &str) -> Result<StateMachineRun, AwsFailure> {
        self.record(
            "DescribeExecution",
            self.inner.describe_state_machine_run(arn).await,
        )
    }

    async fn stop_state_machine_run(
        &self,
        arn: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), AwsFailure> {
        self.record(
            "StopExecution",
            self.inner.stop_state_machine_run(arn, error, cause).await,
        )
    }

    async fn confirm_subscription(
        &self,
        topic: &TopicArn,
        token: &str,
    ) -> Result<String, AwsFailure> {
        self.record(
            "ConfirmSubscription",
            self.inner.confirm_subscription(topic, token).await,
        )
    }
}

/// AWS through the SDK.
pub struct SdkAws {
    base: SdkConfig,
    /// restop's own account, from `sts:GetCallerIdentity` (asked once it succeeds).
    own_account: OnceCell<String>,
    rds: Mutex<HashMap<(String, String), aws_sdk_rds::Client>>,
    sfn: Mutex<HashMap<String, aws_sdk_sfn::Client>>,
    sns: Mutex<HashMap<String, aws_sdk_sns::Client>>,
}

impl SdkAws {
    /// Loads credentials and endpoint settings the standard way (environment, profile,
    /// container or instance role). Regions come from each resource's ARN.
    pub async fn from_environment(call_timeout: Duration) -> Self {
        let base = Self::loader(call_timeout).load().await;
        if base.region().is_none() {
            tracing::warn!(
                "no AWS region configured: set AWS_REGION (restop calls each database in its \
                 own region; the default region is for STS)"
            );
        }
        Self::new(base)
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

    pub fn new(base: SdkConfig) -> Self {
        Self {
            base,
            own_account: OnceCell::new(),
            rds: Mutex::default(),
            sfn: Mutex::default(),
            sns: Mutex::default(),
        }
    }

    /// restop's own account.
    async fn own_account(&self) -> Result<&str, AwsFailure> {
        self.own_account
            .get_or_try_init(|| async {
                let identity = aws_sdk_sts::Client::new(&self.base)
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| failure(e, "sts:GetCallerIdentity"))?;
                identity
                    .account()
                    .map(str::to_owned)
                    .ok_or_else(|| AwsFailure::Other("GetCallerIdentity named no account".into()))
            })
            .await
            .map(String::as_str)
    }

    /// The credentials for calls in `account`: restop's own, or none.
    async fn credentials_in(&self, account: &str) -> Result<&SdkConfig, AwsFailure> {
        let own = self.own_account().await?;
        if account == own {
            Ok(&self.base)
        } else {
            Err(AwsFailure::AccessDenied {
                action: "sts:AssumeRole".into(),
                message: format!("restop has no credentials in account {account}"),
            })
        }
    }

    async fn rds(&self, account: &str, region: &str) -> Result<aws_sdk_rds::Client, AwsFailure> {
        let config = self.credentials_in(account).await?;
        let key = (account.to_owned(), region.to_owned());
        Ok(self
            .rds
            .lock()
            .expect("client cache")
            .entry(key)
            .or_insert_with(|| {
                let config = aws_sdk_rds::config::Builder::from(config)
                    .region(aws_sdk_rds::config::Region::new(region.to_owned()))
                    .build();
                aws_sdk_rds::Client::from_conf(config)
            })
            .clone())
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
        let config = self.credentials_in(account).await?;
        Ok(self
            .sns
            .lock()
            .expect("client cache")
            .entry(format!("{account}/{region}"))
            .or_insert_with(|| {
                let config = aws_sdk_sns::config::Builder::from(config)
                    .region(aws_sdk_sns::config::Region::new(region.to_owned()))
                    .build();
                aws_sdk_sns::Client::from_conf(config)
            })
            .clone())
    }
}

/// The region in an ARN (`arn:PARTITION:SERVICE:REGION:...`).
fn arn_region(arn: &str) -> &str {
    arn.split(':').nth(3).unwrap_or_default()
}

#[async_trait]
impl Aws for SdkAws {
    async fn acts_in(&self, account: &str) -> bool {
        self.credentials_in(account).await.is_ok()
    }

    async fn list_tags(&self, r: &ResourceArn) -> Result<Vec<(String, String)>, AwsFailure> {
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

    async fn describe(&self, r: &ResourceArn) -> Result<ResourceFacts, AwsFailure> {
        let client = self.rds(&r.account, &r.region).await?;
        match r.kind {
            ResourceKind::DbInstance => {
                let out = client
                    .describe_db_instances()
                    .db_instance_identifier(&r.identifier)
                    .send()
                    .await
                    .map_err(|e| failure(e, "rds:DescribeDBInstances"))?;
                let db = out.db_instances().first().ok_or(AwsFailure::NotFound)?;
                Ok(instance_facts(db))
            }
            ResourceKind::DbCluster => {
                let out = client
                    .describe_db_clusters()
                    .db_cluster_identifier(&r.identifier)
                    .send()
                    .await
                    .map_err(|e| failure(e, "rds:DescribeDBClusters"))?;
                let cluster = out.db_clusters().first().ok_or(AwsFailure::NotFound)?;
                Ok(cluster_facts(cluster))
            }
        }
    }

    async fn resource_arn(
        &self,
        kind: ResourceKind,
        region: &str,
        identifier: &str,
    ) -> Result<String, AwsFailure> {
        let account = self.own_account().await?.to_owned();
        let client = self.rds(&account, region).await?;
        let arn = match kind {
            ResourceKind::DbInstance => client
                .describe_db_instances()
                .db_instance_identifier(identifier)
                .send()
                .await
                .map_err(|e| failure(e, "rds:DescribeDBInstances"))?
                .db_instances()
                .first()
                .and_then(|db| db.db_instance_arn().map(str::to_owned)),
            ResourceKind::DbCluster => client
                .describe_db_clusters()
                .db_cluster_identifier(identifier)
                .send()
                .await
                .map_err(|e| failure(e, "rds:DescribeDBClusters"))?
                .db_clusters()
                .first()
                .and_then(|c| c.db_cluster_arn().map(str::to_owned)),
        };
        arn.ok_or(AwsFailure::NotFound)
    }

    async fn stop(&self, r: &ResourceArn) -> Result<(), AwsFailure> {
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
}

fn instance_facts(db: &aws_sdk_rds::types::DbInstance) -> ResourceFacts {
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

fn cluster_facts(cluster: &aws_sdk_rds::types::DbCluster) -> ResourceFacts {
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

/// What an AWS error code means for restop.
fn classify_code(
    code: &str,
    http_status: Option<u16>,
    action: &str,
    described: String,
) -> AwsFailure {
    match code {
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        // Credentials that expired or a clock that drifted: the SDK refreshes
        // credentials and re-signs on the next attempt, so these pass.
        | "ExpiredToken"
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
            "Throttling",
            "ThrottlingException",
        ] {
            assert!(
                matches!(
                    classify_code(code, Some(400), "rds:StopDBInstance", code.into()),
                    AwsFailure::Transient(_)
                ),
                "{code}"
            );
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
