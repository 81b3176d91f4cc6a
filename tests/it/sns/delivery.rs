//! The door itself: basic auth, body size and shape, a database that is down, a full
//! door, and error answers in the shared shape.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::start;
use crate::on_both_backends;
use crate::support::db::{Backend, TestDb};
use crate::support::proxy::CuttableProxy;
use crate::support::sns::SnsStub;
use crate::support::{TestApp, config, error_code};

on_both_backends!(
    basic_auth_is_required_when_configured,
    oversized_malformed_and_raw_bodies_are_refused,
    database_down_answers_503_and_loses_nothing,
    long_topic_arns_and_bad_paths_answer_the_error_shape,
    a_full_sns_door_answers_503_so_sns_retries,
);

async fn basic_auth_is_required_when_configured(db: TestDb) {
    let stub = SnsStub::start().await;
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.sns.sns_basic_auth = Some("sns:s3cret-pass".parse().unwrap());
    let app = TestApp::spawn(cfg).await;
    let msg = stub.notification("x").to_string();
    let url = format!("{}/sns", app.base);

    let response = app
        .client
        .post(&url)
        .body(msg.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(error_code(&body), "unauthorized");

    for (user, password) in [
        ("sns", "wrong"),
        ("other", "s3cret-pass"),
        ("sns", "s3cret-pass-"),
    ] {
        let response = app
            .client
            .post(&url)
            .basic_auth(user, Some(password))
            .body(msg.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{user}:{password}");
    }
    assert_eq!(db.message_count().await, 0);

    let response = app
        .client
        .post(&url)
        .basic_auth("sns", Some("s3cret-pass"))
        .body(msg)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(db.message_count().await, 1);
}

async fn oversized_malformed_and_raw_bodies_are_refused(db: TestDb) {
    let (stub, app) = start(&db).await;
    let (status, body) = post_announcing_length(&app, 3 * 1024 * 1024).await;
    assert_eq!((status, error_code(&body)), (413, "body_too_large"));
    let (status, body) = post_chunked(&app, 3 * 1024 * 1024).await;
    assert_eq!((status, error_code(&body)), (413, "body_too_large"));

    let signed = stub.notification("x").to_string();
    let malformed = [
        "".to_owned(),
        "not json".to_owned(),
        "[]".to_owned(),
        signed[..signed.len() - 1].to_owned(),
        signed.replacen("{", "{\"Type\":\"Notification\",", 1),
        signed.replacen("\"Message\":\"x\"", "\"Message\":7", 1),
        json!({"Type": "Notification"}).to_string(),
    ];
    for body in malformed {
        let (status, answer) = app.post_raw(body.clone(), &[]).await;
        assert_eq!(
            (status, error_code(&answer)),
            (400, "malformed_message"),
            "{body}"
        );
    }

    let (status, body) = app
        .post_raw(signed.clone(), &[("x-amz-sns-rawdelivery", "true")])
        .await;
    assert_eq!((status, error_code(&body)), (400, "raw_delivery"));
    assert_eq!(db.message_count().await, 0);

    // Content-Type does not matter.
    let (status, _) = app
        .post_raw(signed, &[("content-type", "application/xml")])
        .await;
    assert_eq!(status, 200);
}

async fn database_down_answers_503_and_loses_nothing(db: TestDb) {
    let stub = SnsStub::start().await;
    // Postgres goes through a proxy that can cut the line; SQLite is held locked by another writer.
    let proxy = match db.backend {
        Backend::Postgres => {
            let url = url::Url::parse(&db.url).unwrap();
            let upstream = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
            Some(CuttableProxy::start(upstream).await)
        }
        Backend::Sqlite => None,
    };
    let app_url = match &proxy {
        Some(proxy) => {
            let mut url = url::Url::parse(&db.url).unwrap();
            let (host, port) = proxy.addr.split_once(':').unwrap();
            url.set_host(Some(host)).unwrap();
            url.set_port(Some(port.parse().unwrap())).unwrap();
            url.to_string()
        }
        None => db.url.clone(),
    };
    let app = TestApp::spawn(config(&app_url, Some(&stub.host))).await;
    let first = stub.rds_notification("RDS-EVENT-0154", "db-instance", "a");
    assert_eq!(app.post_sns(&first).await.0, 200);

    let mut lock = None;
    match &proxy {
        Some(proxy) => proxy.cut(),
        None => {
            let mut tx = db.sqlite_pool().begin().await.unwrap();
            sqlx::query("INSERT INTO sns_subscriptions (topic_arn, status, last_message_id, first_seen_at, updated_at) VALUES ('lock', 'x', 'x', 'x', 'x')")
                .execute(&mut *tx)
                .await
                .unwrap();
            lock = Some(tx);
        }
    }
    let msg = stub.rds_notification("RDS-EVENT-0154", "db-instance", "b");
    let started = Instant::now();
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!(
        (status, error_code(&body)),
        (503, "storage_unavailable"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    if proxy.is_some() {
        assert_eq!(ready.status(), 503);
    }

    match &proxy {
        Some(proxy) => proxy.restore(),
        None => lock.take().unwrap().rollback().await.unwrap(),
    }
    // SNS retries the same message until it is stored, once. A pooled connection that
    // died in the outage fails the one statement given it (restop does not ping before
    // each use), so a retry or two may still hear 503.
    let mut retries = 0;
    let (status, body) = loop {
        let (status, body) = app.post_sns(&msg).await;
        if status != 503 || retries == 4 {
            break (status, body);
        }
        retries += 1;
    };
    assert_eq!((status, &body["duplicate"]), (200, &json!(false)), "{body}");
    let id = msg["MessageId"].as_str().unwrap();
    assert_eq!(
        db.message_disposition(id).await.as_deref(),
        Some("accepted")
    );
    assert_eq!(db.message_count().await, 2);
    let ready = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

/// Announces a body of `length` bytes but sends only its start, the way a client does that
/// has not finished uploading: restop must answer from the announced length alone. (A client
/// that keeps writing after the answer sees the connection close, so reqwest cannot be used.)
async fn post_announcing_length(app: &TestApp, length: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /sns HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b' '; 64 * 1024]).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Streams `length` bytes in chunks, without announcing a length: restop reads up to its
/// limit, then refuses. The upload may be cut off once the answer is out.
async fn post_chunked(app: &TestApp, length: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let upload = tokio::spawn(async move {
        let head =
            format!("POST /sns HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n");
        writer.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..length / chunk.len() {
            writer
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            writer.write_all(&chunk).await?;
            writer.write_all(b"\r\n").await?;
        }
        writer.write_all(b"0\r\n\r\n").await
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the headers and the JSON body are in.
    while !String::from_utf8_lossy(&answer).contains("}}") {
        let n = reader.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed without an answer");
        answer.extend_from_slice(&buf[..n]);
    }
    upload.abort();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let json = body
        .find('{')
        .map(|start| &body[start..])
        .unwrap_or_default();
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

async fn long_topic_arns_and_bad_paths_answer_the_error_shape(db: TestDb) {
    let (stub, app) = start(&db).await;
    let mut msg = stub.unsigned_notification("x");
    msg["TopicArn"] = format!("arn:aws:sns:us-east-1:123456789012:{}", "t".repeat(5000)).into();
    stub.signer.sign(&mut msg);
    let (status, body) = app.post_sns(&msg).await;
    assert_eq!((status, error_code(&body)), (400, "malformed_message"));
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.chars().count() < 200, "{message}");

    let response = app
        .client
        .get(format!("{}/v1/executions/%FF", app.base))
        .bearer_auth(crate::support::TOKENS[0])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "invalid_parameter");
}

async fn a_full_sns_door_answers_503_so_sns_retries(db: TestDb) {
    let stub = SnsStub::start().await;
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.sns.sns_concurrency = 1;
    let app = TestApp::spawn(cfg).await;
    // The first delivery holds the only slot while its certificate downloads slowly.
    stub.set(|s| s.cert_delay = Duration::from_millis(1500));
    let slow = stub.notification("slow");
    let second = stub.notification("second");
    let (first, refused) = tokio::join!(app.post_sns(&slow), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        app.post_sns(&second).await
    });
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!((refused.0, error_code(&refused.1)), (503, "overloaded"));
    // The slot is free again: SNS's retry is accepted.
    assert_eq!(app.post_sns(&second).await.0, 200);
    assert!(
        app.metrics()
            .await
            .contains("restop_sns_refusals_total{reason=\"overloaded\"} 1")
    );
}
