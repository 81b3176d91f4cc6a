//! Metrics for `/metrics`, in the Prometheus text format: counters and request-time
//! histograms kept by this process, and execution counts read from the database at scrape
//! time (so every replica reports the same totals). Every family is declared from start-up,
//! before it has samples.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::execution::{ExecutionStats, Outcome, SubscriptionStatus};

/// Upper bounds, in seconds, of the HTTP request duration buckets.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SnsMessageLabels {
    r#type: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AwsCallLabels {
    operation: &'static str,
    account: String,
    region: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AwsErrorLabels {
    operation: &'static str,
    kind: &'static str,
    account: String,
    region: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PlaceLabels {
    account: String,
    region: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExecutionLabels {
    status: &'static str,
    outcome: &'static str,
}

impl ExecutionLabels {
    fn finished(outcome: Outcome) -> Self {
        Self {
            status: outcome.status().as_str(),
            outcome: outcome.as_str(),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubscriptionLabels {
    topic: String,
    status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// What `/metrics` reads from the database at scrape time.
#[derive(Debug, Clone)]
pub struct DatabaseFacts {
    pub executions: ExecutionStats,
    /// Each topic restop knows a subscription of, and its status.
    pub subscriptions: Vec<(String, SubscriptionStatus)>,
    /// `/v1/savings`' totals over every execution in the database: how long restop kept
    /// the databases it stopped from running, and what the forced starts it stopped still
    /// ran (each billed at least 10 minutes).
    pub held_stopped_seconds: i64,
    pub forced_start_running_seconds: i64,
}

/// How a notification attempt ended (`RESTOP_NOTIFY_URL`).
#[derive(Debug, Clone, Copy)]
pub enum NotificationResult {
    Sent,
    /// Failed; tried again later.
    Retried,
    /// Failed for the last time.
    Failed,
}

impl NotificationResult {
    const ALL: [Self; 3] = [Self::Sent, Self::Retried, Self::Failed];

    fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Retried => "retried",
            Self::Failed => "failed",
        }
    }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    sns_messages: Family<SnsMessageLabels, Counter>,
    sns_refusals: Family<RefusalLabels, Counter>,
    unsubscriptions: Family<TopicLabels, Counter>,
    confirmation_fallbacks: Family<TopicLabels, Counter>,
    aws_calls: Family<AwsCallLabels, Counter>,
    aws_errors: Family<AwsErrorLabels, Counter>,
    aws_throttles: Family<PlaceLabels, Counter>,
    budget_waits: Family<PlaceLabels, Counter>,
    catchup_sweeps: Family<ResultLabels, Counter>,
    catchup_forced_starts: Family<ResultLabels, Counter>,
    wakeups: Family<ResultLabels, Counter>,
    executions_finished: Family<ExecutionLabels, Counter>,
    notifications: Family<ResultLabels, Counter>,
    http_requests: HistogramFamily<HttpLabels>,
    tls_certificate_expiry: UnsetGauge,
    database: std::sync::Arc<DatabaseGauges>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let sns_messages = declare(
            &mut registry,
            "restop_sns_messages",
            "Authenticated SNS messages by type and result.",
            Family::default(),
        );
        let sns_refusals = declare(
            &mut registry,
            "restop_sns_refusals",
            "Refused SNS deliveries by reason.",
            Family::default(),
        );
        let unsubscriptions = declare(
            &mut registry,
            "restop_unsubscriptions",
            "UnsubscribeConfirmation messages: topics that no longer deliver to restop.",
            Family::default(),
        );
        let confirmation_fallbacks = declare(
            &mut registry,
            "restop_sns_confirmation_fallbacks",
            "Subscriptions confirmed by their SubscribeURL because SNS refused restop's \
             ConfirmSubscription (no permission): anyone holding their ARN can unsubscribe them.",
            Family::default(),
        );
        let aws_calls = declare(
            &mut registry,
            "restop_aws_calls",
            "AWS API calls made by this process, by operation.",
            Family::default(),
        );
        let aws_errors = declare(
            &mut registry,
            "restop_aws_errors",
            "Failed AWS API calls, by operation and kind of failure.",
            Family::default(),
        );
        let aws_throttles = declare(
            &mut registry,
            "restop_aws_throttles",
            "AWS calls answered with throttling, by account and region.",
            Family::default(),
        );
        let budget_waits = declare(
            &mut registry,
            "restop_rds_budget_waits",
            "RDS calls that waited for the request budget of their account and region.",
            Family::default(),
        );
        let catchup_sweeps = declare(
            &mut registry,
            "restop_catchup_sweeps",
            "Reads of an account and region's RDS event log for forced starts, by result.",
            Family::default(),
        );
        let catchup_forced_starts = declare(
            &mut registry,
            "restop_catchup_forced_starts",
            "Forced starts found in RDS's event log: new (no execution knew it), known, expired, superseded (stopped since).",
            Family::default(),
        );
        let wakeups = declare(
            &mut registry,
            "restop_wakeups",
            "Started events: woken (a waiting execution looked at once) or ignored.",
            Family::default(),
        );
        let executions_finished = declare(
            &mut registry,
            "restop_executions_finished",
            "Executions this process saw end (its engine, a cancel, the catch-up), by status and outcome.",
            Family::default(),
        );
        let notifications = declare(
            &mut registry,
            "restop_notifications",
            "Deliveries to RESTOP_NOTIFY_URL: sent, retried (failed, tried again later) or failed (given up).",
            Family::default(),
        );
        declare(
            &mut registry,
            "restop_build_info",
            "Always 1; the version label is restop's.",
            BuildInfo,
        );
        let http_requests = declare(
            &mut registry,
            "restop_http_request_duration_seconds",
            "HTTP request durations by route.",
            Family::new_with_constructor((|| Histogram::new(BUCKETS)) as fn() -> Histogram),
        );
        let tls_certificate_expiry = declare(
            &mut registry,
            "restop_tls_certificate_expiry_timestamp_seconds",
            "When the certificate restop serves itself (RESTOP_TLS_CERT) expires, in Unix seconds.",
            UnsetGauge::default(),
        );
        let database = std::sync::Arc::new(DatabaseGauges::default());
        registry.register_collector(Box::new(database.clone()));
        Self {
            registry,
            sns_messages,
            sns_refusals,
            unsubscriptions,
            confirmation_fallbacks,
            aws_calls,
            aws_errors,
            aws_throttles,
            budget_waits,
            catchup_sweeps,
            catchup_forced_starts,
            wakeups,
            executions_finished,
            notifications,
            http_requests,
            tls_certificate_expiry,
            database,
        }
        .with_known_labels()
    }
}

/// Registers `metric` so that its family is declared (`# HELP`, `# TYPE`) from start-up,
/// before its first sample; returns the handle that records into it.
fn declare<M>(registry: &mut Registry, name: &'static str, help: &'static str, metric: M) -> M
where
    M: EncodeMetric + Clone + std::fmt::Debug + Send + Sync + 'static,
{
    registry.register_collector(Box::new(Declared {
        name,
        help,
        metric: metric.clone(),
    }));
    metric
}

/// A metric encoded with its descriptor even when it has no samples yet.
#[derive(Debug)]
struct Declared<M> {
    name: &'static str,
    help: &'static str,
    metric: M,
}

impl<M: EncodeMetric + std::fmt::Debug + Send + Sync + 'static> Collector for Declared<M> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metric =
            encoder.encode_descriptor(self.name, self.help, None, self.metric.metric_type())?;
        self.metric.encode(metric)
    }
}

impl Metrics {
    /// Creates, at 0, the series of every label value known in advance, so that the first
    /// event shows as an increase: Prometheus' `increase()` sees none in a series whose
    /// first sample is already 1.
    fn with_known_labels(self) -> Self {
        for outcome in Outcome::ALL {
            self.executions_finished
                .get_or_create(&ExecutionLabels::finished(*outcome))
                .inc_by(0);
        }
        for result in NotificationResult::ALL {
            self.notifications
                .get_or_create(&ResultLabels {
                    result: result.as_str(),
                })
                .inc_by(0);
        }
        for (family, results) in [
            (&self.catchup_sweeps, &["ok", "failed"][..]),
            (
                &self.catchup_forced_starts,
                &["new", "known", "expired", "superseded"],
            ),
            (&self.wakeups, &["woken", "ignored"]),
        ] {
            for result in results {
                family.get_or_create(&ResultLabels { result }).inc_by(0);
            }
        }
        self
    }

    /// Creates, at 0, the refusal series of every reason `/sns` gives.
    pub fn expect_refusals(&self, reasons: impl IntoIterator<Item = &'static str>) {
        for reason in reasons {
            self.sns_refusals
                .get_or_create(&RefusalLabels { reason })
                .inc_by(0);
        }
    }

    /// Creates, at 0, the unsubscription and confirmation fallback series of each allowed
    /// topic.
    pub fn expect_topics<'a>(&self, topics: impl IntoIterator<Item = &'a str>) {
        for topic in topics {
            let labels = TopicLabels {
                topic: topic.to_owned(),
            };
            self.unsubscriptions.get_or_create(&labels).inc_by(0);
            self.confirmation_fallbacks.get_or_create(&labels).inc_by(0);
        }
    }

    pub fn sns_message(&self, message_type: &'static str, result: &'static str) {
        self.sns_messages
            .get_or_create(&SnsMessageLabels {
                r#type: message_type,
                result,
            })
            .inc();
    }

    pub fn sns_refusal(&self, reason: &'static str) {
        self.sns_refusals
            .get_or_create(&RefusalLabels { reason })
            .inc();
    }

    /// SNS confirmed that restop was unsubscribed from `topic`.
    pub fn unsubscription(&self, topic: &str) {
        self.unsubscriptions
            .get_or_create(&TopicLabels {
                topic: topic.to_owned(),
            })
            .inc();
    }

    /// `topic`'s subscription was confirmed by its SubscribeURL because SNS refused
    /// ConfirmSubscription.
    pub fn confirmation_fallback(&self, topic: &str) {
        self.confirmation_fallbacks
            .get_or_create(&TopicLabels {
                topic: topic.to_owned(),
            })
            .inc();
    }

    /// One AWS call in `account` and `region`; `error` is the kind of failure, if it failed.
    pub fn aws_call(
        &self,
        operation: &'static str,
        account: &str,
        region: &str,
        error: Option<&'static str>,
    ) {
        self.aws_calls
            .get_or_create(&AwsCallLabels {
                operation,
                account: account.to_owned(),
                region: region.to_owned(),
            })
            .inc();
        if let Some(kind) = error {
            self.aws_errors
                .get_or_create(&AwsErrorLabels {
                    operation,
                    kind,
                    account: account.to_owned(),
                    region: region.to_owned(),
                })
                .inc();
        }
    }

    /// AWS answered a call in `account` and `region` with throttling.
    pub fn throttled(&self, account: &str, region: &str) {
        self.aws_throttles
            .get_or_create(&place(account, region))
            .inc();
    }

    /// A catch-up sweep ended: `ok` or `failed`.
    pub fn catchup_sweep(&self, result: &'static str) {
        self.catchup_sweeps
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// A forced start found in RDS's event log: `new`, `known`, `expired` or `superseded`.
    pub fn catchup_forced_start(&self, result: &'static str) {
        self.catchup_forced_starts
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// A started event: `woken` or `ignored`.
    pub fn wakeup(&self, result: &'static str) {
        self.wakeups.get_or_create(&ResultLabels { result }).inc();
    }

    /// An RDS call waited for the request budget of `account` and `region`.
    pub fn budget_wait(&self, account: &str, region: &str) {
        self.budget_waits
            .get_or_create(&place(account, region))
            .inc();
    }

    /// An execution ended.
    pub fn execution_finished(&self, outcome: Outcome) {
        self.executions_finished
            .get_or_create(&ExecutionLabels::finished(outcome))
            .inc();
    }

    pub fn notification(&self, result: NotificationResult) {
        self.notifications
            .get_or_create(&ResultLabels {
                result: result.as_str(),
            })
            .inc();
    }

    /// One answered HTTP request; `route` is the matched route template, not the path.
    pub fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .observe(seconds);
    }

    /// The notAfter, in Unix seconds, of the certificate restop now serves.
    pub fn tls_certificate_expiry(&self, not_after: i64) {
        *self.tls_certificate_expiry.0.lock().expect("metrics lock") = Some(not_after);
    }

    /// Renders every family; `facts` are read from the database, `None` when it did not
    /// answer (their families are then declared without samples).
    pub fn render(&self, facts: Option<DatabaseFacts>, now: DateTime<Utc>) -> String {
        *self.database.snapshot.lock().expect("metrics lock") = facts.map(|facts| (facts, now));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

fn place(account: &str, region: &str) -> PlaceLabels {
    PlaceLabels {
        account: account.to_owned(),
        region: region.to_owned(),
    }
}

/// A gauge without a sample until it is set: without TLS there is no certificate, and a
/// 0 would look like one that expired in 1970.
#[derive(Debug, Clone, Default)]
struct UnsetGauge(std::sync::Arc<Mutex<Option<i64>>>);

impl EncodeMetric for UnsetGauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        match *self.0.lock().expect("metrics lock") {
            Some(value) => encoder.encode_gauge(&value),
            None => Ok(()),
        }
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// `restop_build_info{version} 1`: there from start-up, so its absence means no scrape.
#[derive(Debug, Clone)]
struct BuildInfo;

impl EncodeMetric for BuildInfo {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let labels = VersionLabels {
            version: env!("CARGO_PKG_VERSION"),
        };
        encoder.encode_family(&labels)?.encode_gauge(&1i64)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// The gauges read from the database at scrape time.
#[derive(Debug, Default)]
struct DatabaseGauges {
    snapshot: Mutex<Option<(DatabaseFacts, DateTime<Utc>)>>,
}

impl Collector for DatabaseGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.snapshot.lock().expect("metrics lock").clone();
        let mut executions = encoder.encode_descriptor(
            "restop_executions",
            "Executions in the database by status and outcome.",
            None,
            MetricType::Gauge,
        )?;
        let stats = snapshot.as_ref().map(|(facts, _)| &facts.executions);
        if let Some(stats) = stats {
            for (status, outcome, count) in &stats.by_status {
                let labels = ExecutionLabels {
                    status: status.as_str(),
                    outcome: outcome.map(|o| o.as_str()).unwrap_or(""),
                };
                ConstGauge::new(*count).encode(executions.encode_family(&labels)?)?;
            }
        }
        let active = encoder.encode_descriptor(
            "restop_active_jobs",
            "Pending or running executions.",
            None,
            MetricType::Gauge,
        )?;
        if let Some(stats) = stats {
            ConstGauge::new(stats.active()).encode(active)?;
        }
        let overdue = encoder.encode_descriptor(
            "restop_executions_overdue",
            "Active executions past their deadline (RESTOP_MAX_DURATION after the forced start).",
            None,
            MetricType::Gauge,
        )?;
        if let Some(stats) = stats {
            ConstGauge::new(stats.overdue).encode(overdue)?;
        }
        let lag = encoder.encode_descriptor(
            "restop_scheduling_lag_seconds",
            "How long the most overdue job has been due.",
            None,
            MetricType::Gauge,
        )?;
        if let Some((facts, now)) = &snapshot {
            let seconds = facts
                .executions
                .oldest_due
                .map(|due| (*now - due).num_milliseconds().max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            ConstGauge::new(seconds).encode(lag)?;
        }
        let held = encoder.encode_descriptor(
            "restop_held_stopped_hours",
            "Hours the databases restop stopped stayed stopped, until next seen running (in the database; /v1/savings).",
            None,
            MetricType::Counter,
        )?;
        if let Some((facts, _)) = &snapshot {
            ConstCounter::new(facts.held_stopped_seconds as f64 / 3600.0).encode(held)?;
        }
        let running = encoder.encode_descriptor(
            "restop_forced_start_running_seconds",
            "Seconds the forced starts restop stopped still ran, at least 600 each (in the database; /v1/savings).",
            None,
            MetricType::Counter,
        )?;
        if let Some((facts, _)) = &snapshot {
            ConstCounter::new(u64::try_from(facts.forced_start_running_seconds).unwrap_or(0))
                .encode(running)?;
        }
        let mut subscriptions = encoder.encode_descriptor(
            "restop_subscriptions",
            "1 for the status each topic's subscription is in, 0 for the others.",
            None,
            MetricType::Gauge,
        )?;
        if let Some((facts, _)) = &snapshot {
            for (topic, current) in &facts.subscriptions {
                for status in SubscriptionStatus::ALL {
                    let labels = SubscriptionLabels {
                        topic: topic.clone(),
                        status: status.as_str(),
                    };
                    ConstGauge::new(i64::from(status == current))
                        .encode(subscriptions.encode_family(&labels)?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::Status;

    fn facts(stats: ExecutionStats) -> Option<DatabaseFacts> {
        Some(DatabaseFacts {
            executions: stats,
            subscriptions: vec![(
                "arn:aws:sns:eu-west-1:111122223333:rds".into(),
                SubscriptionStatus::PendingConfirmation,
            )],
            held_stopped_seconds: 5400,
            forced_start_running_seconds: 1800,
        })
    }

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.sns_refusal("invalid_signature");
        m.sns_refusal("invalid_signature");
        m.aws_call(
            "StopDBInstance",
            "111122223333",
            "eu-west-1",
            Some("throttled"),
        );
        m.http_request("/v1/executions", "GET", 200, 0.02);
        m.execution_finished(Outcome::Timeout);
        m.notification(NotificationResult::Retried);
        let stats = ExecutionStats {
            by_status: vec![
                (Status::Running, None, 3),
                (Status::Succeeded, Some(Outcome::Stopped), 7),
            ],
            oldest_due: Some(Utc::now() - chrono::Duration::seconds(4)),
            overdue: 2,
        };
        let text = m.render(facts(stats), Utc::now());
        for line in [
            "restop_sns_refusals_total{reason=\"invalid_signature\"} 2",
            "restop_aws_errors_total{operation=\"StopDBInstance\",kind=\"throttled\",account=\"111122223333\",region=\"eu-west-1\"} 1",
            "restop_http_request_duration_seconds_bucket{route=\"/v1/executions\",method=\"GET\",status=\"200\",le=\"0.01\"} 0",
            "restop_http_request_duration_seconds_bucket{route=\"/v1/executions\",method=\"GET\",status=\"200\",le=\"0.025\"} 1",
            "restop_executions{status=\"succeeded\",outcome=\"stopped\"} 7",
            "restop_active_jobs 3",
            "restop_executions_overdue 2",
            "restop_executions_finished_total{status=\"failed\",outcome=\"timeout\"} 1",
            "restop_notifications_total{result=\"retried\"} 1",
            "restop_subscriptions{topic=\"arn:aws:sns:eu-west-1:111122223333:rds\",status=\"pending_confirmation\"} 1",
            "restop_subscriptions{topic=\"arn:aws:sns:eu-west-1:111122223333:rds\",status=\"confirmed\"} 0",
            "restop_held_stopped_hours_total 1.5",
            "restop_forced_start_running_seconds_total 1800",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line}:\n{text}");
        }
        let lag: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("restop_scheduling_lag_seconds "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((3.9..10.0).contains(&lag), "{lag}");
    }

    /// The families and kinds `/metrics` declares, as `name kind` lines.
    fn declared(text: &str) -> std::collections::BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(str::to_owned)
            .collect()
    }

    /// deploy/metrics.txt is what the alert rules and the dashboard may use (the deploy
    /// checks hold them to it): restop declares exactly that, before any sample.
    #[test]
    fn every_family_of_deploy_metrics_txt_is_declared_from_start_up() {
        let text = Metrics::default().render(None, Utc::now());
        let documented: std::collections::BTreeSet<String> = include_str!("../deploy/metrics.txt")
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(declared(&text), documented, "{text}");

        let expiry = "restop_tls_certificate_expiry_timestamp_seconds";
        assert!(!text.contains(&format!("\n{expiry} ")), "{text}");
        let m = Metrics::default();
        m.tls_certificate_expiry(1_900_000_000);
        assert!(
            m.render(None, Utc::now())
                .contains(&format!("\n{expiry} 1900000000\n"))
        );
    }

    #[test]
    fn series_with_known_labels_start_at_zero() {
        let m = Metrics::default();
        m.expect_refusals(["invalid_signature"]);
        m.expect_topics(["arn:aws:sns:eu-west-1:111122223333:rds"]);
        let text = m.render(None, Utc::now());
        for line in [
            "restop_executions_finished_total{status=\"succeeded\",outcome=\"stopped\"} 0",
            "restop_executions_finished_total{status=\"skipped\",outcome=\"expired\"} 0",
            "restop_executions_finished_total{status=\"skipped\",outcome=\"held\"} 0",
            "restop_executions_finished_total{status=\"failed\",outcome=\"error\"} 0",
            "restop_notifications_total{result=\"failed\"} 0",
            "restop_catchup_sweeps_total{result=\"failed\"} 0",
            "restop_catchup_forced_starts_total{result=\"new\"} 0",
            "restop_wakeups_total{result=\"woken\"} 0",
            "restop_sns_refusals_total{reason=\"invalid_signature\"} 0",
            "restop_unsubscriptions_total{topic=\"arn:aws:sns:eu-west-1:111122223333:rds\"} 0",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line}:\n{text}");
        }
        let finished = text
            .lines()
            .filter(|l| l.starts_with("restop_executions_finished_total{"))
            .count();
        assert_eq!(finished, Outcome::ALL.len(), "one series per outcome");
        let version = env!("CARGO_PKG_VERSION");
        assert!(text.contains(&format!("\nrestop_build_info{{version=\"{version}\"}} 1\n")));
    }
}
