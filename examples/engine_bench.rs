//! Benchmark of the protection engine at scale: many active executions, each waiting for a
//! database that stays `starting`, spread over accounts and regions, against an in-process
//! fake RDS that counts its requests, with the catch-up sweeping every account and region
//! (one central topic per region). Prints RDS calls per execution and poll, DescribeEvents
//! calls per account-region and sweep interval, the busiest second of each account and
//! region against the request budget, CPU time per second of wall time, database work per
//! poll, and resident memory.
//!
//! cargo run --release --example engine_bench -- [--executions 10000] [--poll-seconds 60]
//!     [--accounts 5] [--regions 3] [--rds-max-rps 4] [--measure-seconds 120]
//!     [--sweep-seconds 600] [--database-url postgres://postgres@127.0.0.1:5432/postgres]

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use restop::config::ServeConfig;
use restop::testing::{events, fake_aws};
use restop::{App, Deps};
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    executions: usize,
    #[arg(long, default_value_t = 60)]
    poll_seconds: u64,
    /// Accounts the executions are spread over (restop's own and members).
    #[arg(long, default_value_t = 5)]
    accounts: usize,
    /// Regions the executions are spread over (at most 17).
    #[arg(long, default_value_t = 3)]
    regions: usize,
    /// RESTOP_CATCHUP_INTERVAL, in seconds.
    #[arg(long, default_value_t = 600)]
    sweep_seconds: u64,
    /// RESTOP_RDS_MAX_RPS.
    #[arg(long, default_value_t = 4.0)]
    rds_max_rps: f64,
    /// Steady-state measurement window, after every execution has been polled once.
    #[arg(long, default_value_t = 120)]
    measure_seconds: u64,
    /// A Postgres server (a throwaway database is created on it) or a sqlite:// URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (url, admin) = fresh_database(&args.database_url).await?;
    let poll = Duration::from_secs(args.poll_seconds);
    let accounts: Vec<String> = (0..args.accounts)
        .map(|i| {
            if i == 0 {
                fake_aws::OWN_ACCOUNT.to_owned()
            } else {
                format!("{:012}", 200_000_000_000u64 + i as u64)
            }
        })
        .collect();
    let regions = [
        "us-east-1",
        "eu-west-1",
        "ap-southeast-2",
        "us-west-2",
        "eu-central-1",
        "us-east-2",
        "us-west-1",
        "ca-central-1",
        "sa-east-1",
        "eu-west-2",
        "eu-west-3",
        "eu-north-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-southeast-1",
        "ap-south-1",
    ];
    let regions = &regions[..args.regions.clamp(1, regions.len())];
    let mut config = ServeConfig::defaults();
    config.database.database_url = url.parse().map_err(anyhow::Error::msg)?;
    config.engine.poll_interval = poll;
    config.accounts.rds_max_rps = args.rds_max_rps;
    config.engine.catchup_interval =
        restop::config::Schedule::Every(Duration::from_secs(args.sweep_seconds));
    // A central topic per region: the catch-up sweeps every account in each.
    config.sns.topic_arns = restop::config::CommaList(
        regions
            .iter()
            .map(|region| {
                format!("arn:aws:sns:{region}:{}:rds-events", fake_aws::OWN_ACCOUNT)
                    .parse()
                    .map_err(anyhow::Error::msg)
            })
            .collect::<anyhow::Result<_>>()?,
    );
    config.accounts.accounts = restop::config::CommaList(
        accounts[1..]
            .iter()
            .map(|a| a.parse().map_err(anyhow::Error::msg))
            .collect::<anyhow::Result<_>>()?,
    );
    let aws = Arc::new(fake_aws::FakeAws::default());
    for member in &accounts[1..] {
        aws.add_member(member);
    }
    let app = App::build(
        config,
        Deps {
            clock: Arc::new(restop::clock::SystemClock),
            aws: Some(aws.clone()),
        },
    )
    .await?;
    let store = app.store().clone();

    let started = Instant::now();
    // Many at once, as SNS delivers them: the store commits them in groups.
    futures::stream::iter(0..args.executions)
        .map(|i| {
            let account = &accounts[i % accounts.len()];
            let region = regions[(i / accounts.len()) % regions.len()];
            let arn = format!("arn:aws:rds:{region}:{account}:db:bench-{i}");
            aws.add(&arn, "starting", &[("auto-restart-protection", "yes")]);
            let store = store.clone();
            async move { events::accept_event(&store, &arn).await }
        })
        .buffer_unordered(32)
        .for_each(|_| async {})
        .await;
    println!(
        "created {} executions in {:.1} s",
        args.executions,
        started.elapsed().as_secs_f64()
    );

    // The whole service (engine, catch-up, API), as `restop serve` runs it.
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let task = tokio::spawn(app.run(listener, stop.clone().cancelled_owned()));

    // Warm-up: the first pass over every execution, then one full poll cycle to settle.
    let warm = Instant::now();
    while pending_first_poll(&admin, &url).await? > 0 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "first pass over all executions: {:.1} s",
        warm.elapsed().as_secs_f64()
    );
    tokio::time::sleep(poll).await;

    let before = Sample::take(&admin, &url).await?;
    let (requests_before, window_start) = (aws.requests(), Instant::now());
    let describes_before = aws.requests_of("DescribeDBInstances");
    let sweeps_before = aws.requests_of("DescribeEvents");
    tokio::time::sleep(Duration::from_secs(args.measure_seconds)).await;
    let after = Sample::take(&admin, &url).await?;
    let requests = aws.requests() - requests_before;
    let describes = aws.requests_of("DescribeDBInstances") - describes_before;
    let sweeps = aws.requests_of("DescribeEvents") - sweeps_before;
    let busiest = aws.busiest_second(window_start);
    let busiest_ever = aws.busiest_second(started);
    stop.cancel();
    task.await??;

    let wall = after.at.duration_since(before.at).as_secs_f64();
    let cpu = after.cpu_seconds - before.cpu_seconds;
    let polls = (after.polls - before.polls) as f64;
    println!();
    println!(
        "executions:        {} active, poll every {} s",
        args.executions, args.poll_seconds
    );
    println!(
        "window:            {wall:.0} s, {polls:.0} polls ({:.1}/s)",
        polls / wall
    );
    let places = accounts.len() * regions.len();
    println!(
        "spread over:       {} accounts x {} regions = {places} account-regions",
        accounts.len(),
        regions.len()
    );
    println!(
        "RDS calls:         {requests} in the window, {:.4} per execution and poll",
        requests as f64 / polls
    );
    println!(
        "Describe calls:    {describes} in the window, {:.4} per execution and poll",
        describes as f64 / polls
    );
    println!(
        "DescribeEvents:    {sweeps} in the window, {:.2} per account-region and sweep \
         interval ({} s)",
        sweeps as f64 / places as f64 * args.sweep_seconds as f64 / wall,
        args.sweep_seconds
    );
    let most = |seconds: &std::collections::HashMap<(String, String), usize>| {
        seconds.values().copied().max().unwrap_or(0)
    };
    println!(
        "busiest second:    {} calls in one account and region in the window, {} since the start \
         (budget: {} a second, bursts of {}; RDS allows 12)",
        most(&busiest),
        most(&busiest_ever),
        args.rds_max_rps,
        2.0 * args.rds_max_rps
    );
    println!(
        "engine CPU:        {:.1}% of one core ({cpu:.2} s CPU)",
        100.0 * cpu / wall
    );
    if let (Some(b), Some(a)) = (before.pg, after.pg) {
        println!(
            "database per poll: {:.2} transactions, {:.2} rows updated, {:.2} rows inserted, {:.2} rows read",
            (a.commits - b.commits) as f64 / polls,
            (a.updated - b.updated) as f64 / polls,
            (a.inserted - b.inserted) as f64 / polls,
            (a.fetched - b.fetched) as f64 / polls,
        );
    }
    println!(
        "memory:            RSS {:.1} MB, peak {:.1} MB",
        after.rss_mb, after.peak_mb
    );
    drop_database(&admin, &url).await;
    Ok(())
}

/// A throwaway database: `(its URL, the admin URL)`.
async fn fresh_database(url: &str) -> anyhow::Result<(String, Option<String>)> {
    if url.starts_with("sqlite:") {
        let path = std::env::temp_dir().join(format!("restop-bench-{}.db", std::process::id()));
        return Ok((format!("sqlite://{}", path.display()), None));
    }
    let name = format!("restop_bench_{}", std::process::id());
    let mut conn = PgConnectOptions::from_str(url)?.connect().await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await?;
    let mut parsed = url::Url::parse(url)?;
    parsed.set_path(&name);
    Ok((parsed.to_string(), Some(url.to_owned())))
}

async fn drop_database(admin: &Option<String>, url: &str) {
    match admin {
        Some(admin) => {
            let name = url.rsplit('/').next().unwrap_or_default();
            if let Ok(mut conn) = PgConnectOptions::from_str(admin).unwrap().connect().await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
        None => {
            let _ = std::fs::remove_file(url.trim_start_matches("sqlite://"));
        }
    }
}

/// Executions that have not been polled yet (their only step is the tag check).
async fn pending_first_poll(_admin: &Option<String>, url: &str) -> anyhow::Result<i64> {
    let sql = "SELECT COUNT(*) FROM executions e WHERE NOT EXISTS
               (SELECT 1 FROM execution_steps s WHERE s.execution_id = e.id AND s.step = 'wait_available')";
    Ok(if url.starts_with("sqlite:") {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
            .connect()
            .await?;
        sqlx::query_scalar(sql).fetch_one(&mut conn).await?
    } else {
        let mut conn = PgConnectOptions::from_str(url)?.connect().await?;
        sqlx::query_scalar(sql).fetch_one(&mut conn).await?
    })
}

struct PgCounters {
    commits: i64,
    updated: i64,
    inserted: i64,
    fetched: i64,
}

struct Sample {
    at: Instant,
    cpu_seconds: f64,
    polls: i64,
    rss_mb: f64,
    peak_mb: f64,
    pg: Option<PgCounters>,
}

impl Sample {
    async fn take(admin: &Option<String>, url: &str) -> anyhow::Result<Self> {
        // Every poll of a waiting execution bumps `repeats` of its latest step by one.
        let polls_sql = "SELECT CAST(COALESCE(SUM(repeats), 0) AS BIGINT) FROM execution_steps";
        let (polls, pg) = if url.starts_with("sqlite:") {
            let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                .connect()
                .await?;
            (
                sqlx::query_scalar(polls_sql).fetch_one(&mut conn).await?,
                None,
            )
        } else {
            let mut conn = PgConnectOptions::from_str(url)?.connect().await?;
            let polls = sqlx::query_scalar(polls_sql).fetch_one(&mut conn).await?;
            let name = url.rsplit('/').next().unwrap_or_default();
            let mut admin_conn = PgConnectOptions::from_str(admin.as_deref().unwrap_or(url))?
                .connect()
                .await?;
            let (commits, updated, inserted, fetched): (i64, i64, i64, i64) = sqlx::query_as(
                "SELECT xact_commit, tup_updated, tup_inserted, tup_fetched
                 FROM pg_stat_database WHERE datname = $1",
            )
            .bind(name)
            .fetch_one(&mut admin_conn)
            .await?;
            (
                polls,
                Some(PgCounters {
                    commits,
                    updated,
                    inserted,
                    fetched,
                }),
            )
        };
        let (rss_mb, peak_mb) = memory();
        Ok(Self {
            at: Instant::now(),
            cpu_seconds: cpu_seconds(),
            polls,
            rss_mb,
            peak_mb,
            pg,
        })
    }
}

/// User + system CPU time of this process, from /proc/self/stat (clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}
