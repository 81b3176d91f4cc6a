//! Chaos soak: restop's two promises under combined faults. Every forced start of a
//! protected database ends stopped, and nothing else is ever stopped.
//!
//! cargo run --release --example soak -- [--replicas 3] [--minutes 10] [--forced-starts 300]
//!     [--seed N] [--db postgres|sqlite] [--rds-max-rps 10]
//!
//! It starts `--replicas` copies of the `restop` binary (built first with the same profile)
//! as child processes on one database: a throwaway PostgreSQL cluster of its own (so that
//! it can restart it), or with `--db sqlite` one SQLite file and one replica. They run
//! against moto (tests/moto/launcher.py, from the venv scripts/test makes: statuses change
//! over time, faults can be armed, every request is logged with the access key that
//! signed it: each replica has its own) and a fake SNS that signs with a test key.
//!
//! A seeded schedule then drives, over the first 70% of the run:
//! - forced starts of protected instances and Aurora clusters, whose RDS-EVENT-0154 / 0153
//!   SNS delivery is delivered, duplicated to another replica, reordered after the
//!   "started" event, delayed, or lost (the event is always in RDS's event log, where the
//!   catch-up must find it), and whose RDS-EVENT-0088 / 0151 comes early, on time, late or
//!   never; a delivery answered other than 2xx is retried with backoff, as SNS does;
//! - what restop must leave alone: untagged forced starts, deliberate starts, a forced
//!   start followed by an operator's stop and start (announced only in the event log), a
//!   tag removed while restop waits, a hold, and events naming a bystander database in
//!   another account or region;
//! - over the first 85%, one fault at a time: a replica SIGKILLed and restarted, SIGTERM
//!   under backlog, PostgreSQL restarted (fast and immediate), RDS throttling bursts,
//!   5xx answers, answers slower than RESTOP_AWS_TIMEOUT.
//!
//! It checks, continuously and at the end, and exits 1 on any violation:
//! - I1 every protected forced start ends `stopped` in RDS with exactly one execution
//!   `succeeded` / `stopped`;
//! - I2 no other database receives a stop call from restop (moto's call log);
//! - I3 at most one accepted stop call per forced start;
//! - I4 every SNS delivery answered 2xx is in `/v1/messages`;
//! - I5 no execution is left active;
//! - I6 no replica exits unless the soak stopped it (and one sent SIGTERM exits 0 in time);
//! - I7 no replica process makes more than RESTOP_RDS_MAX_RPS x 2 RDS requests in any
//!   second of one account and region (the budget is per process; the busiest second of
//!   all replicas together is printed). The replicas reach moto through a proxy of the
//!   soak's own that stamps each request as it arrives: moto's own log stamps a request
//!   when its Python handler runs, and when moto stalls, requests sent over seconds are
//!   handled, and stamped, in one burst.
//!
//! Figures printed: forced starts by kind, deliveries, faults by kind, violations by
//! invariant, seconds from `available` to restop's stop call (p50 / p99 / max), RDS calls
//! per forced start, peak RSS per replica.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use aws_sdk_rds::config::{Credentials, Region};
use aws_sdk_rds::types::Tag;
use chrono::Utc;
use clap::{Parser, ValueEnum};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use restop::aws::SdkAws;
use restop::testing::moto::{self, ACCOUNT, Moto, REGION, new_instance};
use restop::testing::sns::{SnsStub, TOPIC, sns_timestamp};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// restop processes sharing the database (1 with `--db sqlite`).
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Scenarios in all (protected forced starts and what must be left alone).
    #[arg(long, default_value_t = 300)]
    forced_starts: usize,
    /// The schedule's seed (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, value_enum, default_value_t = Backend::Postgres)]
    db: Backend,
    /// RESTOP_RDS_MAX_RPS of every replica.
    #[arg(long, default_value_t = 10)]
    rds_max_rps: u32,
    #[arg(long, default_value = "target/moto-venv/bin/python")]
    moto_python: String,
    /// The restop binary (default: built with this example's profile).
    #[arg(long)]
    restop_bin: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Postgres,
    Sqlite,
}

const TOKEN: &str = "soak-token-0123456789abcdef";
const PROTECTION: (&str, &str) = ("auto-restart-protection", "yes");
const HOLD_KEY: &str = "auto-restart-protection-hold-until";
/// The settings that bound a replica's reaction times; faults are sized against them.
const AWS_TIMEOUT_SECONDS: u64 = 2;
const SIGTERM_GRACE: Duration = Duration::from_secs(15);
/// Databases other accounts' or regions' events name (they must stay running).
const BYSTANDERS: usize = 4;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if soak(Args::parse()).await? {
        std::process::exit(1);
    }
    Ok(())
}

/// Runs the soak; true when an invariant was violated. Everything it started (replicas,
/// PostgreSQL, moto) is stopped by the time it returns.
async fn soak(mut args: Args) -> anyhow::Result<bool> {
    if args.db == Backend::Sqlite {
        args.replicas = 1;
    }
    ensure!(args.replicas >= 1, "--replicas must be at least 1");
    ensure!(
        Path::new(&args.moto_python).exists(),
        "{} does not exist: run scripts/test once (it makes the moto venv), or pass --moto-python",
        args.moto_python
    );
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    });
    let binary = match &args.restop_bin {
        Some(path) => path.clone(),
        None => build_restop()?,
    };
    eprintln!(
        "soak: seed {seed}, {} replicas on {}, {} minutes, {} scenarios",
        args.replicas,
        match args.db {
            Backend::Postgres => "PostgreSQL",
            Backend::Sqlite => "SQLite",
        },
        args.minutes,
        args.forced_starts
    );
    let work = tempfile::Builder::new().prefix("restop-soak.").tempdir()?;
    let postgres = match args.db {
        Backend::Postgres => Some(Arc::new(Postgres::start(work.path())?)),
        Backend::Sqlite => None,
    };
    let database_url = match &postgres {
        Some(pg) => pg.url(),
        None => format!("sqlite://{}", work.path().join("restop.db").display()),
    };
    let moto = Moto::launch(&args.moto_python).await;
    let stub = SnsStub::start().await;
    let world = Arc::new(World::new(&moto, stub, &args).await);

    let mut rng = StdRng::seed_from_u64(seed);
    let plan = Plan::draw(&mut rng, &args);
    world.create_databases(&plan).await?;
    eprintln!(
        "soak: {} databases created and stopped",
        plan.scenarios
            .iter()
            .filter(|s| s.kind.own_database())
            .count()
            + BYSTANDERS
    );

    let arrivals = Arrivals::start(&moto.url).await?;
    let replicas = Arc::new(Replicas::new(
        &args,
        &binary,
        &database_url,
        &arrivals.url,
        &world,
        work.path(),
    ));
    for index in 0..args.replicas {
        replicas.spawn(index).await?;
    }
    world.clear_call_log().await?;
    let began = Instant::now();
    let run = Duration::from_secs_f64(args.minutes * 60.0);

    let watch = tokio::spawn(watch_replicas(replicas.clone(), world.clone()));
    let poll = tokio::spawn(poll_statuses(world.clone()));
    let faults = tokio::spawn(inject_faults(
        world.clone(),
        replicas.clone(),
        postgres.clone(),
        plan.faults.clone(),
        rng.random(),
        began,
    ));
    let mut scenarios = tokio::task::JoinSet::new();
    for (scenario, at) in plan
        .scenarios
        .iter()
        .cloned()
        .zip(plan.starts.iter().copied())
    {
        let world = world.clone();
        let mut rng = StdRng::seed_from_u64(rng.random());
        scenarios.spawn(async move {
            tokio::time::sleep_until((began + at).into()).await;
            if let Err(e) = world.play(&scenario, &mut rng).await {
                world.violation("soak", format!("scenario {} failed: {e:#}", scenario.id));
            }
        });
    }
    while let Some(done) = scenarios.join_next().await {
        done?;
    }
    faults.await??;
    let remaining = run.saturating_sub(began.elapsed());
    eprintln!(
        "soak: schedule done after {:.0} s; settling (at least {:.0} s more)",
        began.elapsed().as_secs_f64(),
        remaining.as_secs_f64()
    );
    tokio::time::sleep(remaining).await;
    world.settle(Duration::from_secs(180)).await;
    watch.abort();
    poll.abort();

    world.check(&plan, &arrivals, args.rds_max_rps).await?;
    let failed = world.report(&plan, &replicas, began.elapsed());
    replicas.stop_all().await;
    if failed {
        eprintln!("soak: replica logs kept in {}", work.keep().display());
    }
    Ok(failed)
}

/// Builds the `restop` binary with the profile this example runs in, as `cargo run` gives
/// examples none of the package's binaries.
fn build_restop() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/soak
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("where is the target directory?")?;
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build.args(["build", "--quiet", "--locked", "--bin", "restop"]);
    if release {
        build.arg("--release");
    }
    ensure!(build.status()?.success(), "cargo build --bin restop failed");
    Ok(profile_dir.join("restop"))
}

// ---------------------------------------------------------------------------------------
// The plan
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// A protected instance's forced start: restop stops it.
    Instance,
    /// A protected Aurora cluster's forced start: restop stops it.
    Cluster,
    /// A forced start of an untagged instance.
    Untagged,
    /// A protected instance started on purpose (only RDS-EVENT-0088).
    Deliberate,
    /// A forced start the operator stopped, then started again, before the catch-up read
    /// the log (no SNS message for the forced start).
    OperatorRestart,
    /// The protection tag is removed while restop waits for `available`.
    TagRemoved,
    /// A protected instance with a hold until tomorrow.
    Held,
    /// RDS-EVENT-0154 naming a bystander's identifier in another account.
    ForeignAccount,
    /// RDS-EVENT-0154 naming a bystander's identifier in another region.
    OtherRegion,
}

impl Kind {
    const WEIGHTS: [(Kind, u32); 9] = [
        (Kind::Instance, 50),
        (Kind::Cluster, 15),
        (Kind::Untagged, 7),
        (Kind::Deliberate, 7),
        (Kind::OperatorRestart, 5),
        (Kind::TagRemoved, 6),
        (Kind::Held, 4),
        (Kind::ForeignAccount, 3),
        (Kind::OtherRegion, 3),
    ];

    fn must_stop(self) -> bool {
        matches!(self, Kind::Instance | Kind::Cluster)
    }

    fn cluster(self) -> bool {
        self == Kind::Cluster
    }

    /// Whether the scenario starts a database of its own.
    fn own_database(self) -> bool {
        !matches!(self, Kind::ForeignAccount | Kind::OtherRegion)
    }
}

#[derive(Clone, Copy, Debug)]
enum ForcedDelivery {
    Delivered,
    /// To two replicas (SNS delivers at least once).
    Duplicated,
    /// After the "started" event.
    Reordered,
    Delayed(u64),
    /// Only in RDS's event log.
    Lost,
}

#[derive(Clone, Copy, Debug)]
enum Wake {
    /// Right after the start, before `available`.
    Early,
    OnTime,
    Late(u64),
    Missing,
}

#[derive(Clone, Debug)]
struct Scenario {
    id: String,
    kind: Kind,
    forced: ForcedDelivery,
    wake: Wake,
    start_seconds: u64,
    stop_seconds: u64,
}

impl Scenario {
    fn arn(&self) -> String {
        let kind = if self.kind.cluster() { "cluster" } else { "db" };
        format!("arn:aws:rds:{REGION}:{ACCOUNT}:{kind}:{}", self.id)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Sigkill,
    Sigterm,
    PostgresRestartFast,
    PostgresRestartImmediate,
    Throttling,
    ServerErrors,
    SlowAnswers,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Sigkill => "replica SIGKILL + restart",
            Fault::Sigterm => "replica SIGTERM under backlog + restart",
            Fault::PostgresRestartFast => "PostgreSQL restart (fast)",
            Fault::PostgresRestartImmediate => "PostgreSQL restart (immediate)",
            Fault::Throttling => "RDS throttling burst",
            Fault::ServerErrors => "AWS 5xx answers",
            Fault::SlowAnswers => "AWS answers slower than the timeout",
        }
    }
}

struct Plan {
    scenarios: Vec<Scenario>,
    /// When each scenario begins, from the start of the run.
    starts: Vec<Duration>,
    /// Each fault and when it begins.
    faults: Vec<(Duration, Fault)>,
}

impl Plan {
    fn draw(rng: &mut StdRng, args: &Args) -> Self {
        let run = args.minutes * 60.0;
        let total: u32 = Kind::WEIGHTS.iter().map(|(_, w)| w).sum();
        let mut scenarios = Vec::new();
        let mut starts = Vec::new();
        for n in 0..args.forced_starts {
            let mut pick = rng.random_range(0..total);
            let kind = Kind::WEIGHTS
                .iter()
                .find(|(_, w)| {
                    if pick < *w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .map(|(k, _)| *k)
                .unwrap();
            let forced = match rng.random_range(0..100) {
                0..55 => ForcedDelivery::Delivered,
                55..70 => ForcedDelivery::Duplicated,
                70..80 => ForcedDelivery::Reordered,
                80..90 => ForcedDelivery::Delayed(rng.random_range(5..40)),
                _ => ForcedDelivery::Lost,
            };
            let wake = match rng.random_range(0..100) {
                0..15 => Wake::Early,
                15..75 => Wake::OnTime,
                75..85 => Wake::Late(rng.random_range(5..30)),
                _ => Wake::Missing,
            };
            let prefix = format!("{kind:?}").to_lowercase();
            scenarios.push(Scenario {
                id: format!("soak-{prefix}-{n}"),
                kind,
                forced,
                wake,
                // Long enough for the tag to go while restop waits.
                start_seconds: if kind == Kind::TagRemoved {
                    8
                } else {
                    rng.random_range(2..7)
                },
                stop_seconds: rng.random_range(1..4),
            });
            starts.push(Duration::from_secs_f64(rng.random_range(0.0..run * 0.7)));
        }
        let mut faults = Vec::new();
        let count = (args.minutes * 3.0).ceil() as usize;
        let mut kinds = vec![
            Fault::Sigkill,
            Fault::Sigterm,
            Fault::Throttling,
            Fault::ServerErrors,
            Fault::SlowAnswers,
        ];
        if args.db == Backend::Postgres {
            kinds.extend([Fault::PostgresRestartFast, Fault::PostgresRestartImmediate]);
        }
        for _ in 0..count {
            let at = Duration::from_secs_f64(rng.random_range(run * 0.05..run * 0.85));
            faults.push((at, kinds[rng.random_range(0..kinds.len())]));
        }
        faults.sort();
        Self {
            scenarios,
            starts,
            faults,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The world: moto, the fake SNS, what happened
// ---------------------------------------------------------------------------------------

struct World {
    moto_url: String,
    http: reqwest::Client,
    /// The soak's own RDS client: access key `soak`, so moto's log tells its calls apart.
    rds: aws_sdk_rds::Client,
    stub: SnsStub,
    /// Each replica's base URL, fixed across restarts.
    bases: Vec<String>,
    record: Mutex<Record>,
    statuses: Mutex<Statuses>,
}

#[derive(Default)]
struct Statuses {
    /// The number of the last complete pass over every database.
    pass: u64,
    /// Passes begun so far.
    begun: u64,
    by_id: HashMap<String, String>,
    /// The databases (identifier, whether a cluster) a scenario waits on: the poller
    /// describes only those.
    watched: HashSet<(String, bool)>,
}

#[derive(Default)]
struct Record {
    /// When the soak's StartDBInstance / StartDBCluster of each database returned (Unix s).
    started_at: HashMap<String, f64>,
    /// MessageIds of the deliveries restop answered 2xx.
    answered: HashSet<String>,
    deliveries: u64,
    answers: BTreeMap<String, u64>,
    /// Messages no replica took within SNS's retries.
    undelivered: u64,
    faults: BTreeMap<&'static str, u64>,
    violations: Vec<(&'static str, String)>,
    /// The busiest second of all replicas together.
    busiest_second_all: usize,
    available_to_stop: Vec<f64>,
    rds_calls: usize,
}

impl World {
    async fn new(moto: &Moto, stub: SnsStub, args: &Args) -> Self {
        let config = SdkAws::loader(Duration::from_secs(60))
            .endpoint_url(&moto.url)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("soak", "soak", None, None, "soak"))
            .load()
            .await;
        let bases = (0..args.replicas)
            .map(|_| {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                format!("http://127.0.0.1:{port}")
            })
            .collect();
        Self {
            moto_url: moto.url.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            rds: aws_sdk_rds::Client::new(&config),
            stub,
            bases,
            record: Mutex::default(),
            statuses: Mutex::default(),
        }
    }

    fn violation(&self, invariant: &'static str, what: String) {
        eprintln!("soak: VIOLATION {invariant}: {what}");
        self.record
            .lock()
            .unwrap()
            .violations
            .push((invariant, what));
    }

    async fn create_databases(&self, plan: &Plan) -> anyhow::Result<()> {
        let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
        let mut creations = tokio::task::JoinSet::new();
        let bystanders = (0..BYSTANDERS).map(|n| Scenario {
            id: format!("soak-bystander-{n}"),
            kind: Kind::Deliberate,
            forced: ForcedDelivery::Lost,
            wake: Wake::Missing,
            start_seconds: 2,
            stop_seconds: 2,
        });
        let own = plan
            .scenarios
            .iter()
            .filter(|s| s.kind.own_database())
            .cloned();
        let gate = Arc::new(tokio::sync::Semaphore::new(4));
        for scenario in own.chain(bystanders) {
            let rds = self.rds.clone();
            let gate = gate.clone();
            let mut tags = vec![
                tag("moto:start-seconds", &scenario.start_seconds.to_string()),
                tag("moto:stop-seconds", &scenario.stop_seconds.to_string()),
            ];
            if scenario.kind != Kind::Untagged {
                tags.push(tag(PROTECTION.0, PROTECTION.1));
            }
            if scenario.kind == Kind::Held {
                let tomorrow = (Utc::now() + chrono::Duration::days(2)).format("%Y-%m-%d");
                tags.push(tag(HOLD_KEY, &tomorrow.to_string()));
            }
            let bystander = scenario.id.starts_with("soak-bystander");
            creations.spawn(async move {
                let _slot = gate.acquire().await;
                let id = &scenario.id;
                if scenario.kind.cluster() {
                    send_once(id, "AlreadyExists", || {
                        rds.create_db_cluster()
                            .db_cluster_identifier(id)
                            .engine("aurora-postgresql")
                            .master_username("admin")
                            .master_user_password("password123")
                            .set_tags(Some(tags.clone()))
                            .send()
                    })
                    .await?;
                    send_once(id, "InvalidDBClusterState", || {
                        rds.stop_db_cluster().db_cluster_identifier(id).send()
                    })
                    .await?;
                } else {
                    send_once(id, "AlreadyExists", || {
                        new_instance(&rds, id).set_tags(Some(tags.clone())).send()
                    })
                    .await?;
                    // Bystanders run all along.
                    if !bystander {
                        send_once(id, "InvalidDBInstanceState", || {
                            rds.stop_db_instance().db_instance_identifier(id).send()
                        })
                        .await?;
                    }
                }
                anyhow::Ok(())
            });
        }
        while let Some(created) = creations.join_next().await {
            created??;
        }
        // Every stop takes at most 3 s.
        tokio::time::sleep(Duration::from_secs(4)).await;
        Ok(())
    }

    async fn clear_call_log(&self) -> anyhow::Result<()> {
        self.http
            .delete(format!("{}/restop-test/calls", self.moto_url))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    async fn control(&self, route: &str, body: Value) -> anyhow::Result<()> {
        self.http
            .post(format!("{}/restop-test/{route}", self.moto_url))
            .json(&body)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Adds an event to RDS's event log, dated `seconds_ago`.
    async fn log_event(
        &self,
        scenario: &Scenario,
        event_id: &str,
        seconds_ago: f64,
    ) -> anyhow::Result<()> {
        let source_type = if scenario.kind.cluster() {
            "db-cluster"
        } else {
            "db-instance"
        };
        self.control(
            "rds-events",
            json!({
                "event_id": event_id,
                "source_type": source_type,
                "source_identifier": scenario.id,
                "account": ACCOUNT,
                "region": REGION,
                "seconds_ago": seconds_ago,
            }),
        )
        .await
    }

    /// An SNS notification of `event_id` about `arn`, signed and dated now, as an RDS
    /// event subscription publishes it.
    fn notification(&self, event_id: &str, arn: &str, identifier: &str, cluster: bool) -> Value {
        let (source, text) = match event_id {
            "RDS-EVENT-0154" => (
                "db-instance",
                "DB instance is being started due to it exceeding the maximum allowed time being stopped.",
            ),
            "RDS-EVENT-0153" => (
                "db-cluster",
                "DB cluster is being started due to it exceeding the maximum allowed time being stopped.",
            ),
            "RDS-EVENT-0151" => ("db-cluster", "The DB cluster has been started."),
            _ => ("db-instance", "The DB instance has been started."),
        };
        debug_assert_eq!(source == "db-cluster", cluster);
        let now = Utc::now();
        let message = json!({
            "Event Source": source,
            "Event Time": now.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            "Identifier Link": format!("https://console.aws.amazon.com/rds/home?region={REGION}#dbinstance:id={identifier}"),
            "Source ID": identifier,
            "Source ARN": arn,
            "Event ID": format!("http://docs.amazonwebservices.com/AmazonRDS/latest/UserGuide/USER_Events.html#{event_id}"),
            "Event Message": text,
        });
        let mut notification = json!({
            "Type": "Notification",
            "MessageId": uuid::Uuid::new_v4().to_string(),
            "TopicArn": TOPIC,
            "Subject": "RDS Notification Message",
            "Message": message.to_string(),
            "Timestamp": sns_timestamp(now),
            "SignatureVersion": "2",
            "SigningCertURL": self.stub.cert_url(),
            "UnsubscribeURL": format!("http://{}/?Action=Unsubscribe&SubscriptionArn={TOPIC}:soak", self.stub.host),
        });
        self.stub.signer.sign(&mut notification);
        notification
    }

    /// Delivers `message` as SNS does: to one replica (`first`, then others), again on any
    /// answer other than 2xx, with backoff, for about a minute.
    async fn deliver(&self, message: &Value, first: usize) {
        let id = message["MessageId"].as_str().unwrap_or_default().to_owned();
        let mut backoff = Duration::from_millis(500);
        for attempt in 0..8 {
            let base = &self.bases[(first + attempt) % self.bases.len()];
            let answer = self
                .http
                .post(format!("{base}/sns"))
                .header("content-type", "text/plain; charset=UTF-8")
                .header("x-amz-sns-message-type", "Notification")
                .header("x-amz-sns-message-id", &id)
                .header("x-amz-sns-topic-arn", TOPIC)
                .body(message.to_string())
                .send()
                .await;
            let answered = match &answer {
                Ok(response) => response.status().as_u16().to_string(),
                Err(e) if e.is_connect() => "connection refused".into(),
                Err(e) if e.is_timeout() => "timeout".into(),
                Err(_) => "connection error".into(),
            };
            let ok = answer.is_ok_and(|r| r.status().is_success());
            {
                let mut record = self.record.lock().unwrap();
                record.deliveries += 1;
                *record.answers.entry(answered).or_default() += 1;
                if ok {
                    record.answered.insert(id);
                    return;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(20));
        }
        self.record.lock().unwrap().undelivered += 1;
    }

    async fn start(&self, scenario: &Scenario) -> anyhow::Result<()> {
        let id = &scenario.id;
        // Only the soak starts its databases: a state error means an attempt did.
        if scenario.kind.cluster() {
            send_once(id, "InvalidDBClusterState", || {
                self.rds.start_db_cluster().db_cluster_identifier(id).send()
            })
            .await?;
        } else {
            send_once(id, "InvalidDBInstanceState", || {
                self.rds
                    .start_db_instance()
                    .db_instance_identifier(id)
                    .send()
            })
            .await?;
        }
        self.record
            .lock()
            .unwrap()
            .started_at
            .insert(scenario.id.clone(), unix_now());
        Ok(())
    }

    /// Plays one scenario from its start to its end in RDS.
    async fn play(&self, scenario: &Scenario, rng: &mut StdRng) -> anyhow::Result<()> {
        let replica = rng.random_range(0..self.bases.len());
        let (forced_id, wake_id) = if scenario.kind.cluster() {
            ("RDS-EVENT-0153", "RDS-EVENT-0151")
        } else {
            ("RDS-EVENT-0154", "RDS-EVENT-0088")
        };
        let arn = scenario.arn();
        match scenario.kind {
            Kind::ForeignAccount | Kind::OtherRegion => {
                let bystander = format!("soak-bystander-{}", rng.random_range(0..BYSTANDERS));
                let arn = if scenario.kind == Kind::ForeignAccount {
                    format!("arn:aws:rds:{REGION}:999999999999:db:{bystander}")
                } else {
                    format!("arn:aws:rds:eu-west-1:{ACCOUNT}:db:{bystander}")
                };
                let message = self.notification(forced_id, &arn, &bystander, false);
                self.deliver(&message, replica).await;
                return Ok(());
            }
            Kind::Deliberate => {
                self.start(scenario).await?;
                let pass = self.begun_passes();
                tokio::time::sleep(Duration::from_secs(scenario.start_seconds)).await;
                self.log_event(scenario, wake_id, 0.0).await?;
                let message = self.notification(wake_id, &arn, &scenario.id, false);
                self.deliver(&message, replica).await;
                self.wait_for(scenario, "available", pass).await;
                return Ok(());
            }
            Kind::OperatorRestart => return self.operator_restart(scenario, replica).await,
            _ => {}
        }
        // A forced start: RDS starts the database and logs the event at once.
        self.start(scenario).await?;
        let pass = self.begun_passes();
        self.log_event(scenario, forced_id, 0.0).await?;
        let forced = self.notification(forced_id, &arn, &scenario.id, scenario.kind.cluster());
        let others = (replica + 1) % self.bases.len();
        let forced_delivery = async {
            match scenario.forced {
                ForcedDelivery::Delivered => self.deliver(&forced, replica).await,
                ForcedDelivery::Duplicated => {
                    self.deliver(&forced, replica).await;
                    self.deliver(&forced, others).await;
                }
                ForcedDelivery::Reordered => {
                    tokio::time::sleep(Duration::from_secs(scenario.start_seconds + 2)).await;
                    self.deliver(&forced, replica).await;
                }
                ForcedDelivery::Delayed(seconds) => {
                    tokio::time::sleep(Duration::from_secs(seconds)).await;
                    self.deliver(&forced, replica).await;
                }
                ForcedDelivery::Lost => {}
            }
        };
        let wake_delivery = async {
            let wake = || self.notification(wake_id, &arn, &scenario.id, scenario.kind.cluster());
            if let Wake::Early = scenario.wake {
                self.deliver(&wake(), others).await;
            }
            tokio::time::sleep(Duration::from_secs(scenario.start_seconds)).await;
            // RDS logs the end of every start, forced ones included.
            let logged = self.log_event(scenario, wake_id, 0.0).await;
            match scenario.wake {
                Wake::OnTime => self.deliver(&wake(), others).await,
                Wake::Late(seconds) => {
                    tokio::time::sleep(Duration::from_secs(seconds)).await;
                    self.deliver(&wake(), others).await;
                }
                Wake::Early | Wake::Missing => {}
            }
            logged
        };
        let changes = async {
            if scenario.kind == Kind::TagRemoved {
                tokio::time::sleep(Duration::from_secs(2)).await;
                self.rds
                    .remove_tags_from_resource()
                    .resource_name(&arn)
                    .tag_keys(PROTECTION.0)
                    .send()
                    .await?;
            }
            anyhow::Ok(())
        };
        let ((), logged, changed) = tokio::join!(forced_delivery, wake_delivery, changes);
        logged?;
        changed?;
        if scenario.kind.must_stop() {
            // RDS logs restop's stop too (RDS-EVENT-0087 / 0150), which the catch-up reads.
            if self.wait_for(scenario, "stopped", pass).await {
                let stopped = if scenario.kind.cluster() {
                    "RDS-EVENT-0150"
                } else {
                    "RDS-EVENT-0087"
                };
                self.log_event(scenario, stopped, 0.0).await?;
            }
        }
        Ok(())
    }

    /// A forced start the operator stops and starts again before any message of it
    /// reaches restop: the event log then says forced start, stop, start.
    async fn operator_restart(&self, scenario: &Scenario, replica: usize) -> anyhow::Result<()> {
        self.start(scenario).await?;
        let forced_at = unix_now();
        let pass = self.begun_passes();
        self.wait_for(scenario, "available", pass).await;
        let id = &scenario.id;
        send_once(id, "InvalidDBInstanceState", || {
            self.rds
                .stop_db_instance()
                .db_instance_identifier(id)
                .send()
        })
        .await?;
        let stopped_at = unix_now();
        let pass = self.begun_passes();
        self.wait_for(scenario, "stopped", pass).await;
        self.start(scenario).await?;
        let started_at = unix_now();
        let now = unix_now();
        for (event, at) in [
            ("RDS-EVENT-0154", forced_at),
            ("RDS-EVENT-0087", stopped_at + 1.0),
            ("RDS-EVENT-0088", started_at),
        ] {
            self.log_event(scenario, event, now - at).await?;
        }
        tokio::time::sleep(Duration::from_secs(scenario.start_seconds)).await;
        let wake = self.notification("RDS-EVENT-0088", &scenario.arn(), &scenario.id, false);
        self.deliver(&wake, replica).await;
        Ok(())
    }

    fn begun_passes(&self) -> u64 {
        self.statuses.lock().unwrap().begun
    }

    /// Waits (up to 5 minutes) until a pass of the status poller begun after `after`
    /// shows `status` for the scenario's database.
    async fn wait_for(&self, scenario: &Scenario, status: &str, after: u64) -> bool {
        let watched = (scenario.id.clone(), scenario.kind.cluster());
        self.statuses
            .lock()
            .unwrap()
            .watched
            .insert(watched.clone());
        let seen = self.wait_for_watched(scenario, status, after).await;
        self.statuses.lock().unwrap().watched.remove(&watched);
        seen
    }

    async fn wait_for_watched(&self, scenario: &Scenario, status: &str, after: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            {
                let statuses = self.statuses.lock().unwrap();
                if statuses.pass > after
                    && statuses
                        .by_id
                        .get(&scenario.id)
                        .is_some_and(|s| s == status)
                {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    }

    async fn describe_all(&self) -> anyhow::Result<HashMap<String, String>> {
        let mut by_id = self.describe_instances(None).await?;
        by_id.extend(self.describe_clusters(None).await?);
        Ok(by_id)
    }

    /// The status of each instance, of those `ids` only when given.
    async fn describe_instances(
        &self,
        ids: Option<Vec<String>>,
    ) -> anyhow::Result<HashMap<String, String>> {
        let filter = ids.map(|ids| id_filter("db-instance-id", ids));
        let mut by_id = HashMap::new();
        let mut marker = None;
        loop {
            let page = self
                .rds
                .describe_db_instances()
                .set_filters(filter.clone())
                .max_records(100)
                .set_marker(marker)
                .send()
                .await?;
            for db in page.db_instances() {
                if let (Some(id), Some(status)) =
                    (db.db_instance_identifier(), db.db_instance_status())
                {
                    by_id.insert(id.to_owned(), status.to_owned());
                }
            }
            marker = page.marker().map(str::to_owned);
            if marker.is_none() {
                return Ok(by_id);
            }
        }
    }

    /// The status of each cluster, of those `ids` only when given.
    async fn describe_clusters(
        &self,
        ids: Option<Vec<String>>,
    ) -> anyhow::Result<HashMap<String, String>> {
        let filter = ids.map(|ids| id_filter("db-cluster-id", ids));
        let mut by_id = HashMap::new();
        let mut marker = None;
        loop {
            let page = self
                .rds
                .describe_db_clusters()
                .set_filters(filter.clone())
                .max_records(100)
                .set_marker(marker)
                .send()
                .await?;
            for cluster in page.db_clusters() {
                if let (Some(id), Some(status)) =
                    (cluster.db_cluster_identifier(), cluster.status())
                {
                    by_id.insert(id.to_owned(), status.to_owned());
                }
            }
            marker = page.marker().map(str::to_owned);
            if marker.is_none() {
                return Ok(by_id);
            }
        }
    }

    async fn v1(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let mut last = None;
        for base in &self.bases {
            match self
                .http
                .get(format!("{base}{path}"))
                .bearer_auth(TOKEN)
                .send()
                .await
            {
                Ok(response) if response.status().as_u16() != 503 => {
                    let status = response.status().as_u16();
                    return Ok((status, response.json().await.unwrap_or(Value::Null)));
                }
                Ok(response) => last = Some(anyhow::anyhow!("{base}: {}", response.status())),
                Err(e) => last = Some(e.into()),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no replica")))
    }

    /// Waits until no execution is active, or `limit` passes.
    async fn settle(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let mut active = 0;
            for status in ["pending", "running"] {
                match self
                    .v1(&format!("/v1/executions?status={status}&limit=1"))
                    .await
                {
                    Ok((200, page)) => active += page["items"].as_array().map_or(0, Vec::len),
                    _ => active += 1,
                }
            }
            if active == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The invariants over the whole history, once everything has settled.
    async fn check(&self, plan: &Plan, arrivals: &Arrivals, max_rps: u32) -> anyhow::Result<()> {
        let statuses = self.describe_all().await?;
        let log: Vec<Value> = self
            .http
            .get(format!("{}/restop-test/calls", self.moto_url))
            .send()
            .await?
            .json()
            .await?;
        let by_restop: Vec<&Value> = log
            .iter()
            .filter(|c| {
                c["access_key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with(REPLICA_KEY_PREFIX))
            })
            .collect();

        // I5: nothing left active.
        for status in ["pending", "running"] {
            let (_, page) = self
                .v1(&format!("/v1/executions?status={status}&limit=100"))
                .await?;
            for execution in page["items"].as_array().into_iter().flatten() {
                self.violation(
                    "I5",
                    format!(
                        "execution {} of {} still {status}",
                        execution["id"], execution["resource_arn"]
                    ),
                );
            }
        }

        // I2, I3: stop calls, from moto's log.
        let mut accepted_stops: HashMap<&str, Vec<f64>> = HashMap::new();
        let must_stop: HashMap<&str, &Scenario> = plan
            .scenarios
            .iter()
            .filter(|s| s.kind.must_stop())
            .map(|s| (s.id.as_str(), s))
            .collect();
        for call in &by_restop {
            let action = call["action"].as_str().unwrap_or_default();
            if action != "StopDBInstance" && action != "StopDBCluster" {
                continue;
            }
            let resource = call["resource"].as_str().unwrap_or_default();
            if !must_stop.contains_key(resource) {
                self.violation(
                    "I2",
                    format!("restop called {action} for {resource}, which it must leave alone"),
                );
            }
            if call["status"]
                .as_u64()
                .is_some_and(|s| (200..300).contains(&s))
            {
                accepted_stops
                    .entry(resource)
                    .or_default()
                    .push(call["at"].as_f64().unwrap_or_default());
            }
        }
        // I1: every protected forced start ends stopped, by exactly one execution.
        let started_at = self.record.lock().unwrap().started_at.clone();
        let mut available_to_stop = Vec::new();
        for (id, scenario) in &must_stop {
            let stops = accepted_stops.get(id).map_or(&[][..], Vec::as_slice);
            if stops.len() > 1 {
                self.violation("I3", format!("{id}: {} accepted stop calls", stops.len()));
            }
            if let (Some(first), Some(started)) = (stops.first(), started_at.get(*id)) {
                available_to_stop.push(first - (started + scenario.start_seconds as f64));
            }
            let status = statuses.get(*id).map_or("<missing>", String::as_str);
            if status != "stopped" {
                self.violation("I1", format!("{id} is {status} in RDS, not stopped"));
            }
            let (_, page) = self
                .v1(&format!(
                    "/v1/executions?resource={}&limit=100",
                    scenario.arn()
                ))
                .await?;
            let stopped = page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["status"] == "succeeded" && e["outcome"] == "stopped")
                .count();
            if stopped != 1 {
                self.violation(
                    "I1",
                    format!("{id}: {stopped} executions succeeded / stopped"),
                );
            }
        }

        // I4: every delivery answered 2xx is stored.
        let answered: Vec<String> = self
            .record
            .lock()
            .unwrap()
            .answered
            .iter()
            .cloned()
            .collect();
        for id in &answered {
            let (status, _) = self.v1(&format!("/v1/messages/{id}")).await?;
            if status != 200 {
                self.violation(
                    "I4",
                    format!("message {id} was answered 2xx but /v1/messages says {status}"),
                );
            }
        }

        // I7: RDS requests per second as they left the replicas, per process and account-
        // region, and all together.
        let mut per_second: HashMap<(&str, &str, i64), usize> = HashMap::new();
        let mut all: HashMap<i64, usize> = HashMap::new();
        let arrivals = arrivals.stamps.lock().unwrap();
        let mut rds_calls = 0;
        for arrival in arrivals.iter().filter(|a| a.service == "rds") {
            rds_calls += 1;
            let second = arrival.at.floor() as i64;
            *per_second
                .entry((&arrival.access_key, &arrival.region, second))
                .or_default() += 1;
            *all.entry(second).or_default() += 1;
        }
        for ((key, region, second), count) in &per_second {
            if *count > (max_rps * 2) as usize {
                self.violation(
                    "I7",
                    format!("replica {key}: {count} RDS requests in {region} in second {second}"),
                );
            }
        }
        available_to_stop.sort_by(f64::total_cmp);
        let mut record = self.record.lock().unwrap();
        record.busiest_second_all = all.values().copied().max().unwrap_or(0);
        record.available_to_stop = available_to_stop;
        record.rds_calls = rds_calls;
        Ok(())
    }

    /// Prints the figures; true when an invariant was violated.
    fn report(&self, plan: &Plan, replicas: &Replicas, took: Duration) -> bool {
        let record = self.record.lock().unwrap();
        let mut kinds: BTreeMap<Kind, usize> = BTreeMap::new();
        for scenario in &plan.scenarios {
            *kinds.entry(scenario.kind).or_default() += 1;
        }
        println!("soak: {:.1} minutes", took.as_secs_f64() / 60.0);
        println!("scenarios:");
        for (kind, count) in &kinds {
            println!("  {kind:?}: {count}");
        }
        let started = record.started_at.len().max(1);
        println!(
            "deliveries: {} attempts, {} messages answered 2xx, {} never taken; answers {:?}",
            record.deliveries,
            record.answered.len(),
            record.undelivered,
            record.answers
        );
        println!("faults:");
        for (fault, count) in &record.faults {
            println!("  {fault}: {count}");
        }
        let times = &record.available_to_stop;
        let at = |q: f64| {
            times
                .get(((times.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        println!(
            "available to stop call: p50 {:.2} s, p99 {:.2} s, max {:.2} s ({} stops)",
            at(0.5),
            at(0.99),
            times.last().copied().unwrap_or(f64::NAN),
            times.len()
        );
        println!(
            "RDS calls by restop: {} ({:.2} per started database); busiest second of all replicas: {}",
            record.rds_calls,
            record.rds_calls as f64 / started as f64,
            record.busiest_second_all
        );
        for (index, peak) in replicas.peaks().iter().enumerate() {
            println!("replica {index}: peak RSS {:.1} MB", *peak as f64 / 1024.0);
        }
        let mut by_invariant: BTreeMap<&str, usize> = ["I1", "I2", "I3", "I4", "I5", "I6", "I7"]
            .into_iter()
            .map(|i| (i, 0))
            .collect();
        for (invariant, _) in &record.violations {
            *by_invariant.entry(invariant).or_default() += 1;
        }
        println!("violations: {by_invariant:?}");
        !record.violations.is_empty()
    }
}

/// Sends one of the soak's own RDS calls until it succeeds or fails with an error naming
/// `done`, which means an earlier attempt whose answer was lost did it: under load moto
/// now and then answers with an empty 500, and the SDK's retry then finds the work done.
async fn send_once<T, E: std::fmt::Debug, F: Future<Output = Result<T, E>>>(
    id: &str,
    done: &str,
    call: impl Fn() -> F,
) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                let error = format!("{e:?}");
                if error.contains(done) {
                    return Ok(());
                }
                attempt += 1;
                ensure!(attempt < 6, "setting up {id}: {error}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A Describe filter on identifiers of `name` (RDS takes up to 100).
fn id_filter(name: &str, ids: Vec<String>) -> Vec<aws_sdk_rds::types::Filter> {
    vec![
        aws_sdk_rds::types::Filter::builder()
            .name(name)
            .set_values(Some(ids))
            .build(),
    ]
}

/// Keeps `World::statuses` fresh: the status of every database a scenario waits on, every
/// second or so.
async fn poll_statuses(world: Arc<World>) {
    loop {
        let (pass, instances, clusters) = {
            let mut statuses = world.statuses.lock().unwrap();
            statuses.begun += 1;
            let (clusters, instances): (Vec<_>, Vec<_>) = statuses
                .watched
                .iter()
                .cloned()
                .partition(|(_, cluster)| *cluster);
            let ids = |v: Vec<(String, bool)>| v.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
            (statuses.begun, ids(instances), ids(clusters))
        };
        let described = async {
            let mut by_id = HashMap::new();
            for chunk in instances.chunks(100) {
                by_id.extend(world.describe_instances(Some(chunk.to_vec())).await?);
            }
            for chunk in clusters.chunks(100) {
                by_id.extend(world.describe_clusters(Some(chunk.to_vec())).await?);
            }
            anyhow::Ok(by_id)
        };
        match described.await {
            Ok(by_id) => {
                let mut statuses = world.statuses.lock().unwrap();
                statuses.by_id = by_id;
                statuses.pass = pass;
            }
            Err(e) => eprintln!("soak: status poll failed: {e:#}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------

async fn inject_faults(
    world: Arc<World>,
    replicas: Arc<Replicas>,
    postgres: Option<Arc<Postgres>>,
    faults: Vec<(Duration, Fault)>,
    seed: u64,
    began: Instant,
) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    for (at, fault) in faults {
        tokio::time::sleep_until((began + at).into()).await;
        let replica = rng.random_range(0..world.bases.len());
        let target = match fault {
            Fault::Sigkill | Fault::Sigterm => format!(" of replica {replica}"),
            _ => String::new(),
        };
        eprintln!(
            "soak: {:.0} s: {}{target}",
            began.elapsed().as_secs_f64(),
            fault.name()
        );
        *world
            .record
            .lock()
            .unwrap()
            .faults
            .entry(fault.name())
            .or_default() += 1;
        match fault {
            Fault::Sigkill => {
                replicas.kill(replica).await;
                tokio::time::sleep(Duration::from_millis(rng.random_range(500..4000))).await;
                replicas.spawn(replica).await?;
            }
            Fault::Sigterm => {
                if let Err(e) = replicas.terminate(replica).await {
                    world.violation("I6", format!("replica {replica}: {e:#}"));
                }
                replicas.spawn(replica).await?;
            }
            Fault::PostgresRestartFast | Fault::PostgresRestartImmediate => {
                let Some(pg) = &postgres else { continue };
                let immediate = fault == Fault::PostgresRestartImmediate;
                let down = Duration::from_millis(rng.random_range(200..3000));
                let pg = pg.clone();
                tokio::task::spawn_blocking(move || pg.restart(immediate, down)).await??;
            }
            Fault::Throttling => {
                world
                    .control(
                        "faults",
                        json!([
                            {"action": "DescribeDBInstances", "count": rng.random_range(5..40), "code": "Throttling", "access_key_prefix": "restop"},
                            {"action": "ListTagsForResource", "count": rng.random_range(2..10), "code": "Throttling", "access_key_prefix": "restop"},
                            {"action": "StopDBInstance", "count": rng.random_range(1..4), "code": "Throttling", "access_key_prefix": "restop"},
                            {"action": "DescribeEvents", "count": rng.random_range(1..4), "code": "Throttling", "access_key_prefix": "restop"},
                        ]),
                    )
                    .await?;
            }
            Fault::ServerErrors => {
                let actions = [
                    "DescribeDBInstances",
                    "DescribeDBClusters",
                    "ListTagsForResource",
                    "StopDBInstance",
                    "StopDBCluster",
                    "DescribeEvents",
                ];
                let action = actions[rng.random_range(0..actions.len())];
                let (status, code) = if rng.random_bool(0.5) {
                    (500, "InternalFailure")
                } else {
                    (503, "ServiceUnavailable")
                };
                world
                    .control(
                        "faults",
                        json!({"action": action, "count": rng.random_range(2..12), "status": status, "code": code, "message": "soak", "access_key_prefix": "restop"}),
                    )
                    .await?;
            }
            Fault::SlowAnswers => {
                let action = [
                    "DescribeDBInstances",
                    "ListTagsForResource",
                    "StopDBInstance",
                ][rng.random_range(0..3)];
                world
                    .control(
                        "faults",
                        json!({"action": action, "count": rng.random_range(2..8), "code": null, "delay_seconds": AWS_TIMEOUT_SECONDS + 1, "access_key_prefix": "restop"}),
                    )
                    .await?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Replicas
// ---------------------------------------------------------------------------------------

struct Replicas {
    binary: PathBuf,
    env: Vec<(String, String)>,
    bases: Vec<String>,
    logs: PathBuf,
    slots: Vec<tokio::sync::Mutex<Slot>>,
    peaks: Vec<AtomicU64>,
}

#[derive(Default)]
struct Slot {
    child: Option<tokio::process::Child>,
    incarnation: usize,
}

impl Replicas {
    fn new(
        args: &Args,
        binary: &Path,
        database_url: &str,
        aws_endpoint: &str,
        world: &World,
        dir: &Path,
    ) -> Self {
        let env = [
            ("DATABASE_URL", database_url.to_owned()),
            ("RESTOP_TOPIC_ARNS", TOPIC.into()),
            ("RESTOP_SNS_EXTRA_HOSTS", world.stub.host.clone()),
            ("RESTOP_API_TOKENS", TOKEN.into()),
            ("RESTOP_POLL_INTERVAL", "1s".into()),
            ("RESTOP_START_GRACE", "30s".into()),
            ("RESTOP_JOB_LEASE", "4s".into()),
            ("RESTOP_AWS_TIMEOUT", format!("{AWS_TIMEOUT_SECONDS}s")),
            ("RESTOP_CATCHUP_INTERVAL", "5s".into()),
            ("RESTOP_RDS_MAX_RPS", args.rds_max_rps.to_string()),
            ("AWS_ENDPOINT_URL", aws_endpoint.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("RUST_LOG", "info".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self {
            binary: binary.to_owned(),
            env,
            bases: world.bases.clone(),
            logs: dir.to_owned(),
            slots: (0..args.replicas).map(|_| Default::default()).collect(),
            peaks: (0..args.replicas).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The access key incarnation `incarnation` of replica `index` signs with: the
    /// budget is a process's, so each process is told apart.
    fn key(index: usize, incarnation: usize) -> String {
        format!("{REPLICA_KEY_PREFIX}{index}.{incarnation}")
    }

    fn peaks(&self) -> Vec<u64> {
        self.peaks
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .collect()
    }

    async fn spawn(&self, index: usize) -> anyhow::Result<()> {
        let mut slot = self.slots[index].lock().await;
        slot.incarnation += 1;
        let log = std::fs::File::create(
            self.logs
                .join(format!("replica-{index}.{}.log", slot.incarnation)),
        )?;
        let mut command = tokio::process::Command::new(&self.binary);
        for (key, _) in std::env::vars() {
            if key.starts_with("RESTOP_") || key.starts_with("AWS_") || key == "DATABASE_URL" {
                command.env_remove(key);
            }
        }
        let base = &self.bases[index];
        command
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_ACCESS_KEY_ID", Self::key(index, slot.incarnation))
            .env("RESTOP_LISTEN", base.trim_start_matches("http://"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let mut child = command.spawn().context("start restop")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("replica {index} exited before it was ready: {status}");
            }
            if reqwest::get(format!("{base}/readyz"))
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "replica {index} did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        slot.child = Some(child);
        Ok(())
    }

    async fn kill(&self, index: usize) {
        let mut slot = self.slots[index].lock().await;
        if let Some(mut child) = slot.child.take() {
            self.sample(index, &child);
            let _ = child.kill().await;
        }
    }

    /// SIGTERM: it must exit 0 within [`SIGTERM_GRACE`].
    async fn terminate(&self, index: usize) -> anyhow::Result<()> {
        let mut slot = self.slots[index].lock().await;
        let Some(mut child) = slot.child.take() else {
            return Ok(());
        };
        self.sample(index, &child);
        let pid = child.id().context("no pid")?;
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        let began = Instant::now();
        match tokio::time::timeout(SIGTERM_GRACE, child.wait()).await {
            Ok(status) => {
                let status = status?;
                ensure!(status.success(), "exited {status} after SIGTERM");
                eprintln!(
                    "soak: replica {index} exited {:.1} s after SIGTERM",
                    began.elapsed().as_secs_f64()
                );
                Ok(())
            }
            Err(_) => {
                let _ = child.kill().await;
                bail!("still running {SIGTERM_GRACE:?} after SIGTERM")
            }
        }
    }

    /// Records the process's peak resident memory so far.
    fn sample(&self, index: usize, child: &tokio::process::Child) {
        let Some(pid) = child.id() else { return };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            return;
        };
        let peak = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        self.peaks[index].fetch_max(peak, Ordering::Relaxed);
    }

    async fn stop_all(&self) {
        for index in 0..self.slots.len() {
            self.kill(index).await;
        }
    }
}

/// I6, continuously: a replica that exits on its own is a violation (and is restarted).
async fn watch_replicas(replicas: Arc<Replicas>, world: Arc<World>) {
    loop {
        for index in 0..replicas.slots.len() {
            let exited = {
                let mut slot = replicas.slots[index].lock().await;
                let Some(child) = slot.child.as_mut() else {
                    continue;
                };
                let exited = child.try_wait().ok().flatten();
                if exited.is_none() {
                    replicas.sample(index, child);
                } else {
                    slot.child = None;
                }
                exited
            };
            if let Some(status) = exited {
                world.violation("I6", format!("replica {index} exited on its own: {status}"));
                if let Err(e) = replicas.spawn(index).await {
                    eprintln!("soak: could not restart replica {index}: {e:#}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL: a throwaway cluster the soak can restart
// ---------------------------------------------------------------------------------------

struct Postgres {
    bindir: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    /// PostgreSQL refuses to run as root: `runuser -u postgres --` then.
    run_as: Vec<String>,
}

impl Postgres {
    fn start(work: &Path) -> anyhow::Result<Self> {
        let bindir = pg_bindir().context("no PostgreSQL install found (initdb)")?;
        let dir = work.join("pg");
        std::fs::create_dir(&dir)?;
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let run_as = if root {
            ensure!(
                std::process::Command::new("chown")
                    .args(["-R", "postgres"])
                    .arg(work)
                    .status()?
                    .success(),
                "chown the soak's directory to postgres"
            );
            ["runuser", "-u", "postgres", "--"]
                .map(String::from)
                .to_vec()
        } else {
            Vec::new()
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let pg = Self {
            bindir,
            data: dir.join("data"),
            log: dir.join("server.log"),
            port,
            run_as,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data.display().to_string(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        )?;
        pg.up()?;
        Ok(pg)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bindir.join(program);
        let mut command = match self.run_as.split_first() {
            Some((first, rest)) => {
                let mut c = std::process::Command::new(first);
                c.args(rest).arg(&program);
                c
            }
            None => std::process::Command::new(&program),
        };
        let output = command.args(args).output()?;
        ensure!(
            output.status.success(),
            "{} failed: {}",
            program.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }

    fn up(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.data.parent().unwrap().display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-l",
                &self.log.display().to_string(),
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        )
    }

    fn restart(&self, immediate: bool, down: Duration) -> anyhow::Result<()> {
        let mode = if immediate { "immediate" } else { "fast" };
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-m",
                mode,
                "-w",
                "stop",
            ],
        )?;
        std::thread::sleep(down);
        self.up()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-m",
                "immediate",
                "stop",
            ],
        );
    }
}

fn pg_bindir() -> Option<PathBuf> {
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|d| d.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|d| {
        d.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

// ---------------------------------------------------------------------------------------
// The replicas' way to moto: a proxy that stamps each request as it arrives
// ---------------------------------------------------------------------------------------

/// Access keys of replicas start with this; the soak's own is `soak`.
const REPLICA_KEY_PREFIX: &str = "restop";

/// One AWS request as it reached the proxy.
struct Arrival {
    access_key: String,
    region: String,
    service: String,
    /// Unix seconds.
    at: f64,
}

/// A reverse proxy in front of moto: the replicas' AWS endpoint.
struct Arrivals {
    url: String,
    stamps: Arc<Mutex<Vec<Arrival>>>,
}

impl Arrivals {
    async fn start(moto_url: &str) -> anyhow::Result<Self> {
        let stamps: Arc<Mutex<Vec<Arrival>>> = Arc::default();
        let recorded = stamps.clone();
        let url = moto::tap(moto_url, move |request, _body| {
            if let Some(arrival) = Arrival::of(&request.headers) {
                recorded.lock().unwrap().push(arrival);
            }
        })
        .await?;
        Ok(Self { url, stamps })
    }
}

impl Arrival {
    /// From the SigV4 credential scope: `Credential=KEY/DATE/REGION/SERVICE/aws4_request`.
    fn of(headers: &axum::http::HeaderMap) -> Option<Self> {
        let authorization = headers.get("authorization")?.to_str().ok()?;
        let scope = authorization
            .split("Credential=")
            .nth(1)?
            .split(',')
            .next()?;
        let mut parts = scope.split('/');
        let access_key = parts.next()?.to_owned();
        let region = parts.nth(1)?.to_owned();
        let service = parts.next()?.to_owned();
        Some(Self {
            access_key,
            region,
            service,
            at: unix_now(),
        })
    }
}
