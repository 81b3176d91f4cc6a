//! What restop saved: how long the databases it stopped stayed stopped, what the forced
//! starts still ran, and what that is worth at On-Demand prices (`RESTOP_PRICES`).
//! Pure: the figures come from the executions and "started" events the store reads, so
//! every rule here is tested without a database.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};

use crate::aws::arn::{ResourceArn, ResourceKind};
use crate::execution::{Outcome, TriggerKind};
use crate::prices::Prices;
use crate::store::{SavingsRun, Sizing, StartSeen};

/// RDS bills a start for at least ten minutes, however soon the database stops again.
pub const MINIMUM_BILLED_SECONDS: i64 = 600;

/// What every estimate leaves out.
pub const IGNORES: &str = "On-Demand price only: ignores Reserved Instances, Savings Plans, \
    and storage, backups and I/O (storage is billed while stopped)";

fn deployment(sizing: &Sizing) -> &'static str {
    if sizing.multi_az {
        "multi-az"
    } else {
        "single-az"
    }
}

/// The hourly price of one of the instances `sizing` describes, in `region`.
fn hourly(prices: &Prices, region: &str, sizing: &Sizing) -> Option<f64> {
    let class = sizing.instance_class.as_deref()?;
    prices.hourly(region, class, &sizing.engine, deployment(sizing))
}

/// The window a report covers: `[since, until)`, never past `now`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// What one database, or all of them, add up to over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Figures {
    pub forced_starts: u32,
    pub stopped: u32,
    pub held: u32,
    pub running_seconds: i64,
    pub held_stopped_seconds: i64,
}

impl std::ops::Add for Figures {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            forced_starts: self.forced_starts + other.forced_starts,
            stopped: self.stopped + other.stopped,
            held: self.held + other.held,
            running_seconds: self.running_seconds + other.running_seconds,
            held_stopped_seconds: self.held_stopped_seconds + other.held_stopped_seconds,
        }
    }
}

/// One database's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseSavings {
    pub resource: ResourceArn,
    pub instance_class: Option<String>,
    pub instance_count: Option<u32>,
    pub figures: Figures,
    pub amount: Option<f64>,
    pub basis: String,
}

/// The sums over every database.
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    pub figures: Figures,
    pub amount: Option<f64>,
    pub basis: String,
}

/// Adds up `runs` (oldest first) and `starts` for the databases active in `window` (a
/// forced start, a stop or a hold in it, or time held stopped in it).
///
/// - `forced_starts`, `stopped`, `held`: executions whose event is in the window (forced
///   starts: SNS and the event log, not an operator's request).
/// - `running_seconds`: each forced start that restop stopped, from the forced start to
///   `stopped`, at least [`MINIMUM_BILLED_SECONDS`].
/// - `held_stopped_seconds`: from each stop restop made (of any execution) until the
///   database was next seen running (its next forced start, a "started" event, or an
///   operator's request that found it running), or until `until`; the part inside the
///   window only.
/// - the amount: each stopped stretch at the hourly price of the instance as that
///   execution last described it, times its instances; `None` when a stretch has no price.
pub fn compute(
    runs: &[SavingsRun],
    starts: &[StartSeen],
    window: Window,
    prices: Option<&Prices>,
) -> (Vec<DatabaseSavings>, Totals) {
    let end = window.until.min(window.now);
    let mut by_resource: BTreeMap<&str, Vec<&SavingsRun>> = BTreeMap::new();
    for run in runs {
        by_resource.entry(&run.resource.arn).or_default().push(run);
    }
    let mut started: HashMap<&str, Vec<DateTime<Utc>>> = HashMap::new();
    for s in starts {
        started.entry(&s.resource_arn).or_default().push(s.at);
    }
    let in_window = |at: DateTime<Utc>| at >= window.since && at < window.until;

    let mut rows = Vec::new();
    for (arn, runs) in by_resource {
        let mut row = DatabaseSavings {
            resource: runs[0].resource.clone(),
            instance_class: None,
            instance_count: None,
            figures: Figures::default(),
            amount: Some(0.0),
            basis: String::new(),
        };
        let mut active = false;
        let mut unpriced: Option<String> = None;
        let mut priced: Vec<String> = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            let forced = run.trigger != TriggerKind::Manual;
            if in_window(run.event_at) {
                let held = run.outcome == Some(Outcome::Held);
                let stopped = run.outcome == Some(Outcome::Stopped);
                // An operator's run that stopped nothing (not protected, a dry run, ...)
                // saved nothing: it alone does not list the database.
                active |= forced || held || stopped;
                row.figures.forced_starts += u32::from(forced);
                row.figures.held += u32::from(held);
                if stopped {
                    row.figures.stopped += 1;
                    if forced && let Some(stopped_at) = run.finished_at {
                        row.figures.running_seconds += (stopped_at - run.event_at)
                            .num_seconds()
                            .max(MINIMUM_BILLED_SECONDS);
                    }
                }
            }
            if let Some(sizing) = &run.sizing
                && run.event_at < window.until
            {
                row.instance_class = sizing.instance_class.clone();
                row.instance_count = Some(sizing.instance_count);
            }
            let (Some(Outcome::Stopped), Some(stopped_at)) = (run.outcome, run.finished_at) else {
                continue;
            };
            let next_run = runs[i + 1..]
                .iter()
                .filter(|later| later.event_at > stopped_at && seen_running(later))
                .map(|later| later.event_at)
                .next();
            let next_start = started
                .get(arn)
                .and_then(|at| at.iter().copied().find(|at| *at > stopped_at));
            let ran_again = [next_run, next_start].into_iter().flatten().min();
            let from = stopped_at.max(window.since);
            let to = ran_again.map_or(end, |at| at.min(end));
            let seconds = (to - from).num_seconds();
            if seconds <= 0 {
                continue;
            }
            active = true;
            row.figures.held_stopped_seconds += seconds;
            let hourly = run.sizing.as_ref().and_then(|sizing| {
                prices.and_then(|p| hourly(p, &run.resource.region, sizing).map(|h| (h, sizing)))
            });
            match hourly {
                Some((hourly, sizing)) => {
                    let count = f64::from(sizing.instance_count);
                    if let Some(amount) = &mut row.amount {
                        *amount += seconds as f64 / 3600.0 * hourly * count;
                    }
                    let text = format!(
                        "{hourly} USD/h for {} {} {}",
                        sizing.instance_class.as_deref().unwrap_or_default(),
                        sizing.engine,
                        deployment(sizing)
                    );
                    if !priced.contains(&text) {
                        priced.push(text);
                    }
                }
                None => {
                    row.amount = None;
                    unpriced.get_or_insert_with(|| why_unpriced(run, prices));
                }
            }
        }
        if !active {
            continue;
        }
        if row.figures.held_stopped_seconds == 0 && prices.is_none() {
            row.amount = None;
            unpriced.get_or_insert_with(|| "RESTOP_PRICES is not set".into());
        }
        row.amount = row.amount.map(cents);
        row.basis = match unpriced {
            Some(why) => format!("no estimate: {why}"),
            None if priced.is_empty() => format!("nothing held stopped in the window; {IGNORES}"),
            None => format!("{}; {IGNORES}", priced.join(", ")),
        };
        rows.push(row);
    }

    let priced: Vec<f64> = rows.iter().filter_map(|r| r.amount).collect();
    let left_out = rows.len() - priced.len();
    let totals = Totals {
        figures: rows
            .iter()
            .map(|r| r.figures)
            .fold(Figures::default(), |a, b| a + b),
        amount: (!priced.is_empty()).then(|| cents(priced.iter().sum())),
        basis: match (priced.len(), left_out) {
            (0, _) if prices.is_none() => "no estimate: RESTOP_PRICES is not set".into(),
            (0, 0) => format!("no database in the window; {IGNORES}"),
            (0, _) => "no estimate: no database has a known price".into(),
            (_, 0) => format!("the sum over every database; {IGNORES}"),
            (_, n) => {
                format!("the sum over the databases with a known price ({n} left out); {IGNORES}")
            }
        },
    };
    (rows, totals)
}

/// Whether a later execution says the database ran: a forced start does; an operator's
/// request does unless it found the database stopped (or gone).
fn seen_running(run: &SavingsRun) -> bool {
    run.trigger != TriggerKind::Manual
        || !matches!(
            run.outcome,
            Some(Outcome::AlreadyStopped | Outcome::Gone) | None
        )
}

fn why_unpriced(run: &SavingsRun, prices: Option<&Prices>) -> String {
    let Some(sizing) = &run.sizing else {
        return "restop never described this database, so its size is unknown".into();
    };
    let Some(class) = &sizing.instance_class else {
        return match run.resource.kind {
            ResourceKind::DbCluster => format!(
                "an Aurora cluster of {} instances: RDS names no instance class for a cluster",
                sizing.instance_count
            ),
            ResourceKind::DbInstance => "its instance class is unknown".into(),
        };
    };
    match prices {
        None => "RESTOP_PRICES is not set".into(),
        Some(_) => format!(
            "RESTOP_PRICES has no price for {} {class} {} {}",
            run.resource.region,
            sizing.engine,
            deployment(sizing)
        ),
    }
}

fn cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

/// The default window: the last 30 days.
pub const DEFAULT_DAYS: i64 = 30;

pub fn default_since(until: DateTime<Utc>) -> DateTime<Utc> {
    until - TimeDelta::days(DEFAULT_DAYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn run(
        id: &str,
        trigger: TriggerKind,
        outcome: Outcome,
        event: &str,
        done: &str,
    ) -> SavingsRun {
        SavingsRun {
            resource: format!("arn:aws:rds:eu-west-1:123456789012:db:{id}")
                .parse()
                .unwrap(),
            trigger,
            outcome: Some(outcome),
            event_at: at(event),
            finished_at: Some(at(done)),
            sizing: Some(Sizing {
                instance_class: Some("db.r6g.large".into()),
                engine: "postgres".into(),
                multi_az: false,
                instance_count: 1,
            }),
        }
    }

    fn window(since: &str, until: &str) -> Window {
        Window {
            since: at(since),
            until: at(until),
            now: at("2026-12-31T00:00:00Z"),
        }
    }

    fn prices() -> Prices {
        Prices::from_entries([(
            (
                "eu-west-1".into(),
                "db.r6g.large".into(),
                "postgres".into(),
                "single-az".into(),
            ),
            0.5,
        )])
    }

    #[test]
    fn a_short_run_costs_ten_minutes_and_the_stop_lasts_until_the_next_start() {
        let runs = [
            run(
                "a",
                TriggerKind::Sns,
                Outcome::Stopped,
                "2026-11-01T00:00:00Z",
                "2026-11-01T00:05:00Z",
            ),
            run(
                "a",
                TriggerKind::Sns,
                Outcome::Stopped,
                "2026-11-08T00:05:00Z",
                "2026-11-08T00:25:00Z",
            ),
        ];
        let (rows, totals) = compute(
            &runs,
            &[],
            window("2026-11-01T00:00:00Z", "2026-11-09T00:00:00Z"),
            Some(&prices()),
        );
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.figures.forced_starts, r.figures.stopped, r.figures.held),
            (2, 2, 0)
        );
        assert_eq!(r.figures.running_seconds, 600 + 1200);
        // 00:05 on the 1st to 00:05 on the 8th, then 00:25 on the 8th to the window's end.
        let held = 7 * 86_400 + (24 * 3600 - 25 * 60);
        assert_eq!(r.figures.held_stopped_seconds, held);
        assert_eq!(r.amount, Some(cents(held as f64 / 3600.0 * 0.5)));
        assert_eq!(totals.figures.held_stopped_seconds, held);
    }

    #[test]
    fn a_start_event_ends_the_stretch_and_a_manual_run_that_found_it_stopped_does_not() {
        let mut manual = run(
            "b",
            TriggerKind::Manual,
            Outcome::AlreadyStopped,
            "2026-11-02T00:00:00Z",
            "2026-11-02T00:00:01Z",
        );
        manual.sizing = None;
        let runs = [
            run(
                "b",
                TriggerKind::Catchup,
                Outcome::Stopped,
                "2026-11-01T00:00:00Z",
                "2026-11-01T01:00:00Z",
            ),
            manual,
        ];
        let starts = [StartSeen {
            resource_arn: runs[0].resource.arn.clone(),
            at: at("2026-11-03T01:00:00Z"),
        }];
        let (rows, _) = compute(
            &runs,
            &starts,
            window("2026-11-01T00:00:00Z", "2026-11-10T00:00:00Z"),
            None,
        );
        assert_eq!(rows[0].figures.held_stopped_seconds, 2 * 86_400);
        assert_eq!(rows[0].amount, None);
        assert_eq!(rows[0].basis, "no estimate: RESTOP_PRICES is not set");
    }

    #[test]
    fn clusters_count_their_members_but_have_no_price() {
        let mut cluster = run(
            "c",
            TriggerKind::Sns,
            Outcome::Stopped,
            "2026-11-01T00:00:00Z",
            "2026-11-01T00:30:00Z",
        );
        cluster.resource = "arn:aws:rds:eu-west-1:123456789012:cluster:c"
            .parse()
            .unwrap();
        cluster.sizing = Some(Sizing {
            instance_class: None,
            engine: "aurora-postgresql".into(),
            multi_az: false,
            instance_count: 3,
        });
        let (rows, totals) = compute(
            &[cluster],
            &[],
            window("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"),
            Some(&prices()),
        );
        assert_eq!(rows[0].instance_count, Some(3));
        assert_eq!(rows[0].instance_class, None);
        assert_eq!(rows[0].amount, None);
        assert!(rows[0].basis.contains("3 instances"), "{}", rows[0].basis);
        assert_eq!(totals.amount, None);
    }
}
