//! Counters served in the Prometheus text format on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// A metric name and its label pairs.
type Series = (&'static str, Vec<(&'static str, String)>);

/// Labelled counters; few series, so one lock is cheaper than anything cleverer.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<Series, u64>>,
}

const HELP: &[(&str, &str)] = &[
    (
        "restop_sns_messages_total",
        "Authenticated SNS messages by type and result.",
    ),
    (
        "restop_sns_refusals_total",
        "Refused SNS deliveries by reason.",
    ),
];

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

    /// Renders every counter in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let counters = self.counters.lock().expect("metrics lock");
        let mut out = String::new();
        for (name, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((_, labels), value) in counters
                .range((*name, Vec::new())..)
                .take_while(|((n, _), _)| n == name)
            {
                let labels: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| {
                        format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                    })
                    .collect();
                let _ = writeln!(out, "{name}{{{}}} {value}", labels.join(","));
            }
        }
        out
    }
}
