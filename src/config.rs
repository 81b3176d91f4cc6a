//! Every setting, typed and validated once at start-up.
//!
//! Each setting is a command-line flag and an environment variable. A bad value
//! stops start-up with clap's message, which names the flag; the flag's `--help`
//! entry names its environment variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::aws::Accounts;
use crate::aws::arn::{StateMachineArn, TopicArn, is_account_id, is_role_arn};
use crate::sns::cert_url::ExtraHost;

pub(crate) mod values;

pub use values::{
    ApiToken, BasicAuth, DatabaseUrl, LogFormat, NotifyFormat, Retention, Schedule, parse_duration,
};
use values::{
    parse_bool, parse_event_id, parse_existing_dir, parse_http_url, parse_prices, parse_public_url,
    parse_retention, parse_schedule,
};

#[derive(Debug, Parser)]
#[command(
    name = "restop",
    version,
    about = "Keeps stopped Amazon RDS databases stopped",
    long_about = "Receives RDS events from an Amazon SNS HTTP(S) subscription, proves that each \
                  message comes from SNS, and records it durably."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Built once at start-up; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (applies pending migrations first).
    Serve(ServeConfig),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseConfig),
    /// Check the whole set-up (database, credentials, topics, subscriptions, RDS event
    /// subscriptions, permissions, protected databases) without changing anything; exits
    /// with status 1 if a check fails.
    Doctor(DoctorConfig),
}

#[derive(Debug, Clone, Args)]
pub struct DoctorConfig {
    #[command(flatten)]
    pub serve: ServeConfig,

    /// `text`: one line per check; `json`: `{"ok", "checks": [{"name", "status", "detail"}]}`.
    #[arg(long, value_enum, default_value_t = DoctorFormat::Text)]
    pub format: DoctorFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// Database: `sqlite://PATH` (file created if missing) or `postgres://...`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://restop.db",
        hide_env_values = true
    )]
    pub database_url: DatabaseUrl,

    /// Largest number of pooled database connections.
    #[arg(long, env = "RESTOP_DB_MAX_CONNECTIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_max_connections: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,

    /// Address to listen on.
    #[arg(long, env = "RESTOP_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Connections RESTOP_LISTEN keeps open at once (TLS handshakes included); more wait
    /// in the kernel's backlog until one closes.
    #[arg(long, env = "RESTOP_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Serve /metrics on this address instead of on RESTOP_LISTEN (e.g. only to the
    /// monitoring network).
    #[arg(long, env = "RESTOP_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Delete ignored SNS messages and finished executions older than this (`off` keeps
    /// everything).
    #[arg(long, env = "RESTOP_RETENTION", default_value = "90d", value_parser = parse_retention)]
    pub retention: Retention,

    /// On-Demand prices, USD per instance-hour, that `/v1/savings` estimates with: a JSON
    /// or CSV file of region, instance_class, engine, deployment and usd_per_hour.
    #[arg(long, env = "RESTOP_PRICES", value_parser = parse_prices)]
    pub prices: Option<crate::prices::Prices>,

    #[command(flatten)]
    pub tls: TlsConfig,

    #[command(flatten)]
    pub sns: SnsConfig,

    #[command(flatten)]
    pub engine: EngineConfig,

    #[command(flatten)]
    pub accounts: AccountsConfig,

    /// Comma-separated bearer tokens accepted on /v1 (each at least 16 characters).
    #[arg(
        long,
        env = "RESTOP_API_TOKENS",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub api_tokens: CommaList<ApiToken>,

    /// RDS event ids that restop acts on (comma-separated).
    #[arg(long, env = "RESTOP_EVENT_IDS", value_delimiter = ',',
          default_value = "RDS-EVENT-0154,RDS-EVENT-0153", value_parser = parse_event_id)]
    pub event_ids: Vec<String>,

    /// RDS event ids that say a start has ended: a waiting execution for that database
    /// looks at it at once (they never start one).
    #[arg(long, env = "RESTOP_WAKE_EVENT_IDS", value_delimiter = ',',
          default_value = "RDS-EVENT-0088,RDS-EVENT-0151", value_parser = parse_event_id)]
    pub wake_event_ids: Vec<String>,

    /// Log format; levels come from RUST_LOG.
    #[arg(long, env = "RESTOP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// restop's own HTTPS on RESTOP_LISTEN, for hosts without a TLS-terminating proxy.
#[derive(Debug, Clone, Args)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first, e.g. Let's Encrypt's fullchain.pem): RESTOP_LISTEN
    /// then serves HTTPS only. Needs RESTOP_TLS_KEY; both are read again when they change.
    #[arg(long, env = "RESTOP_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of RESTOP_TLS_CERT's certificate (e.g. privkey.pem).
    #[arg(long, env = "RESTOP_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

impl TlsConfig {
    /// The certificate and key files, when restop serves TLS itself.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        self.tls_cert.as_deref().zip(self.tls_key.as_deref())
    }

    fn validate(&self) -> Result<(), String> {
        let (set, unset) = match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => ("RESTOP_TLS_CERT", "RESTOP_TLS_KEY"),
            (None, Some(_)) => ("RESTOP_TLS_KEY", "RESTOP_TLS_CERT"),
            _ => return Ok(()),
        };
        Err(format!(
            "{set} is set but {unset} is not: set both (the certificate chain and its private \
             key) or neither"
        ))
    }
}

#[derive(Debug, Clone, Args)]
pub struct SnsConfig {
    /// Comma-separated SNS topic ARNs whose messages are accepted; empty refuses every message.
    #[arg(long = "topic-arns", env = "RESTOP_TOPIC_ARNS", default_value = "")]
    pub topic_arns: CommaList<TopicArn>,

    /// Confirm SubscriptionConfirmation messages for allowed topics.
    #[arg(long, env = "RESTOP_SNS_AUTO_CONFIRM", default_value_t = true,
          action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub sns_auto_confirm: bool,

    /// Refuse messages whose Timestamp is older than this (90s, 5m, 1h, 30d).
    #[arg(long, env = "RESTOP_SNS_MAX_AGE", default_value = "1h", value_parser = parse_duration)]
    pub sns_max_age: Duration,

    /// Refuse messages signed with an older SignatureVersion: 1 (SHA1withRSA, SNS's default
    /// for a topic) or 2 (SHA256withRSA, set on the kit's topics).
    #[arg(long, env = "RESTOP_SNS_MIN_SIGNATURE_VERSION", default_value_t = SnsConfig::DEFAULT_MIN_SIGNATURE_VERSION,
        value_parser = clap::value_parser!(u8).range(1..=2))]
    pub sns_min_signature_version: u8,

    /// Directory of `SimpleNotificationService-<hash>.pem` files used instead of fetching.
    #[arg(long, env = "RESTOP_SNS_CERT_DIR", value_parser = parse_existing_dir)]
    pub sns_cert_dir: Option<PathBuf>,

    /// Extra `host[:port]` entries trusted for SigningCertURL and SubscribeURL (emulators, tests).
    #[arg(long, env = "RESTOP_SNS_EXTRA_HOSTS", default_value = "")]
    pub sns_extra_hosts: CommaList<ExtraHost>,

    /// `user:password` required as HTTP Basic auth on /sns.
    #[arg(long, env = "RESTOP_SNS_BASIC_AUTH", hide_env_values = true)]
    pub sns_basic_auth: Option<BasicAuth>,

    /// Deliveries /sns works on at once; more are answered 503 at once, so SNS retries them.
    #[arg(long, env = "RESTOP_SNS_CONCURRENCY", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sns_concurrency: u32,
}

#[derive(Debug, Clone, Args)]
pub struct EngineConfig {
    /// Tag key that marks a database as protected (exact match).
    #[arg(
        long,
        env = "RESTOP_TAG_KEY",
        default_value = "auto-restart-protection"
    )]
    pub tag_key: String,

    /// Tag value that turns protection on (compared case-insensitively).
    #[arg(long, env = "RESTOP_TAG_VALUE", default_value = "yes")]
    pub tag_value: String,

    /// Tag key whose ISO 8601 date lets forced starts of a protected database run until then.
    #[arg(
        long,
        env = "RESTOP_HOLD_TAG_KEY",
        default_value = "auto-restart-protection-hold-until"
    )]
    pub hold_tag_key: String,

    /// How often to look at a database while waiting for it (at least 1s).
    #[arg(long, env = "RESTOP_POLL_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// After the event, how long `stopped` may still be the forced start not yet visible.
    #[arg(long, env = "RESTOP_START_GRACE", default_value = "15m", value_parser = parse_duration)]
    pub start_grace: Duration,

    /// An execution not finished after this ends as failed / timeout (at most 30d).
    #[arg(long, env = "RESTOP_MAX_DURATION", default_value = "24h", value_parser = parse_duration)]
    pub max_duration: Duration,

    /// Decide everything but never call StopDBInstance / StopDBCluster.
    #[arg(long, env = "RESTOP_DRY_RUN", default_value_t = false,
          action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub dry_run: bool,

    /// Run executions as this AWS Step Functions state machine instead of internally.
    #[arg(long, env = "RESTOP_STATE_MACHINE_ARN")]
    pub state_machine_arn: Option<StateMachineArn>,

    /// POST a JSON summary here when an execution ends.
    #[arg(long, env = "RESTOP_NOTIFY_URL", value_parser = parse_http_url)]
    pub notify_url: Option<url::Url>,

    /// The body RESTOP_NOTIFY_URL receives: `json` (restop's own), `slack` (an incoming
    /// webhook's `text` and `blocks`) or `teams` (an Adaptive Card for a Workflows webhook).
    #[arg(long, env = "RESTOP_NOTIFY_FORMAT", value_enum, default_value_t = NotifyFormat::Json)]
    pub notify_format: NotifyFormat,

    /// The URL SNS posts to, e.g. `https://restop.example.com/sns`: `restop doctor` checks
    /// each topic's subscription against it, and Slack and Teams notifications link to
    /// the console at this host.
    #[arg(long, env = "RESTOP_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// How long a replica holds a job it works on; another replica takes over after that.
    /// Must be longer than RESTOP_AWS_TIMEOUT.
    #[arg(long, env = "RESTOP_JOB_LEASE", default_value = "60s", value_parser = parse_duration)]
    pub job_lease: Duration,

    /// The longest one AWS call may take, retries included.
    #[arg(long, env = "RESTOP_AWS_TIMEOUT", default_value = "25s", value_parser = parse_duration)]
    pub aws_timeout: Duration,

    /// How often RDS's event log is read for forced starts SNS did not deliver (`off`
    /// disables it).
    #[arg(long, env = "RESTOP_CATCHUP_INTERVAL", default_value = "10m", value_parser = parse_schedule)]
    pub catchup_interval: Schedule,

    /// How far back the first read of RDS's event log goes (at most 14d: RDS keeps 14 days).
    #[arg(long, env = "RESTOP_CATCHUP_LOOKBACK", default_value = "24h", value_parser = parse_duration)]
    pub catchup_lookback: Duration,

    /// Run the protection engine in this process (turn off for API-only replicas).
    #[arg(long, env = "RESTOP_ENGINE", default_value_t = true,
          action = clap::ArgAction::Set, value_parser = parse_bool)]
    pub engine_enabled: bool,
}

/// The AWS accounts restop acts in, and how fast it may call RDS there.
#[derive(Debug, Clone, Args)]
pub struct AccountsConfig {
    /// Accounts restop may act in besides its own: `ACCOUNT_ID` or `ACCOUNT_ID=ROLE_ARN`,
    /// comma-separated.
    #[arg(long, env = "RESTOP_ACCOUNTS", default_value = "")]
    pub accounts: CommaList<MemberAccount>,

    /// The role assumed in a listed account that names none.
    #[arg(long, env = "RESTOP_ROLE_NAME", default_value = "restop-member",
          value_parser = parse_role_name)]
    pub role_name: String,

    /// Sent as the external id with every AssumeRole.
    #[arg(long, env = "RESTOP_EXTERNAL_ID", hide_env_values = true)]
    pub external_id: Option<String>,

    /// RDS requests per second restop makes in one account and region (never more than
    /// twice that in any one second); RDS allows each account and region 12, shared with
    /// every other tool.
    #[arg(long, env = "RESTOP_RDS_MAX_RPS", default_value_t = 4.0, value_parser = parse_rate)]
    pub rds_max_rps: f64,
}

/// A member account and, optionally, the role to assume there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAccount {
    pub account: String,
    /// `None`: `arn:<partition>:iam::<account>:role/<RESTOP_ROLE_NAME>`.
    pub role_arn: Option<String>,
}

impl FromStr for MemberAccount {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (account, role_arn) = match s.split_once('=') {
            Some((account, role)) => (account, Some(role)),
            None => (s, None),
        };
        if !is_account_id(account) {
            return Err(format!("'{account}' is not a 12-digit AWS account id"));
        }
        if let Some(role) = role_arn
            && !is_role_arn(role)
        {
            return Err(format!(
                "'{role}' is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
            ));
        }
        // Else restop would act in another account under this one's name.
        if let Some(role) = role_arn
            && let Some(arn) = crate::aws::arn::Arn::parse(role)
            && arn.account != account
        {
            return Err(format!(
                "the role '{role}' is in account {}, not in {account}",
                arn.account
            ));
        }
        Ok(Self {
            account: account.to_owned(),
            role_arn: role_arn.map(str::to_owned),
        })
    }
}

impl From<&AccountsConfig> for Accounts {
    fn from(config: &AccountsConfig) -> Self {
        Accounts::new(
            config
                .accounts
                .0
                .iter()
                .map(|m| (m.account.clone(), m.role_arn.clone())),
            config.role_name.clone(),
            config.external_id.clone(),
        )
    }
}

fn parse_role_name(s: &str) -> Result<String, String> {
    let valid = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if valid {
        Ok(s.to_owned())
    } else {
        Err(format!("'{s}' is not an IAM role name"))
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(rate) if (0.1..=1000.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "'{s}' is not a number of requests per second from 0.1 to 1000"
        )),
    }
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// A duration as the settings write it: `90s`, `5m`, `1h`, `30d` (the largest whole unit).
pub(crate) fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s >= 86_400 && s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s >= 3600 && s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s >= 60 && s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// The `TimeoutSeconds` of `deploy/state-machine.asl.json`: a run lasts no longer (a test
/// compares them).
pub const STATE_MACHINE_TIMEOUT: Duration = Duration::from_secs(86_400);
/// A Step Functions execution has at most this many history events.
const STATE_MACHINE_HISTORY_LIMIT: u64 = 25_000;
/// History events of one poll of `deploy/state-machine.asl.json` (Wait, Pass, Choice, Task,
/// three Choices: 2 + 2 + 2 + 5 + 2 + 2 + 2; a test counts them in the file).
pub const STATE_MACHINE_EVENTS_PER_POLL: u64 = 17;
/// RDS's "started" and "stopped" events, instance and cluster: never a forced start.
const START_STOP_EVENT_IDS: [&str; 4] = [
    "RDS-EVENT-0087",
    "RDS-EVENT-0088",
    "RDS-EVENT-0150",
    "RDS-EVENT-0151",
];

/// The events outside the poll loop, with room to spare.
const STATE_MACHINE_EVENTS_OUTSIDE_POLLS: u64 = 100;

impl ServeConfig {
    /// Checks what one setting alone cannot: limits and settings that depend on each other.
    pub fn validate(&self) -> Result<(), String> {
        self.tls.validate()?;
        self.check_event_ids()?;
        let engine = &self.engine;
        if engine.poll_interval < Duration::from_secs(1) {
            return Err("RESTOP_POLL_INTERVAL must be at least 1s".into());
        }
        if engine.max_duration > Duration::from_secs(30 * 86_400) {
            return Err("RESTOP_MAX_DURATION must be at most 30d".into());
        }
        if engine.catchup_lookback > Duration::from_secs(14 * 86_400) {
            return Err(
                "RESTOP_CATCHUP_LOOKBACK must be at most 14d: RDS keeps events 14 days".into(),
            );
        }
        if engine.aws_timeout.is_zero() {
            return Err("RESTOP_AWS_TIMEOUT must be at least 1s".into());
        }
        // Every duration has a ceiling: far beyond any sensible value, and far enough below
        // chrono's range that `now + setting` can never overflow.
        let catchup_interval = match engine.catchup_interval {
            Schedule::Every(interval) => interval,
            Schedule::Off => Duration::ZERO,
        };
        let retention = match self.retention {
            Retention::Keep(period) => period,
            Retention::Forever => Duration::ZERO,
        };
        for (name, value, max) in [
            ("RESTOP_SNS_MAX_AGE", self.sns.sns_max_age, 14 * DAY),
            ("RESTOP_POLL_INTERVAL", engine.poll_interval, HOUR),
            ("RESTOP_START_GRACE", engine.start_grace, DAY),
            ("RESTOP_JOB_LEASE", engine.job_lease, HOUR),
            ("RESTOP_AWS_TIMEOUT", engine.aws_timeout, 5 * MINUTE),
            ("RESTOP_CATCHUP_INTERVAL", catchup_interval, DAY),
            ("RESTOP_RETENTION", retention, 3650 * DAY),
        ] {
            if value > max {
                return Err(format!("{name} must be at most {}", human(max)));
            }
        }
        // Deleting executions younger than that would let a long-failing catch-up sweep
        // record an old forced start again (its one-hour dedupe reads the executions kept).
        if let Retention::Keep(keep) = self.retention {
            let needed = engine.max_duration.max(engine.catchup_lookback);
            if keep < needed {
                return Err(format!(
                    "RESTOP_RETENTION ({}) must be at least RESTOP_MAX_DURATION and \
                     RESTOP_CATCHUP_LOOKBACK ({})",
                    human(keep),
                    human(needed)
                ));
            }
        }
        if engine.job_lease <= engine.aws_timeout {
            return Err(format!(
                "RESTOP_JOB_LEASE ({}s) must be longer than RESTOP_AWS_TIMEOUT ({}s): a peer \
                 would take a job over while its AWS call is still under way",
                engine.job_lease.as_secs(),
                engine.aws_timeout.as_secs()
            ));
        }
        if engine.state_machine_arn.is_some() {
            // A longer maximum would end every longer run `timeout` at the ASL's limit.
            if engine.max_duration > STATE_MACHINE_TIMEOUT {
                return Err(format!(
                    "in Step Functions mode, RESTOP_MAX_DURATION must be at most {}h: the \
                     shipped state machine times out after TimeoutSeconds = {}",
                    STATE_MACHINE_TIMEOUT.as_secs() / 3600,
                    STATE_MACHINE_TIMEOUT.as_secs()
                ));
            }
            let polls = engine
                .max_duration
                .as_secs()
                .div_ceil(engine.poll_interval.as_secs().max(1));
            let events = polls * STATE_MACHINE_EVENTS_PER_POLL + STATE_MACHINE_EVENTS_OUTSIDE_POLLS;
            if events > STATE_MACHINE_HISTORY_LIMIT {
                return Err(format!(
                    "in Step Functions mode, RESTOP_MAX_DURATION / RESTOP_POLL_INTERVAL = {polls} \
                     polls need about {events} history events, more than the {STATE_MACHINE_HISTORY_LIMIT} \
                     a state machine execution may have: poll less often or shorten the maximum"
                ));
            }
        }
        Ok(())
    }

    /// RESTOP_EVENT_IDS are stopped on sight: a start or stop event there would make restop
    /// stop every deliberate start (or act on its own stops), and an id in both lists would
    /// act where the operator meant only a wake-up.
    fn check_event_ids(&self) -> Result<(), String> {
        if let Some(id) = self
            .event_ids
            .iter()
            .find(|id| START_STOP_EVENT_IDS.contains(&id.as_str()))
        {
            return Err(format!(
                "RESTOP_EVENT_IDS must not hold {id}: it announces a start or stop, not a forced \
                 start; restop would stop databases started on purpose (wake-ups belong in \
                 RESTOP_WAKE_EVENT_IDS)"
            ));
        }
        if let Some(id) = self
            .event_ids
            .iter()
            .find(|id| self.wake_event_ids.contains(id))
        {
            return Err(format!(
                "RESTOP_EVENT_IDS and RESTOP_WAKE_EVENT_IDS both hold {id}: an event is either \
                 acted on or a wake-up"
            ));
        }
        Ok(())
    }

    /// The settings `restop serve` has when nothing is set, neither flags nor environment:
    /// what tests start from before they change what they need.
    pub fn defaults() -> Self {
        use clap::FromArgMatches;
        let command = Self::augment_args(clap::Command::new("serve")).mut_args(|arg| arg.env(None));
        let matches = command
            .try_get_matches_from(["serve"])
            .expect("every setting has a default");
        Self::from_arg_matches(&matches).expect("defaults parse")
    }
}

impl SnsConfig {
    /// Messages dated further ahead than this are refused as well.
    pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(5 * 60);
    /// Version 1 is accepted by default: SNS signs with it unless a topic is set otherwise
    /// (README, RESTOP_SNS_MIN_SIGNATURE_VERSION).
    pub const DEFAULT_MIN_SIGNATURE_VERSION: u8 = 1;
}

/// A comma-separated list in which empty entries are skipped, so an empty variable means
/// an empty list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommaList<T>(pub Vec<T>);

impl<T: FromStr<Err = String>> FromStr for CommaList<T> {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(T::from_str)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl Cli {
    /// Parses the command line and environment; on an invalid value, exits with a message
    /// that names both the flag and its environment variable.
    /// A secret's value is never printed: its message names the setting and says what is
    /// wrong, nothing more. Settings that depend on each other are checked too.
    pub fn parse_or_exit() -> Self {
        use clap::CommandFactory;
        use clap::error::{ContextKind, ContextValue, ErrorKind};

        let error = match Self::try_parse() {
            Ok(cli) => {
                if let Command::Serve(config) = &cli.command
                    && let Err(problem) = config.validate()
                {
                    eprintln!("restop: invalid settings: {problem}");
                    std::process::exit(2);
                }
                return cli;
            }
            Err(error) => error,
        };
        // A value its parser refused, or one outside a list of choices.
        if matches!(
            error.kind(),
            ErrorKind::ValueValidation | ErrorKind::InvalidValue
        ) {
            let flag = match error.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(arg)) => arg.split_whitespace().next().map(str::to_owned),
                _ => None,
            };
            let long = flag.as_deref().unwrap_or_default().trim_start_matches('-');
            let env = flag
                .as_deref()
                .and_then(|flag| env_var_of(&Self::command(), flag));
            if let Some(env) = env {
                if SECRET_FLAGS.contains(&long) {
                    let reason = std::error::Error::source(&error)
                        .map(ToString::to_string)
                        .unwrap_or_else(|| "not a valid value".into());
                    eprintln!("restop: invalid setting {env} (--{long}): {reason}");
                    std::process::exit(2);
                }
                eprintln!("restop: invalid setting {env} (--{long}):");
            }
        }
        error.exit()
    }
}

/// Settings whose values are secrets (or may hold one, like a database password).
const SECRET_FLAGS: &[&str] = &["api-tokens", "sns-basic-auth", "database-url"];

/// The environment variable behind `--flag`, searching every subcommand.
fn env_var_of(command: &clap::Command, flag: &str) -> Option<String> {
    let long = flag.trim_start_matches('-');
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(long))
        .and_then(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .or_else(|| {
            command
                .get_subcommands()
                .find_map(|sub| env_var_of(sub, flag))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
    }

    #[test]
    fn malformed_durations_are_refused() {
        for bad in [
            "",
            "h",
            "5",
            "5x",
            "1.5h",
            "-1h",
            "1h30m",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn event_ids_are_checked() {
        assert!(parse_event_id("RDS-EVENT-0154").is_ok());
        assert!(parse_event_id("RDS-EVENT-154").is_err());
        assert!(parse_event_id("rds-event-0154").is_err());
    }

    /// One poll of the state machine, from its Wait state back to it, costs
    /// STATE_MACHINE_EVENTS_PER_POLL history events (Task states 5, the others 2).
    #[test]
    fn the_state_machine_poll_costs_what_the_limit_assumes() {
        let asl: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/deploy/state-machine.asl.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let states = &asl["States"];
        let events = |name: &str| match states[name]["Type"].as_str().unwrap() {
            "Task" => 5,
            _ => 2,
        };
        // The still-waiting path: Wait -> CountWait -> ByResourceType -> Describe* ->
        // Check*AfterDescribe -> *Stoppable -> ByStatus -> (Default) Wait.
        for (describe, check, stoppable) in [
            (
                "DescribeInstance",
                "CheckInstanceAfterDescribe",
                "InstanceStoppable",
            ),
            (
                "DescribeCluster",
                "CheckClusterAfterDescribe",
                "ClusterStoppable",
            ),
        ] {
            let path = [
                "Wait",
                "CountWait",
                "ByResourceType",
                describe,
                check,
                stoppable,
                "ByStatus",
            ];
            for pair in path.windows(2) {
                let state = &states[pair[0]];
                let next = state["Next"].as_str().or(state["Default"].as_str());
                let choices: Vec<&str> = state["Choices"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["Next"].as_str())
                    .collect();
                assert!(
                    next == Some(pair[1]) || choices.contains(&pair[1]),
                    "{} does not lead to {}",
                    pair[0],
                    pair[1]
                );
            }
            assert_eq!(states["ByStatus"]["Default"], "Wait");
            let cost: u64 = path.iter().map(|s| events(s)).sum();
            assert_eq!(cost, STATE_MACHINE_EVENTS_PER_POLL, "{describe}");
        }
    }

    #[test]
    fn the_state_machine_history_limits_the_polls() {
        let mut config = ServeConfig::defaults();
        config.engine.state_machine_arn = Some(
            "arn:aws:states:us-east-1:123456789012:stateMachine:restop"
                .parse()
                .unwrap(),
        );
        assert!(config.validate().is_ok(), "the defaults fit");
        config.engine.poll_interval = Duration::from_secs(30);
        assert!(config.validate().is_err(), "2,880 polls do not fit");
        config.engine.poll_interval = Duration::from_secs(1);
        config.engine.max_duration = Duration::from_secs(300);
        assert!(config.validate().is_ok(), "300 polls fit");
    }

    #[test]
    fn step_functions_mode_refuses_a_maximum_the_state_machine_cannot_honour() {
        let asl: serde_json::Value = serde_json::from_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/state-machine.asl.json"
        )))
        .unwrap();
        assert_eq!(
            asl["TimeoutSeconds"].as_u64(),
            Some(STATE_MACHINE_TIMEOUT.as_secs())
        );
        let mut config = ServeConfig::defaults();
        config.engine.state_machine_arn = Some(
            "arn:aws:states:us-east-1:123456789012:stateMachine:restop"
                .parse()
                .unwrap(),
        );
        config.engine.poll_interval = Duration::from_secs(60);
        config.engine.max_duration = STATE_MACHINE_TIMEOUT;
        assert!(config.validate().is_ok(), "24h fits");
        config.engine.max_duration = STATE_MACHINE_TIMEOUT + Duration::from_secs(3600);
        let problem = config.validate().unwrap_err();
        assert!(problem.contains("at most 24h"), "{problem}");
        config.engine.state_machine_arn = None;
        assert!(config.validate().is_ok(), "internal mode allows 30d");
    }

    #[test]
    fn tls_needs_both_the_certificate_and_the_key() {
        let mut config = ServeConfig::defaults();
        assert!(config.validate().is_ok(), "neither: plain HTTP");
        config.tls.tls_cert = Some("/etc/restop/fullchain.pem".into());
        let problem = config.validate().unwrap_err();
        assert!(problem.contains("RESTOP_TLS_KEY is not"), "{problem}");
        config.tls.tls_key = Some("/etc/restop/privkey.pem".into());
        assert!(config.validate().is_ok(), "both");
        assert!(config.tls.files().is_some());
        config.tls.tls_cert = None;
        let problem = config.validate().unwrap_err();
        assert!(problem.contains("RESTOP_TLS_CERT is not"), "{problem}");
        assert!(config.tls.files().is_none());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let auth: BasicAuth = "ops:hunter2".parse().unwrap();
        assert!(!format!("{auth:?}").contains("hunter2"));
        for (url, shown) in [
            (
                "postgres://restop:hunter2@db:5433/restop",
                "postgres://db:5433/restop",
            ),
            (
                "postgresql://restop@db/restop?password=hunter2&sslmode=require",
                "postgresql://db/restop",
            ),
            (
                "postgres://restop:hunter2@db:notaport/restop",
                "postgres://(a URL that does not parse)",
            ),
            (
                "sqlite:///var/lib/restop.db?mode=rwc",
                "sqlite:///var/lib/restop.db",
            ),
        ] {
            let url: DatabaseUrl = url.parse().unwrap();
            assert_eq!(format!("{url:?}"), shown);
        }
        assert!("mysql://db".parse::<DatabaseUrl>().is_err());
    }
}
