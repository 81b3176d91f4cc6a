//! Several engines sharing one Postgres: every job is worked by exactly one of them at a
//! time, and a job whose owner vanished is taken over after its lease.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use restop::aws::Aws;
use restop::clock::SystemClock;
use restop::execution::{Phase, Status};
use restop::store::{Claim, JobUpdate, NewStep};
use restop::{App, Deps};

use crate::support::config;
use crate::support::db::{Backend, TestDb};
use crate::support::events::accept_event;
use crate::support::fake_aws::FakeAws;

const PROTECTED: &[(&str, &str)] = &[("auto-restart-protection", "yes")];

/// A replica as `restop serve` builds it, with its engine on (not running: the tests
/// drive its rounds).
async fn replica(db: &TestDb, aws: Arc<dyn Aws>) -> App {
    let mut config = config(&db.url, None);
    config.engine.engine_enabled = true;
    config.engine.poll_interval = Duration::from_secs(1);
    config.engine.start_grace = Duration::from_secs(60);
    config.engine.max_duration = Duration::from_secs(600);
    config.engine.job_lease = Duration::from_secs(30);
    let deps = Deps {
        clock: Arc::new(SystemClock),
        aws: Some(aws),
    };
    App::build(config, deps).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_postgres_never_double_claim() {
    let Some(db) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let aws = Arc::new(FakeAws::default());
    let replicas = [
        replica(&db, aws.clone()).await,
        replica(&db, aws.clone()).await,
    ];
    let store = replicas[0].store().clone();
    let arns: Vec<String> = (0..300)
        .map(|i| format!("arn:aws:rds:us-east-1:123456789012:db:db-{i}"))
        .collect();
    for arn in &arns {
        aws.add(arn, "available", PROTECTED);
        accept_event(&store, arn).await;
    }

    let engines: Vec<_> = replicas.iter().map(|r| r.engine().unwrap()).collect();
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
        // The tag is read when the run starts and again right before the stop.
        assert_eq!(aws.calls("ListTagsForResource", arn), 2, "{arn}");
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
    // Five distinct steps each: tags, available, tags again, stop, stopped.
    assert_eq!(db.count("SELECT COUNT(*) FROM execution_steps").await, 1500);
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
        let app = replica(&db, Arc::new(FakeAws::default())).await;
        let store = app.store();
        let arn = "arn:aws:rds:us-east-1:123456789012:db:orders";
        let id = accept_event(store, arn).await;

        let t0 = Utc::now();
        let lease = Duration::from_secs(30);
        let first = store
            .claim_jobs("a", t0, lease, Claim::Steps, 10)
            .await
            .unwrap();
        assert_eq!(first.len(), 1);
        assert!(
            store
                .claim_jobs("b", t0, lease, Claim::Steps, 10)
                .await
                .unwrap()
                .is_empty(),
            "{backend:?}: leased job claimed twice"
        );

        // "a" vanished; after its lease, "b" takes over.
        let later = t0 + chrono::Duration::seconds(31);
        let second = store
            .claim_jobs("b", later, lease, Claim::Steps, 10)
            .await
            .unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].id, id);

        let step = NewStep {
            at: later,
            step: "check_protection".into(),
            rds_status: None,
            action: "test".into(),
            error: None,
        };
        let update = JobUpdate {
            status: Status::Running,
            outcome: None,
            reason: None,
            phase: Phase::WaitAvailable,
            retries: 0,
            stop_refusals: 0,
            wake_polls: 0,
            sfn_execution_arn: None,
            finished_at: None,
            notify_state: None,
            notify_attempts: 0,
            notify_error: None,
            next_run_at: Some(later),
            sizing: None,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_steps_never_complete_is_given_up() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let Some(db) = TestDb::create(backend).await else {
            continue;
        };
        let now = Utc::now();
        let clock = Arc::new(restop::clock::ManualClock::new(now));
        let aws = Arc::new(FakeAws::default());
        let mut config = config(&db.url, None);
        config.engine.engine_enabled = true;
        let deps = Deps {
            clock: clock.clone(),
            aws: Some(aws.clone()),
        };
        let app = App::build(config, deps).await.unwrap();
        let arn = "arn:aws:rds:us-east-1:123456789012:db:crashy";
        aws.add(arn, "available", PROTECTED);
        let id = accept_event(app.store(), arn).await;

        // Five owners claim it and vanish without completing a step (a step that kills
        // its process every time).
        let lease = Duration::from_secs(1);
        for i in 0..5 {
            let at = now + chrono::Duration::seconds(1 + 2 * i);
            let claimed = app
                .store()
                .claim_jobs("doomed", at, lease, Claim::Steps, 10)
                .await
                .unwrap();
            assert_eq!(claimed.len(), 1, "{backend:?}: claim {i}");
        }
        clock.set(now + chrono::Duration::seconds(60));
        app.engine().unwrap().run_round().await.unwrap();

        let (execution, steps) = app.store().get_execution(&id).await.unwrap().unwrap();
        assert_eq!(execution.status, Status::Failed, "{backend:?}");
        assert_eq!(execution.outcome, Some(restop::execution::Outcome::Error));
        let reason = execution.reason.unwrap();
        assert!(
            reason.contains("claimed 5 times without completing a step"),
            "{reason}"
        );
        assert_eq!(steps.last().unwrap().action, "give up");
        assert_eq!(
            aws.calls("ListTagsForResource", arn),
            0,
            "no AWS call for it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_this_version_cannot_read_stops_no_other_job() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let Some(db) = TestDb::create(backend).await else {
            continue;
        };
        let aws = Arc::new(FakeAws::default());
        let app = replica(&db, aws.clone()).await;
        let good = "arn:aws:rds:us-east-1:123456789012:db:good";
        let odd = "arn:aws:rds:us-east-1:123456789012:db:odd";
        aws.add(good, "starting", PROTECTED);
        aws.add(odd, "starting", PROTECTED);
        let good_id = accept_event(app.store(), good).await;
        let odd_id = accept_event(app.store(), odd).await;
        // A status a newer version wrote, say.
        db.execute(&format!(
            "UPDATE executions SET status = 'paused' WHERE id = '{odd_id}'"
        ))
        .await;
        app.engine().unwrap().run_round().await.unwrap();
        assert!(
            aws.calls("ListTagsForResource", good) >= 1,
            "{backend:?}: the readable job was not worked"
        );
        assert_eq!(aws.calls("ListTagsForResource", odd), 0, "{backend:?}");
        let steps =
            |id: &str| format!("SELECT COUNT(*) FROM execution_steps WHERE execution_id = '{id}'");
        assert!(db.count(&steps(&good_id)).await >= 1);
        assert_eq!(db.count(&steps(&odd_id)).await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_honoured_while_every_round_is_full() {
    let Some(db) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let aws = Arc::new(FakeAws::default());
    let app = replica(&db, aws.clone()).await;
    for i in 0..1000 {
        let arn = format!("arn:aws:rds:us-east-1:123456789012:db:busy-{i}");
        aws.add(&arn, "starting", PROTECTED);
        accept_event(app.store(), &arn).await;
    }
    // Slow AWS and a 1 s poll: more jobs fall due each second than the engine can work,
    // so every round is full.
    aws.set_latency(Duration::from_millis(200));
    let stop = tokio_util::sync::CancellationToken::new();
    let engine = tokio::spawn(app.engine().unwrap().clone().run(stop.clone()));
    while db.count("SELECT COUNT(*) FROM execution_steps").await < 200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), engine)
        .await
        .expect("the engine stops between rounds")
        .unwrap();
}

/// A replica that stops abandons the steps it claimed (see `ops::cli`'s SIGTERM test) and
/// gives them back: a peer takes them at once, not after the lease, and the abandoned claim
/// does not count towards giving the job up (five in a row would end it `failed`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_abandoned_at_shutdown_are_given_back() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let Some(db) = TestDb::create(backend).await else {
            continue;
        };
        let app = replica(&db, Arc::new(FakeAws::default())).await;
        let store = app.store();
        let id = accept_event(store, "arn:aws:rds:us-east-1:123456789012:db:orders").await;
        let (now, lease) = (Utc::now(), Duration::from_secs(3600));
        for _ in 0..6 {
            let claimed = store
                .claim_jobs("stopping", now, lease, Claim::Steps, 10)
                .await
                .unwrap();
            assert_eq!(claimed.len(), 1, "{backend:?}: given back, due at once");
            assert_eq!(
                claimed[0].attempts, 1,
                "{backend:?}: abandoned claims counted"
            );
            assert_eq!(store.release_jobs("stopping").await.unwrap(), 1);
        }
        let unclaimed = db
            .count(&format!(
                "SELECT COUNT(*) FROM executions WHERE id = '{id}' AND attempts = 0 \
                 AND lease_owner IS NULL"
            ))
            .await;
        assert_eq!(unclaimed, 1, "{backend:?}");
    }
}
