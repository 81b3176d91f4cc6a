//! `restop doctor` on moto: a correct set-up passes every check, and each fault introduced
//! on its own fails exactly its own check (or warns, where restop still works).

use std::process::Stdio;

use restop::config::{CommaList, DoctorConfig, DoctorFormat};
use restop::doctor::{CheckStatus, Report};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::binary::restop_command;
use crate::support::db::{Backend, TestDb};
use crate::support::moto::{ACCOUNT, Moto, REGION, new_instance};
use crate::support::{config, sns::TOPIC};

const URL: &str = "https://restop.example.com/sns";
const MEMBER: &str = "222222222222";
const FORCED_AND_WAKE: [&str; 4] = [
    "RDS-EVENT-0154",
    "RDS-EVENT-0153",
    "RDS-EVENT-0088",
    "RDS-EVENT-0151",
];

/// The set-up deploy/cloudformation makes: a topic in restop's account with a confirmed
/// HTTPS subscription (the kit's filter and delivery policies), event subscriptions for
/// instances and clusters in restop's account and in one member account (publishing to
/// the central topic), and a protected database in each.
struct Setup {
    moto: Moto,
    db: TestDb,
    config: DoctorConfig,
    subscription: String,
}

impl Setup {
    async fn correct() -> Option<Self> {
        let moto = Moto::start().await?;
        let db = TestDb::create(Backend::Sqlite).await?;
        let mut serve = config(&db.url, None);
        serve.accounts.accounts = CommaList(vec![MEMBER.parse().unwrap()]);
        serve.engine.public_url = Some(URL.into());
        restop::store::connect_and_migrate(&serve.database)
            .await
            .unwrap();
        let sns = moto.sns().await;
        let topic = sns.create_topic().name("rds-events").send().await.unwrap();
        assert_eq!(topic.topic_arn(), Some(TOPIC));
        let delivery = json!({"healthyRetryPolicy": {
            "numRetries": 17, "numNoDelayRetries": 0, "numMinDelayRetries": 6,
            "minDelayTarget": 20, "maxDelayTarget": 300, "numMaxDelayRetries": 8,
            "backoffFunction": "exponential"}});
        let subscription = sns
            .subscribe()
            .topic_arn(TOPIC)
            .protocol("https")
            .endpoint(URL)
            .attributes(
                "FilterPolicy",
                json!({"EventID": FORCED_AND_WAKE}).to_string(),
            )
            .attributes("FilterPolicyScope", "MessageAttributes")
            .attributes("RawMessageDelivery", "false")
            .attributes("DeliveryPolicy", delivery.to_string())
            .return_subscription_arn(true)
            .send()
            .await
            .unwrap()
            .subscription_arn()
            .unwrap()
            .to_owned();
        for rds in [moto.rds().await, moto.rds_in(MEMBER).await] {
            for source_type in ["db-instance", "db-cluster"] {
                event_subscription(&rds, source_type, "notification", true).await;
            }
            create_instance(&rds, "orders").await;
        }
        Some(Self {
            moto,
            db,
            config: DoctorConfig {
                serve,
                format: DoctorFormat::Text,
            },
            subscription,
        })
    }

    async fn examine(&self) -> Report {
        restop::doctor::examine(&self.config, self.moto.sdk_config().await).await
    }

    /// Sets an attribute of restop's subscription.
    async fn subscription_attribute(&self, name: &str, value: &str) {
        self.moto
            .sns()
            .await
            .set_subscription_attributes()
            .subscription_arn(&self.subscription)
            .attribute_name(name)
            .attribute_value(value)
            .send()
            .await
            .unwrap();
    }
}

/// The RDS event subscription `restop-<source_type>`, publishing to the topic.
async fn event_subscription(
    rds: &aws_sdk_rds::Client,
    source_type: &str,
    category: &str,
    enabled: bool,
) {
    rds.create_event_subscription()
        .subscription_name(format!("restop-{source_type}"))
        .sns_topic_arn(TOPIC)
        .source_type(source_type)
        .event_categories(category)
        .enabled(enabled)
        .send()
        .await
        .unwrap();
}

async fn delete_event_subscription(rds: &aws_sdk_rds::Client, source_type: &str) {
    rds.delete_event_subscription()
        .subscription_name(format!("restop-{source_type}"))
        .send()
        .await
        .unwrap();
}

fn protected_tag() -> aws_sdk_rds::types::Tag {
    aws_sdk_rds::types::Tag::builder()
        .key("auto-restart-protection")
        .value("yes")
        .build()
}

async fn create_instance(rds: &aws_sdk_rds::Client, id: &str) {
    new_instance(rds, id)
        .tags(protected_tag())
        .send()
        .await
        .unwrap();
}

fn statuses(report: &Report, status: CheckStatus) -> Vec<&str> {
    report
        .checks
        .iter()
        .filter(|c| c.status == status)
        .map(|c| c.name.as_str())
        .collect()
}

fn detail<'r>(report: &'r Report, name: &str) -> &'r str {
    &report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name} in {}", report.text()))
        .detail
}

/// The fault fails exactly the check `name`, and nothing else, and says `hint`.
fn fails_alone(report: &Report, name: &str, hint: &str) {
    assert!(!report.ok, "{}", report.text());
    assert_eq!(
        statuses(report, CheckStatus::Fail),
        [name],
        "{}",
        report.text()
    );
    assert!(
        detail(report, name).contains(hint),
        "{name} should say {hint:?}:\n{}",
        report.text()
    );
}

fn place(account: &str) -> String {
    format!("{account}/{REGION}")
}

#[tokio::test]
async fn a_correct_set_up_passes_every_check() {
    let Some(setup) = Setup::correct().await else {
        return;
    };
    let report = setup.examine().await;
    assert!(report.ok, "{}", report.text());
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    let mut expected = vec![
        "database".to_owned(),
        "public_url".into(),
        "topics".into(),
        "credentials".into(),
        format!("role {MEMBER}"),
        format!("topic {TOPIC}"),
        format!("subscription {TOPIC}"),
        format!("filter_policy {TOPIC}"),
        format!("raw_delivery {TOPIC}"),
        format!("confirmation {TOPIC}"),
        format!("delivery_policy {TOPIC}"),
    ];
    for account in [ACCOUNT, MEMBER] {
        for check in ["event_subscriptions", "permissions", "protected"] {
            expected.push(format!("{check} {}", place(account)));
        }
    }
    let simulations = [
        format!("simulation {ACCOUNT}"),
        format!("simulation {MEMBER}"),
    ];
    expected.extend(simulations.clone());
    assert_eq!(names, expected);
    // moto implements no iam:SimulatePrincipalPolicy: IAM cannot be asked, which only warns.
    assert_eq!(
        statuses(&report, CheckStatus::Warn),
        simulations,
        "{}",
        report.text()
    );
    assert_eq!(
        statuses(&report, CheckStatus::Ok).len(),
        expected.len() - 2,
        "{}",
        report.text()
    );
    for simulation in &simulations {
        assert!(
            detail(&report, simulation).starts_with("could not check the permissions of "),
            "{}",
            report.text()
        );
    }
    // The member role is simulated as restop names it, and IAM (moto) was asked.
    let member = detail(&report, &simulations[1]);
    assert!(
        member.contains(&format!("arn:aws:iam::{MEMBER}:role/restop-member"))
            && member.contains("iam:SimulatePrincipalPolicy failed"),
        "{member}"
    );
    assert!(
        detail(&report, &format!("protected {}", place(MEMBER)))
            .starts_with("1 instances and 0 clusters")
    );
    assert!(detail(&report, &format!("delivery_policy {TOPIC}")).contains("3420 s"));
}

#[tokio::test]
async fn an_unmigrated_database_fails() {
    let Some(mut setup) = Setup::correct().await else {
        return;
    };
    let fresh = TestDb::create(Backend::Sqlite).await.unwrap();
    // An empty file: the database exists but restop never migrated it.
    fresh.execute("CREATE TABLE unrelated (id INTEGER)").await;
    setup.config.serve.database.database_url = fresh.url.parse().unwrap();
    fails_alone(&setup.examine().await, "database", "restop migrate");
}

/// The database check names the database but never prints its password, in any URL form,
/// neither in its text nor in `--format json`.
#[tokio::test]
async fn the_database_check_never_prints_a_password() {
    let Some(mut setup) = Setup::correct().await else {
        return;
    };
    for url in [
        "postgres://restop:hunter2@127.0.0.1:1/restop",
        "postgres://restop@127.0.0.1:1/restop?password=hunter2",
        "postgres://restop:hunter2@127.0.0.1:notaport/restop",
    ] {
        setup.config.serve.database.database_url = url.parse().unwrap();
        let report = setup.examine().await;
        let database = detail(&report, "database");
        assert!(database.contains("DATABASE_URL"), "{database}");
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            !database.contains("hunter2") && !json.contains("hunter2"),
            "{url}: {json}"
        );
    }
}

#[tokio::test]
async fn missing_settings_fail() {
    let Some(mut setup) = Setup::correct().await else {
        return;
    };
    setup.config.serve.engine.public_url = None;
    fails_alone(&setup.examine().await, "public_url", "RESTOP_PUBLIC_URL");
}

#[tokio::test]
async fn settings_restop_serve_refuses_fail() {
    let Some(mut setup) = Setup::correct().await else {
        return;
    };
    setup.config.serve.engine.job_lease = std::time::Duration::from_secs(1);
    fails_alone(&setup.examine().await, "settings", "RESTOP_JOB_LEASE");
}

#[tokio::test]
async fn a_role_restop_cannot_assume_fails() {
    let Some(setup) = Setup::correct().await else {
        return;
    };
    setup
        .moto
        .fault(
            json!({"action": "AssumeRole", "status": 403, "code": "AccessDenied",
                      "message": "not authorized to perform sts:AssumeRole", "count": 50}),
        )
        .await;
    let report = setup.examine().await;
    fails_alone(&report, &format!("role {MEMBER}"), "member-role.yaml");
    assert!(detail(&report, &format!("role {MEMBER}")).contains("not authorized"));
}

#[tokio::test]
async fn a_missing_topic_fails() {
    let Some(setup) = Setup::correct().await else {
        return;
    };
    let sns = setup.moto.sns().await;
    sns.delete_topic().topic_arn(TOPIC).send().await.unwrap();
    fails_alone(
        &setup.examine().await,
        &format!("topic {TOPIC}"),
        "does not exist",
    );
}

#[tokio::test]
async fn a_topic_without_restops_subscription_fails() {
    let Some(mut setup) = Setup::correct().await else {
        return;
    };
    setup.config.serve.engine.public_url = Some("https://elsewhere.example.com/sns".into());
    fails_alone(
        &setup.examine().await,
        &format!("subscription {TOPIC}"),
        "no subscription to https://elsewhere",
    );
}

#[tokio::test]
async fn a_subscription_pending_confirmation_fails() {
    let Some(setup) = Setup::correct().await else {
        return;
    };
    setup.moto.pending_subscriptions(URL).await;
    fails_alone(
        &setup.examine().await,
        &format!("subscription {TOPIC}"),
        "pending confirmation",
    );
}

#[tokio::test]
async fn a_filter_policy_that_drops_forced_starts_fails() {
    let Some(setup) = Setup::correct().await else {
        return;
    };
    let policy = json!({"EventID": ["RDS-EVENT-0154", "RDS-EVENT-0088", "RDS-EVENT-0151"]});
    setup
        .subscription_attribute("FilterPolicy", &policy.to_string())
        .await;
    let report = setup.examine().await;
    fails_alone(
        &report,
        &format!("filter_policy {TOPIC}"),
        "drops the forced-start events RDS-EVENT-0153",
    );
}

#[tokio::test]
async fn raw_message_delivery_fails() {
    let Some(setup) = Setup::correct().await else {
        return;
    };
    setup
        .subscription_attribute("RawMessageDelivery", "true")
        .await;
    fails_alone(
        &setup.examine().await,
        &format!("raw_delivery {TOPIC}"),
        "signature",
    );
}

#[tokio::test]
async fn an_event_subscription_without_the_notification_category_fails() {
    let Some(setup) = Setup::correct().await else {
        return;
    };
    let rds = setup.moto.rds().await;
    delete_event_subscription(&rds, "db-cluster").await;
    event_subscription(&rds, "db-cluster", "failure", true).await;
    let name = format!("event_subscriptions {}", place(ACCOUNT));
    let report = setup.examine().await;
    fails_alone(&report, &name, "notification events of db-cluster");
    assert!(detail(&report, &name).contains("restop-db-cluster lacks the category notification"));
}

#[tokio::test]
async fn a_disabled_event_subscription_in_a_member_account_fails() {
    let Some(setup) = Setup::correct().await else {
        return;
    };
    let rds = setup.moto.rds_in(MEMBER).await;
    delete_event_subscription(&rds, "db-instance").await;
    event_subscription(&rds, "db-instance", "notification", false).await;
    let name = format!("event_subscriptions {}", place(MEMBER));
    fails_alone(
        &setup.examine().await,
        &name,
        "restop-db-instance is disabled",
    );
}

#[tokio::test]
async fn a_missing_permission_fails_naming_the_action() {
    let Some(setup) = Setup::correct().await else {
        return;
    };
    setup
        .moto
        .fault(
            json!({"action": "DescribeEvents", "status": 403, "code": "AccessDenied",
                      "message": "not authorized to perform rds:DescribeEvents", "count": 1}),
        )
        .await;
    let name = format!("permissions {}", place(ACCOUNT));
    fails_alone(
        &setup.examine().await,
        &name,
        "rds:DescribeEvents: AccessDenied",
    );
}

#[tokio::test]
async fn a_state_machine_that_is_missing_or_elsewhere_fails() {
    let Some(mut setup) = Setup::correct().await else {
        return;
    };
    let arn = format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:restop");
    setup.config.serve.engine.state_machine_arn = Some(arn.parse().unwrap());
    fails_alone(
        &setup.examine().await,
        "state_machine",
        "DescribeStateMachine failed",
    );

    let sfn = aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::config::Builder::from(&setup.moto.sdk_config().await)
            .region(aws_sdk_sfn::config::Region::new("us-west-2"))
            .build(),
    );
    let definition = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/state-machine.asl.json"
    ))
    .unwrap();
    let created = sfn
        .create_state_machine()
        .name("restop")
        .definition(definition)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/restop-state-machine"))
        .send()
        .await
        .unwrap();
    setup.config.serve.engine.state_machine_arn =
        Some(created.state_machine_arn().parse().unwrap());
    fails_alone(
        &setup.examine().await,
        "state_machine",
        "cannot stop databases in us-east-1",
    );
}

#[tokio::test]
async fn what_still_works_only_warns() {
    let Some(setup) = Setup::correct().await else {
        return;
    };
    // SNS's one-minute default retry policy, a filter without the "started" events, and a
    // protected read replica: restop works, but worse than it could.
    setup.subscription_attribute("DeliveryPolicy", "").await;
    let policy = json!({"EventID": ["RDS-EVENT-0154", "RDS-EVENT-0153"]});
    setup
        .subscription_attribute("FilterPolicy", &policy.to_string())
        .await;
    let rds = setup.moto.rds().await;
    rds.create_db_instance_read_replica()
        .db_instance_identifier("orders-replica")
        .source_db_instance_identifier("orders")
        .tags(protected_tag())
        .send()
        .await
        .unwrap();
    let report = setup.examine().await;
    assert!(report.ok, "{}", report.text());
    let protected = format!("protected {}", place(ACCOUNT));
    assert_eq!(
        statuses(&report, CheckStatus::Warn),
        [
            format!("filter_policy {TOPIC}"),
            format!("delivery_policy {TOPIC}"),
            protected.clone(),
            // moto cannot simulate IAM policies (see a_correct_set_up_passes_every_check).
            format!("simulation {ACCOUNT}"),
            format!("simulation {MEMBER}"),
        ],
        "{}",
        report.text()
    );
    assert!(
        detail(&report, &format!("filter_policy {TOPIC}"))
            .contains("RDS-EVENT-0088, RDS-EVENT-0151")
    );
    assert!(detail(&report, &format!("delivery_policy {TOPIC}")).contains("about 60 s"));
    assert!(
        detail(&report, &protected).contains("instance orders-replica: "),
        "{}",
        report.text()
    );
}

/// The command itself: a line per check and status 0, or JSON and status 1.
#[tokio::test]
async fn the_command_prints_its_checks_and_exits_1_on_a_failure() {
    let Some(setup) = Setup::correct().await else {
        return;
    };
    let run = |format: &'static str| {
        tokio::process::Command::from(restop_command())
            .args(["doctor", "--format", format])
            .env("DATABASE_URL", &setup.db.url)
            .env("RESTOP_TOPIC_ARNS", TOPIC)
            .env("RESTOP_ACCOUNTS", MEMBER)
            .env("RESTOP_PUBLIC_URL", URL)
            .env("AWS_ENDPOINT_URL", &setup.moto.url)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", REGION)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
    };
    let passed = run("text").await.unwrap();
    let text = String::from_utf8(passed.stdout).unwrap();
    assert_eq!(passed.status.code(), Some(0), "{text}");
    // 17 checks and the two IAM simulations (restop's identity, the member role), which
    // only warn on moto: it cannot simulate.
    assert_eq!(text.lines().count(), 19, "{text}");
    assert!(
        text.lines()
            .all(|l| l.starts_with("ok   ") || l.starts_with("warn simulation ")),
        "{text}"
    );
    assert_eq!(text.matches("warn simulation ").count(), 2, "{text}");

    setup
        .subscription_attribute("RawMessageDelivery", "true")
        .await;
    let failed = run("json").await.unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&failed.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let failing: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert_eq!(failing.len(), 1, "{report:#}");
    assert_eq!(failing[0]["name"], format!("raw_delivery {TOPIC}"));
    assert!(
        failing[0]["detail"]
            .as_str()
            .unwrap()
            .contains("RawMessageDelivery")
    );
}

/// The database check reads the schema and changes nothing, on both backends.
async fn the_database_check_changes_nothing(db: TestDb) {
    let database = config(&db.url, None).database;
    // A database restop has never migrated (for SQLite: the file exists).
    db.execute("CREATE TABLE unrelated (id INTEGER)").await;
    let before = restop::store::schema_state(&database).await.unwrap();
    assert_eq!(before.applied, 0);
    assert!(!before.pending.is_empty());
    assert!(before.pending[0].starts_with("1_"), "{:?}", before.pending);
    // Reading created nothing: still no migrations table.
    assert_eq!(
        restop::store::schema_state(&database).await.unwrap(),
        before
    );
    restop::store::connect_and_migrate(&database).await.unwrap();
    let after = restop::store::schema_state(&database).await.unwrap();
    assert_eq!(
        (after.applied, after.pending.len()),
        (before.pending.len(), 0)
    );
    let checksum = match db.backend {
        Backend::Postgres => "'\\x00'::bytea",
        Backend::Sqlite => "X'00'",
    };
    db.execute(&format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', true, {checksum}, 0)"
    ))
    .await;
    assert_eq!(
        restop::store::schema_state(&database)
            .await
            .unwrap()
            .unknown,
        [99990101000000]
    );
}

#[tokio::test]
async fn a_missing_sqlite_file_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("restop.db");
    let database = config(&format!("sqlite://{}", path.display()), None).database;
    assert!(restop::store::schema_state(&database).await.is_err());
    assert!(!path.exists());
}

on_both_backends!(the_database_check_changes_nothing);

#[tokio::test]
async fn a_hold_tag_that_is_not_a_date_warns_naming_the_database() {
    let Some(setup) = Setup::correct().await else {
        return;
    };
    let rds = setup.moto.rds().await;
    let hold = |value: &str| {
        aws_sdk_rds::types::Tag::builder()
            .key("auto-restart-protection-hold-until")
            .value(value)
            .build()
    };
    new_instance(&rds, "typo")
        .tags(protected_tag())
        .tags(hold("next friday"))
        .send()
        .await
        .unwrap();
    new_instance(&rds, "held")
        .tags(protected_tag())
        .tags(hold("2999-01-31T12:00:00+01:00"))
        .send()
        .await
        .unwrap();
    let report = setup.examine().await;
    assert!(report.ok, "a warning only: {}", report.text());
    let protected = format!("protected {}", place(ACCOUNT));
    let simulations = [
        format!("simulation {ACCOUNT}"),
        format!("simulation {MEMBER}"),
    ];
    assert_eq!(
        statuses(&report, CheckStatus::Warn),
        [protected.as_str(), &simulations[0], &simulations[1]],
        "{}",
        report.text()
    );
    let detail = detail(&report, &protected);
    assert!(
        detail.contains(
            "instance typo: tag auto-restart-protection-hold-until is 'next friday', not an \
             ISO 8601 date"
        ),
        "{detail}"
    );
    assert!(
        detail.contains("held: instance held until 2999-01-31T11:00:00+00:00"),
        "{detail}"
    );
}
