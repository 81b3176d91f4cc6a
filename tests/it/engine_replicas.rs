//! Several engines sharing one Postgres: every job is worked by exactly one of them at a
//! time, and a job whose owner vanished is taken over after its lease.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use restop::clock::SystemClock;
use restop::config::DatabaseConfig;
use restop::engine::decide::Policy;
use restop::engine::{Engine, EngineSettings};
use restop::store::connect_and_migrate;
use tokio::sync::Notify;

use crate::support::db::{Backend, TestDb};
use crate::support::events::accept_event;
use crate::support::fake_aws::FakeAws;

const PROTECTED: &[(&str, &str)] = &[("auto-restart-protection", "yes")];

fn settings(owner: &str) -> EngineSettings {
    EngineSettings {
        policy: Policy {
            tag_key: "auto-restart-protection".into(),
            tag_value: "yes".into(),
            poll_interval: Duration::from_millis(200),
            start_grace: Duration::from_secs(60),
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
        },
        max_duration: Duration::from_secs(600),
        dry_run: false,
        state_machine_arn: None,
        notify_url: None,
        lease: Duration::from_secs(30),
        owner: owner.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_postgres_never_double_claim() {
    let Some(db) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let store = connect_and_migrate(&DatabaseConfig {
        database_url: db.url.parse().unwrap(),
        db_max_connections: 16,
    })
    .await
    .unwrap();
    let aws = Arc::new(FakeAws::default());
    let arns: Vec<String> = (0..300)
        .map(|i| format!("arn:aws:rds:us-east-1:123456789012:db:db-{i}"))
        .collect();
    for arn in &arns {
        aws.add(arn, "available", PROTECTED);
        accept_event(&store, arn).await;
    }

    let engines: Vec<Arc<Engine>> = ["replica-a", "replica-b"]
        .into_iter()
        .map(|owner| {
            Engine::new(
                store.clone(),
                aws.clone(),
                settings(owner),
                Arc::new(SystemClock),
                Arc::new(Notify::new()),
            )
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (a, b) = tokio::join!(engines[0].run_round(), engines[1].run_round());
        a.unwrap();
        b.unwrap();
        let unfinished = db
            .count("SELECT COUNT(*) FROM executions WHERE status IN ('pending', 'running')")
            .await;
        if unfinished == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{unfinished} executions unfinished"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for arn in &arns {
        assert_eq!(aws.calls("ListTagsForResource", arn), 1, "{arn}");
        assert_eq!(aws.calls("Stop", arn), 1, "{arn}");
        assert_eq!(aws.calls("Describe", arn), 2, "{arn}");
        assert_eq!(aws.status(arn), "stopped");
    }
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM executions WHERE status = 'succeeded' AND outcome = 'stopped'"
        )
        .await,
        300
    );
    // Four distinct steps each: tags, available, stop, stopped.
    assert_eq!(db.count("SELECT COUNT(*) FROM execution_steps").await, 1200);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM execution_steps WHERE repeats <> 1")
            .await,
        0
    );
    let leased = db
        .count("SELECT COUNT(*) FROM executions WHERE lease_owner IS NOT NULL")
        .await;
    assert_eq!(leased, 0, "leases are released when a step commits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_taken_over_and_the_old_owner_is_fenced_out() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let Some(db) = TestDb::create(backend).await else {
            continue;
        };
        let store = connect_and_migrate(&DatabaseConfig {
            database_url: db.url.parse().unwrap(),
            db_max_connections: 4,
        })
        .await
        .unwrap();
        let arn = "arn:aws:rds:us-east-1:123456789012:db:orders";
        let id = accept_event(&store, arn).await;

        let t0 = Utc::now();
        let lease = Duration::from_secs(30);
        let first = store.claim_jobs("a", t0, lease, 10).await.unwrap();
        assert_eq!(first.len(), 1);
        assert!(
            store
                .claim_jobs("b", t0, lease, 10)
                .await
                .unwrap()
                .is_empty(),
            "{backend:?}: leased job claimed twice"
        );

        // "a" vanished; after its lease, "b" takes over.
        let later = t0 + chrono::Duration::seconds(31);
        let second = store.claim_jobs("b", later, lease, 10).await.unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].id, id);

        let step = restop::store::StepRecord {
            at: later,
            step: "check_protection".into(),
            rds_status: None,
            action: "test".into(),
            error: None,
        };
        let update = restop::store::JobUpdate {
            status: restop::engine::decide::Status::Running,
            outcome: None,
            reason: None,
            phase: restop::engine::decide::Phase::WaitAvailable,
            retries: 0,
            sfn_execution_arn: None,
            finished_at: None,
            notify_state: None,
            notify_attempts: 0,
            notify_error: None,
            next_run_at: Some(later),
        };
        assert!(
            !store
                .complete_step(&first[0], &step, &update)
                .await
                .unwrap(),
            "{backend:?}: stale owner committed"
        );
        assert!(
            store
                .complete_step(&second[0], &step, &update)
                .await
                .unwrap()
        );
        assert_eq!(db.count("SELECT COUNT(*) FROM execution_steps").await, 1);
    }
}
