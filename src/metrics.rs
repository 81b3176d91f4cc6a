//! Metrics served in the Prometheus text format on `/metrics`: counters and request-time
//! histograms kept in memory by this process, and execution counts read from the database
//! at scrape time (so every replica reports the same totals).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::store::ExecutionStats;

/// A metric name and its label pairs.
type Series = (&'static str, Vec<(&'static str, String)>);

/// Upper bounds, in seconds, of the HTTP request duration buckets.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Cumulative counts per bucket of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// Few series, so one lock per kind is cheaper than anything cleverer.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<Series, u64>>,
    histograms: Mutex<BTreeMap<Series, Histogram>>,
}

const COUNTERS: &[(&str, &str)] = &[
    (
        "restop_sns_messages_total",
        "Authenticated SNS messages by type and result.",
    ),
    (
        "restop_sns_refusals_total",
        "Refused SNS deliveries by reason.",
    ),
    (
        "restop_aws_calls_total",
        "AWS API calls made by this process, by operation.",
    ),
    (
        "restop_aws_errors_total",
        "Failed AWS API calls, by operation and kind of failure.",
    ),
];

const HTTP_DURATION: &str = "restop_http_request_duration_seconds";

impl Metrics {
    fn increment(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        *self
            .counters
            .lock()
            .expect("metrics lock")
            .entry((name, labels))
            .or_default() += 1;
    }

    pub fn sns_message(&self, message_type: &str, result: &str) {
        self.increment(
            "restop_sns_messages_total",
            &[("type", message_type), ("result", result)],
        );
    }

    pub fn sns_refusal(&self, reason: &str) {
        self.increment("restop_sns_refusals_total", &[("reason", reason)]);
    }

    /// One AWS call; `error` is the kind of failure, if it failed.
    pub fn aws_call(&self, operation: &str, error: Option<&str>) {
        self.increment("restop_aws_calls_total", &[("operation", operation)]);
        if let Some(kind) = error {
            self.increment(
                "restop_aws_errors_total",
                &[("operation", operation), ("kind", kind)],
            );
        }
    }

    /// One answered HTTP request; `route` is the matched route template, not the path.
    pub fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let labels = vec![
            ("route", route.to_owned()),
            ("method", method.to_owned()),
            ("status", status.to_string()),
        ];
        let mut histograms = self.histograms.lock().expect("metrics lock");
        let histogram = histograms.entry((HTTP_DURATION, labels)).or_default();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.sum += seconds;
        histogram.count += 1;
    }

    /// Renders everything in the Prometheus text exposition format.
    pub fn render(&self, stats: Option<&ExecutionStats>, now: DateTime<Utc>) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().expect("metrics lock").clone();
        for (name, help) in COUNTERS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((_, labels), value) in counters.iter().filter(|((n, _), _)| n == name) {
                let _ = writeln!(out, "{name}{{{}}} {value}", render_labels(labels));
            }
        }

        let histograms = self.histograms.lock().expect("metrics lock").clone();
        let _ = writeln!(
            out,
            "# HELP {HTTP_DURATION} HTTP request durations by route.\n# TYPE {HTTP_DURATION} histogram"
        );
        for ((_, labels), h) in &histograms {
            let labels = render_labels(labels);
            for (count, bound) in h.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "{HTTP_DURATION}_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "{HTTP_DURATION}_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "{HTTP_DURATION}_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "{HTTP_DURATION}_count{{{labels}}} {}", h.count);
        }

        if let Some(stats) = stats {
            let _ = writeln!(
                out,
                "# HELP restop_executions Executions in the database by status and outcome.\n\
                 # TYPE restop_executions gauge"
            );
            for (status, outcome, count) in &stats.by_status {
                let labels = vec![("status", status.clone()), ("outcome", outcome.clone())];
                let _ = writeln!(
                    out,
                    "restop_executions{{{}}} {count}",
                    render_labels(&labels)
                );
            }
            let lag = stats
                .oldest_due
                .map(|due| (now - due).num_milliseconds().max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            let _ = writeln!(
                out,
                "# HELP restop_active_jobs Pending or running executions.\n\
                 # TYPE restop_active_jobs gauge\nrestop_active_jobs {}\n\
                 # HELP restop_scheduling_lag_seconds How long the most overdue job has been due.\n\
                 # TYPE restop_scheduling_lag_seconds gauge\nrestop_scheduling_lag_seconds {lag}",
                stats.active
            );
        }
        out
    }
}

fn render_labels(labels: &[(&'static str, String)]) -> String {
    labels
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n")
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.sns_refusal("invalid_signature");
        m.sns_refusal("invalid_signature");
        m.aws_call("StopDBInstance", Some("throttled"));
        m.http_request("/v1/executions", "GET", 200, 0.02);
        let stats = ExecutionStats {
            by_status: vec![
                ("running".into(), String::new(), 3),
                ("succeeded".into(), "stopped".into(), 7),
            ],
            active: 3,
            oldest_due: Some(Utc::now() - chrono::Duration::seconds(4)),
        };
        let text = m.render(Some(&stats), Utc::now());
        assert!(text.contains("restop_sns_refusals_total{reason=\"invalid_signature\"} 2"));
        assert!(text.contains(
            "restop_aws_errors_total{operation=\"StopDBInstance\",kind=\"throttled\"} 1"
        ));
        assert!(text.contains(
            "restop_http_request_duration_seconds_bucket{route=\"/v1/executions\",method=\"GET\",status=\"200\",le=\"0.01\"} 0"
        ));
        assert!(text.contains(
            "restop_http_request_duration_seconds_bucket{route=\"/v1/executions\",method=\"GET\",status=\"200\",le=\"0.025\"} 1"
        ));
        assert!(text.contains("restop_executions{status=\"succeeded\",outcome=\"stopped\"} 7"));
        assert!(text.contains("restop_active_jobs 3"));
        let lag: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("restop_scheduling_lag_seconds "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((3.9..10.0).contains(&lag), "{lag}");
    }
}
