//! Load generator: how many signed SNS notifications per second restop stores in Postgres,
//! with what latency and memory, next to `pgbench` inserting comparable rows into the same
//! server.
//!
//! ```text
//! cargo build --release --bins --examples
//! target/release/examples/loadgen --concurrency 32 --seconds 15 --restop-log info \
//!     [--database-url postgres://postgres@127.0.0.1:5432/postgres] [--instructions 2000]
//! ```
//!
//! It reports restop's CPU time per message (user + system time of the restop process
//! over the timed phase, from `/proc/<pid>/stat`, divided by the messages accepted) and,
//! unless `--instructions 0`, the instructions restop executes per message: a second
//! restop runs under `valgrind --tool=callgrind` (on a database of its own), is warmed up,
//! has its counters zeroed (`callgrind_control -z`), gets exactly that many messages and
//! is asked for its counts (`callgrind_control -d`). Unlike CPU time, that figure does not
//! move with the load of a shared machine (hardware counters, `perf stat -e
//! instructions`, are not available in every VM).
//!
//! It creates throwaway databases `restop_bench_<random>` (restop's) and
//! `restop_bench_<random>_pgb` (pgbench's) on the given server and drops both at the end,
//! serves its own fake SNS signing certificate, runs `target/<profile>/restop serve` as a
//! child process, pre-signs every notification before the timed phase (signing is far more
//! expensive than verifying), then posts them with a fixed number of workers, one request in
//! flight each. Only `200` answers count as accepted. `RESTOP_*` variables already set in
//! the environment reach restop unchanged, e.g. `RESTOP_DB_MAX_CONNECTIONS=32`; `AWS_*`
//! ones do not: restop's protection engine is pointed at a closed local port with dummy
//! credentials and `RESTOP_DRY_RUN=true`, so a benchmark never touches a real AWS account.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use axum::body::Bytes;
use clap::Parser;
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tokio::process::{Child, Command};

use restop::config::DatabaseConfig;
use restop::testing::sns;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks restop's POST /sns against pgbench inserts on the same Postgres")]
struct Args {
    /// Workers posting at once, each with one request in flight; also pgbench's client count.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1000))]
    concurrency: u32,

    /// Length of the timed phase (and of the pgbench run), in seconds.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,

    /// Postgres server to benchmark on; the user must be allowed to CREATE DATABASE.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    database_url: String,

    /// Length of the untimed warm-up phase, in seconds.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=600))]
    warmup_seconds: u64,

    /// Run restop's protection engine (RESTOP_ENGINE); its AWS calls always go to a closed
    /// local port, in dry-run mode.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    engine: bool,

    /// RUST_LOG given to restop (its log goes to a file, shown when something fails).
    #[arg(long, default_value = "warn")]
    restop_log: String,

    /// Keep restop's log file even when everything succeeded.
    #[arg(long)]
    keep_log: bool,

    /// Messages posted to a restop under callgrind to count its instructions per message;
    /// 0 skips that part (it needs valgrind on PATH).
    #[arg(long, default_value_t = 2_000)]
    instructions: usize,
}

/// Messages signed before the warm-up; the timed pool is sized from the warm-up's rate.
const WARMUP_POOL: usize = 10_000;
/// The timed pool gets this much headroom over the warm-up rate...
const POOL_HEADROOM: f64 = 1.5;
/// ...and never more messages than this (about 1.6 KB each).
const MAX_POOL: usize = 400_000;
/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, 100 per second on Linux.
const TICKS_PER_SECOND: f64 = 100.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let restop = restop_binary()?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut created = Vec::new();
    let outcome = tokio::select! {
        outcome = bench(&args, &restop, &id, &mut created) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    for name in created.iter().rev() {
        match drop_database(&args.database_url, name).await {
            Ok(()) => println!("dropped database {name}"),
            Err(e) => eprintln!("loadgen: could not drop database {name}: {e:#}"),
        }
    }
    let report = outcome?;
    report.print(args.concurrency);
    Ok(())
}

/// `target/<profile>/restop`, beside the `examples` directory holding this executable.
fn restop_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the loadgen executable")?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("unexpected executable path {}", exe.display()))?;
    let restop = profile_dir.join("restop");
    if !restop.is_file() {
        let release = profile_dir
            .file_name()
            .is_some_and(|name| name == "release");
        bail!(
            "{} not found: build it first with `cargo build{}`",
            restop.display(),
            if release { " --release" } else { "" }
        );
    }
    Ok(restop)
}

struct Report {
    drove: Drove,
    pgbench: Pgbench,
    instructions: Option<Instructions>,
}

impl Report {
    fn print(&self, clients: u32) {
        let d = &self.drove;
        let t = &d.timed;
        let rate = t.accepted as f64 / t.elapsed.as_secs_f64();
        let ratio = rate / self.pgbench.tps;
        let errors = t.errors.values().sum::<u64>();
        println!();
        println!(
            "restop accepted: {rate:.1} msg/s  p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms  errors {errors}",
            t.percentile_ms(0.50),
            t.percentile_ms(0.90),
            t.percentile_ms(0.99),
            t.percentile_ms(1.0),
        );
        println!(
            "restop memory:   peak RSS {:.1} MiB  current RSS {:.1} MiB",
            d.memory.peak_kb as f64 / 1024.0,
            d.memory.current_kb as f64 / 1024.0,
        );
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_msg = |seconds: f64| 1e6 * seconds / t.accepted.max(1) as f64;
        println!(
            "restop CPU:      {:.0}% of one core; per message: restop {:.0} us, postgres {:.0} us, \
             loadgen {:.0} us (machine {:.0}% busy of {cpus} cores)",
            100.0 * d.cpu.restop / t.elapsed.as_secs_f64(),
            per_msg(d.cpu.restop),
            per_msg(d.cpu.postgres),
            per_msg(d.cpu.loadgen),
            100.0 * d.cpu.machine_busy,
        );
        let p = &self.pgbench;
        println!(
            "pgbench insert:  {:.1} tps ({clients} clients, latency average {:.1} ms)",
            p.tps, p.latency_ms,
        );
        let per_txn = |seconds: f64| 1e6 * seconds / p.transactions.max(1) as f64;
        println!(
            "pgbench CPU:     per transaction: postgres {:.0} us, pgbench {:.0} us \
             (machine {:.0}% busy of {cpus} cores)",
            per_txn(p.cpu.postgres),
            per_txn(p.cpu.children),
            100.0 * p.cpu.machine_busy,
        );
        if let Some(ir) = &self.instructions {
            println!(
                "restop instructions: {:.0} per message (callgrind, {} messages from {clients} workers)",
                ir.total as f64 / ir.messages.max(1) as f64,
                ir.messages,
            );
        }
        println!("ratio:           {ratio:.2} of pgbench");
        let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
        // The goals of issue 19: at the database's pace, at most 100 us of restop's CPU a message.
        println!(
            "targets:         ratio >= 0.8 {}, p99 < 20 ms {}, restop CPU <= 100 us/message {}, \
             peak RSS < 60 MB {}, no errors {}",
            verdict(ratio >= 0.8),
            verdict(t.percentile_ms(0.99) < 20.0),
            verdict(per_msg(d.cpu.restop) <= 100.0),
            verdict((d.memory.peak_kb as f64) * 1024.0 < 60e6),
            verdict(errors == 0),
        );
    }
}

async fn bench(
    args: &Args,
    restop_bin: &Path,
    id: &str,
    created: &mut Vec<String>,
) -> anyhow::Result<Report> {
    let restop_db = format!("restop_bench_{id}");
    create_database(&args.database_url, &restop_db).await?;
    created.push(restop_db.clone());
    let restop_db_url = database_url_for(&args.database_url, &restop_db)?;
    println!("created database {restop_db}");
    let postmaster = local_postmaster(&args.database_url).await?;
    if postmaster.is_none() {
        println!("the Postgres server is not on this machine: its CPU use is not measured");
    }

    let stub = Arc::new(sns::SnsStub::start().await);
    println!("fake SNS certificate server on {}", stub.host);

    let log_path = std::env::temp_dir().join(format!("restop_bench_{id}.log"));
    let mut restop = Restop::start(
        restop_bin,
        &restop_db_url,
        &stub.host,
        args,
        &log_path,
        None,
    )?;
    let outcome: anyhow::Result<(Drove, Pgbench)> = async {
        let drove = drive(args, &mut restop, &stub, &restop_db_url, postmaster).await?;
        let pgb_db = format!("restop_bench_{id}_pgb");
        create_database(&args.database_url, &pgb_db).await?;
        created.push(pgb_db.clone());
        println!(
            "created database {pgb_db}; running pgbench for {}s",
            args.seconds
        );
        let pgb_url = database_url_for(&args.database_url, &pgb_db)?;
        let pgbench = run_pgbench(&pgb_url, args.concurrency, args.seconds, id, postmaster).await?;
        Ok((drove, pgbench))
    }
    .await;
    let status = restop.stop().await;
    let (drove, pgbench) = outcome.inspect_err(|_| restop.show_log_tail())?;
    let status = status?;
    println!("restop stopped: {status}");
    if !status.success() || drove.timed.errors.values().sum::<u64>() > 0 {
        restop.show_log_tail();
    } else if args.keep_log {
        println!("restop's log: {}", restop.log_path.display());
    } else {
        std::fs::remove_file(&restop.log_path).ok();
    }
    let instructions = if args.instructions > 0 {
        let ir_db = format!("restop_bench_{id}_ir");
        create_database(&args.database_url, &ir_db).await?;
        created.push(ir_db.clone());
        let url = database_url_for(&args.database_url, &ir_db)?;
        Some(count_instructions(args, restop_bin, &url, &stub, id).await?)
    } else {
        None
    };
    Ok(Report {
        drove,
        pgbench,
        instructions,
    })
}

/// Instructions restop executed (all threads) while it stored `messages` messages.
struct Instructions {
    total: u64,
    messages: u64,
}

/// Runs restop under callgrind and counts what `args.instructions` messages cost it.
async fn count_instructions(
    args: &Args,
    restop_bin: &Path,
    database_url: &str,
    stub: &Arc<sns::SnsStub>,
    id: &str,
) -> anyhow::Result<Instructions> {
    let log_path = std::env::temp_dir().join(format!("restop_bench_{id}_callgrind.log"));
    let out = std::env::temp_dir().join(format!("restop_bench_{id}.callgrind"));
    let mut restop = Restop::start(
        restop_bin,
        database_url,
        &stub.host,
        args,
        &log_path,
        Some(&out),
    )?;
    let outcome: anyhow::Result<Instructions> = async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(args.concurrency as usize)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(120))
            .build()?;
        let base = format!("http://{}", restop.listen);
        restop
            .wait_ready_within(&client, &base, Duration::from_secs(300))
            .await?;
        let url = format!("{base}/sns");
        let concurrency = args.concurrency as usize;
        // Far beyond the usual numbers: nothing in the pools below is ever reused.
        let first = MAX_POOL * 4;
        let (warm, _) = sign_pool(stub, first, 500).await?;
        let warm = run_phase(&client, &url, warm, concurrency, Duration::from_secs(600)).await;
        warm.print_errors();
        let (pool, _) = sign_pool(stub, first + 500, args.instructions).await?;
        callgrind_control(&["-z"], restop.pid).await?;
        let counted = run_phase(&client, &url, pool, concurrency, Duration::from_secs(3600)).await;
        callgrind_control(&["-d"], restop.pid).await?;
        counted.print_errors();
        let total = dumped_instructions(&out)?;
        println!(
            "callgrind: {} messages accepted in {:.1}s under valgrind",
            counted.accepted,
            counted.elapsed.as_secs_f64()
        );
        Ok(Instructions {
            total,
            messages: counted.accepted,
        })
    }
    .await;
    let status = restop.stop_within(Duration::from_secs(120)).await;
    if outcome.is_err() {
        restop.show_log_tail();
    }
    let outcome = outcome?;
    status?;
    std::fs::remove_file(&restop.log_path).ok();
    for dump in callgrind_dumps(&out)? {
        std::fs::remove_file(dump).ok();
    }
    Ok(outcome)
}

async fn callgrind_control(args: &[&str], pid: u32) -> anyhow::Result<()> {
    let status = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .status()
        .await
        .context("running callgrind_control")?;
    if !status.success() {
        bail!("callgrind_control {args:?} {pid}: {status}");
    }
    Ok(())
}

/// The files callgrind wrote for `out`: `out` itself at exit, `out.<n>` for each dump.
fn callgrind_dumps(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let dir = out.parent().ok_or_else(|| anyhow!("no directory"))?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.ok_or_else(|| anyhow!("no file name"))?;
    let mut dumps = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(&name))
        {
            dumps.push(path);
        }
    }
    dumps.sort();
    Ok(dumps)
}

/// The instruction total of the dump `callgrind_control -d` asked for (the first one
/// numbered; counters were zeroed just before the counted messages).
fn dumped_instructions(out: &Path) -> anyhow::Result<u64> {
    let dump = callgrind_dumps(out)?
        .into_iter()
        .find(|p| p != out)
        .ok_or_else(|| anyhow!("callgrind wrote no dump beside {}", out.display()))?;
    let text = std::fs::read_to_string(&dump)?;
    text.lines()
        .find_map(|line| {
            line.strip_prefix("totals:")
                .or_else(|| line.strip_prefix("summary:"))
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow!("no totals in {}", dump.display()))
}

struct Drove {
    timed: Phase,
    memory: Memory,
    cpu: CpuUse,
}

/// Everything that needs restop running: readiness, signing, warm-up, the timed phase.
async fn drive(
    args: &Args,
    restop: &mut Restop,
    stub: &Arc<sns::SnsStub>,
    restop_db_url: &str,
    postmaster: Option<u32>,
) -> anyhow::Result<Drove> {
    let concurrency = args.concurrency as usize;
    let seconds = Duration::from_secs(args.seconds);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = format!("http://{}", restop.listen);
    restop.wait_ready(&client, &base).await?;
    let pid = restop.pid;
    let memory = Memory::read(pid)?;
    println!(
        "restop ready (pid {pid}, RSS {:.1} MiB)",
        memory.current_kb as f64 / 1024.0
    );
    let url = format!("{base}/sns");

    let (warm_pool, took) = sign_pool(stub, 0, WARMUP_POOL).await?;
    println!(
        "signed {} warm-up messages in {:.1}s ({:.0}/s)",
        warm_pool.len(),
        took.as_secs_f64(),
        warm_pool.len() as f64 / took.as_secs_f64()
    );
    let warm = run_phase(
        &client,
        &url,
        warm_pool,
        concurrency,
        Duration::from_secs(args.warmup_seconds),
    )
    .await;
    let warm_rate = warm.accepted as f64 / warm.elapsed.as_secs_f64();
    println!(
        "warm-up: {} accepted in {:.1}s ({warm_rate:.0}/s), {} errors{}",
        warm.accepted,
        warm.elapsed.as_secs_f64(),
        warm.errors.values().sum::<u64>(),
        if warm.exhausted {
            " (pool used up)"
        } else {
            ""
        },
    );
    warm.print_errors();
    if warm.accepted == 0 {
        bail!("restop accepted nothing during the warm-up");
    }

    let wanted = (warm_rate * seconds.as_secs_f64() * POOL_HEADROOM) as usize + 1_000;
    let wanted = wanted.min(MAX_POOL);
    let (pool, took) = sign_pool(stub, WARMUP_POOL, wanted).await?;
    println!(
        "signed {} messages for the timed phase in {:.1}s ({:.0}/s)",
        pool.len(),
        took.as_secs_f64(),
        pool.len() as f64 / took.as_secs_f64()
    );

    println!("timed phase: {}s, {concurrency} workers", seconds.as_secs());
    let cpu_before = CpuSample::take(Some(pid), postmaster)?;
    let timed = run_phase(&client, &url, pool, concurrency, seconds).await;
    let cpu = CpuSample::take(Some(pid), postmaster)?.since(&cpu_before);
    let memory = Memory::read(pid)?;
    if timed.exhausted {
        println!(
            "note: the pre-signed pool ran out after {:.1}s; rates use that time",
            timed.elapsed.as_secs_f64()
        );
    }
    timed.print_errors();

    let stored = count_rows(restop_db_url).await?;
    let expected = warm.accepted + timed.accepted;
    println!("rows in sns_messages: {stored} (accepted answers: {expected})");
    if stored != expected as i64 {
        println!("warning: stored rows and 200 answers differ");
    }
    Ok(Drove { timed, memory, cpu })
}

/// restop as a child process; killed (SIGKILL) if dropped before [`Restop::stop`].
struct Restop {
    child: Child,
    pid: u32,
    listen: String,
    log_path: PathBuf,
}

impl Restop {
    fn start(
        bin: &Path,
        database_url: &str,
        sns_host: &str,
        args: &Args,
        log_path: &Path,
        callgrind_out: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let listen = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?.to_string()
        };
        let passed_on: Vec<String> = std::env::vars()
            .map(|(name, _)| name)
            .filter(|name| name.starts_with("RESTOP_") && !FORCED_ENV.contains(&name.as_str()))
            .collect();
        if !passed_on.is_empty() {
            println!(
                "passing on to restop from the environment: {}",
                passed_on.join(", ")
            );
        }
        // restop's protection engine acts on the accepted 10%: it must never reach a real
        // AWS account from a benchmark. Its calls go to a closed local port with dummy
        // credentials, in dry-run mode, and simply fail.
        let dead_endpoint = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            format!("http://{}", probe.local_addr()?)
        };
        let log = std::fs::File::create(log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut command = match callgrind_out {
            None => Command::new(bin),
            Some(out) => {
                let mut valgrind = Command::new("valgrind");
                valgrind
                    .arg("--tool=callgrind")
                    .arg(format!("--callgrind-out-file={}", out.display()))
                    .arg(bin);
                valgrind
            }
        };
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("AWS_") {
                command.env_remove(name);
            }
        }
        let child = command
            .arg("serve")
            .env("AWS_ENDPOINT_URL", dead_endpoint)
            .env("AWS_ACCESS_KEY_ID", "restop-bench")
            .env("AWS_SECRET_ACCESS_KEY", "restop-bench")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RESTOP_DRY_RUN", "true")
            .env("RESTOP_ENGINE", args.engine.to_string())
            .env("DATABASE_URL", database_url)
            .env("RESTOP_LISTEN", &listen)
            .env("RESTOP_TOPIC_ARNS", sns::TOPIC)
            .env("RESTOP_SNS_EXTRA_HOSTS", sns_host)
            .env("RUST_LOG", &args.restop_log)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().ok_or_else(|| anyhow!("restop exited at once"))?;
        println!(
            "started {} serve on {listen} (pid {pid}, log {})",
            bin.display(),
            log_path.display()
        );
        Ok(Self {
            child,
            pid,
            listen,
            log_path: log_path.to_owned(),
        })
    }

    /// Migrations run before restop listens; /readyz answers 200 once the database does.
    async fn wait_ready(&mut self, client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
        self.wait_ready_within(client, base, Duration::from_secs(30))
            .await
    }

    async fn wait_ready_within(
        &mut self,
        client: &reqwest::Client,
        base: &str,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                self.show_log_tail();
                bail!("restop exited before becoming ready: {status}");
            }
            let ready = client
                .get(format!("{base}/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.show_log_tail();
        bail!(
            "restop did not answer /readyz with 200 within {}s",
            limit.as_secs()
        )
    }

    /// SIGTERM, then up to 10 s for the graceful shutdown before SIGKILL.
    async fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        self.stop_within(Duration::from_secs(10)).await
    }

    async fn stop_within(&mut self, limit: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .context("running kill -TERM")?;
        if sent.success() {
            if let Ok(status) = tokio::time::timeout(limit, self.child.wait()).await {
                return Ok(status?);
            }
            eprintln!(
                "loadgen: restop ignored SIGTERM for {}s; killing it",
                limit.as_secs()
            );
        }
        self.child.kill().await?;
        Ok(self.child.wait().await?)
    }

    fn show_log_tail(&self) {
        let Ok(log) = std::fs::read_to_string(&self.log_path) else {
            return;
        };
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(20)..];
        if !tail.is_empty() {
            eprintln!(
                "--- last lines of restop's log ({}) ---",
                self.log_path.display()
            );
            for line in tail {
                eprintln!("{line}");
            }
            eprintln!("---");
        }
    }
}

/// Set by loadgen itself, whatever the environment holds.
const FORCED_ENV: [&str; 5] = [
    "RESTOP_LISTEN",
    "RESTOP_TOPIC_ARNS",
    "RESTOP_SNS_EXTRA_HOSTS",
    "RESTOP_DRY_RUN",
    "RESTOP_ENGINE",
];

/// The RDS events posted: (event id, source type, event message). Nine in ten are events
/// restop records and ignores; one in ten is an auto-start it acts on.
const EVENTS: [(&str, &str, &str); 6] = [
    ("RDS-EVENT-0001", "db-instance", "Backing up DB instance"),
    (
        "RDS-EVENT-0002",
        "db-instance",
        "Finished DB Instance backup",
    ),
    ("RDS-EVENT-0006", "db-instance", "DB instance restarted"),
    ("RDS-EVENT-0088", "db-instance", "DB instance started"),
    (
        "RDS-EVENT-0154",
        "db-instance",
        "DB instance is being started due to it exceeding the maximum allowed time being stopped.",
    ),
    (
        "RDS-EVENT-0153",
        "db-cluster",
        "DB cluster is being started due to it exceeding the maximum allowed time being stopped.",
    ),
];

/// The `n`th message of the run, signed, as the bytes SNS would POST.
fn signed_notification(stub: &sns::SnsStub, n: usize) -> Bytes {
    let (event_id, source, text) = if n % 10 == 9 {
        EVENTS[4 + (n / 10) % 2]
    } else {
        EVENTS[n % 10 % 4]
    };
    let identifier = format!(
        "{}-{}",
        if source == "db-cluster" {
            "aurora"
        } else {
            "db"
        },
        n % 40
    );
    let mut event: Value =
        serde_json::from_str(&sns::rds_event_message(event_id, source, &identifier))
            .expect("rds_event_message is JSON");
    event["Event Message"] = text.into();
    event["Event Time"] = chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string()
        .into();
    let mut notification = stub.unsigned_notification(&event.to_string());
    notification["Subject"] = "RDS Notification Message".into();
    stub.signer.sign(&mut notification);
    Bytes::from(serde_json::to_vec(&notification).expect("JSON serialises"))
}

/// Signs messages `first..first + count` on every core, off the async runtime.
async fn sign_pool(
    stub: &Arc<sns::SnsStub>,
    first: usize,
    count: usize,
) -> anyhow::Result<(Arc<Vec<Bytes>>, Duration)> {
    let stub = stub.clone();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, count.max(1));
        let per_thread = count.div_ceil(threads);
        let pool: Vec<Bytes> = std::thread::scope(|scope| {
            let stub = &*stub;
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let from = first + t * per_thread;
                    let to = (from + per_thread).min(first + count);
                    scope.spawn(move || {
                        (from..to)
                            .map(|n| signed_notification(stub, n))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("signing thread"))
                .collect()
        });
        (Arc::new(pool), started.elapsed())
    })
    .await
    .context("signing")
}

/// What one phase of posting produced.
#[derive(Default)]
struct Phase {
    accepted: u64,
    /// Non-200 answers and transport failures, by kind.
    errors: BTreeMap<String, u64>,
    /// The first few error answers, for diagnosis.
    error_samples: Vec<String>,
    /// Latency of each accepted request, in microseconds; sorted once merged.
    latencies_us: Vec<u32>,
    elapsed: Duration,
    /// The pool ran out before the phase's time was up.
    exhausted: bool,
}

impl Phase {
    fn merge(&mut self, other: Phase) {
        self.accepted += other.accepted;
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        self.error_samples.extend(other.error_samples);
        self.error_samples.truncate(3);
        self.latencies_us.extend(other.latencies_us);
        self.exhausted |= other.exhausted;
    }

    fn record_error(&mut self, kind: String, sample: String) {
        *self.errors.entry(kind).or_default() += 1;
        if self.error_samples.len() < 3 {
            self.error_samples.push(sample.chars().take(300).collect());
        }
    }

    /// The `q` quantile (nearest rank) of accepted requests' latency, in milliseconds.
    fn percentile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = (q * self.latencies_us.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.latencies_us.len()) - 1;
        f64::from(self.latencies_us[index]) / 1000.0
    }

    fn print_errors(&self) {
        for (kind, n) in &self.errors {
            println!("  {n} x {kind}");
        }
        for sample in &self.error_samples {
            println!("  e.g. {sample}");
        }
    }
}

/// Posts pool messages from `concurrency` workers until `duration` is up or the pool is used.
async fn run_phase(
    client: &reqwest::Client,
    url: &str,
    pool: Arc<Vec<Bytes>>,
    concurrency: usize,
    duration: Duration,
) -> Phase {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, pool, next) =
            (client.clone(), url.to_owned(), pool.clone(), next.clone());
        workers.spawn(async move {
            let mut phase = Phase::default();
            while Instant::now() < deadline {
                let Some(body) = pool.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    phase.exhausted = true;
                    break;
                };
                let sent = Instant::now();
                let answer = client
                    .post(&url)
                    .header("content-type", "text/plain; charset=UTF-8")
                    .header("x-amz-sns-message-type", "Notification")
                    .header("x-amz-sns-topic-arn", sns::TOPIC)
                    .body(body.clone())
                    .send()
                    .await;
                match answer {
                    Ok(response) => {
                        let status = response.status();
                        match response.bytes().await {
                            Ok(_) if status == 200 => {
                                let us = sent.elapsed().as_micros();
                                phase
                                    .latencies_us
                                    .push(u32::try_from(us).unwrap_or(u32::MAX));
                                phase.accepted += 1;
                            }
                            Ok(text) => phase.record_error(
                                format!("HTTP {status}"),
                                format!("{status}: {}", String::from_utf8_lossy(&text)),
                            ),
                            Err(e) => phase.record_error(
                                "reading the answer failed".into(),
                                format!("{status}: {e}"),
                            ),
                        }
                    }
                    Err(e) => phase.record_error("request failed".into(), format!("{e:?}")),
                }
            }
            phase
        });
    }
    let mut total = Phase::default();
    while let Some(worker) = workers.join_next().await {
        total.merge(worker.expect("worker task"));
    }
    total.elapsed = started.elapsed();
    total.latencies_us.sort_unstable();
    total
}

struct Memory {
    peak_kb: u64,
    current_kb: u64,
}

impl Memory {
    /// VmHWM and VmRSS from `/proc/<pid>/status`.
    fn read(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| anyhow!("no {name} in /proc/{pid}/status"))
        };
        Ok(Self {
            peak_kb: field("VmHWM:")?,
            current_kb: field("VmRSS:")?,
        })
    }
}

/// `utime + stime` and `cutime + cstime` (exited, waited-for children) of a process, with
/// its command name and parent, from `/proc/<pid>/stat`.
struct ProcStat {
    comm: String,
    ppid: u32,
    own: f64,
    children: f64,
}

impl ProcStat {
    fn read(pid: &str) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (head, rest) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_owned();
        // `rest` starts at field 3 (state): field k is at index k - 3.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |k: usize| fields.get(k - 3)?.parse::<f64>().ok();
        Some(Self {
            comm,
            ppid: fields.get(1)?.parse().ok()?,
            own: (ticks(14)? + ticks(15)?) / TICKS_PER_SECOND,
            children: (ticks(16)? + ticks(17)?) / TICKS_PER_SECOND,
        })
    }
}

/// Cumulative CPU seconds of the processes that share the machine during a benchmark.
struct CpuSample {
    restop: f64,
    /// The postmaster and its children, with the backends that already exited (counted in
    /// the postmaster's children time); NaN when the server is not on this machine.
    postgres: f64,
    /// This process, all threads.
    loadgen: f64,
    /// This process's exited children (pgbench, once waited for).
    children: f64,
    machine: MachineCpu,
}

impl CpuSample {
    /// `postmaster`: the benchmarked server's, when it runs on this machine.
    fn take(restop: Option<u32>, postmaster: Option<u32>) -> anyhow::Result<Self> {
        let mut stats = BTreeMap::new();
        for entry in std::fs::read_dir("/proc")? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Ok(pid) = name.parse::<u32>()
                && let Some(stat) = ProcStat::read(&name)
            {
                stats.insert(pid, stat);
            }
        }
        let postgres = match postmaster.and_then(|pid| stats.get(&pid).map(|stat| (pid, stat))) {
            Some((pid, postmaster)) => {
                postmaster.own
                    + postmaster.children
                    + stats
                        .values()
                        .filter(|stat| stat.ppid == pid)
                        .map(|stat| stat.own)
                        .sum::<f64>()
            }
            None => f64::NAN,
        };
        let own = ProcStat::read("self").ok_or_else(|| anyhow!("cannot read /proc/self/stat"))?;
        Ok(Self {
            restop: restop
                .and_then(|pid| stats.get(&pid))
                .map_or(0.0, |stat| stat.own),
            postgres,
            loadgen: own.own,
            children: own.children,
            machine: MachineCpu::read()?,
        })
    }

    fn since(&self, earlier: &Self) -> CpuUse {
        CpuUse {
            restop: self.restop - earlier.restop,
            postgres: self.postgres - earlier.postgres,
            loadgen: self.loadgen - earlier.loadgen,
            children: self.children - earlier.children,
            machine_busy: self.machine.busy_since(&earlier.machine),
        }
    }
}

/// CPU seconds used between two samples, and the machine's busy share.
struct CpuUse {
    restop: f64,
    postgres: f64,
    loadgen: f64,
    children: f64,
    machine_busy: f64,
}

/// The machine-wide CPU counters of `/proc/stat`.
struct MachineCpu {
    busy: u64,
    total: u64,
}

impl MachineCpu {
    fn read() -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let line = stat
            .lines()
            .find(|line| line.starts_with("cpu "))
            .ok_or_else(|| anyhow!("no cpu line in /proc/stat"))?;
        let values: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let total: u64 = values.iter().take(8).sum();
        let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
        Ok(Self {
            busy: total - idle,
            total,
        })
    }

    /// Busy share of all cores between `earlier` and `self`.
    fn busy_since(&self, earlier: &Self) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        self.busy.saturating_sub(earlier.busy) as f64 / total as f64
    }
}

/// `admin_url` with its database replaced by `name`.
fn database_url_for(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(admin_url).context("parsing the database URL")?;
    url.set_path(&format!("/{name}"));
    Ok(url.into())
}

async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .context("connecting to the Postgres server")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .with_context(|| format!("CREATE DATABASE {name}"))?;
    conn.close().await.ok();
    Ok(())
}

/// The pid of the server's postmaster, when the server runs on this machine: the parent
/// of our own backend.
async fn local_postmaster(admin_url: &str) -> anyhow::Result<Option<u32>> {
    let mut conn = PgConnection::connect(admin_url).await?;
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await?;
    let postmaster = ProcStat::read(&backend.to_string())
        .filter(|stat| stat.comm == "postgres")
        .map(|stat| stat.ppid)
        .filter(|ppid| ProcStat::read(&ppid.to_string()).is_some_and(|s| s.comm == "postgres"));
    conn.close().await.ok();
    Ok(postmaster)
}

async fn drop_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    conn.close().await.ok();
    Ok(())
}

async fn count_rows(database_url: &str) -> anyhow::Result<i64> {
    let mut conn = PgConnection::connect(database_url).await?;
    let count = sqlx::query_scalar("SELECT count(*) FROM sns_messages")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await.ok();
    Ok(count)
}

struct Pgbench {
    tps: f64,
    latency_ms: f64,
    transactions: u64,
    cpu: CpuUse,
}

/// One autocommitted single-row insert per transaction, the row like one restop stores.
fn pgbench_script() -> String {
    let body = sns::rds_event_message("RDS-EVENT-0001", "db-instance", "db-1").replace(
        "DB instance is being started due to it exceeding the maximum allowed time being stopped.",
        "Backing up DB instance",
    );
    let text = |s: &str| format!("'{}'", s.replace('\'', "''"));
    format!(
        "INSERT INTO sns_messages (message_id, message_type, topic_arn, subject, sent_at, \
         received_at, signature_version, disposition, disposition_reason, body, event_id, \
         source_type, source_id, source_arn, region, account_id) VALUES \
         (md5(random()::text || clock_timestamp()::text), 'Notification', {topic}, \
         'RDS Notification Message', now(), clock_timestamp(), '2', 'ignored', \
         'RDS-EVENT-0001 is not in RESTOP_EVENT_IDS', convert_to({body}, 'UTF8'), \
         'RDS-EVENT-0001', 'db-instance', 'db-1', 'arn:aws:rds:us-east-1:123456789012:db:db-1', \
         'us-east-1', '123456789012');\n",
        topic = text(sns::TOPIC),
        body = text(&body),
    )
}

async fn run_pgbench(
    database_url: &str,
    clients: u32,
    seconds: u64,
    id: &str,
    postmaster: Option<u32>,
) -> anyhow::Result<Pgbench> {
    // pgbench inserts into restop's own table, with its indexes, as restop's migrations
    // make it.
    let config = DatabaseConfig {
        database_url: database_url.parse().map_err(anyhow::Error::msg)?,
        db_max_connections: 1,
    };
    drop(restop::store::connect_and_migrate(&config).await?);

    let script = std::env::temp_dir().join(format!("restop_bench_{id}_insert.sql"));
    std::fs::write(&script, pgbench_script())?;
    let cpu_before = CpuSample::take(None, postmaster)?;
    let output = Command::new("pgbench")
        .args(["-n", "-c", &clients.to_string()])
        .args(["-j", &clients.min(2).to_string()])
        .args(["-T", &seconds.to_string(), "-f"])
        .arg(&script)
        .arg(database_url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("running pgbench (is it on PATH?)");
    std::fs::remove_file(&script).ok();
    let output = output?;
    let cpu = CpuSample::take(None, postmaster)?.since(&cpu_before);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "pgbench failed ({}):\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let value_after = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse::<f64>().ok())
    };
    let tps = stdout
        .lines()
        .filter(|line| line.contains("without initial connection time"))
        .find_map(|line| line.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse::<f64>().ok())
        .ok_or_else(|| anyhow!("no tps line in pgbench's output:\n{stdout}"))?;
    Ok(Pgbench {
        tps,
        latency_ms: value_after("latency average = ").unwrap_or(f64::NAN),
        transactions: value_after("number of transactions actually processed: ")
            .map_or(0, |n| n as u64),
        cpu,
    })
}
