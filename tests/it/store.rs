//! The store on its own, on both backends: retention, and the indexes behind the /v1
//! filters.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use restop::execution::{Disposition, MessageType};
use restop::store::{NewMessage, Recorded, Recording, Store, connect_and_migrate};

use crate::on_both_backends;
use crate::support::db::{Backend, TestDb};
use crate::support::events::accept_event;

on_both_backends!(
    retention_deletes_old_ignored_messages_and_finished_executions,
    the_v1_filters_are_served_by_indexes,
    a_wake_up_does_not_cut_short_the_wait_after_a_refused_stop,
    a_sweep_given_back_at_shutdown_is_due_at_once,
    sweeps_of_thousands_of_accounts_and_regions_are_claimed_and_kept,
    a_batch_of_notifications_and_wake_ups_is_committed_whole,
    an_instance_start_is_left_to_its_caller_while_a_cluster_waits_nearby,
);

async fn store(db: &TestDb) -> Arc<dyn Store> {
    connect_and_migrate(&restop::config::DatabaseConfig {
        database_url: db.url.parse().unwrap(),
        db_max_connections: 2,
    })
    .await
    .unwrap()
}

fn message(disposition: Disposition, received_at: DateTime<Utc>) -> NewMessage {
    NewMessage {
        message_id: uuid::Uuid::new_v4().to_string(),
        message_type: MessageType::Notification,
        topic_arn: "arn:aws:sns:us-east-1:123456789012:rds-events".into(),
        subject: None,
        sent_at: received_at,
        received_at,
        signature_version: "2".into(),
        disposition,
        disposition_reason: None,
        body: "{}".into(),
        event: None,
        execution: None,
        execution_id: None,
    }
}

async fn retention_deletes_old_ignored_messages_and_finished_executions(db: TestDb) {
    let store = store(&db).await;
    let now = Utc::now();
    let old = now - chrono::Duration::days(100);
    let old_ignored = message(Disposition::Ignored, old);
    let new_ignored = message(Disposition::Ignored, now);
    let plain = |message: &NewMessage| Recording {
        message: message.clone(),
        wake: None,
    };
    store
        .record_batch(&[plain(&old_ignored), plain(&new_ignored)])
        .await
        .unwrap();
    // An execution that ended 100 days ago, and its accepted message; one still active.
    let finished = accept_event(&store, "arn:aws:rds:us-east-1:123456789012:db:long-ago").await;
    store.cancel_execution(&finished, old, false).await.unwrap();
    let active = accept_event(&store, "arn:aws:rds:us-east-1:123456789012:db:busy").await;

    let clock = restop::clock::ManualClock::new(now);
    let deleted = restop::retention::sweep(&*store, &clock, Duration::from_secs(90 * 86_400))
        .await
        .unwrap();
    assert_eq!(deleted, 2, "the old ignored message and the old execution");
    assert_eq!(db.message_disposition(&old_ignored.message_id).await, None);
    assert!(
        db.message_disposition(&new_ignored.message_id)
            .await
            .is_some()
    );
    assert!(store.get_execution(&finished).await.unwrap().is_none());
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM execution_steps WHERE execution_id = '{finished}'"
        ))
        .await,
        0
    );
    assert!(store.get_execution(&active).await.unwrap().is_some());
    // The accepted messages stay, unlinked from what was deleted.
    assert_eq!(
        db.count("SELECT COUNT(*) FROM sns_messages WHERE disposition = 'accepted'")
            .await,
        2
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM sns_messages WHERE execution_id IS NOT NULL")
            .await,
        1
    );
    // Nothing is left to delete.
    let again = restop::retention::sweep(&*store, &clock, Duration::from_secs(90 * 86_400))
        .await
        .unwrap();
    assert_eq!(again, 0);
}

/// The query plan of `sql` as text, with sequential scans discouraged on Postgres so that
/// a tiny test table still shows which index the filter would use.
async fn plan(db: &TestDb, sql: &str) -> String {
    let rows: Vec<String> = match db.backend {
        Backend::Postgres => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&db.url)
                .await
                .unwrap();
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut *conn)
                .await
                .unwrap();
            sqlx::query_scalar(&format!("EXPLAIN {sql}"))
                .fetch_all(&mut *conn)
                .await
                .unwrap()
        }
        Backend::Sqlite => {
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .fetch_all(db.sqlite_pool())
                    .await
                    .unwrap();
            rows.into_iter().map(|(_, _, _, detail)| detail).collect()
        }
    };
    rows.join("\n")
}

async fn the_v1_filters_are_served_by_indexes(db: TestDb) {
    store(&db).await;
    let page = "ORDER BY received_at DESC, message_id DESC LIMIT 51";
    let executions = "ORDER BY created_at DESC, id DESC LIMIT 51";
    let cases = [
        (
            format!("SELECT * FROM sns_messages WHERE disposition = 'ignored' {page}"),
            "sns_messages_disposition",
        ),
        (
            format!("SELECT * FROM sns_messages WHERE topic_arn = 't' {page}"),
            "sns_messages_topic",
        ),
        (
            format!("SELECT * FROM sns_messages WHERE source_id = 'orders' {page}"),
            "sns_messages_source_id",
        ),
        (
            format!("SELECT * FROM sns_messages WHERE source_arn = 'a' {page}"),
            "sns_messages_source_arn",
        ),
        (
            format!("SELECT * FROM executions WHERE status = 'failed' {executions}"),
            "executions_status",
        ),
        (
            format!("SELECT * FROM executions WHERE outcome = 'stopped' {executions}"),
            "executions_outcome",
        ),
        (
            format!("SELECT * FROM executions WHERE trigger = 'manual' {executions}"),
            "executions_trigger",
        ),
        (
            format!("SELECT * FROM executions WHERE resource_id = 'orders' {executions}"),
            "executions_resource_id",
        ),
    ];
    for (sql, index) in cases {
        let plan = plan(&db, &sql).await;
        eprintln!("{:?}: {sql}\n{plan}\n", db.backend);
        assert!(plan.contains(index), "{sql} does not use {index}:\n{plan}");
        assert!(
            !plan.contains("Seq Scan")
                && !plan.contains("SCAN sns_messages")
                && !plan.contains("SCAN executions"),
            "{sql} scans the table:\n{plan}"
        );
    }
}

/// Each member instance of an Aurora cluster announces its start: if those wake-ups cut
/// short the wait after RDS refused a stop, the cluster's three refusals could all come
/// within minutes and it would run for a week as `not_stoppable` (review L6).
async fn a_wake_up_does_not_cut_short_the_wait_after_a_refused_stop(db: TestDb) {
    let store = store(&db).await;
    let arn = "arn:aws:rds:us-east-1:123456789012:cluster:members";
    let id = accept_event(&store, arn).await;
    let waiting = |refusals: u32, phase: &str| {
        format!(
            "UPDATE executions SET status = 'running', phase = '{phase}', \
             stop_refusals = {refusals} WHERE id = '{id}'"
        )
    };
    db.execute(&waiting(0, "wait_available")).await;
    assert_eq!(
        store.wake(arn, Utc::now()).await.unwrap().as_deref(),
        Some(id.as_str())
    );
    db.execute(&waiting(1, "wait_available")).await;
    assert_eq!(
        store.wake(arn, Utc::now()).await.unwrap(),
        None,
        "woken after a refusal"
    );
    // Once the stop was accepted, a stop or start event may still end the wait at once.
    db.execute(&waiting(1, "wait_stopped")).await;
    assert_eq!(
        store.wake(arn, Utc::now()).await.unwrap().as_deref(),
        Some(id.as_str())
    );
}

/// A sweep cut short by shutdown is given back: the next restop (or a peer) sweeps that
/// account and region at once, not after the lease of the restop that stopped.
async fn a_sweep_given_back_at_shutdown_is_due_at_once(db: TestDb) {
    let store = store(&db).await;
    let places = vec![("123456789012".to_owned(), "us-east-1".to_owned())];
    let (now, lease) = (Utc::now(), Duration::from_secs(3600));
    store.ensure_sweeps(&places, now).await.unwrap();
    let claimed = store
        .claim_sweeps("stopping", &places, now, lease, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let claim = |owner| store.claim_sweeps(owner, &places, now, lease, 10);
    assert!(
        claim("next").await.unwrap().is_empty(),
        "leased to the first"
    );
    store.release_sweeps("stopping").await.unwrap();
    assert_eq!(claim("next").await.unwrap().len(), 1, "given back");
    // What the first one was doing can no longer complete over the new claim.
    let stale = store
        .complete_sweep(&claimed[0], Ok(now), now + lease, now)
        .await
        .unwrap();
    assert!(!stale, "a sweep given back completed anyway");
}

/// One restop for many accounts: 2,000 accounts in 20 regions are 40,000 places, more
/// than either backend takes as parameters of one statement (SQLite 32,766, Postgres
/// 65,535 for their two columns). The catch-up still claims the due sweeps among them and
/// keeps the sweeps of every place watched.
async fn sweeps_of_thousands_of_accounts_and_regions_are_claimed_and_kept(db: TestDb) {
    let store = store(&db).await;
    let places: Vec<(String, String)> = (0..2_000u64)
        .flat_map(|account| {
            (0..20).map(move |region| {
                (
                    format!("{:012}", 200_000_000_000 + account),
                    format!("xx-test-{region}"),
                )
            })
        })
        .collect();
    let (now, lease) = (Utc::now(), Duration::from_secs(3600));
    let due = &places[places.len() - 3..];
    store.ensure_sweeps(due, now).await.unwrap();
    let retired = store.retire_sweeps(&places).await.unwrap();
    assert!(retired.is_empty(), "retired watched places: {retired:?}");
    let mut claimed: Vec<(String, String)> = store
        .claim_sweeps("many", &places, now, lease, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|sweep| (sweep.account, sweep.region))
        .collect();
    claimed.sort();
    assert_eq!(claimed, due);
    // A place no longer watched is neither claimed nor kept.
    store.release_sweeps("many").await.unwrap();
    let fewer = &places[..places.len() - 1];
    assert_eq!(
        store
            .claim_sweeps("many", fewer, now, lease, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store.retire_sweeps(fewer).await.unwrap(),
        vec![places[places.len() - 1].clone()]
    );
}

/// A "started" event for `arn`, as the SNS door hands it to the intake.
fn wake_up(arn: &str) -> Recording {
    let mut message = message(Disposition::Ignored, Utc::now());
    message.disposition_reason = Some("no execution waits for this database".into());
    Recording {
        message,
        wake: Some(arn.parse().unwrap()),
    }
}

fn plain(message: NewMessage) -> Recording {
    Recording {
        message,
        wake: None,
    }
}

async fn a_batch_of_notifications_and_wake_ups_is_committed_whole(db: TestDb) {
    let store = store(&db).await;
    let waiting = "arn:aws:rds:us-east-1:123456789012:db:waiting";
    let id = accept_event(&store, waiting).await;
    db.execute(&format!(
        "UPDATE executions SET status = 'running', phase = 'wait_stopped' WHERE id = '{id}'"
    ))
    .await;
    // More rows than one SQLite statement holds, a wake-up every fourth, and at the end a
    // second delivery of the first message.
    let mut batch: Vec<Recording> = (0..40)
        .map(|i| match i {
            3 => wake_up(waiting),
            i if i % 4 == 3 => wake_up(&format!("arn:aws:rds:us-east-1:123456789012:db:idle-{i}")),
            _ => plain(message(Disposition::Ignored, Utc::now())),
        })
        .collect();
    batch.push(batch[0].clone());
    let answers = store.record_batch(&batch).await.unwrap();

    assert_eq!(answers.len(), batch.len());
    for (i, answer) in answers.iter().enumerate() {
        let expected = match i {
            3 => Recorded::New {
                woken: Some(id.clone()),
            },
            40 => Recorded::Duplicate {
                disposition: Disposition::Ignored,
                woken: None,
            },
            _ => Recorded::New { woken: None },
        };
        assert_eq!(answer, &expected, "answer {i}");
    }
    // All committed: the accepted message, 40 of the batch, the woken execution.
    assert_eq!(db.message_count().await, 41);
    assert_eq!(
        db.message_disposition(&batch[3].message.message_id)
            .await
            .as_deref(),
        Some("wakeup")
    );
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM sns_messages WHERE execution_id = '{id}' AND disposition = 'wakeup'"
        ))
        .await,
        1
    );
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM sns_messages WHERE disposition = 'ignored' \
             AND disposition_reason = 'no execution waits for this database'"
        )
        .await,
        9,
        "the wake-ups that found nothing waiting"
    );
    assert_eq!(
        db.count(&format!(
            "SELECT CAST(wakes AS BIGINT) FROM executions WHERE id = '{id}'"
        ))
        .await,
        1
    );
    // A batch of one, after one of 41: the same answers.
    let again = store.record_batch(&[batch[3].clone()]).await.unwrap();
    assert_eq!(
        again,
        vec![Recorded::Duplicate {
            disposition: Disposition::Wakeup,
            woken: Some(id.clone()),
        }]
    );
    store.end_of_batches().await;
}

async fn an_instance_start_is_left_to_its_caller_while_a_cluster_waits_nearby(db: TestDb) {
    let store = store(&db).await;
    let cluster = accept_event(&store, "arn:aws:rds:us-east-1:123456789012:cluster:members").await;
    db.execute(&format!(
        "UPDATE executions SET status = 'running', phase = 'wait_available' WHERE id = '{cluster}'"
    ))
    .await;
    let batch = [
        plain(message(Disposition::Ignored, Utc::now())),
        wake_up("arn:aws:rds:us-east-1:123456789012:db:member-1"),
        wake_up("arn:aws:rds:eu-west-1:123456789012:db:elsewhere"),
    ];
    let answers = store.record_batch(&batch).await.unwrap();
    assert_eq!(
        answers,
        vec![
            Recorded::New { woken: None },
            Recorded::Deferred,
            Recorded::New { woken: None },
        ]
    );
    assert_eq!(
        db.message_disposition(&batch[1].message.message_id).await,
        None
    );
    assert!(
        db.message_disposition(&batch[0].message.message_id)
            .await
            .is_some()
    );
    assert!(
        db.message_disposition(&batch[2].message.message_id)
            .await
            .is_some()
    );
    assert_eq!(
        db.count(&format!(
            "SELECT CAST(wakes AS BIGINT) FROM executions WHERE id = '{cluster}'"
        ))
        .await,
        0,
        "a member's start wakes its cluster only once RDS says it is a member"
    );
}
