//! Deliveries under attack: floods of the unauthenticated routes and slow uploads must not
//! keep a genuine delivery from being stored promptly.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::sns::SnsStub;
use crate::support::{TestApp, config};

on_both_backends!(
    scrapes_and_probes_do_not_starve_sns,
    slow_uploads_do_not_hold_the_delivery_slots,
    open_connections_are_capped,
);

/// Enough executions that the gauges' scan takes a while, as it does in a kept history.
const SEEDED_EXECUTIONS: u32 = 40_000;
/// Concurrent clients of `/metrics` and `/readyz`.
const FLOODERS: usize = 96;
/// Deliveries timed without and with the flood.
const DELIVERIES: usize = 20;
/// What "stored promptly" means here: far below SNS's 15 s, far above a quiet delivery.
const PROMPT: Duration = Duration::from_secs(2);

async fn scrapes_and_probes_do_not_starve_sns(db: TestDb) {
    let stub = SnsStub::start().await;
    let mut cfg = config(&db.url, Some(&stub.host));
    // A small pool, so that what the flood holds is plain to see.
    cfg.database.db_max_connections = 4;
    let app = Arc::new(TestApp::spawn(cfg).await);
    db.execute(&format!(
        "INSERT INTO executions (id, resource_type, resource_id, resource_arn, region, \
         account_id, trigger, mode, dry_run, skip_tag_check, status, outcome, phase, \
         event_at, created_at, updated_at, deadline_at) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {SEEDED_EXECUTIONS}) \
         SELECT 'seed-' || i, 'db-instance', 'db' || i, 'arn:aws:rds:us-east-1:123456789012:db:db' || i, \
         'us-east-1', '123456789012', 'sns', 'internal', FALSE, FALSE, 'succeeded', \
         CASE WHEN i % 3 = 0 THEN 'already_stopped' ELSE 'stopped' END, 'done', \
         '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', \
         '2026-01-01T01:00:00Z' FROM n"
    ))
    .await;

    let quiet = deliver(&app, &stub, "quiet", &db).await;

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..FLOODERS)
        .map(|i| {
            let (app, stop, answered) = (app.clone(), stop.clone(), answered.clone());
            let path = if i % 2 == 0 { "/metrics" } else { "/readyz" };
            tokio::spawn(async move {
                let url = format!("{}{path}", app.base);
                while !stop.load(Ordering::Relaxed) {
                    if app.client.get(&url).send().await.is_ok() {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Every flooder has a request in flight before the timed deliveries begin.
    while answered.load(Ordering::Relaxed) < FLOODERS {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let flooded = deliver(&app, &stub, "flooded", &db).await;
    stop.store(true, Ordering::Relaxed);
    for task in flood {
        task.await.unwrap();
    }
    let served = answered.load(Ordering::Relaxed);

    println!(
        "POST /sns latency over {DELIVERIES} deliveries: quiet p50 {:?} p99 {:?}; \
         with {FLOODERS} clients flooding /metrics and /readyz ({served} answers) \
         p50 {:?} p99 {:?}",
        quiet.p50, quiet.p99, flooded.p50, flooded.p99
    );
    assert!(
        flooded.p99 < PROMPT,
        "a delivery took {:?} under the flood",
        flooded.p99
    );
    // The flood was served too, not just refused or stalled.
    assert!(served > FLOODERS, "{served}");
    assert!(app.metrics().await.contains("restop_executions{"));
}

struct Latency {
    p50: Duration,
    p99: Duration,
}

/// Posts `DELIVERIES` signed notifications one after the other; each must be answered 200
/// and be stored.
async fn deliver(app: &TestApp, stub: &SnsStub, label: &str, db: &TestDb) -> Latency {
    let mut took = Vec::new();
    for i in 0..DELIVERIES {
        let msg = stub.notification(&format!("{label} {i}"));
        let started = Instant::now();
        let (status, body) = app.post_sns(&msg).await;
        took.push(started.elapsed());
        assert_eq!(status, 200, "{label} delivery {i}: {body}");
        let id = msg["MessageId"].as_str().unwrap();
        assert!(
            db.message_disposition(id).await.is_some(),
            "{id} not stored"
        );
    }
    took.sort();
    Latency {
        p50: took[took.len() / 2],
        p99: took[(took.len() * 99 / 100).min(took.len() - 1)],
    }
}

/// Clients that send a body one byte at a time, more of them than there are delivery
/// slots: a genuine delivery is still stored at once, and the slow ones are cut off.
async fn slow_uploads_do_not_hold_the_delivery_slots(db: TestDb) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stub = SnsStub::start().await;
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.sns.sns_concurrency = 2;
    let app = TestApp::spawn(cfg).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let slow: Vec<_> = (0..8)
        .map(|_| {
            let addr = addr.clone();
            tokio::spawn(async move {
                let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
                let head =
                    format!("POST /sns HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 10000\r\n\r\n");
                stream.write_all(head.as_bytes()).await.unwrap();
                let started = Instant::now();
                // One byte every 100 ms until restop stops listening (or 12 s have passed).
                while started.elapsed() < Duration::from_secs(12) {
                    if stream.write_all(b" ").await.is_err() {
                        break;
                    }
                    let mut answer = [0u8; 12];
                    match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut answer))
                        .await
                    {
                        Ok(Ok(n)) if n > 0 => {
                            return (
                                started.elapsed(),
                                String::from_utf8_lossy(&answer[..n]).into_owned(),
                            );
                        }
                        Ok(_) => break,
                        Err(_) => {}
                    }
                }
                (started.elapsed(), String::new())
            })
        })
        .collect();
    // The slow uploads are all under way.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let msg = stub.notification("genuine");
    let started = Instant::now();
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
    let id = msg["MessageId"].as_str().unwrap();
    assert!(db.message_disposition(id).await.is_some());
    for upload in slow {
        let (took, answer) = upload.await.unwrap();
        // Cut off after the body read timeout (5 s), long before the request deadline.
        assert!(
            took < Duration::from_secs(8),
            "a slow upload lasted {took:?}"
        );
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
            "{answer}"
        );
    }
}

/// RESTOP_MAX_CONNECTIONS: idle connections beyond the cap are not served until one of
/// the open ones closes.
async fn open_connections_are_capped(db: TestDb) {
    let mut cfg = config(&db.url, None);
    cfg.max_connections = 3;
    let app = TestApp::spawn(cfg).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let url = format!("{}/healthz", app.base);
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    let fresh = || {
        reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap()
    };
    assert!(
        fresh().get(&url).send().await.is_err(),
        "served beyond the cap"
    );
    idle.pop();
    let mut served = false;
    for _ in 0..50 {
        if fresh()
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "not served after a connection closed");
}
