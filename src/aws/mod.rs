//! The AWS calls restop makes, behind one trait so the engine can be driven by a fake in
//! tests and benchmarks. Every call is one [`AwsRequest`] answered by one [`AwsReply`]
//! through [`Aws::call`], so a decorator wraps that one function ([`Guarded`]: metrics and
//! the RDS request budget); the typed methods (`list_tags`, `stop`, ...) build the request
//! and unpack the answer. The real client is [`SdkAws`]; failures are sorted into
//! [`AwsFailure`] kinds by `classify`.

mod accounts;
pub mod arn;
mod budget;
mod classify;
mod guard;
mod sdk;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use self::accounts::{Accounts, OwnAccount};
use self::arn::{ResourceArn, ResourceKind, StateMachineArn, TopicArn};
pub use self::classify::explain;
pub use self::guard::Guarded;
pub use self::sdk::{SdkAws, cluster_facts, instance_facts};

/// Identifiers one filtered Describe call names at most.
pub const DESCRIBE_BATCH: usize = 100;

/// How long an AWS call made while a client waits (SNS for its confirmation, an operator
/// for a manual trigger) may take, its wait for the RDS request budget included: well
/// inside the request deadline, so the client hears a 503 and retries rather than being cut
/// off, and far shorter than RESTOP_AWS_TIMEOUT, which is for the engine's calls.
pub const IN_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// `call`, given up after [`IN_REQUEST_TIMEOUT`] as a transient failure.
pub async fn in_request<T>(
    call: impl Future<Output = Result<T, AwsFailure>>,
) -> Result<T, AwsFailure> {
    tokio::time::timeout(IN_REQUEST_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(AwsFailure::Transient(format!(
                "AWS did not answer within {} s",
                IN_REQUEST_TIMEOUT.as_secs()
            )))
        })
}

/// An AWS call's failure, sorted by what restop should do about it. `Display` says what
/// went wrong and what to do, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsFailure {
    /// 5xx, network trouble, expired credentials: retry with backoff.
    Transient(String),
    /// RDS (or Step Functions) said slow down: retry with backoff, and call less often.
    Throttled(String),
    /// The resource's state changed under us (InvalidDBInstanceState / InvalidDBClusterStateFault).
    InvalidState(String),
    /// The resource does not exist (any more).
    NotFound,
    /// RDS refuses the operation for this kind of resource (e.g. an Aurora member instance).
    InvalidParameterCombination(String),
    /// Missing IAM permission for the named action.
    AccessDenied { action: String, message: String },
    /// No credentials anywhere the SDK looks.
    NoCredentials,
    /// Anything else: not worth retrying.
    Other(String),
}

impl AwsFailure {
    /// What went wrong, in AWS's words where it gave some (a step's `error`); `Display`
    /// adds what restop does about it or what to do.
    pub fn detail(&self) -> String {
        match self {
            Self::Transient(detail)
            | Self::Throttled(detail)
            | Self::InvalidState(detail)
            | Self::InvalidParameterCombination(detail)
            | Self::Other(detail) => detail.clone(),
            Self::NotFound => "not found".into(),
            Self::AccessDenied { message, .. } => message.clone(),
            Self::NoCredentials => self.to_string(),
        }
    }

    /// The `kind` label of a failed call in the metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Transient(_) => "transient",
            Self::Throttled(_) => "throttled",
            Self::InvalidState(_) => "invalid_state",
            Self::NotFound => "not_found",
            Self::InvalidParameterCombination(_) => "invalid_parameter_combination",
            Self::AccessDenied { .. } | Self::NoCredentials => "access_denied",
            Self::Other(_) => "other",
        }
    }
}

impl fmt::Display for AwsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transient(detail) => write!(f, "{detail} (temporary: restop retries)"),
            Self::Throttled(detail) => {
                write!(
                    f,
                    "{detail} (AWS throttled restop: it slows down and retries)"
                )
            }
            Self::InvalidState(detail) => {
                write!(f, "{detail} (the database's state does not allow this now)")
            }
            Self::NotFound => {
                f.write_str("not found (the database or state machine run no longer exists)")
            }
            Self::InvalidParameterCombination(detail) => {
                write!(f, "{detail} (RDS refuses this for this kind of database)")
            }
            Self::AccessDenied { action, message } => write!(
                f,
                "IAM permission {action} is missing: {message}; grant it to the role restop \
                 acts as"
            ),
            Self::NoCredentials => f.write_str(
                "no AWS credentials found (environment, profile, container, instance); set \
                 AWS_PROFILE or give restop a role",
            ),
            Self::Other(detail) => f.write_str(detail),
        }
    }
}

impl std::error::Error for AwsFailure {}

/// Final states of a Step Functions execution, plus "still running".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateMachineRun {
    Running,
    /// The state machine's JSON output: `{"outcome": "...", "reason": "..."}`.
    Succeeded {
        output: Option<String>,
    },
    Failed {
        error: Option<String>,
        cause: Option<String>,
    },
    TimedOut,
    Aborted,
}

/// What DescribeDBInstances / DescribeDBClusters tell about a resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceFacts {
    pub status: String,
    pub engine: String,
    pub multi_az: bool,
    /// For an instance: the Aurora cluster it belongs to.
    pub cluster_id: Option<String>,
    /// The source this resource replicates from.
    pub replica_source: Option<String>,
    /// Replicas of this resource.
    pub replicas: Vec<String>,
    /// For a cluster: `provisioned`, `serverless` (v1), ...
    pub engine_mode: Option<String>,
    /// For a cluster: the Aurora global database it is a member of.
    pub global_cluster_id: Option<String>,
    /// For an instance: its class (`db.r6g.large`); RDS names none for a cluster.
    pub instance_class: Option<String>,
    /// For a cluster: the identifiers of its member instances.
    pub members: Vec<String>,
}

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

/// One AWS call restop makes.
#[derive(Debug, Clone, PartialEq)]
pub enum AwsRequest<'a> {
    /// restop's own account (where its default credentials act).
    OwnAccount,
    /// Whether restop holds credentials in `account`: its own account, or a listed member.
    ActsIn {
        account: &'a str,
    },
    ListTags(&'a ResourceArn),
    Describe(&'a ResourceArn),
    /// Up to [`DESCRIBE_BATCH`] databases of one scope in one call (following its pages).
    DescribeMany {
        scope: &'a Scope,
        identifiers: &'a [String],
    },
    /// The ARN of a DB instance or cluster named by identifier (for manual triggers).
    FindResource {
        account: &'a str,
        kind: ResourceKind,
        region: &'a str,
        identifier: &'a str,
    },
    Stop(&'a ResourceArn),
    /// Starts (or, for the same name and input, finds) a state machine execution.
    StartStateMachine {
        state_machine: &'a StateMachineArn,
        name: &'a str,
        input: &'a str,
    },
    DescribeStateMachineRun {
        execution: &'a str,
    },
    /// Stops a state machine execution restop no longer follows; `error` and `cause` say why.
    StopStateMachineRun {
        execution: &'a str,
        error: &'a str,
        cause: &'a str,
    },
    /// Confirms a subscription with `AuthenticateOnUnsubscribe`, so that only the topic's
    /// owner can unsubscribe it.
    ConfirmSubscription {
        topic: &'a TopicArn,
        token: &'a str,
    },
    /// One page of the `notification` events RDS logged in `account` and `region` between
    /// `start` and `end`; `marker` is the previous page's.
    DescribeEvents {
        account: &'a str,
        region: &'a str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        marker: Option<String>,
    },
}

/// What an [`AwsRequest`] is answered with.
#[derive(Debug, Clone, PartialEq)]
pub enum AwsReply {
    /// An account id, a resource's or a subscription's or an execution's ARN.
    Text(String),
    Flag(bool),
    Tags(Vec<(String, String)>),
    Facts(ResourceFacts),
    /// Described databases by lower-case identifier; unknown identifiers are absent.
    ManyFacts(HashMap<String, ResourceFacts>),
    StateMachineRun(StateMachineRun),
    Events(EventPage),
    Done,
}

impl AwsReply {
    /// The failure of a client that answered `request` with the wrong kind of reply.
    fn mismatch(self, request: &str) -> AwsFailure {
        AwsFailure::Other(format!("{request} was answered with {self:?}"))
    }
}

/// Unpacks the reply variant a typed method expects.
macro_rules! expect_reply {
    ($reply:expr, $request:literal, $variant:ident($value:ident)) => {
        match $reply? {
            AwsReply::$variant($value) => Ok($value),
            other => Err(other.mismatch($request)),
        }
    };
    ($reply:expr, $request:literal, $variant:ident) => {
        match $reply? {
            AwsReply::$variant => Ok(()),
            other => Err(other.mismatch($request)),
        }
    };
}

#[async_trait]
pub trait Aws: Send + Sync + 'static {
    /// Makes one call: the one function every client and decorator implements.
    async fn call(&self, request: AwsRequest<'_>) -> Result<AwsReply, AwsFailure>;

    /// The role restop assumes for calls in `account`, if it is a member account. Step
    /// Functions mode passes it to the state machine.
    fn member_role(&self, account: &str, partition: &str) -> Option<String>;

    /// The share of the RDS request rate in force where RDS is slowest (1 when nothing
    /// paces the calls): the engine claims fewer steps when RDS throttles.
    fn rds_share(&self) -> f64 {
        1.0
    }

    async fn own_account(&self) -> Result<String, AwsFailure> {
        expect_reply!(
            self.call(AwsRequest::OwnAccount).await,
            "OwnAccount",
            Text(account)
        )
    }

    async fn acts_in(&self, account: &str) -> Result<bool, AwsFailure> {
        let reply = self.call(AwsRequest::ActsIn { account }).await;
        expect_reply!(reply, "ActsIn", Flag(acts))
    }

    async fn list_tags(&self, resource: &ResourceArn) -> Result<Vec<(String, String)>, AwsFailure> {
        let reply = self.call(AwsRequest::ListTags(resource)).await;
        expect_reply!(reply, "ListTags", Tags(tags))
    }

    async fn describe(&self, resource: &ResourceArn) -> Result<ResourceFacts, AwsFailure> {
        let reply = self.call(AwsRequest::Describe(resource)).await;
        expect_reply!(reply, "Describe", Facts(facts))
    }

    async fn describe_many(
        &self,
        scope: &Scope,
        identifiers: &[String],
    ) -> Result<HashMap<String, ResourceFacts>, AwsFailure> {
        let reply = self
            .call(AwsRequest::DescribeMany { scope, identifiers })
            .await;
        expect_reply!(reply, "DescribeMany", ManyFacts(found))
    }

    async fn resource_arn(
        &self,
        account: &str,
        kind: ResourceKind,
        region: &str,
        identifier: &str,
    ) -> Result<String, AwsFailure> {
        let request = AwsRequest::FindResource {
            account,
            kind,
            region,
            identifier,
        };
        expect_reply!(self.call(request).await, "FindResource", Text(arn))
    }

    async fn stop(&self, resource: &ResourceArn) -> Result<(), AwsFailure> {
        expect_reply!(self.call(AwsRequest::Stop(resource)).await, "Stop", Done)
    }

    /// Returns the execution's ARN.
    async fn start_state_machine(
        &self,
        state_machine: &StateMachineArn,
        name: &str,
        input: &str,
    ) -> Result<String, AwsFailure> {
        let request = AwsRequest::StartStateMachine {
            state_machine,
            name,
            input,
        };
        expect_reply!(self.call(request).await, "StartStateMachine", Text(arn))
    }

    async fn describe_state_machine_run(
        &self,
        execution: &str,
    ) -> Result<StateMachineRun, AwsFailure> {
        let reply = self
            .call(AwsRequest::DescribeStateMachineRun { execution })
            .await;
        expect_reply!(reply, "DescribeStateMachineRun", StateMachineRun(run))
    }

    async fn stop_state_machine_run(
        &self,
        execution: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), AwsFailure> {
        let request = AwsRequest::StopStateMachineRun {
            execution,
            error,
            cause,
        };
        expect_reply!(self.call(request).await, "StopStateMachineRun", Done)
    }

    /// Returns the subscription's ARN.
    async fn confirm_subscription(
        &self,
        topic: &TopicArn,
        token: &str,
    ) -> Result<String, AwsFailure> {
        let reply = self
            .call(AwsRequest::ConfirmSubscription { topic, token })
            .await;
        expect_reply!(reply, "ConfirmSubscription", Text(arn))
    }

    async fn describe_events(
        &self,
        account: &str,
        region: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        marker: Option<String>,
    ) -> Result<EventPage, AwsFailure> {
        let request = AwsRequest::DescribeEvents {
            account,
            region,
            start,
            end,
            marker,
        };
        expect_reply!(self.call(request).await, "DescribeEvents", Events(page))
    }
}
