//! An in-process AWS for engine tests that are about the engine itself (claiming, leases,
//! many jobs, the request budget), not about AWS's wire protocols: those run against moto.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use async_trait::async_trait;

use crate::aws::arn::{ResourceArn, ResourceKind};
use crate::aws::{Aws, AwsFailure, AwsReply, AwsRequest, EventPage, ResourceFacts, Scope};

/// The account the fake's own credentials act in.
pub const OWN_ACCOUNT: &str = "123456789012";

#[derive(Default)]
pub struct FakeAws {
    databases: Mutex<HashMap<String, FakeDatabase>>,
    /// Accounts the fake may act in besides its own.
    members: Mutex<Vec<String>>,
    /// Calls by operation and resource ARN (a batched describe counts once per resource).
    calls: Mutex<HashMap<(&'static str, String), usize>>,
    /// Each RDS request: when, in which account and region, and which operation.
    requests: Mutex<Vec<(Instant, String, String, &'static str)>>,
    /// How long each call takes.
    latency: Mutex<std::time::Duration>,
}

struct FakeDatabase {
    status: String,
    tags: Vec<(String, String)>,
}

impl FakeAws {
    /// A database that stops at once when asked.
    pub fn add(&self, arn: &str, status: &str, tags: &[(&str, &str)]) {
        self.databases.lock().unwrap().insert(
            arn.to_owned(),
            FakeDatabase {
                status: status.to_owned(),
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
        );
    }

    /// Lets the fake act in `account` too, as through a member role.
    pub fn add_member(&self, account: &str) {
        self.members.lock().unwrap().push(account.to_owned());
    }

    pub fn calls(&self, operation: &'static str, arn: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .get(&(operation, arn.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// RDS requests made so far (a batched describe is one).
    pub fn requests(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// RDS requests made so far in `region`.
    pub fn requests_in(&self, region: &str) -> usize {
        let requests = self.requests.lock().unwrap();
        requests.iter().filter(|(_, _, r, _)| r == region).count()
    }

    /// RDS requests of `operation` (`DescribeDBInstances`, `DescribeEvents`, ...) made so far.
    pub fn requests_of(&self, operation: &str) -> usize {
        let requests = self.requests.lock().unwrap();
        requests.iter().filter(|(.., op)| *op == operation).count()
    }

    /// The most RDS requests made in any one second since `since`, per account and region.
    pub fn busiest_second(&self, since: Instant) -> HashMap<(String, String), usize> {
        let mut seconds: HashMap<(String, String, u64), usize> = HashMap::new();
        for (at, account, region, _) in self.requests.lock().unwrap().iter() {
            if let Some(elapsed) = at.checked_duration_since(since) {
                *seconds
                    .entry((account.clone(), region.clone(), elapsed.as_secs()))
                    .or_default() += 1;
            }
        }
        let mut busiest: HashMap<(String, String), usize> = HashMap::new();
        for ((account, region, _), count) in seconds {
            let max = busiest.entry((account, region)).or_default();
            *max = (*max).max(count);
        }
        busiest
    }

    pub fn status(&self, arn: &str) -> String {
        self.databases.lock().unwrap()[arn].status.clone()
    }

    /// Makes every call take `latency`.
    pub fn set_latency(&self, latency: std::time::Duration) {
        *self.latency.lock().unwrap() = latency;
    }

    /// Waits the latency, and logs an RDS request of `operation` in `account` and `region`.
    async fn request(&self, operation: &'static str, account: &str, region: &str) {
        let latency = *self.latency.lock().unwrap();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.requests.lock().unwrap().push((
            Instant::now(),
            account.to_owned(),
            region.to_owned(),
            operation,
        ));
    }

    fn count(&self, operation: &'static str, arn: &str) {
        *self
            .calls
            .lock()
            .unwrap()
            .entry((operation, arn.to_owned()))
            .or_default() += 1;
    }

    fn facts(kind: ResourceKind, db: &FakeDatabase) -> ResourceFacts {
        ResourceFacts {
            status: db.status.clone(),
            engine: match kind {
                ResourceKind::DbInstance => "postgres".into(),
                ResourceKind::DbCluster => "aurora-postgresql".into(),
            },
            instance_class: (kind == ResourceKind::DbInstance).then(|| "db.t4g.micro".into()),
            members: match kind {
                ResourceKind::DbInstance => Vec::new(),
                ResourceKind::DbCluster => vec!["writer".into(), "reader".into()],
            },
            ..ResourceFacts::default()
        }
    }
}

/// The calls the fake answers.
impl FakeAws {
    fn tags(&self, r: &ResourceArn) -> Result<AwsReply, AwsFailure> {
        self.count("ListTagsForResource", &r.arn);
        let databases = self.databases.lock().unwrap();
        let db = databases.get(&r.arn).ok_or(AwsFailure::NotFound)?;
        Ok(AwsReply::Tags(db.tags.clone()))
    }

    fn describe(&self, r: &ResourceArn) -> Result<AwsReply, AwsFailure> {
        self.count("Describe", &r.arn);
        let databases = self.databases.lock().unwrap();
        let db = databases.get(&r.arn).ok_or(AwsFailure::NotFound)?;
        Ok(AwsReply::Facts(Self::facts(r.kind, db)))
    }

    fn describe_many(&self, scope: &Scope, identifiers: &[String]) -> AwsReply {
        let databases = self.databases.lock().unwrap();
        let mut found = HashMap::new();
        for id in identifiers {
            let arn = format!(
                "arn:aws:rds:{}:{}:{}:{id}",
                scope.region,
                scope.account,
                scope.kind.arn_segment()
            );
            self.count("Describe", &arn);
            if let Some(db) = databases.get(&arn) {
                found.insert(id.clone(), Self::facts(scope.kind, db));
            }
        }
        AwsReply::ManyFacts(found)
    }

    fn stop(&self, r: &ResourceArn) -> Result<AwsReply, AwsFailure> {
        self.count("Stop", &r.arn);
        let mut databases = self.databases.lock().unwrap();
        let db = databases.get_mut(&r.arn).ok_or(AwsFailure::NotFound)?;
        if db.status != "available" {
            return Err(AwsFailure::InvalidState(format!("status is {}", db.status)));
        }
        db.status = "stopped".into();
        Ok(AwsReply::Done)
    }
}

#[async_trait]
impl Aws for FakeAws {
    async fn call(&self, request: AwsRequest<'_>) -> Result<AwsReply, AwsFailure> {
        match request {
            AwsRequest::OwnAccount => Ok(AwsReply::Text(OWN_ACCOUNT.into())),
            AwsRequest::ActsIn { account } => Ok(AwsReply::Flag(
                account == OWN_ACCOUNT || self.members.lock().unwrap().iter().any(|m| m == account),
            )),
            AwsRequest::ListTags(r) => {
                self.request("ListTagsForResource", &r.account, &r.region)
                    .await;
                self.tags(r)
            }
            AwsRequest::Describe(r) => {
                self.request(describe_operation(r.kind), &r.account, &r.region)
                    .await;
                self.describe(r)
            }
            AwsRequest::DescribeMany { scope, identifiers } => {
                self.request(
                    describe_operation(scope.kind),
                    &scope.account,
                    &scope.region,
                )
                .await;
                Ok(self.describe_many(scope, identifiers))
            }
            AwsRequest::FindResource {
                account,
                kind,
                region,
                identifier,
            } => {
                let arn = format!(
                    "arn:aws:rds:{region}:{account}:{}:{identifier}",
                    kind.arn_segment()
                );
                match self.databases.lock().unwrap().contains_key(&arn) {
                    true => Ok(AwsReply::Text(arn)),
                    false => Err(AwsFailure::NotFound),
                }
            }
            AwsRequest::Stop(r) => {
                let operation = match r.kind {
                    ResourceKind::DbInstance => "StopDBInstance",
                    ResourceKind::DbCluster => "StopDBCluster",
                };
                self.request(operation, &r.account, &r.region).await;
                self.stop(r)
            }
            AwsRequest::StartStateMachine { .. }
            | AwsRequest::DescribeStateMachineRun { .. }
            | AwsRequest::StopStateMachineRun { .. } => {
                Err(AwsFailure::Other("the fake has no Step Functions".into()))
            }
            // As if restop's role lacked the permission: restop visits the SubscribeURL.
            AwsRequest::ConfirmSubscription { .. } => Err(AwsFailure::AccessDenied {
                action: "sns:ConfirmSubscription".into(),
                message: "the fake has no SNS".into(),
            }),
            // The fake's event log is always empty.
            AwsRequest::DescribeEvents {
                account, region, ..
            } => {
                self.request("DescribeEvents", account, region).await;
                Ok(AwsReply::Events(EventPage::default()))
            }
        }
    }

    fn member_role(&self, account: &str, partition: &str) -> Option<String> {
        let members = self.members.lock().unwrap();
        members
            .iter()
            .any(|m| m == account)
            .then(|| format!("arn:{partition}:iam::{account}:role/restop-member"))
    }
}

fn describe_operation(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::DbInstance => "DescribeDBInstances",
        ResourceKind::DbCluster => "DescribeDBClusters",
    }
}
