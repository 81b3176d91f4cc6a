//! The engine world in Step Functions mode: moto with deploy/state-machine.asl.json
//! (respelled for moto's interpreter), and restop set to start and follow it.

use std::time::Duration;

use restop::config::ServeConfig;
use serde_json::Value;

use super::db::TestDb;
use super::moto::Moto;

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/restop-sfn";

/// How moto 5.2.5's interpreter spells what real Step Functions spells the AWS SDK for Java
/// way. Error names first: they contain the field spellings below.
const MOTO_SPELLINGS: &[(&str, &str)] = &[
    // Errors: real `Rds.` + the Java exception; moto `rds.` + the boto3 exception + `Exception`.
    (
        "Rds.DbInstanceNotFoundException",
        "rds.DBInstanceNotFoundFaultException",
    ),
    (
        "Rds.DbClusterNotFoundException",
        "rds.DBClusterNotFoundFaultException",
    ),
    (
        "Rds.InvalidDbInstanceStateException",
        "rds.InvalidDBInstanceStateFaultException",
    ),
    (
        "Rds.InvalidDbClusterStateException",
        "rds.InvalidDBClusterStateFaultException",
    ),
    ("Rds.RdsException", "rds.rdsException"),
    // Parameters and results: real `DbInstanceIdentifier`, `DbInstances`, `DbClusters`...;
    // moto passes them to boto3 and back unchanged, so it needs the API's own `DB`.
    ("DbInstance", "DBInstance"),
    ("DbCluster", "DBCluster"),
];

/// deploy/state-machine.asl.json, respelled for moto (see MOTO_SPELLINGS).
fn definition_for_moto() -> String {
    let mut definition = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/state-machine.asl.json"
    ))
    .expect("deploy/state-machine.asl.json");
    serde_json::from_str::<Value>(&definition).expect("the state machine is JSON");
    for (aws, moto) in MOTO_SPELLINGS {
        assert!(
            definition.contains(aws),
            "{aws} is no longer in the definition"
        );
        definition = definition.replace(aws, moto);
    }
    definition
}

/// The shared engine world, plus Step Functions: a client and the state machine.
pub struct World {
    base: super::world::World,
    pub sfn: aws_sdk_sfn::Client,
    pub state_machine: String,
}

impl std::ops::Deref for World {
    type Target = super::world::World;
    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

/// moto (its interpreter on when `interpreter`), the state machine, and restop in Step
/// Functions mode with a 1 s poll interval.
pub async fn world(
    db: TestDb,
    interpreter: bool,
    adjust: impl FnOnce(&mut ServeConfig),
) -> Option<World> {
    let moto = Moto::start().await?;
    if interpreter {
        moto.run_state_machines().await;
    }
    let sfn = moto.sfn().await;
    let state_machine = sfn
        .create_state_machine()
        .name("restop")
        .definition(definition_for_moto())
        .role_arn(ROLE_ARN)
        .send()
        .await
        .unwrap()
        .state_machine_arn()
        .to_owned();
    let arn = state_machine.clone();
    let base = super::world::World::with_moto(db, moto, |cfg| {
        cfg.engine.state_machine_arn = Some(arn.parse().unwrap());
        adjust(cfg);
    })
    .await;
    Some(World {
        base,
        sfn,
        state_machine,
    })
}

impl World {
    /// Waits until restop has recorded the state machine execution it started.
    pub async fn sfn_execution(&self, execution: &str) -> String {
        for _ in 0..100 {
            if let Some(arn) = self.column(execution, "sfn_execution_arn").await {
                return arn;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no state machine execution recorded; steps: {:?}",
            self.steps(execution).await
        );
    }

    /// The state machine execution's own status and output, as moto reports them.
    pub async fn sfn_result(&self, execution_arn: &str) -> (String, Option<Value>) {
        let out = self
            .sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .unwrap();
        (
            out.status().as_str().to_owned(),
            out.output().map(|o| serde_json::from_str(o).unwrap()),
        )
    }

    /// The input restop gave the state machine run of `execution`.
    pub async fn run_input(&self, execution: &str) -> Value {
        let run = self.sfn_execution(execution).await;
        let described = self
            .sfn
            .describe_execution()
            .execution_arn(run)
            .send()
            .await
            .unwrap();
        serde_json::from_str(described.input().unwrap()).unwrap()
    }
}
