//! The one decorator around every AWS call: it counts each attempt and failure in the
//! metrics, by operation, account and region, and keeps RDS calls within the request
//! budget of their account and region, retrying a failed RDS call with a token for each
//! attempt. Step Functions and SNS have budgets of their own, far from restop's use, so
//! their calls are counted but not paced (and the SDK retries them).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::arn::{Arn, ResourceArn, ResourceKind};
use super::budget::{Budget, Exhausted, Priority};
use super::{Aws, AwsFailure, AwsReply, AwsRequest};
use crate::metrics::Metrics;

/// Attempts per RDS call, its retries included.
const RDS_ATTEMPTS: u32 = 3;
/// A retry waits a random time up to this long, twice as long for each further one.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);

pub struct Guarded {
    inner: Arc<dyn Aws>,
    budget: Budget,
    /// The longest a call waits for the budget: a step must end (wait, call and commit)
    /// within its lease, or a peer takes the job over mid-step.
    max_wait: Duration,
    /// RESTOP_AWS_TIMEOUT: an RDS call's attempts, their waits for the budget and their
    /// backoffs included, end within `max_wait` and this.
    call_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Guarded {
    /// `rds_rate`: RDS requests per second per account and region; a call that would wait
    /// longer than `max_wait` for it fails as throttled instead, to be retried later.
    pub fn new(
        inner: Arc<dyn Aws>,
        rds_rate: f64,
        max_wait: Duration,
        call_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner,
            budget: Budget::new(rds_rate),
            max_wait,
            call_timeout,
            metrics,
        }
    }
}

/// What the guard counts a call by, and the budget it waits for (RDS calls only).
#[derive(Clone, Copy)]
struct Metered<'a> {
    operation: &'static str,
    account: &'a str,
    region: &'a str,
    paced: Option<Priority>,
}

impl<'a> Metered<'a> {
    fn rds(operation: &'static str, account: &'a str, region: &'a str, priority: Priority) -> Self {
        Self {
            operation,
            account,
            region,
            paced: Some(priority),
        }
    }

    fn rds_on(operation: &'static str, resource: &'a ResourceArn, priority: Priority) -> Self {
        Self::rds(operation, &resource.account, &resource.region, priority)
    }

    fn unpaced(operation: &'static str, account: &'a str, region: &'a str) -> Self {
        Self {
            operation,
            account,
            region,
            paced: None,
        }
    }

    /// A Step Functions call on an execution, counted in the execution's account and region.
    fn on_execution(operation: &'static str, execution: &'a str) -> Self {
        let arn = Arn::parse(execution);
        Self::unpaced(
            operation,
            arn.map_or("", |arn| arn.account),
            arn.map_or("", |arn| arn.region),
        )
    }
}

impl<'a> AwsRequest<'a> {
    /// How the call is counted; `None` for questions restop answers from what it holds
    /// (its own account is asked of STS once).
    fn metered(&self) -> Option<Metered<'a>> {
        use Priority::{Other, Stop};
        Some(match *self {
            Self::OwnAccount | Self::ActsIn { .. } => return None,
            Self::ListTags(resource) => Metered::rds_on("ListTagsForResource", resource, Other),
            Self::Describe(resource) => Metered::rds_on(describe(resource.kind), resource, Other),
            Self::DescribeMany { scope, .. } => {
                Metered::rds(describe(scope.kind), &scope.account, &scope.region, Other)
            }
            Self::FindResource {
                account,
                kind,
                region,
                ..
            } => Metered::rds(describe(kind), account, region, Other),
            Self::Stop(resource) => {
                let operation = match resource.kind {
                    ResourceKind::DbInstance => "StopDBInstance",
                    ResourceKind::DbCluster => "StopDBCluster",
                };
                Metered::rds_on(operation, resource, Stop)
            }
            Self::DescribeEvents {
                account, region, ..
            } => Metered::rds("DescribeEvents", account, region, Other),
            Self::StartStateMachine { state_machine, .. } => Metered::unpaced(
                "StartExecution",
                state_machine.account(),
                state_machine.region(),
            ),
            Self::DescribeStateMachineRun { execution } => {
                Metered::on_execution("DescribeExecution", execution)
            }
            Self::StopStateMachineRun { execution, .. } => {
                Metered::on_execution("StopExecution", execution)
            }
            Self::ConfirmSubscription { topic, .. } => {
                Metered::unpaced("ConfirmSubscription", topic.account(), topic.region())
            }
        })
    }
}

fn describe(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::DbInstance => "DescribeDBInstances",
        ResourceKind::DbCluster => "DescribeDBClusters",
    }
}

impl Guarded {
    /// An RDS call: each attempt waits for its token, and a transient or throttled failure
    /// is tried again (the SDK's own retries are off for RDS, so none escapes the budget).
    async fn paced(
        &self,
        request: AwsRequest<'_>,
        metered: &Metered<'_>,
        priority: Priority,
    ) -> Result<AwsReply, AwsFailure> {
        let Metered {
            operation,
            account,
            region,
            ..
        } = *metered;
        // All attempts end when one attempt with its budget wait would have: within the
        // step's lease.
        let deadline = Instant::now() + self.max_wait + self.call_timeout;
        let mut attempt = 1;
        let mut last_failure = None;
        loop {
            let room = self
                .max_wait
                .min(deadline.saturating_duration_since(Instant::now()));
            match self.budget.acquire(account, region, priority, room).await {
                Ok(false) => {}
                Ok(true) => self.metrics.budget_wait(account, region),
                Err(Exhausted) => {
                    self.metrics.budget_wait(account, region);
                    // Not sent, so neither RDS's throttling nor a failed call: the step
                    // ends with a retry and its job is not claimed again without progress.
                    return Err(last_failure.unwrap_or_else(|| {
                        AwsFailure::Throttled(format!(
                            "restop's RDS request budget in {account}/{region} \
                             (RESTOP_RDS_MAX_RPS) has no room within {}s; {operation} is \
                             tried again later",
                            self.max_wait.as_secs()
                        ))
                    }));
                }
            }
            let result = tokio::time::timeout_at(deadline, self.inner.call(request.clone()))
                .await
                .unwrap_or_else(|_| {
                    Err(AwsFailure::Transient(format!(
                        "{operation}: no answer within {}s",
                        self.call_timeout.as_secs()
                    )))
                });
            if matches!(result, Err(AwsFailure::Throttled(_))) {
                // Slow down: RDS throttled the call although restop kept to its budget.
                self.metrics.throttled(account, region);
                self.budget.throttled(account, region);
            }
            self.count(metered, &result);
            match result {
                Err(failure @ (AwsFailure::Transient(_) | AwsFailure::Throttled(_)))
                    if attempt < RDS_ATTEMPTS =>
                {
                    // Full jitter, doubling with each attempt.
                    let backoff = RETRY_BACKOFF
                        .mul_f64(f64::from(1u32 << (attempt - 1)) * rand::random::<f64>());
                    if Instant::now() + backoff >= deadline {
                        return Err(failure);
                    }
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                    last_failure = Some(failure);
                }
                result => return result,
            }
        }
    }

    fn count(&self, metered: &Metered<'_>, result: &Result<AwsReply, AwsFailure>) {
        let failed = result.as_ref().err().map(AwsFailure::kind);
        self.metrics
            .aws_call(metered.operation, metered.account, metered.region, failed);
    }
}

#[async_trait]
impl Aws for Guarded {
    async fn call(&self, request: AwsRequest<'_>) -> Result<AwsReply, AwsFailure> {
        let Some(metered) = request.metered() else {
            return self.inner.call(request).await;
        };
        match metered.paced {
            Some(priority) => self.paced(request, &metered, priority).await,
            None => {
                let result = self.inner.call(request).await;
                self.count(&metered, &result);
                result
            }
        }
    }

    fn member_role(&self, account: &str, partition: &str) -> Option<String> {
        self.inner.member_role(account, partition)
    }

    fn rds_share(&self) -> f64 {
        self.budget.slowest_share()
    }
}
