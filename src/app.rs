//! restop assembled from its settings: [`App::build`] connects, migrates and wires every
//! part; [`App::run`] serves HTTP and runs the engine on a bound listener until shutdown.
//! The binary, the tests and the benchmarks all start restop this way.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::aws::{Accounts, Aws, Guarded, OwnAccount, SdkAws};
use crate::clock::{Clock, SystemClock};
use crate::config::{Retention, Schedule, ServeConfig, SnsConfig};
use crate::connections::Capped;
use crate::engine::catchup::{Catchup, CatchupSettings};
use crate::engine::{Engine, EngineSettings, Launcher, Notifier, Wakeups};
use crate::http;
use crate::metrics::Metrics;
use crate::rds::classify::EventRules;
use crate::sns::certs::CertStore;
use crate::sns::verify::Verifier;
use crate::store::{self, Intake, Store};
use crate::tls::{self, Tls};

/// What restop takes from its caller rather than from settings.
pub struct Deps {
    pub clock: Arc<dyn Clock>,
    /// AWS for the engine; `None` loads it from the environment.
    pub aws: Option<Arc<dyn Aws>>,
}

impl Deps {
    pub fn production() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            aws: None,
        }
    }
}

pub struct App {
    routers: api::Routers,
    /// Where `/metrics` is served when it has a listener of its own.
    metrics_listen: Option<SocketAddr>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    retention: Option<Duration>,
    /// `None` when `RESTOP_ENGINE` is off.
    engine: Option<Arc<Engine>>,
    /// The catch-up sweeper and the account-regions it reads; `None` when it is off.
    catchup: Option<(Catchup, Vec<(String, String)>)>,
    /// restop's own HTTPS on the main listener (RESTOP_TLS_CERT), when set.
    tls: Option<Arc<Tls>>,
    /// How often the TLS files are checked for changes.
    tls_reload_interval: Duration,
    /// Places for the main listener's open connections (RESTOP_MAX_CONNECTIONS).
    connection_places: Arc<Semaphore>,
}

/// How long start-up waits for STS to name restop's own account.
const OWN_ACCOUNT_WAIT: Duration = Duration::from_secs(1);

impl App {
    /// Connects to the database and applies its migrations, then wires the SNS verifier,
    /// the launcher, the engine and the router. Nothing is served or worked until
    /// [`App::run`].
    pub async fn build(config: ServeConfig, deps: Deps) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let metrics = Arc::new(Metrics::default());
        // A certificate that cannot be served stops start-up before anything is done.
        let tls = config
            .tls
            .files()
            .map(|(cert, key)| Tls::load(cert, key, metrics.clone()).map(Arc::new))
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let store = store::connect_and_migrate(&config.database)
            .await
            .with_context(|| format!("DATABASE_URL {:?}", config.database.database_url))?;
        warn_about_open_settings(&config);
        let clock = deps.clock;
        let settings = EngineSettings::from_config(&config.engine, config.accounts.rds_max_rps);
        let wakeup = Arc::new(Notify::new());
        let launcher = Launcher {
            mode: settings.mode(),
            max_duration: settings.max_duration,
            wakeup: wakeup.clone(),
            notify: settings.notify_url.is_some(),
        };
        let accounts = Accounts::from(&config.accounts);
        let sdk: Arc<dyn Aws> = match deps.aws {
            Some(aws) => aws,
            None => Arc::new(
                SdkAws::from_environment(config.engine.aws_timeout, accounts.clone()).await,
            ),
        };
        // A step's budget wait, AWS call and commit fit in its lease.
        let budget_wait = config
            .engine
            .job_lease
            .saturating_sub(config.engine.aws_timeout)
            / 2;
        let aws: Arc<dyn Aws> = Arc::new(Guarded::new(
            sdk,
            config.accounts.rds_max_rps,
            budget_wait,
            config.engine.aws_timeout,
            metrics.clone(),
        ));
        let own_account = OwnAccount::default();
        let mut resolving = tokio::spawn(own_account.clone().resolve(aws.clone()));
        // Usually known at once; a slow STS delays start-up no longer than this, and until
        // it answers SNS handling treats no topic as central.
        let _ = tokio::time::timeout(OWN_ACCOUNT_WAIT, &mut resolving).await;
        let places = accounts.watched(&config.sns.topic_arns.0);
        let catchup = match config.engine.catchup_interval {
            Schedule::Every(interval) if config.engine.engine_enabled => Some((
                Catchup::new(
                    store.clone(),
                    aws.clone(),
                    launcher.clone(),
                    clock.clone(),
                    metrics.clone(),
                    CatchupSettings {
                        interval,
                        lookback: config.engine.catchup_lookback,
                        max_duration: settings.max_duration,
                        lease: settings.lease,
                        owner: settings.owner.clone(),
                        policy: settings.policy.clone(),
                        event_ids: config.event_ids.clone(),
                    },
                ),
                places,
            )),
            _ => None,
        };
        let sns = config.sns;
        let http = http::sns_client();
        let verifier = Verifier {
            allowed_topics: sns.topic_arns.0,
            extra_hosts: sns.sns_extra_hosts.0,
            max_age: sns.sns_max_age,
            max_future_skew: SnsConfig::MAX_FUTURE_SKEW,
            min_signature_version: sns.sns_min_signature_version,
            certs: CertStore::new(sns.sns_cert_dir, http.clone(), clock.clone()),
            clock: clock.clone(),
        };
        let routers = api::routers(
            api::Shared {
                store: store.clone(),
                intake: Intake::start(store.clone()),
                verifier,
                http,
                auto_confirm: sns.sns_auto_confirm,
                basic_auth: sns.sns_basic_auth,
                event_rules: EventRules {
                    event_ids: config.event_ids,
                    wake_event_ids: config.wake_event_ids,
                    member_accounts: accounts.members(),
                    own_account,
                },
                wakeups: Wakeups {
                    store: store.clone(),
                    aws: aws.clone(),
                    metrics: metrics.clone(),
                    launcher: launcher.clone(),
                },
                metrics: metrics.clone(),
                clock: clock.clone(),
                launcher,
                aws: aws.clone(),
                notifier: settings.notify_url.clone().map(|url| {
                    Notifier::new(
                        url,
                        settings.notify_format,
                        settings.console_url.clone(),
                        metrics.clone(),
                    )
                }),
                sns_slots: Arc::new(tokio::sync::Semaphore::new(sns.sns_concurrency as usize)),
                api_tokens: config.api_tokens.0.into_iter().map(|t| t.0).collect(),
                prices: config.prices.map(Arc::new),
                readiness: Default::default(),
                gauges: Default::default(),
            },
            config.metrics_listen.is_some(),
        );
        let clock_for_app = clock.clone();
        let engine = if config.engine.engine_enabled {
            Some(Engine::new(
                store.clone(),
                aws,
                settings,
                clock,
                wakeup,
                metrics,
            ))
        } else {
            tracing::warn!("RESTOP_ENGINE is off: executions are recorded but not worked here");
            None
        };
        Ok(Self {
            routers,
            metrics_listen: config.metrics_listen,
            store,
            clock: clock_for_app,
            retention: match config.retention {
                Retention::Keep(period) => Some(period),
                Retention::Forever => None,
            },
            engine,
            catchup,
            tls,
            tls_reload_interval: tls::RELOAD_INTERVAL,
            connection_places: Arc::new(Semaphore::new(config.max_connections as usize)),
        })
    }

    /// Checks the TLS certificate and key files for changes this often instead (tests).
    pub fn with_tls_reload_interval(mut self, interval: Duration) -> Self {
        self.tls_reload_interval = interval;
        self
    }

    /// The protection engine, when this process runs one.
    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.engine.as_ref()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Serves HTTP on `listener` (and `/metrics` on RESTOP_METRICS_LISTEN), and runs the
    /// engine and the retention sweep beside it, until `shutdown` completes; then drains
    /// open requests and finishes steps in flight.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // One signal stops every part; servers drain their requests, the engine its steps.
        let stop = CancellationToken::new();
        let metrics = match (self.metrics_listen, self.routers.metrics) {
            (Some(address), Some(router)) => {
                let listener = TcpListener::bind(address)
                    .await
                    .with_context(|| format!("RESTOP_METRICS_LISTEN {address}"))?;
                tracing::info!(address = %address, "metrics listening");
                Some(tokio::spawn(serve(listener, router, stop.clone())))
            }
            _ => None,
        };
        // The background tasks run until `stop`; one that ends before (a panic, a bug)
        // stops restop with an error, so that its service manager restarts it rather than
        // leaving it serving `/sns` with nothing working what it records.
        let mut background = JoinSet::new();
        let mut names = std::collections::HashMap::new();
        if let Some(engine) = self.engine {
            let stop = stop.clone();
            let task = background.spawn(engine.run(stop));
            names.insert(task.id(), "protection engine");
        }
        if let Some((catchup, places)) = self.catchup {
            let stop = stop.clone();
            let task = background.spawn(catchup.run(places, stop));
            names.insert(task.id(), "catch-up sweeper");
        }
        if let Some(retention) = self.retention {
            let (store, clock, stop) = (self.store.clone(), self.clock.clone(), stop.clone());
            let task = background.spawn(crate::retention::run(store, clock, retention, stop));
            names.insert(task.id(), "retention sweep");
        }
        let watch_stop = stop.clone();
        let watched = tokio::spawn(async move {
            let mut died = None;
            while let Some(ended) = background.join_next_with_id().await {
                let (id, panicked) = match &ended {
                    Ok((id, ())) => (*id, None),
                    Err(e) => (e.id(), Some(e.to_string())),
                };
                let task = names.get(&id).copied().unwrap_or("background task");
                let why = match (panicked, watch_stop.is_cancelled()) {
                    (None, true) => continue, // stopped as asked
                    (None, false) => format!("the {task} ended early"),
                    (Some(e), _) => format!("the {task} panicked: {e}"),
                };
                tracing::error!("{why}; restop stops");
                died.get_or_insert(why);
                watch_stop.cancel();
            }
            died
        });
        let address = listener.local_addr()?;
        tracing::info!(%address, https = self.tls.is_some(), "restop listening");
        let server_stop = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            server_stop.cancel();
        });
        let served = match self.tls {
            Some(tls) => {
                tokio::spawn(tls.clone().watch(self.tls_reload_interval, stop.clone()));
                let listener = tls.listener(listener, address, self.connection_places);
                serve(listener, self.routers.main, stop.clone()).await
            }
            None => {
                let listener = Capped::new(listener, self.connection_places);
                serve(listener, self.routers.main, stop.clone()).await
            }
        };
        stop.cancel();
        if let Some(died) = watched.await.context("background tasks")? {
            anyhow::bail!(died);
        }
        if let Some(metrics) = metrics {
            metrics
                .await
                .context("metrics server panicked")?
                .context("metrics server failed")?;
        }
        served.context("HTTP server failed")?;
        tracing::info!("restop stopped");
        Ok(())
    }
}

/// Serves `router` until `stop` fires, then drains open requests.
async fn serve<L>(listener: L, router: Router, stop: CancellationToken) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

fn warn_about_open_settings(config: &ServeConfig) {
    if config.api_tokens.0.is_empty() {
        tracing::warn!(
            "RESTOP_API_TOKENS is empty: every /v1 request is refused; set it to one or more \
             comma-separated tokens of at least 16 characters (e.g. from `openssl rand -hex 32`)"
        );
    }
    if config.sns.topic_arns.0.is_empty() {
        tracing::warn!(
            "RESTOP_TOPIC_ARNS is empty: every SNS delivery is refused (403 topic_not_allowed) \
             and no subscription is confirmed until it lists your RDS event topic ARNs"
        );
    }
    if !config.sns.sns_extra_hosts.0.is_empty() {
        let hosts: Vec<String> = config
            .sns
            .sns_extra_hosts
            .0
            .iter()
            .map(ToString::to_string)
            .collect();
        tracing::warn!(
            hosts = %hosts.join(","),
            "RESTOP_SNS_EXTRA_HOSTS trusts hosts other than Amazon SNS for certificates and confirmations"
        );
    }
}
