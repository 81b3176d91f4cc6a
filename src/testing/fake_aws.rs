//! An in-process AWS for engine tests that are about the engine itself (claiming, leases,
//! many jobs), not about AWS's wire protocols: those run against moto.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::engine::aws::Aws;
use crate::engine::decide::{AwsFailure, StateMachineRun};
use crate::rds::resource::{ResourceArn, ResourceFacts, ResourceKind};
use crate::sns::message::TopicArn;

#[derive(Default)]
pub struct FakeAws {
    databases: Mutex<HashMap<String, FakeDatabase>>,
    calls: Mutex<HashMap<(&'static str, String), usize>>,
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

    pub fn calls(&self, operation: &'static str, arn: &str) -> usize {
        self.calls
            .lock()
            .unwrap()
            .get(&(operation, arn.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    pub fn status(&self, arn: &str) -> String {
        self.databases.lock().unwrap()[arn].status.clone()
    }

    /// Makes every call take `latency`.
    pub fn set_latency(&self, latency: std::time::Duration) {
        *self.latency.lock().unwrap() = latency;
    }

    async fn delay(&self) {
        let latency = *self.latency.lock().unwrap();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    fn count(&self, operation: &'static str, arn: &str) {
        *self
            .calls
            .lock()
            .unwrap()
            .entry((operation, arn.to_owned()))
            .or_default() += 1;
    }
}

#[async_trait]
impl Aws for FakeAws {
    /// The fake holds no credentials anywhere: confirmations visit the SubscribeURL.
    async fn acts_in(&self, _: &str) -> bool {
        false
    }

    async fn list_tags(&self, r: &ResourceArn) -> Result<Vec<(String, String)>, AwsFailure> {
        self.delay().await;
        self.count("ListTagsForResource", &r.arn);
        let databases = self.databases.lock().unwrap();
        databases
            .get(&r.arn)
            .map(|db| db.tags.clone())
            .ok_or(AwsFailure::NotFound)
    }

    async fn describe(&self, r: &ResourceArn) -> Result<ResourceFacts, AwsFailure> {
        self.delay().await;
        self.count("Describe", &r.arn);
        let databases = self.databases.lock().unwrap();
        let db = databases.get(&r.arn).ok_or(AwsFailure::NotFound)?;
        Ok(ResourceFacts {
            status: db.status.clone(),
            engine: "postgres".into(),
            ..ResourceFacts::default()
        })
    }

    async fn resource_arn(
        &self,
        kind: ResourceKind,
        region: &str,
        id: &str,
    ) -> Result<String, AwsFailure> {
        let arn = format!(
            "arn:aws:rds:{region}:123456789012:{}:{id}",
            kind.arn_segment()
        );
        match self.databases.lock().unwrap().contains_key(&arn) {
            true => Ok(arn),
            false => Err(AwsFailure::NotFound),
        }
    }

    async fn stop(&self, r: &ResourceArn) -> Result<(), AwsFailure> {
        self.count("Stop", &r.arn);
        let mut databases = self.databases.lock().unwrap();
        let db = databases.get_mut(&r.arn).ok_or(AwsFailure::NotFound)?;
        if db.status != "available" {
            return Err(AwsFailure::InvalidState(format!("status is {}", db.status)));
        }
        db.status = "stopped".into();
        Ok(())
    }

    async fn start_state_machine(&self, _: &str, _: &str, _: &str) -> Result<String, AwsFailure> {
        Err(AwsFailure::Other("the fake has no Step Functions".into()))
    }

    async fn describe_state_machine_run(&self, _: &str) -> Result<StateMachineRun, AwsFailure> {
        Err(AwsFailure::Other("the fake has no Step Functions".into()))
    }

    async fn stop_state_machine_run(&self, _: &str, _: &str, _: &str) -> Result<(), AwsFailure> {
        Err(AwsFailure::Other("the fake has no Step Functions".into()))
    }

    async fn confirm_subscription(&self, _: &TopicArn, _: &str) -> Result<String, AwsFailure> {
        Err(AwsFailure::Other("the fake has no SNS".into()))
    }
}
