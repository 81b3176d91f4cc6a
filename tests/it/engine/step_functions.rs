//! Step Functions mode end to end: restop checks the tag, starts deploy/state-machine.asl.json
//! and follows it; moto's Step Functions interpreter runs the state machine against moto's
//! RDS (with statuses that change over time). Every test runs on Postgres and on SQLite,
//! each with a moto server of its own. The forced-start scenario both modes share is in
//! forced_start.rs.

use std::time::Duration;

use restop::aws::{Aws, AwsFailure};
use restop::config::CommaList;
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::moto::{cluster_arn, instance_arn};
use crate::support::step_functions::{World, world};
use crate::support::world::PROTECTED;

on_both_backends!(
    cancel_stops_the_state_machine_run,
    cancel_while_the_run_is_being_started_stops_it_too,
    another_region_is_unsupported_in_step_functions_mode,
    a_global_database_member_is_reported_not_stoppable_by_the_state_machine,
    a_member_account_run_is_given_the_member_role,
    a_state_machine_run_past_the_deadline_is_stopped,
    step_functions_redelivery_is_the_same_execution,
    unprotected_resources_never_start_the_state_machine,
    a_held_database_never_starts_the_state_machine,
    a_read_replica_is_reported_not_stoppable_by_the_state_machine,
    throttling_is_retried_by_the_state_machine,
    dry_run_in_step_functions_mode_never_stops,
    a_run_that_restop_stops_following_is_stopped,
    an_upgraded_dry_run_starts_a_real_run_of_its_own,
    a_tag_removed_while_the_state_machine_waits_prevents_the_stop,
    a_tag_spelled_in_capitals_still_protects_in_the_state_machine,
);

async fn cancel_stops_the_state_machine_run(db: TestDb) {
    // Without the interpreter a run stays RUNNING until someone stops it.
    let Some(w) = world(db, false, |_| {}).await else {
        return;
    };
    w.create_instance("halted", PROTECTED).await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "halted").await;
    let run = w.sfn_execution(&execution).await;
    let (status, body) = w.cancel(&execution).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "cancelled");
    wait_for_run(&w, &run, "ABORTED").await;
    w.wait_for_step(&execution, "abort_state_machine//state machine run stopped")
        .await;
    assert_eq!(w.column(&execution, "phase").await.as_deref(), Some("done"));
    assert_eq!(w.instance_status("halted").await, "available");
    assert_eq!(w.count_calls_for("halted", "StopDBInstance").await, 0);
}

async fn cancel_while_the_run_is_being_started_stops_it_too(db: TestDb) {
    let Some(w) = world(db, false, |_| {}).await else {
        return;
    };
    w.create_instance("racing", PROTECTED).await;
    // StartExecution reaches moto only after 2 s: the cancel comes before restop knows
    // the run's ARN, even before the run exists.
    w.moto
        .fault(json!({"action": "StartExecution", "service": "states", "code": null, "delay_seconds": 2}))
        .await;
    let msg = w
        .stub
        .rds_notification("RDS-EVENT-0154", "db-instance", "racing");
    let execution = w.post(&msg).await;
    for _ in 0..100 {
        if w.moto.count_calls("StartExecution").await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = w.cancel(&execution).await;
    assert_eq!(status, 200, "{body}");
    // The run's name is the SNS MessageId, so its ARN is known without restop's record.
    let name = msg["MessageId"].as_str().unwrap();
    let run = format!(
        "{}:{name}",
        w.state_machine.replace(":stateMachine:", ":execution:")
    );
    wait_for_run(&w, &run, "ABORTED").await;
    assert_eq!(
        w.column(&execution, "status").await.as_deref(),
        Some("cancelled")
    );
}

async fn another_region_is_unsupported_in_step_functions_mode(db: TestDb) {
    let Some(w) = world(db, false, |_| {}).await else {
        return;
    };
    let config = w.moto.sdk_config().await;
    let faraway = aws_sdk_rds::Client::from_conf(
        aws_sdk_rds::config::Builder::from(&config)
            .region(aws_sdk_rds::config::Region::new("eu-west-1"))
            .build(),
    );
    faraway
        .create_db_instance()
        .db_instance_identifier("faraway")
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("password123")
        .set_tags(Some(crate::support::world::tags(PROTECTED)))
        .send()
        .await
        .unwrap();
    let (status, body) = w
        .trigger(json!({"resource_arn": "arn:aws:rds:eu-west-1:123456789012:db:faraway"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let execution = body["id"].as_str().unwrap().to_owned();
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("skipped", "unsupported")
    );
    assert!(reason.contains("eu-west-1"), "{reason}");
    assert_eq!(w.moto.count_calls("StartExecution").await, 0);
}

async fn a_global_database_member_is_reported_not_stoppable_by_the_state_machine(db: TestDb) {
    let Some(w) = world(db, true, |_| {}).await else {
        return;
    };
    w.create_cluster("worldwide", PROTECTED).await;
    w.rds
        .create_global_cluster()
        .global_cluster_identifier("world")
        .source_db_cluster_identifier(cluster_arn("worldwide"))
        .send()
        .await
        .unwrap();
    let execution = w.event("RDS-EVENT-0153", "db-cluster", "worldwide").await;
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("skipped", "not_stoppable"),
        "{reason}"
    );
    assert!(reason.contains("global database"), "{reason}");
    assert_eq!(w.count_calls_for("worldwide", "StopDBCluster").await, 0);
}

async fn a_member_account_run_is_given_the_member_role(db: TestDb) {
    let Some(w) = world(db, false, |c| {
        c.accounts.accounts = CommaList(vec!["222222222222".parse().unwrap()]);
    })
    .await
    else {
        return;
    };
    let member = w.moto.rds_in("222222222222").await;
    member
        .create_db_instance()
        .db_instance_identifier("elsewhere")
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("password123")
        .set_tags(Some(crate::support::world::tags(PROTECTED)))
        .send()
        .await
        .unwrap();
    w.create_instance("home", PROTECTED).await;
    let (status, body) = w
        .trigger(json!({"resource_arn": "arn:aws:rds:us-east-1:222222222222:db:elsewhere"}))
        .await;
    assert_eq!(status, 201, "{body}");
    let elsewhere = w.run_input(body["id"].as_str().unwrap()).await;
    assert_eq!(
        elsewhere["roleArn"],
        "arn:aws:iam::222222222222:role/restop-member"
    );
    let (status, body) = w
        .trigger(json!({"resource_arn": instance_arn("home")}))
        .await;
    assert_eq!(status, 201, "{body}");
    let home = w.run_input(body["id"].as_str().unwrap()).await;
    assert!(home.get("roleArn").is_none(), "{home}");
}

async fn a_state_machine_run_past_the_deadline_is_stopped(db: TestDb) {
    // Without the interpreter the execution never ends by itself.
    let Some(w) = world(db, false, |c| {
        c.engine.max_duration = Duration::from_secs(3)
    })
    .await
    else {
        return;
    };
    w.create_instance("slow", PROTECTED).await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "slow").await;
    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!((status.as_str(), outcome.as_str()), ("failed", "timeout"));
    assert_eq!(w.moto.count_calls("StopExecution").await, 1);
    let sfn_execution = w.sfn_execution(&execution).await;
    let described = w
        .sfn
        .describe_execution()
        .execution_arn(&sfn_execution)
        .send()
        .await
        .unwrap();
    assert_eq!(described.status().as_str(), "ABORTED");
}

async fn step_functions_redelivery_is_the_same_execution(db: TestDb) {
    // Without the interpreter, executions stay RUNNING.
    let Some(w) = world(db, false, |_| {}).await else {
        return;
    };
    w.create_instance("held", PROTECTED).await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "held").await;
    let sfn_execution = w.sfn_execution(&execution).await;

    // Another message (another MessageId) about the same resource joins the execution.
    let second = w.event("RDS-EVENT-0154", "db-instance", "held").await;
    assert_eq!(second, execution);
    // restop keeps following the one state machine execution and never starts another.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        w.column(&execution, "status").await.as_deref(),
        Some("running")
    );
    assert_eq!(
        w.column(&execution, "sfn_execution_arn").await.as_deref(),
        Some(sfn_execution.as_str())
    );
    assert_eq!(w.moto.count_calls("StartExecution").await, 1);
    assert!(w.moto.count_calls("DescribeExecution").await >= 1);

    // StartExecution itself is idempotent: restop's own name and input (what a restart
    // or a second replica would send again) give restop's execution back.
    let name = sfn_execution.rsplit(':').next().unwrap().to_owned();
    let input = w
        .sfn
        .describe_execution()
        .execution_arn(&sfn_execution)
        .send()
        .await
        .unwrap()
        .input()
        .unwrap()
        .to_owned();
    let aws = w.moto.aws().await;
    let machine: restop::aws::arn::StateMachineArn = w.state_machine.parse().unwrap();
    for _ in 0..2 {
        assert_eq!(
            aws.start_state_machine(&machine, &name, &input)
                .await
                .unwrap(),
            sfn_execution
        );
    }
    // The same name for another restop execution is another request: refused.
    let other_input = input.replace(&execution, "00000000-0000-4000-8000-000000000000");
    assert_ne!(other_input, input);
    match aws.start_state_machine(&machine, &name, &other_input).await {
        Err(AwsFailure::Other(message)) => {
            assert!(message.contains("already exists"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // After the execution closed, AWS answers ExecutionAlreadyExists even for the same
    // input: restop looks the execution up and still gets the same ARN.
    w.sfn
        .stop_execution()
        .execution_arn(&sfn_execution)
        .send()
        .await
        .unwrap();
    assert_eq!(
        aws.start_state_machine(&machine, &name, &input)
            .await
            .unwrap(),
        sfn_execution
    );
    // Also when restop restarted with other settings: the execution id decides.
    let retuned = input.replace("\"pollIntervalSeconds\":1", "\"pollIntervalSeconds\":7");
    assert_ne!(retuned, input);
    assert_eq!(
        aws.start_state_machine(&machine, &name, &retuned)
            .await
            .unwrap(),
        sfn_execution
    );
    // And restop reports the aborted execution.
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("failed", "error"),
        "{reason}"
    );
    assert!(reason.contains("aborted"), "{reason}");
}

async fn unprotected_resources_never_start_the_state_machine(db: TestDb) {
    let Some(w) = world(db, true, |_| {}).await else {
        return;
    };
    w.create_instance("untagged", &[]).await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "untagged").await;
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("skipped", "not_protected"),
        "{reason}"
    );
    assert_eq!(w.column(&execution, "sfn_execution_arn").await, None);
    assert_eq!(w.moto.count_calls("StartExecution").await, 0);
    assert_eq!(
        w.moto.calls_for("untagged").await,
        ["CreateDBInstance", "ListTagsForResource"]
    );
    assert_eq!(w.instance_status("untagged").await, "available");
}

async fn a_read_replica_is_reported_not_stoppable_by_the_state_machine(db: TestDb) {
    let Some(w) = world(db, true, |_| {}).await else {
        return;
    };
    w.create_unstoppable_databases().await;

    for (id, expected) in [
        ("replica", "read replica of primary"),
        ("primary", "has read replicas: [\"replica\"]"),
        ("aurora-member", "Aurora member instance of cluster aurora"),
    ] {
        let execution = w.event("RDS-EVENT-0154", "db-instance", id).await;
        let (status, outcome, reason) = w.finished(&execution).await;
        assert_eq!(
            (status.as_str(), outcome.as_str()),
            ("skipped", "not_stoppable"),
            "{id}: {reason}"
        );
        assert!(reason.contains(expected), "{id}: {reason}");
        assert!(
            w.column(&execution, "sfn_execution_arn").await.is_some(),
            "{id}"
        );
        assert_eq!(w.count_calls_for(id, "StopDBInstance").await, 0, "{id}");
        assert_eq!(w.instance_status(id).await, "available", "{id}");
    }
    assert_eq!(w.moto.count_calls("StartExecution").await, 3);
}

async fn throttling_is_retried_by_the_state_machine(db: TestDb) {
    let Some(w) = world(db, true, |_| {}).await else {
        return;
    };
    w.create_instance("throttled", PROTECTED).await;
    // moto's interpreter calls RDS without SDK retries: each fault reaches the Retry.
    w.moto
        .fault(json!({"action": "DescribeDBInstances", "count": 2, "code": "Throttling", "resource": "throttled"}))
        .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "throttled").await;
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "stopped"),
        "{reason}"
    );
    let calls = w.moto.calls_for("throttled").await;
    assert!(
        calls.iter().filter(|a| *a == "DescribeDBInstances").count() >= 3,
        "{calls:?}"
    );
    assert_eq!(w.instance_status("throttled").await, "stopped");
}

async fn dry_run_in_step_functions_mode_never_stops(db: TestDb) {
    let Some(w) = world(db, true, |c| c.engine.dry_run = true).await else {
        return;
    };
    w.create_instance("rehearsal", PROTECTED).await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "rehearsal").await;
    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "dry_run")
    );
    assert_eq!(w.count_calls_for("rehearsal", "StopDBInstance").await, 0);
    assert_eq!(w.instance_status("rehearsal").await, "available");
}

async fn a_run_that_restop_stops_following_is_stopped(db: TestDb) {
    // Without the interpreter the run stays RUNNING until someone stops it.
    let Some(w) = world(db, false, |_| {}).await else {
        return;
    };
    w.create_instance("denied", PROTECTED).await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "denied").await;
    let run = w.sfn_execution(&execution).await;
    // restop loses states:DescribeExecution: it ends the execution, and the run must not
    // stop the database hours later behind its back.
    w.moto
        .fault(json!({"action": "DescribeExecution", "service": "states", "code": "AccessDeniedException", "message": "not authorized"}))
        .await;
    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("failed", "access_denied")
    );
    wait_for_run(&w, &run, "ABORTED").await;
}

/// A manual dry run's state machine run, then a real trigger upgrades the job: the real
/// run is a new one (with `dryRun: false`), not the dry run's adopted.
async fn an_upgraded_dry_run_starts_a_real_run_of_its_own(db: TestDb) {
    // Without the interpreter the dry run's run stays RUNNING.
    let Some(w) = world(db, false, |_| {}).await else {
        return;
    };
    w.create_instance("upgraded", PROTECTED).await;
    let arn = instance_arn("upgraded");
    let (status, body) = w
        .trigger(json!({"resource_arn": arn, "dry_run": true}))
        .await;
    assert_eq!(status, 201, "{body}");
    let execution = body["id"].as_str().unwrap().to_owned();
    let dry_run = w.sfn_execution(&execution).await;
    assert_eq!(w.run_input(&execution).await["dryRun"], true);
    let (status, body) = w.trigger(json!({"resource_arn": arn})).await;
    assert_eq!(status, 200, "{body}");
    let mut real = None;
    for _ in 0..100 {
        real = w
            .column(&execution, "sfn_execution_arn")
            .await
            .filter(|run| *run != dry_run);
        if real.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        real.is_some(),
        "the upgraded job kept the dry run's run; steps: {:?}",
        w.steps(&execution).await
    );
    assert_eq!(w.run_input(&execution).await["dryRun"], false);
}

/// Waits until moto reports the state machine run as `status`.
async fn wait_for_run(w: &World, execution_arn: &str, status: &str) {
    for _ in 0..100 {
        let described = w
            .sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await;
        if described.is_ok_and(|d| d.status().as_str() == status) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the state machine run {execution_arn} never became {status}");
}

/// Every RDS task of the state machine has a twin for member accounts that calls with the
/// role in the input, and the choices send member-account runs to the twins.
#[test]
fn member_account_tasks_use_the_role_in_the_input() {
    let asl: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/state-machine.asl.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let states = asl["States"].as_object().unwrap();
    let tasks: Vec<&String> = states
        .iter()
        .filter(|(_, s)| s["Type"] == "Task")
        .map(|(name, _)| name)
        .collect();
    assert_eq!(tasks.len(), 10, "{tasks:?}");
    for name in tasks {
        let task = &states[name];
        match name.strip_suffix("AsMember") {
            Some(own) => {
                assert_eq!(task["Credentials"]["RoleArn.$"], "$.roleArn", "{name}");
                let mut twin = task.clone();
                twin.as_object_mut().unwrap().remove("Credentials");
                twin.as_object_mut().unwrap().remove("Comment");
                let mut original = states[own].clone();
                original.as_object_mut().unwrap().remove("Comment");
                assert_eq!(twin, original, "{name} differs from {own}");
            }
            None => assert!(task.get("Credentials").is_none(), "{name}"),
        }
    }
    let targets = |choice: &str| -> Vec<String> {
        states[choice]["Choices"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.to_string().contains("$.roleArn"))
            .map(|c| c["Next"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        targets("ByResourceType"),
        ["DescribeInstanceAsMember", "DescribeClusterAsMember"]
    );
    assert_eq!(
        targets("DryRunOrStop"),
        ["StopClusterAsMember", "StopInstanceAsMember"]
    );
    assert_eq!(targets("RecheckTags"), ["ListTagsAsMember"]);
}

/// The state machine reads the tag again between the wait for `available` and the stop,
/// as restop does in internal mode: every way to `DryRunOrStop` goes through the tag read.
#[test]
fn the_state_machine_reads_the_tag_again_before_it_stops() {
    let asl: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/state-machine.asl.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let states = asl["States"].as_object().unwrap();
    let leads_to = |target: &str| -> Vec<&str> {
        states
            .iter()
            .filter(|(_, s)| s.to_string().contains(&format!("\"Next\":\"{target}\"")))
            .map(|(name, _)| name.as_str())
            .collect()
    };
    assert_eq!(leads_to("DryRunOrStop"), ["RecheckTags", "StillProtected"]);
    assert_eq!(leads_to("RecheckTags"), ["ByStatus"]);
    for task in ["ListTags", "ListTagsAsMember"] {
        assert_eq!(
            states[task]["Resource"],
            "arn:aws:states:::aws-sdk:rds:listTagsForResource"
        );
        assert_eq!(states[task]["Next"], "MatchProtectionTag");
    }
    assert_eq!(
        states["MatchProtectionTag"]["ItemsPath"],
        "$.protectionTags"
    );
    assert_eq!(
        states["NoLongerProtected"]["Parameters"]["outcome"],
        "not_protected"
    );
    // An operator's stop that skips the tag check is not checked by the machine either.
    assert!(
        states["RecheckTags"]["Choices"][0]
            .to_string()
            .contains("$.skipTagCheck")
    );
}

async fn a_held_database_never_starts_the_state_machine(db: TestDb) {
    let Some(w) = world(db, true, |_| {}).await else {
        return;
    };
    let until = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    w.create_instance(
        "held-sfn",
        &[PROTECTED[0], ("auto-restart-protection-hold-until", &until)],
    )
    .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "held-sfn").await;
    let (status, outcome, _) = w.finished(&execution).await;
    assert_eq!((status.as_str(), outcome.as_str()), ("skipped", "held"));
    assert_eq!(w.column(&execution, "sfn_execution_arn").await, None);
    assert_eq!(w.moto.count_calls("StartExecution").await, 0);
    assert_eq!(w.instance_status("held-sfn").await, "available");
}

/// The tag is removed while the state machine waits for the database: the machine reads
/// it again before the stop and ends `not_protected` without one.
async fn a_tag_removed_while_the_state_machine_waits_prevents_the_stop(db: TestDb) {
    let Some(w) = world(db, true, |_| {}).await else {
        return;
    };
    w.create_instance(
        "fickle-sfn",
        &[PROTECTED[0], ("moto:force-status", "backing-up:4")],
    )
    .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "fickle-sfn").await;
    let run = w.sfn_execution(&execution).await;
    let input = w.run_input(&execution).await;
    assert_eq!(input["tagKey"], "auto-restart-protection");
    assert_eq!(
        input["protectionTags"][0],
        json!({"Key": "auto-restart-protection", "Value": "yes"})
    );
    w.remove_tags(&instance_arn("fickle-sfn"), &["auto-restart-protection"])
        .await;
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("skipped", "not_protected"),
        "{reason}"
    );
    assert!(reason.contains("no longer yes"), "{reason}");
    assert_eq!(w.sfn_result(&run).await.0, "SUCCEEDED");
    assert_eq!(w.count_calls_for("fickle-sfn", "StopDBInstance").await, 0);
    assert_eq!(w.instance_status("fickle-sfn").await, "available");
}

/// restop compares the tag value without case; so does the state machine for the usual
/// spellings (`YES` for `yes`): it stops.
async fn a_tag_spelled_in_capitals_still_protects_in_the_state_machine(db: TestDb) {
    let Some(w) = world(db, true, |_| {}).await else {
        return;
    };
    w.create_instance("shouting", &[("auto-restart-protection", "YES")])
        .await;
    let execution = w.event("RDS-EVENT-0154", "db-instance", "shouting").await;
    let (status, outcome, reason) = w.finished(&execution).await;
    assert_eq!(
        (status.as_str(), outcome.as_str()),
        ("succeeded", "stopped"),
        "{reason}"
    );
    assert_eq!(w.instance_status("shouting").await, "stopped");
}
