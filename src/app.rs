//! restop assembled from its settings: [`App::build`] connects, migrates and wires every
//! part; [`App::run`] serves HTTP and runs the engine on a bound listener until shutdown.
//! The binary, the tests and the benchmarks all start restop this way.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::clock::{Clock, SystemClock};
use crate::config::{ServeConfig, SnsConfig};
use crate::engine::aws::{Aws, Metered, SdkAws};
use crate::engine::{Engine, EngineSettings, Launcher};
use crate::http;
use crate::metrics::Metrics;
use crate::sns::certs::CertStore;
use crate::sns::verify::Verifier;
use crate::store::{self, Intake, Store};

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
    router: Router,
    store: Arc<dyn Store>,
    /// `None` when `RESTOP_ENGINE` is off.
    engine: Option<Arc<Engine>>,
}

impl App {
    /// Connects to the database and applies its migrations, then wires the SNS verifier,
    /// the launcher, the engine and the router. Nothing is served or worked until
    /// [`App::run`].
    pub async fn build(config: ServeConfig, deps: Deps) -> anyhow::Result<Self> {
        let store = store::connect_and_migrate(&config.database)
            .await
            .with_context(|| format!("DATABASE_URL {:?}", config.database.database_url))?;
        warn_about_open_settings(&config);
        let clock = deps.clock;
        let settings = EngineSettings::from_config(&config.engine);
        let wakeup = Arc::new(Notify::new());
        let launcher = Launcher {
            mode: settings.mode(),
            max_duration: settings.max_duration,
            wakeup: wakeup.clone(),
            notify: settings.notify_url.is_some(),
        };
        let metrics = Arc::new(Metrics::default());
        let aws: Arc<dyn Aws> = Arc::new(Metered::new(
            match deps.aws {
                Some(aws) => aws,
                None => Arc::new(SdkAws::from_environment().await),
            },
            metrics.clone(),
        ));
        let sns = config.sns;
        let http = http::sns_client();
        let verifier = Verifier {
            allowed_topics: sns.topic_arns.0,
            extra_hosts: sns.sns_extra_hosts.0,
            max_age: sns.sns_max_age,
            max_future_skew: SnsConfig::MAX_FUTURE_SKEW,
            certs: CertStore::new(sns.sns_cert_dir, http.clone()),
            clock: clock.clone(),
        };
        let router = api::router(api::Shared {
            store: store.clone(),
            intake: Intake::start(store.clone()),
            verifier,
            http,
            auto_confirm: sns.sns_auto_confirm,
            basic_auth: sns.sns_basic_auth,
            event_ids: config.event_ids,
            metrics,
            clock: clock.clone(),
            launcher,
            aws: aws.clone(),
            api_tokens: config.api_tokens.0.into_iter().map(|t| t.0).collect(),
        });
        let engine = if config.engine.engine_enabled {
            Some(Engine::new(store.clone(), aws, settings, clock, wakeup))
        } else {
            tracing::warn!("RESTOP_ENGINE is off: executions are recorded but not worked here");
            None
        };
        Ok(Self {
            router,
            store,
            engine,
        })
    }

    /// The protection engine, when this process runs one.
    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.engine.as_ref()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Serves HTTP on `listener`, and runs the engine beside it, until `shutdown`
    /// completes; then drains open requests and finishes steps in flight.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // One signal stops both halves; the server drains its requests, the engine its steps.
        let stop = CancellationToken::new();
        let engine = self
            .engine
            .map(|engine| tokio::spawn(engine.run(stop.clone())));
        tracing::info!(address = %listener.local_addr()?, "restop listening");
        let server_stop = stop.clone();
        let served = axum::serve(listener, self.router)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = shutdown => {}
                    _ = server_stop.cancelled() => {}
                }
            })
            .await;
        stop.cancel();
        if let Some(engine) = engine {
            engine.await.context("protection engine panicked")?;
        }
        served.context("HTTP server failed")?;
        tracing::info!("restop stopped");
        Ok(())
    }
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
            "RESTOP_TOPIC_ARNS is empty: messages from ANY SNS topic are accepted; \
             set it to your RDS event topic ARNs"
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
