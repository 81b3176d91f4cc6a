//! A world for engine tests: a database, a moto server, a fake SNS, and restop with its
//! engine on, plus the RDS moves and history reads the tests share.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_rds::types::Tag;
use restop::config::ServeConfig;
use serde_json::Value;

use super::db::TestDb;
use super::moto::{self, Moto};
use super::sns::SnsStub;
use super::{TestApp, config};

pub const PROTECTED: &[(&str, &str)] = &[("auto-restart-protection", "yes")];

pub struct World {
    pub db: TestDb,
    pub moto: Moto,
    pub stub: SnsStub,
    pub app: TestApp,
    pub rds: aws_sdk_rds::Client,
}

/// restop with its engine on, a 1 s poll interval and AWS in a moto server of its own.
pub async fn world(db: TestDb, adjust: impl FnOnce(&mut ServeConfig)) -> Option<World> {
    Some(World::with_moto(db, Moto::start().await?, adjust).await)
}

impl World {
    /// The same around a moto server the caller prepared.
    pub async fn with_moto(db: TestDb, moto: Moto, adjust: impl FnOnce(&mut ServeConfig)) -> Self {
        let stub = SnsStub::start().await;
        let mut cfg = config(&db.url, Some(&stub.host));
        cfg.engine.engine_enabled = true;
        adjust(&mut cfg);
        let aws = moto.aws_for(&cfg.accounts).await;
        let app = TestApp::spawn_with(cfg, Arc::new(restop::clock::SystemClock), Some(aws)).await;
        let rds = moto.rds().await;
        World {
            db,
            moto,
            stub,
            app,
            rds,
        }
    }
}

pub fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect()
}

impl World {
    pub async fn create_instance(&self, id: &str, tag_pairs: &[(&str, &str)]) {
        moto::new_instance(&self.rds, id)
            .set_tags(Some(tags(tag_pairs)))
            .send()
            .await
            .unwrap();
    }

    pub async fn create_cluster(&self, id: &str, tag_pairs: &[(&str, &str)]) {
        self.rds
            .create_db_cluster()
            .db_cluster_identifier(id)
            .engine("aurora-postgresql")
            .master_username("admin")
            .master_user_password("password123")
            .set_tags(Some(tags(tag_pairs)))
            .send()
            .await
            .unwrap();
    }

    /// A protected primary `primary` with a protected read replica `replica`, and a protected
    /// Aurora cluster `aurora` with a protected member instance `aurora-member`: the
    /// databases RDS refuses to stop.
    pub async fn create_unstoppable_databases(&self) {
        let protected = Some(tags(PROTECTED));
        self.create_instance("primary", PROTECTED).await;
        self.rds
            .create_db_instance_read_replica()
            .db_instance_identifier("replica")
            .source_db_instance_identifier("primary")
            .set_tags(protected.clone())
            .send()
            .await
            .unwrap();
        self.create_cluster("aurora", PROTECTED).await;
        self.rds
            .create_db_instance()
            .db_instance_identifier("aurora-member")
            .db_cluster_identifier("aurora")
            .engine("aurora-postgresql")
            .db_instance_class("db.r5.large")
            .set_tags(protected)
            .send()
            .await
            .unwrap();
    }

    pub async fn add_tags(&self, arn: &str, pairs: &[(&str, &str)]) {
        self.rds
            .add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(tags(pairs)))
            .send()
            .await
            .unwrap();
    }

    pub async fn remove_tags(&self, arn: &str, keys: &[&str]) {
        self.rds
            .remove_tags_from_resource()
            .resource_name(arn)
            .set_tag_keys(Some(keys.iter().map(|k| k.to_string()).collect()))
            .send()
            .await
            .unwrap();
    }

    /// `POST /v1/executions` with `body`: the status and the answer.
    pub async fn trigger(&self, body: Value) -> (u16, Value) {
        let response = self
            .app
            .client
            .post(format!("{}/v1/executions", self.app.base))
            .bearer_auth(super::TOKENS[0])
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// `POST /v1/executions/{id}/cancel`: the status and the answer.
    pub async fn cancel(&self, execution: &str) -> (u16, Value) {
        let response = self
            .app
            .client
            .post(format!(
                "{}/v1/executions/{execution}/cancel",
                self.app.base
            ))
            .bearer_auth(super::TOKENS[0])
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// Waits until the execution has a step starting with `prefix` (as [`World::steps`]
    /// writes them).
    pub async fn wait_for_step(&self, execution: &str, prefix: &str) {
        for _ in 0..300 {
            if self
                .steps(execution)
                .await
                .iter()
                .any(|s| s.starts_with(prefix))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no step {prefix}: {:?}", self.steps(execution).await);
    }

    pub async fn instance_status(&self, id: &str) -> String {
        let out = self
            .rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .unwrap();
        out.db_instances()[0]
            .db_instance_status()
            .unwrap()
            .to_owned()
    }

    pub async fn cluster_status(&self, id: &str) -> String {
        let out = self
            .rds
            .describe_db_clusters()
            .db_cluster_identifier(id)
            .send()
            .await
            .unwrap();
        out.db_clusters()[0].status().unwrap().to_owned()
    }

    pub async fn wait_for_instance(&self, id: &str, status: &str) {
        for _ in 0..100 {
            if self.instance_status(id).await == status {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{id} never became {status}");
    }

    /// What AWS does after 7 days: a stopped instance is started.
    pub async fn stop_then_force_start(&self, id: &str) {
        self.rds
            .stop_db_instance()
            .db_instance_identifier(id)
            .send()
            .await
            .unwrap();
        self.wait_for_instance(id, "stopped").await;
        self.rds
            .start_db_instance()
            .db_instance_identifier(id)
            .send()
            .await
            .unwrap();
    }

    /// The same for an Aurora cluster.
    pub async fn stop_then_force_start_cluster(&self, id: &str) {
        self.rds
            .stop_db_cluster()
            .db_cluster_identifier(id)
            .send()
            .await
            .unwrap();
        for _ in 0..100 {
            if self.cluster_status(id).await == "stopped" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.rds
            .start_db_cluster()
            .db_cluster_identifier(id)
            .send()
            .await
            .unwrap();
    }

    /// Posts a signed RDS event; returns the execution it started or joined.
    pub async fn event(&self, event_id: &str, source: &str, id: &str) -> String {
        let msg = self.stub.rds_notification(event_id, source, id);
        self.post(&msg).await
    }

    pub async fn post(&self, msg: &Value) -> String {
        let (status, body) = self.app.post_sns(msg).await;
        assert_eq!(status, 200, "{body}");
        body["execution_id"]
            .as_str()
            .expect("an execution")
            .to_owned()
    }

    pub async fn column(&self, execution: &str, column: &str) -> Option<String> {
        self.db
            .text(
                &format!("SELECT {column} FROM executions WHERE id = $1"),
                execution,
            )
            .await
    }

    /// Waits for the execution to end; returns (status, outcome, reason).
    pub async fn finished(&self, execution: &str) -> (String, String, String) {
        for _ in 0..600 {
            let status = self.column(execution, "status").await.unwrap();
            if status != "pending" && status != "running" {
                return (
                    status,
                    self.column(execution, "outcome").await.unwrap_or_default(),
                    self.column(execution, "reason").await.unwrap_or_default(),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "execution {execution} did not finish; steps: {:?}",
            self.steps(execution).await
        );
    }

    /// The history as "step/rds_status/action" strings.
    pub async fn steps(&self, execution: &str) -> Vec<String> {
        let count = self
            .db
            .count(&format!(
                "SELECT COUNT(*) FROM execution_steps WHERE execution_id = '{execution}'"
            ))
            .await;
        let mut steps = Vec::new();
        for seq in 1..=count {
            let field = |c: &str| {
                format!("SELECT {c} FROM execution_steps WHERE execution_id = $1 AND seq = {seq}")
            };
            steps.push(format!(
                "{}/{}/{}{}",
                self.db.text(&field("step"), execution).await.unwrap(),
                self.db
                    .text(&field("rds_status"), execution)
                    .await
                    .unwrap_or_default(),
                self.db.text(&field("action"), execution).await.unwrap(),
                self.db
                    .text(&field("error"), execution)
                    .await
                    .map(|e| format!(" [{e}]"))
                    .unwrap_or_default(),
            ));
        }
        steps
    }

    /// How often `action` was called for `id`.
    pub async fn count_calls_for(&self, id: &str, action: &str) -> usize {
        self.moto
            .calls_for(id)
            .await
            .iter()
            .filter(|a| *a == action)
            .count()
    }
}
