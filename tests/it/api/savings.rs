//! `GET /v1/savings` over a seeded history with known numbers: what the forced starts still
//! ran, how long restop kept the databases stopped, and what that is worth at the prices of
//! RESTOP_PRICES; the window, the filters, a bad query and the token.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::Method;
use restop::clock::{Clock, ManualClock};
use serde_json::{Value, json};

use crate::on_both_backends;
use crate::support::db::TestDb;
use crate::support::{TestApp, config, error_code, prices};

on_both_backends!(
    savings_of_a_seeded_history_add_up,
    savings_without_prices_have_no_amount,
    a_bad_savings_query_is_refused,
    savings_are_counters_in_metrics,
);

const ORDERS: &str = "arn:aws:rds:eu-west-1:123456789012:db:orders";
const REPORTS: &str = "arn:aws:rds:us-east-1:210987654321:db:reports";

/// `orders`: forced starts on 1 and 8 November, stopped after 5 and 20 minutes.
/// `reports`: held on 3 November.
async fn seed(db: &TestDb) {
    let rows = [
        (
            "o1",
            ORDERS,
            "sns",
            "succeeded",
            "stopped",
            "2026-11-01T00:00:00Z",
            "2026-11-01T00:05:00Z",
            "'db.r6g.large'",
            "1",
        ),
        (
            "o2",
            ORDERS,
            "catchup",
            "succeeded",
            "stopped",
            "2026-11-08T00:05:00Z",
            "2026-11-08T00:25:00Z",
            "'db.r6g.large'",
            "1",
        ),
        (
            "r1",
            REPORTS,
            "sns",
            "skipped",
            "held",
            "2026-11-03T00:00:00Z",
            "2026-11-03T00:01:00Z",
            "'db.t4g.micro'",
            "1",
        ),
    ];
    for row in rows {
        insert(db, row).await;
    }
}

type Row<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
);

/// One finished execution of an instance: id, ARN, trigger, status, outcome, forced start,
/// end, instance class (SQL), instance count.
async fn insert(db: &TestDb, row: Row<'_>) {
    let (id, arn, trigger, status, outcome, event, done, class, count) = row;
    let parts: Vec<&str> = arn.split(':').collect();
    let (region, account) = (parts[3], parts[4]);
    let resource_id = parts[6];
    db.execute(&format!(
        "INSERT INTO executions (id, resource_type, resource_id, resource_arn, region, \
         account_id, trigger, mode, dry_run, skip_tag_check, status, outcome, phase, \
         event_at, created_at, updated_at, finished_at, deadline_at, instance_class, \
         engine, multi_az, instance_count) VALUES ('{id}', 'db-instance', '{resource_id}', \
         '{arn}', '{region}', '{account}', '{trigger}', 'internal', FALSE, FALSE, \
         '{status}', '{outcome}', 'done', '{event}', '{event}', '{done}', '{done}', \
         '{done}', {class}, 'postgres', FALSE, {count})"
    ))
    .await;
}

async fn app(db: &TestDb, priced: bool) -> TestApp {
    let mut cfg = config(&db.url, None);
    if priced {
        cfg.prices = Some(prices(
            "eu-west-1,db.r6g.large,PostgreSQL,Single-AZ,0.5\n\
             us-east-1,db.t4g.micro,postgres,single-az,0.016\n",
        ));
    }
    TestApp::spawn(cfg).await
}

/// The databases of an answer, by ARN.
fn arns(body: &Value) -> Vec<&str> {
    body["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["resource_arn"].as_str().unwrap())
        .collect()
}

fn row<'a>(body: &'a Value, arn: &str) -> &'a Value {
    body["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["resource_arn"] == arn)
        .unwrap_or_else(|| panic!("{arn} missing: {body}"))
}

async fn savings_of_a_seeded_history_add_up(db: TestDb) {
    let app = app(&db, true).await;
    seed(&db).await;
    let body = app
        .get_v1("/v1/savings?since=2026-11-01T00:00:00Z&until=2026-11-09T00:00:00Z")
        .await;
    assert_eq!(body["since"], "2026-11-01T00:00:00Z");
    // By ARN.
    assert_eq!(arns(&body), [ORDERS, REPORTS], "{body}");
    let orders = row(&body, ORDERS);
    // 5 minutes billed as 10, then 20 minutes.
    assert_eq!(orders["running_seconds"], 600 + 1200);
    // From 00:05 on the 1st to the next forced start at 00:05 on the 8th, then from 00:25
    // on the 8th to the window's end.
    let held = 7 * 86_400 + 24 * 3600 - 25 * 60;
    assert_eq!(orders["held_stopped_seconds"], held);
    assert_eq!(
        (
            &orders["forced_starts"],
            &orders["stopped"],
            &orders["held"]
        ),
        (&json!(2), &json!(2), &json!(0))
    );
    assert_eq!(orders["instance_class"], "db.r6g.large");
    assert_eq!(orders["instance_count"], 1);
    assert_eq!(orders["resource_id"], "orders");
    // 689700 s at 0.5 USD/h.
    assert_eq!(orders["estimated_cost_avoided"]["amount"], json!(95.79));
    assert_eq!(orders["estimated_cost_avoided"]["currency"], "USD");
    let basis = orders["estimated_cost_avoided"]["basis"].as_str().unwrap();
    for word in ["Reserved Instances", "Savings Plans", "storage"] {
        assert!(basis.contains(word), "{basis}");
    }
    let reports = row(&body, REPORTS);
    assert_eq!(
        (&reports["held"], &reports["held_stopped_seconds"]),
        (&json!(1), &json!(0))
    );
    assert_eq!(reports["estimated_cost_avoided"]["amount"], json!(0.0));
    let totals = &body["totals"];
    assert_eq!(totals["forced_starts"], 3);
    assert_eq!(totals["stopped"], 2);
    assert_eq!(totals["held"], 1);
    assert_eq!(totals["running_seconds"], 1800);
    assert_eq!(totals["held_stopped_seconds"], held);
    assert_eq!(totals["estimated_cost_avoided"]["amount"], json!(95.79));

    // Clipped: 5 November to 8 November, 00:00: three days held stopped, no forced start.
    let clipped = app
        .get_v1("/v1/savings?since=2026-11-05T00:00:00Z&until=2026-11-08T00:00:00Z")
        .await;
    assert_eq!(arns(&clipped), [ORDERS], "{clipped}");
    let orders = row(&clipped, ORDERS);
    assert_eq!(orders["held_stopped_seconds"], 3 * 86_400);
    assert_eq!(orders["forced_starts"], 0);
    assert_eq!(orders["running_seconds"], 0);
    assert_eq!(orders["estimated_cost_avoided"]["amount"], json!(36.0));

    // Filters.
    let window = "since=2026-11-01T00:00:00Z&until=2026-11-09T00:00:00Z";
    let east = app
        .get_v1(&format!("/v1/savings?{window}&region=us-east-1"))
        .await;
    assert_eq!(arns(&east), [REPORTS]);
    let own = app
        .get_v1(&format!("/v1/savings?{window}&account=123456789012"))
        .await;
    assert_eq!(arns(&own), [ORDERS]);
    assert_eq!(own["totals"]["forced_starts"], 2);

    // The default window is the last 30 days, ending now.
    let default = app.get_v1("/v1/savings").await;
    let since = chrono::DateTime::parse_from_rfc3339(default["since"].as_str().unwrap()).unwrap();
    let until = chrono::DateTime::parse_from_rfc3339(default["until"].as_str().unwrap()).unwrap();
    assert_eq!((until - since).num_days(), 30);
}

async fn savings_without_prices_have_no_amount(db: TestDb) {
    let app = app(&db, false).await;
    seed(&db).await;
    let body = app
        .get_v1("/v1/savings?since=2026-11-01T00:00:00Z&until=2026-11-09T00:00:00Z")
        .await;
    let orders = row(&body, ORDERS);
    assert_eq!(
        orders["held_stopped_seconds"],
        7 * 86_400 + 24 * 3600 - 25 * 60
    );
    assert_eq!(orders["estimated_cost_avoided"]["amount"], Value::Null);
    assert_eq!(
        orders["estimated_cost_avoided"]["basis"],
        "no estimate: RESTOP_PRICES is not set"
    );
    assert_eq!(
        body["totals"]["estimated_cost_avoided"]["amount"],
        Value::Null
    );
}

async fn a_bad_savings_query_is_refused(db: TestDb) {
    let app = app(&db, true).await;
    seed(&db).await;
    let before = db.count("SELECT COUNT(*) FROM executions").await;
    for query in [
        "since=yesterday",
        "until=2026-13-01",
        "account=12345",
        "region=moon",
        "region=eu-west-1&region=us-east-1",
    ] {
        let answer = app
            .v1(Method::GET, &format!("/v1/savings?{query}"), None)
            .await;
        assert_eq!(
            (answer.status, error_code(&answer.body)),
            (400, "invalid_parameter"),
            "{query}: {}",
            answer.text
        );
    }
    assert_eq!(db.count("SELECT COUNT(*) FROM executions").await, before);
    // A window that ends before it starts is empty.
    let empty = app
        .get_v1("/v1/savings?since=2026-11-09T00:00:00Z&until=2026-11-01T00:00:00Z")
        .await;
    assert_eq!(arns(&empty), Vec::<&str>::new());
    assert_eq!(empty["totals"]["held_stopped_seconds"], 0);
    // Without a token.
    let response = app
        .client
        .get(format!("{}/v1/savings", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
}

/// The value of one series in a scrape.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
        .parse()
        .unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// `/metrics` has `/v1/savings`' totals over the whole history, in hours held stopped and
/// seconds the forced starts still ran: they grow while a database stays stopped, and with
/// each forced start restop stops.
async fn savings_are_counters_in_metrics(db: TestDb) {
    const HELD: &str = "restop_held_stopped_hours_total";
    const RAN: &str = "restop_forced_start_running_seconds_total";
    let clock = Arc::new(ManualClock::new(at("2026-11-09T00:00:00Z")));
    let app =
        TestApp::spawn_with_clock(config(&db.url, None), clock.clone() as Arc<dyn Clock>).await;
    let empty = app.metrics().await;
    assert_eq!((sample(&empty, HELD), sample(&empty, RAN)), (0.0, 0.0));

    seed(&db).await;
    let seeded = app.metrics().await;
    // As in /v1/savings up to now: 7 days, then 00:25 on the 8th to midnight.
    let held = f64::from(7 * 86_400 + 24 * 3600 - 25 * 60) / 3600.0;
    assert!((sample(&seeded, HELD) - held).abs() < 1e-9, "{seeded}");
    assert_eq!(sample(&seeded, RAN), 1800.0);

    // An hour later, after another forced start at 00:30, stopped at 00:42: the stop of the
    // 8th lasted until 00:30, and the new one 18 minutes so far.
    insert(
        &db,
        (
            "o3",
            ORDERS,
            "sns",
            "succeeded",
            "stopped",
            "2026-11-09T00:30:00Z",
            "2026-11-09T00:42:00Z",
            "'db.r6g.large'",
            "1",
        ),
    )
    .await;
    clock.set(at("2026-11-09T01:00:00Z"));
    let later = app.metrics().await;
    let held = f64::from(7 * 86_400 + 24 * 3600 + 5 * 60 + 18 * 60) / 3600.0;
    assert!((sample(&later, HELD) - held).abs() < 1e-9, "{later}");
    assert_eq!(sample(&later, RAN), 1800.0 + 720.0);
}
