//! The scenario restop exists for, run by both engines: AWS starts a protected database
//! that has been stopped for seven days, and restop stops it again, with its own durable
//! job (internal mode) or by starting deploy/state-machine.asl.json (Step Functions mode,
//! run by moto's interpreter). Every test runs in both modes, on Postgres and on SQLite,
//! each with a moto server of its own.

use crate::support::db::TestDb;
use crate::support::moto::{cluster_arn, instance_arn};
use crate::support::{step_functions as sfn, world};

/// Who stops the database again.
#[derive(Clone, Copy)]
enum Mode {
    Internal,
    StepFunctions,
}

mod internal {
    use super::Mode;
    use crate::on_both_backends;
    use crate::support::db::TestDb;

    on_both_backends!(
        a_forced_start_of_an_instance_is_stopped_again,
        a_forced_start_of_a_cluster_is_stopped_again,
    );

    async fn a_forced_start_of_an_instance_is_stopped_again(db: TestDb) {
        super::an_instance_is_stopped_again(db, Mode::Internal).await;
    }

    async fn a_forced_start_of_a_cluster_is_stopped_again(db: TestDb) {
        super::a_cluster_is_stopped_again(db, Mode::Internal).await;
    }
}

mod step_functions {
    use super::Mode;
    use crate::on_both_backends;
    use crate::support::db::TestDb;

    on_both_backends!(
        a_forced_start_of_an_instance_is_stopped_again,
        a_forced_start_of_a_cluster_is_stopped_again,
    );

    async fn a_forced_start_of_an_instance_is_stopped_again(db: TestDb) {
        super::an_instance_is_stopped_again(db, Mode::StepFunctions).await;
    }

    async fn a_forced_start_of_a_cluster_is_stopped_again(db: TestDb) {
        super::a_cluster_is_stopped_again(db, Mode::StepFunctions).await;
    }
}

/// restop on moto in one mode or the other.
enum Engine {
    Internal(world::World),
    StepFunctions(sfn::World),
}

impl Engine {
    async fn start(db: TestDb, mode: Mode) -> Option<Self> {
        Some(match mode {
            Mode::Internal => Self::Internal(world::world(db, |_| {}).await?),
            Mode::StepFunctions => Self::StepFunctions(sfn::world(db, true, |_| {}).await?),
        })
    }

    /// The execution's `mode` column.
    fn mode(&self) -> &'static str {
        match self {
            Self::Internal(_) => "internal",
            Self::StepFunctions(_) => "step_functions",
        }
    }
}

impl std::ops::Deref for Engine {
    type Target = world::World;
    fn deref(&self) -> &Self::Target {
        match self {
            Self::Internal(w) => w,
            Self::StepFunctions(w) => w,
        }
    }
}

async fn an_instance_is_stopped_again(db: TestDb, mode: Mode) {
    let Some(w) = Engine::start(db, mode).await else {
        return;
    };
    w.create_instance(
        "orders",
        &[
            ("auto-restart-protection", "yes"),
            ("moto:start-seconds", "2"),
        ],
    )
    .await;
    w.stop_then_force_start("orders").await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "orders").await;

    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "stopped"),
        "{:?}",
        w.steps(&execution).await
    );
    assert_eq!(w.instance_status("orders").await, "stopped");
    assert_eq!(
        w.count_calls_for("orders", "StopDBInstance").await,
        2,
        "the test's own stop and restop's"
    );
    assert_eq!(
        w.column(&execution, "resource_type").await.as_deref(),
        Some("db-instance")
    );
    assert_eq!(
        w.column(&execution, "trigger").await.as_deref(),
        Some("sns")
    );
    assert_eq!(
        w.column(&execution, "mode").await.as_deref(),
        Some(w.mode())
    );
    assert_eq!(
        w.column(&execution, "resource_arn").await,
        Some(instance_arn("orders"))
    );

    let steps = w.steps(&execution).await;
    match &w {
        Engine::Internal(_) => {
            assert!(
                steps[0].starts_with("check_protection//protected"),
                "{steps:?}"
            );
            assert!(
                steps
                    .iter()
                    .any(|s| s.starts_with("wait_available/starting/")),
                "{steps:?}"
            );
            assert!(
                steps.iter().any(|s| s.starts_with(
                    "wait_available/available/available: check the tag again, then stop it"
                )),
                "{steps:?}"
            );
            assert!(
                steps
                    .iter()
                    .any(|s| s.starts_with("recheck_protection//still protected: stop it")),
                "{steps:?}"
            );
            assert!(
                steps.iter().any(|s| s.starts_with("stop//stop requested")),
                "{steps:?}"
            );
            assert!(
                steps
                    .last()
                    .unwrap()
                    .starts_with("wait_stopped/stopped/finish: stopped"),
                "{steps:?}"
            );
        }
        Engine::StepFunctions(machine) => {
            assert_eq!(reason, "stopped");
            let sfn_execution = w
                .column(&execution, "sfn_execution_arn")
                .await
                .expect("the state machine execution is recorded");
            assert!(
                sfn_execution.starts_with(
                    &machine
                        .state_machine
                        .replace(":stateMachine:", ":execution:")
                ),
                "{sfn_execution}"
            );
            assert_eq!(
                machine.sfn_result(&sfn_execution).await,
                (
                    "SUCCEEDED".to_owned(),
                    Some(serde_json::json!({"outcome": "stopped", "reason": "stopped"}))
                )
            );
            assert!(
                steps[0].starts_with("check_protection//protected: start the state machine"),
                "{steps:?}"
            );
            assert!(
                steps
                    .iter()
                    .any(|s| s.starts_with("start_state_machine//state machine started")),
                "{steps:?}"
            );
            assert!(
                steps
                    .last()
                    .unwrap()
                    .starts_with("follow_state_machine//finish: stopped"),
                "{steps:?}"
            );
            assert_eq!(w.moto.count_calls("StartExecution").await, 1);
            assert!(w.moto.count_calls("DescribeExecution").await >= 1);
            // The state machine made the stop. By ARN, RDS saw two tag reads: restop's check
            // before it started the run, and the machine's right before its stop.
            assert_eq!(
                w.moto.calls_for(&instance_arn("orders")).await,
                ["ListTagsForResource", "ListTagsForResource"]
            );
        }
    }
}

async fn a_cluster_is_stopped_again(db: TestDb, mode: Mode) {
    let Some(w) = Engine::start(db, mode).await else {
        return;
    };
    w.create_cluster(
        "aurora",
        &[
            ("auto-restart-protection", "yes"),
            ("moto:start-seconds", "2"),
        ],
    )
    .await;
    w.stop_then_force_start_cluster("aurora").await;
    let execution = w.event("RDS-EVENT-0153", "db-cluster", "aurora").await;

    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "stopped"),
        "{:?}",
        w.steps(&execution).await
    );
    assert_eq!(w.cluster_status("aurora").await, "stopped");
    assert_eq!(
        w.column(&execution, "resource_arn").await,
        Some(cluster_arn("aurora"))
    );
    assert_eq!(
        w.column(&execution, "mode").await.as_deref(),
        Some(w.mode())
    );
    assert_eq!(
        w.count_calls_for("aurora", "StopDBCluster").await,
        2,
        "the test's own stop and restop's"
    );
    if matches!(w, Engine::StepFunctions(_)) {
        assert_eq!(w.moto.count_calls("StartExecution").await, 1);
    }
}
