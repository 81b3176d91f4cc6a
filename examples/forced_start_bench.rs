//! Benchmark of what a forced start costs the owner, against moto (tests/moto/launcher.py:
//! RDS statuses change over time, and every request is logged with its arrival time).
//!
//! 1. Quiet sweeps: restop runs with a 1 s catch-up interval while nothing happens.
//!    Printed: DescribeEvents calls per sweep of the account and region. This phase runs
//!    first, while moto's event log is empty: moto ignores a sweep's StartTime and would
//!    list the other phases' events to every sweep.
//! 2. Wake-up: twice `--forced-starts` databases are stopped and started again (each stays
//!    `starting` for a while), and SNS delivers RDS-EVENT-0154 for each. For the first
//!    half, RDS-EVENT-0088 follows the moment the database is `available`, as RDS sends it;
//!    the second half have only the poll (`--poll-seconds`, 300 like
//!    RESTOP_POLL_INTERVAL=5m). Printed: seconds from `available` to restop's
//!    StopDBInstance, median and worst, for each half.
//! 3. Recovery: restop runs one catch-up sweep and is shut down; for `--downtime-seconds`,
//!    `--forced-starts` databases are started, their RDS-EVENT-0154 only in RDS's event
//!    log (no SNS message reaches restop); then restop starts again. Printed: how long until
//!    every one of them is `stopped`, and the AWS calls per recovered forced start.
//!
//! cargo run --release --example forced_start_bench -- [--forced-starts 20]
//!     [--poll-seconds 300] [--downtime-seconds 600] [--starting-seconds 20]
//!     [--moto-python target/moto-venv/bin/python]
//!
//! moto comes from the venv scripts/test makes (run it once first).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_rds::types::Tag;
use clap::Parser;
use restop::config::{CommaList, Schedule, ServeConfig};
use restop::execution::{Outcome, TriggerKind};
use restop::store::{ExecutionFilter, Store};
use restop::testing::moto::{ACCOUNT, Moto, REGION, new_instance};
use restop::testing::sns::{SnsStub, TOPIC};
use restop::{App, Deps};
use serde_json::{Value, json};
use tokio::sync::oneshot;

#[derive(Parser)]
struct Args {
    /// Forced starts in each of the wake-up and recovery runs.
    #[arg(long, default_value_t = 20)]
    forced_starts: usize,
    /// RESTOP_POLL_INTERVAL, in seconds.
    #[arg(long, default_value_t = 300)]
    poll_seconds: u64,
    /// How long restop is down in the recovery run.
    #[arg(long, default_value_t = 600)]
    downtime_seconds: u64,
    /// How long a started database stays `starting` (a few seconds more for each).
    #[arg(long, default_value_t = 20)]
    starting_seconds: u64,
    #[arg(long, default_value = "target/moto-venv/bin/python")]
    moto_python: String,
}

const PROTECTED: (&str, &str) = ("auto-restart-protection", "yes");
/// The recovery's databases are `available` before restop restarts, so the poll interval
/// does not enter the time to their stop; a short one lets their executions see `stopped`
/// and finish within the run.
const RECOVERY_POLL: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !std::path::Path::new(&args.moto_python).exists() {
        anyhow::bail!(
            "{} does not exist: run scripts/test once (it makes the moto venv), or pass --moto-python",
            args.moto_python
        );
    }
    let moto = Moto::launch(&args.moto_python).await;
    let stub = SnsStub::start().await;
    let bench = Bench {
        moto,
        stub,
        databases: tempfile::tempdir()?,
        args,
    };
    let began = std::time::Instant::now();
    bench.quiet_sweeps().await?;
    bench.wake_up().await?;
    eprintln!("wake-up done after {:?}", began.elapsed());
    bench.recovery().await?;
    eprintln!("recovery done after {:?}", began.elapsed());
    Ok(())
}

struct Bench {
    moto: Moto,
    stub: SnsStub,
    /// One SQLite database per phase (kept across restop's restarts within it).
    databases: tempfile::TempDir,
    args: Args,
}

/// restop serving on a port of its own, until dropped or stopped.
struct Running {
    base: String,
    store: Arc<dyn Store>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await?
    }

    async fn post_sns(&self, http: &reqwest::Client, message: &Value) -> anyhow::Result<()> {
        let response = http
            .post(format!("{}/sns", self.base))
            .header("content-type", "text/plain; charset=UTF-8")
            .body(message.to_string())
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "restop refused an SNS message: {}",
            response.text().await?
        );
        Ok(())
    }

    async fn metric(&self, http: &reqwest::Client, series: &str) -> anyhow::Result<f64> {
        let text = http
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0))
    }

    /// Waits until no execution is active; returns how many ended each way.
    async fn settled(&self, limit: Duration) -> anyhow::Result<HashMap<Option<Outcome>, usize>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let executions = self
                .store
                .list_executions(&ExecutionFilter {
                    limit: 10_000,
                    ..ExecutionFilter::default()
                })
                .await?;
            if executions.iter().all(|e| !e.status.is_active()) {
                let mut outcomes = HashMap::new();
                for e in &executions {
                    *outcomes.entry(e.outcome).or_default() += 1;
                }
                return Ok(outcomes);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "executions still active after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Bench {
    fn poll(&self) -> Duration {
        Duration::from_secs(self.args.poll_seconds)
    }

    async fn restop(
        &self,
        phase: &str,
        catchup: Schedule,
        poll: Duration,
    ) -> anyhow::Result<Running> {
        let mut config = ServeConfig::defaults();
        let database = self.databases.path().join(format!("{phase}.db"));
        config.database.database_url = format!("sqlite://{}", database.display())
            .parse()
            .map_err(anyhow::Error::msg)?;
        config.listen = "127.0.0.1:0".parse()?;
        config.sns.topic_arns = CommaList(vec![TOPIC.parse().map_err(anyhow::Error::msg)?]);
        config.sns.sns_extra_hosts =
            CommaList(vec![self.stub.host.parse().map_err(anyhow::Error::msg)?]);
        config.engine.poll_interval = poll;
        config.engine.catchup_interval = catchup;
        let app = App::build(
            config,
            Deps {
                clock: Arc::new(restop::clock::SystemClock),
                aws: Some(self.moto.aws().await),
            },
        )
        .await?;
        let store = app.store().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run(listener, async move {
            let _ = stopped.await;
        }));
        Ok(Running {
            base,
            store,
            stop: Some(stop),
            task,
        })
    }

    /// Creates protected instances, each `(id, seconds it stays starting when started)`,
    /// and stops them; returns once all are `stopped`, with the call log emptied.
    async fn stopped_instances(&self, instances: &[(String, u64)]) -> anyhow::Result<()> {
        let rds = self.moto.rds().await;
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        for (id, starting) in instances {
            new_instance(&rds, id)
                .tags(tag(PROTECTED.0, PROTECTED.1))
                .tags(tag("moto:start-seconds", &starting.to_string()))
                .send()
                .await?;
            rds.stop_db_instance()
                .db_instance_identifier(id)
                .send()
                .await?;
        }
        for (id, _) in instances {
            while self.instance_status(id).await? != "stopped" {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        self.moto.clear_calls().await;
        Ok(())
    }

    async fn start_instance(&self, id: &str) -> anyhow::Result<()> {
        self.moto
            .rds()
            .await
            .start_db_instance()
            .db_instance_identifier(id)
            .send()
            .await?;
        Ok(())
    }

    async fn instance_status(&self, id: &str) -> anyhow::Result<String> {
        let out = self
            .moto
            .rds()
            .await
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await?;
        Ok(out.db_instances()[0]
            .db_instance_status()
            .unwrap_or_default()
            .to_owned())
    }

    /// When moto received each `action` for each resource (the first time), Unix seconds.
    async fn arrivals(&self, action: &str) -> HashMap<String, f64> {
        let mut first = HashMap::new();
        for (a, resource, at) in self.moto.timed_calls().await {
            if a == action {
                let id = resource.rsplit(':').next().unwrap_or(&resource).to_owned();
                first.entry(id).or_insert(at);
            }
        }
        first
    }

    async fn wake_up(&self) -> anyhow::Result<()> {
        let n = self.args.forced_starts;
        let http = reqwest::Client::new();
        let restop = self.restop("wake-up", Schedule::Off, self.poll()).await?;
        // The first `n` get RDS-EVENT-0088, the other `n` only the poll.
        let ids: Vec<(String, bool)> = (0..2 * n).map(|i| (format!("wake-{i}"), i < n)).collect();
        let starting = |i: usize| self.args.starting_seconds + i as u64;
        let instances: Vec<(String, u64)> = ids
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id.clone(), starting(i)))
            .collect();
        self.stopped_instances(&instances).await?;
        // AWS's forced starts, each announced by SNS.
        for (id, _) in &ids {
            self.start_instance(id).await?;
            let event = self
                .stub
                .rds_notification("RDS-EVENT-0154", "db-instance", id);
            restop.post_sns(&http, &event).await?;
        }
        let started = self.arrivals("StartDBInstance").await;
        let available: HashMap<&str, f64> = ids
            .iter()
            .enumerate()
            .map(|(i, (id, _))| (id.as_str(), started[id] + starting(i) as f64))
            .collect();
        // RDS-EVENT-0088 when each database of the first half becomes available.
        let mut woken: Vec<(&str, f64)> = ids
            .iter()
            .filter(|(_, wake)| *wake)
            .map(|(id, _)| (id.as_str(), available[id.as_str()]))
            .collect();
        woken.sort_by(|a, b| a.1.total_cmp(&b.1));
        for (id, at) in woken {
            let wait = at - unix_now();
            if wait > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            }
            let event = self
                .stub
                .rds_notification("RDS-EVENT-0088", "db-instance", id);
            restop.post_sns(&http, &event).await?;
        }
        // Every database is stopped within a poll interval of becoming available; seeing it
        // `stopped` would take one more, which this phase does not measure.
        let deadline = tokio::time::Instant::now()
            + Duration::from_secs(self.args.poll_seconds + 120 + 4 * n as u64);
        let mut stops = self.arrivals("StopDBInstance").await;
        while stops.len() < ids.len() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            stops = self.arrivals("StopDBInstance").await;
        }
        restop.stop().await?;
        println!(
            "wake-up, {} forced starts, RESTOP_POLL_INTERVAL={} s:",
            2 * n,
            self.args.poll_seconds
        );
        println!("  StopDBInstance sent for {} of {}", stops.len(), ids.len());
        for (label, with_event) in [("with RDS-EVENT-0088", true), ("poll only", false)] {
            let latencies: Vec<f64> = ids
                .iter()
                .filter(|(_, wake)| *wake == with_event)
                .filter_map(|(id, _)| Some(stops.get(id)? - available[id.as_str()]))
                .collect();
            print_latencies(label, latencies);
        }
        Ok(())
    }

    async fn recovery(&self) -> anyhow::Result<()> {
        let n = self.args.forced_starts;
        let http = reqwest::Client::new();
        let ids: Vec<String> = (0..n).map(|i| format!("down-{i}")).collect();
        let instances: Vec<(String, u64)> = ids
            .iter()
            .map(|id| (id.clone(), self.args.starting_seconds))
            .collect();
        self.stopped_instances(&instances).await?;
        // restop runs long enough to sweep once, so the next sweep starts where it ended.
        let restop = self
            .restop(
                "recovery",
                Schedule::Every(Duration::from_secs(600)),
                RECOVERY_POLL,
            )
            .await?;
        let sweep = "restop_catchup_sweeps_total{result=\"ok\"}";
        while restop.metric(&http, sweep).await? < 1.0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        restop.stop().await?;

        let downtime = Duration::from_secs(self.args.downtime_seconds);
        let down_at = tokio::time::Instant::now();
        for (i, id) in ids.iter().enumerate() {
            tokio::time::sleep_until(down_at + downtime.mul_f64(i as f64 / n as f64)).await;
            self.start_instance(id).await?;
            self.moto
                .rds_event(json!({
                    "event_id": "RDS-EVENT-0154",
                    "source_type": "db-instance",
                    "source_identifier": id,
                    "account": ACCOUNT,
                    "region": REGION,
                    "seconds_ago": 0,
                }))
                .await;
        }
        tokio::time::sleep_until(down_at + downtime).await;

        self.moto.clear_calls().await;
        let restarted = unix_now();
        let restop = self
            .restop(
                "recovery",
                Schedule::Every(Duration::from_secs(600)),
                RECOVERY_POLL,
            )
            .await?;
        // The executions exist once the first sweep after the restart has ended.
        while restop.metric(&http, sweep).await? < 1.0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let outcomes = restop
            .settled(Duration::from_secs(120 + 2 * n as u64))
            .await?;
        let recovered = restop
            .store
            .list_executions(&ExecutionFilter {
                trigger: Some(TriggerKind::Catchup),
                outcome: Some(Outcome::Stopped),
                limit: 10_000,
                ..ExecutionFilter::default()
            })
            .await?
            .len();
        restop.stop().await?;
        let stops = self.arrivals("StopDBInstance").await;
        // restop's calls only: the checks below make calls of their own.
        let log = self.moto.timed_calls().await;
        let mut stopped = 0;
        for id in &ids {
            if self.instance_status(id).await? == "stopped" {
                stopped += 1;
            }
        }
        let last_stop = ids
            .iter()
            .filter_map(|id| stops.get(id))
            .fold(restarted, |a, b| a.max(*b));
        println!();
        println!(
            "recovery: restop down {} s while {n} forced starts happened (no SNS message), poll {} s:",
            self.args.downtime_seconds,
            RECOVERY_POLL.as_secs()
        );
        println!("  outcomes after restart: {}", describe(&outcomes));
        println!(
            "  recovered by the catch-up (trigger catchup, outcome stopped): {recovered}; `stopped` in RDS: {stopped} of {n}"
        );
        println!(
            "  last StopDBInstance {:.2} s after the restart",
            last_stop - restarted
        );
        let mut calls: HashMap<String, usize> = HashMap::new();
        for (action, _, _) in log {
            *calls.entry(action).or_default() += 1;
        }
        let mut calls: Vec<_> = calls.into_iter().collect();
        calls.sort();
        let total: usize = calls.iter().map(|(_, c)| c).sum();
        println!(
            "  AWS calls after the restart: {total}, {:.2} per recovered forced start",
            total as f64 / n as f64
        );
        for (action, count) in calls {
            println!(
                "    {action}: {count} ({:.2} each)",
                count as f64 / n as f64
            );
        }
        Ok(())
    }

    async fn quiet_sweeps(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        self.moto.clear_calls().await;
        let restop = self
            .restop(
                "quiet",
                Schedule::Every(Duration::from_secs(1)),
                self.poll(),
            )
            .await?;
        let sweep = "restop_catchup_sweeps_total{result=\"ok\"}";
        while restop.metric(&http, sweep).await? < 10.0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let sweeps = restop.metric(&http, sweep).await?;
        let pages = self
            .moto
            .timed_calls()
            .await
            .iter()
            .filter(|(action, _, _)| action == "DescribeEvents")
            .count();
        restop.stop().await?;
        println!("quiet sweeps, one account and region, nothing in RDS's event log:");
        println!(
            "  {sweeps:.0} sweeps, {pages} DescribeEvents calls: {:.2} per sweep",
            pages as f64 / sweeps
        );
        println!();
        Ok(())
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

fn describe(outcomes: &HashMap<Option<Outcome>, usize>) -> String {
    let mut parts: Vec<String> = outcomes
        .iter()
        .map(|(outcome, count)| match outcome {
            Some(outcome) => format!("{outcome} {count}"),
            None => format!("active {count}"),
        })
        .collect();
    parts.sort();
    parts.join(", ")
}

fn print_latencies(label: &str, mut seconds: Vec<f64>) {
    if seconds.is_empty() {
        println!("  {label}: no StopDBInstance recorded");
        return;
    }
    seconds.sort_by(f64::total_cmp);
    let median = if seconds.len().is_multiple_of(2) {
        (seconds[seconds.len() / 2 - 1] + seconds[seconds.len() / 2]) / 2.0
    } else {
        seconds[seconds.len() / 2]
    };
    println!(
        "  {label}: `available` to StopDBInstance, {} databases: median {median:.2} s, worst {:.2} s, best {:.2} s",
        seconds.len(),
        seconds[seconds.len() - 1],
        seconds[0]
    );
}
