//! The operator console: its pages and their headers, the API it added (the `outcome`
//! filter and `/v1/summary`, on both backends), and the page itself, driven in headless
//! Chromium by `tests/browser/console.test.mjs` against a restop whose engine really runs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use reqwest::Method;
use reqwest::header::HeaderMap;
use restop::clock::{Clock, ManualClock, SystemClock};
use restop::execution::{Outcome, Status};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::db::{Backend, TestDb};
use crate::support::fake_aws::FakeAws;
use crate::support::openapi::assert_conforms;
use crate::support::sns::SnsStub;
use crate::support::{TOKENS, TestApp, config, error_code, prices};

on_both_backends!(
    the_outcome_filter_matches_finished_executions,
    the_summary_counts_windows_and_active_runs,
    the_summary_lists_recent_failures,
);

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
const PROTECTED: &[(&str, &str)] = &[("auto-restart-protection", "yes")];

fn arn(kind: &str, id: &str) -> String {
    format!("arn:aws:rds:us-east-1:123456789012:{kind}:{id}")
}

fn ids(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect()
}

/// restop with the engine on, against an in-process AWS: runs end within a second or two.
async fn with_engine(db: &TestDb, aws: Arc<FakeAws>, sns: Option<&SnsStub>) -> TestApp {
    let mut cfg = config(&db.url, sns.map(|s| s.host.as_str()));
    cfg.engine.engine_enabled = true;
    TestApp::spawn_with(cfg, Arc::new(SystemClock), Some(aws)).await
}

async fn the_outcome_filter_matches_finished_executions(db: TestDb) {
    let aws = Arc::new(FakeAws::default());
    aws.add(&arn("db", "kept"), "available", PROTECTED);
    aws.add(&arn("db", "untagged"), "available", &[]);
    aws.add(&arn("db", "waiting"), "starting", PROTECTED);
    let app = with_engine(&db, aws, None).await;
    let stopped = app
        .trigger(json!({"resource_arn": arn("db", "kept")}))
        .await;
    let skipped = app
        .trigger(json!({"resource_arn": arn("db", "untagged")}))
        .await;
    let active = app
        .trigger(json!({"resource_arn": arn("db", "waiting")}))
        .await;
    assert_eq!(app.finished(&stopped).await["outcome"], "stopped");
    assert_eq!(app.finished(&skipped).await["outcome"], "not_protected");

    let page = app.get_v1("/v1/executions?outcome=stopped").await;
    assert_eq!(ids(&page), [stopped.as_str()]);
    let page = app
        .get_v1("/v1/executions?outcome=not_protected&status=skipped")
        .await;
    assert_eq!(ids(&page), [skipped.as_str()]);
    // An active execution has no outcome: no outcome filter matches it.
    assert!(ids(&app.get_v1("/v1/executions?outcome=cancelled").await).is_empty());
    let page = app
        .get_v1("/v1/executions?outcome=stopped&status=succeeded&trigger=manual")
        .await;
    assert_eq!(ids(&page), [stopped.as_str()]);
    // Empty counts as absent.
    assert_eq!(ids(&app.get_v1("/v1/executions?outcome=").await).len(), 3);

    app.cancel(&active).await;
    let page = app.get_v1("/v1/executions?outcome=cancelled").await;
    assert_eq!(ids(&page), [active.as_str()]);

    for bad in [
        "outcome=done",
        "outcome=STOPPED",
        "outcome=stopped&outcome=gone",
    ] {
        let answer = app
            .v1(Method::GET, &format!("/v1/executions?{bad}"), None)
            .await;
        assert_eq!(
            (answer.status, error_code(&answer.body)),
            (400, "invalid_parameter"),
            "{bad}"
        );
    }
}

async fn the_summary_counts_windows_and_active_runs(db: TestDb) {
    // The engine is off: executions stay as the API leaves them, created when the clock says.
    let now = Utc::now();
    let clock = Arc::new(ManualClock::new(now));
    let app =
        TestApp::spawn_with_clock(config(&db.url, None), clock.clone() as Arc<dyn Clock>).await;
    let empty = app.get_v1("/v1/summary").await;
    assert_eq!(empty["active"], 0);
    assert_eq!(empty["attention"], json!([]));
    for window in empty["windows"].as_array().unwrap() {
        assert_eq!(window["total"], 0);
        assert!(
            window["by_outcome"]
                .as_object()
                .unwrap()
                .values()
                .all(|n| n == 0)
        );
    }

    let at = |days: i64| now - TimeDelta::days(days);
    let mut created = Vec::new();
    for (id, days_ago, cancelled) in [
        ("ancient", 40, true),
        ("forgotten", 40, false),
        ("last-month", 20, true),
        ("this-week", 3, true),
        ("today", 0, false),
    ] {
        clock.set(at(days_ago));
        let execution = app.trigger(json!({"resource_arn": arn("db", id)})).await;
        if cancelled {
            app.cancel(&execution).await;
        }
        created.push(execution);
    }
    clock.set(now);

    let summary = app.get_v1("/v1/summary").await;
    assert_eq!(
        summary["active"], 2,
        "today's and the 40-day-old pending one"
    );
    assert_eq!(summary["attention"], json!([]), "nothing failed");
    let windows = summary["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 2);
    let (week, month) = (&windows[0], &windows[1]);
    assert_eq!((&week["days"], &month["days"]), (&json!(7), &json!(30)));
    assert_eq!(week["since"], json!(at(7)));
    assert_eq!(month["since"], json!(at(30)));
    assert_eq!(summary["generated_at"], json!(now));
    assert_eq!(week["total"], 2);
    assert_eq!(week["by_status"]["pending"], 1);
    assert_eq!(week["by_status"]["cancelled"], 1);
    assert_eq!(week["by_outcome"]["cancelled"], 1);
    assert_eq!(month["total"], 3);
    assert_eq!(month["by_status"]["cancelled"], 2);
    assert_eq!(month["by_outcome"]["cancelled"], 2);
    assert_eq!(month["by_outcome"]["stopped"], 0);
    // Every status and outcome is listed, so the console needs no defaults.
    assert_eq!(
        month["by_status"].as_object().unwrap().len(),
        Status::ALL.len()
    );
    assert_eq!(
        month["by_outcome"].as_object().unwrap().len(),
        Outcome::ALL.len()
    );
}

async fn the_summary_lists_recent_failures(db: TestDb) {
    let aws = Arc::new(FakeAws::default());
    aws.add(&arn("db", "healthy"), "available", PROTECTED);
    // A status waiting will not cure: the execution fails.
    aws.add(&arn("db", "full"), "storage-full", PROTECTED);
    aws.add(&arn("cluster", "also-full"), "storage-full", PROTECTED);
    let app = with_engine(&db, aws, None).await;
    let healthy = app
        .trigger(json!({"resource_arn": arn("db", "healthy")}))
        .await;
    let first = app
        .trigger(json!({"resource_arn": arn("db", "full")}))
        .await;
    let second = app
        .trigger(json!({"resource_arn": arn("cluster", "also-full")}))
        .await;
    for id in [&healthy, &first, &second] {
        app.finished(id).await;
    }

    let summary = app.get_v1("/v1/summary").await;
    let attention = summary["attention"].as_array().unwrap();
    let failed: Vec<&str> = attention
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, [second.as_str(), first.as_str()], "newest first");
    assert_eq!(attention[0]["status"], "failed");
    assert_eq!(attention[0]["outcome"], "error");
    assert!(
        attention[0]["reason"]
            .as_str()
            .unwrap()
            .contains("storage-full")
    );
    assert_eq!(summary["windows"][0]["by_outcome"]["error"], 2);
    assert_eq!(summary["windows"][0]["by_outcome"]["stopped"], 1);
    assert_eq!(summary["windows"][0]["by_status"]["failed"], 2);
    assert_eq!(summary["windows"][0]["by_status"]["succeeded"], 1);
    assert_eq!(summary["active"], 0);
    // The same list as the list route gives for failures.
    let listed = app.get_v1("/v1/executions?status=failed").await;
    assert_eq!(&listed["items"], &summary["attention"]);

    let refused = app
        .client
        .get(format!("{}/v1/summary", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
}

/// A GET without a token, checked against openapi.yaml.
async fn fetch(app: &TestApp, method: Method, path: &str) -> (u16, HeaderMap, Vec<u8>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .request(method.clone(), format!("{}{path}", app.base))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap().to_vec();
    assert_conforms(method.as_str(), path, status, &headers, &body);
    (status, headers, body)
}

#[tokio::test]
async fn console_pages_are_public_with_strict_headers() {
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let app = TestApp::spawn(config(&db.url, None)).await;

    let (status, headers, _) = fetch(&app, Method::GET, "/").await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/ui");

    for (path, content_type, needle) in [
        ("/ui", "text/html; charset=utf-8", "/ui/console.js"),
        (
            "/ui/console.js",
            "text/javascript; charset=utf-8",
            "sessionStorage",
        ),
        (
            "/ui/console.css",
            "text/css; charset=utf-8",
            "prefers-color-scheme",
        ),
        ("/ui/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let (status, headers, body) = fetch(&app, Method::GET, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert!(String::from_utf8_lossy(&body).contains(needle), "{path}");
        assert_eq!(headers["content-security-policy"], CSP, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["cache-control"], "no-cache", "{path}");
        let (status, head_headers, body) = fetch(&app, Method::HEAD, path).await;
        assert_eq!((status, body.len()), (200, 0), "HEAD {path}");
        assert_eq!(head_headers["content-security-policy"], CSP, "HEAD {path}");
    }
    for missing in [
        "/ui/nothing.js",
        "/ui/%2e%2e%2fCargo.toml",
        "/ui/console.js/x",
    ] {
        let (status, headers, _) = fetch(&app, Method::GET, missing).await;
        assert_eq!(status, 404, "{missing}");
        assert_eq!(headers["content-security-policy"], CSP, "{missing}");
    }

    // No inline script or style anywhere: the policy would block it.
    let page = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/index.html"));
    let script = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/console.js"));
    assert!(!page.contains("<script>") && !page.contains("style="));
    assert!(!page.contains("<style"));
    for forbidden in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        ".style.",
        "eval(",
    ] {
        assert!(!script.contains(forbidden), "console.js uses {forbidden}");
    }
    // Nothing from other hosts.
    for text in [
        page,
        script,
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/ui/console.css")),
    ] {
        assert!(!text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"));
    }
}

/// The resources the browser scenario meets; console.test.mjs reads them as RESTOP_SCENARIO.
const STOPPED: [&str; 3] = ["orders", "billing", "ledger"];
const NOT_PROTECTED: &str = "reports";
const FAILED: &str = "analytics";
const DRY_RUN: &str = "archive";
const ACTIVE: &str = "warehouse";
const DRY_RUN_TARGET: &str = "payments";
/// Protected, with a hold that ends in 2999: its forced start is let run.
const HELD: &str = "vacation";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_real_browser() {
    let Some(chromium) = browser() else {
        return;
    };
    let db = TestDb::create(Backend::Sqlite).await.unwrap();
    let stub = SnsStub::start().await;
    let aws = Arc::new(FakeAws::default());
    for id in ["orders", "ledger", NOT_PROTECTED, DRY_RUN, DRY_RUN_TARGET] {
        let tags = if id == NOT_PROTECTED {
            &[][..]
        } else {
            PROTECTED
        };
        aws.add(&arn("db", id), "available", tags);
    }
    aws.add(&arn("cluster", "billing"), "available", PROTECTED);
    let hold = [
        PROTECTED[0],
        ("auto-restart-protection-hold-until", "2999-01-31"),
    ];
    aws.add(&arn("db", HELD), "available", &hold);
    aws.add(&arn("cluster", FAILED), "storage-full", PROTECTED);
    // Never becomes available: its run stays active, to be cancelled.
    aws.add(&arn("db", ACTIVE), "starting", PROTECTED);
    let mut cfg = config(&db.url, Some(&stub.host));
    cfg.engine.engine_enabled = true;
    // The fake's instances are db.t4g.micro PostgreSQL, single-AZ: the savings are priced.
    cfg.prices = Some(prices("us-east-1,db.t4g.micro,postgres,single-az,0.016\n"));
    let app = TestApp::spawn_with(cfg, Arc::new(SystemClock), Some(aws)).await;

    // What SNS delivers: a subscription confirmation, then a forced start.
    let confirmation = stub.confirmation("SubscriptionConfirmation", "console-token-4242");
    assert_eq!(app.post_sns(&confirmation).await.0, 200);
    let notification = stub.rds_notification("RDS-EVENT-0154", "db-instance", "ledger");
    let (status, answer) = app.post_sns(&notification).await;
    assert_eq!(status, 200, "{answer}");
    let mut runs = vec![answer["execution_id"].as_str().unwrap().to_owned()];
    // And what operators started by hand.
    for body in [
        json!({"resource_arn": arn("db", "orders")}),
        json!({"db_cluster_identifier": "billing", "region": "us-east-1"}),
        json!({"resource_arn": arn("db", NOT_PROTECTED)}),
        json!({"resource_arn": arn("cluster", FAILED)}),
        json!({"db_instance_identifier": DRY_RUN, "region": "us-east-1", "dry_run": true}),
        json!({"resource_arn": arn("db", HELD)}),
    ] {
        runs.push(app.trigger(body).await);
    }
    for id in &runs {
        app.finished(id).await;
    }
    let active = app
        .trigger(json!({"resource_arn": arn("db", ACTIVE)}))
        .await;
    // Let it look at the starting database twice, so the timeline folds a repeat.
    for _ in 0..100 {
        let execution = app.get_v1(&format!("/v1/executions/{active}")).await;
        if execution["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["repeats"].as_i64() >= Some(2))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let scenario = json!({
        "seeded": runs.len() + 1,
        "newest": ACTIVE,
        "stopped": STOPPED,
        "not_protected": NOT_PROTECTED,
        "failed": FAILED,
        "dry_run": DRY_RUN,
        "active": ACTIVE,
        "dry_run_target": DRY_RUN_TARGET,
        "held": HELD,
        "forced_start": "ledger",
        "cluster": "billing",
    });
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let screenshots = root.join("target/console-screenshots");
    let run = tokio::process::Command::new("node")
        .arg(root.join("tests/browser/console.test.mjs"))
        .current_dir(root.join("tests/browser"))
        .env("RESTOP_URL", &app.base)
        .env("RESTOP_TOKEN", TOKENS[1])
        .env("RESTOP_CHROMIUM", &chromium)
        .env("RESTOP_SCREENSHOTS", &screenshots)
        .env("RESTOP_SCENARIO", scenario.to_string())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(100), run)
        .await
        .expect("the browser test finished within 100 s")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    println!("screenshots in {}", screenshots.display());
    assert!(
        output.status.success(),
        "the browser test failed ({}):\n{stdout}",
        output.status
    );
}

/// The Chromium that scripts/test provisioned, or `None` outside CI when the test command
/// did not (in CI that is a failure).
fn browser() -> Option<String> {
    match std::env::var("RESTOP_TEST_BROWSER") {
        Ok(path) => Some(path),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("RESTOP_TEST_BROWSER is not set: run the tests with scripts/test")
        }
        Err(_) => {
            eprintln!("SKIPPED: RESTOP_TEST_BROWSER is not set (run scripts/test)");
            None
        }
    }
}
