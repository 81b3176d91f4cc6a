//! restop keeps stopped Amazon RDS databases stopped.
//!
//! Data flows one way: SNS body -> verified message -> RDS event -> execution -> job
//! steps -> AWS.
//! [`serve`] wires the parts together around a bound listener, so tests and the binary
//! start the very same server.

pub mod api;
pub mod clock;
pub mod config;
pub mod engine;
mod http;
pub mod metrics;
pub mod partition;
pub mod rds;
pub mod sns;
pub mod store;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;

use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::ServeConfig;
use crate::engine::aws::{Aws, Metered, SdkAws};
use crate::engine::decide::Policy;
use crate::engine::{Engine, EngineSettings, Launcher};
use crate::sns::certs::CertStore;
use crate::sns::verify::Verifier;
use crate::store::Mode;

/// What `serve` takes from its caller rather than from settings.
pub struct Runtime {
    pub clock: Arc<dyn Clock>,
    /// AWS for the engine; `None` loads it from the environment when the engine runs.
    pub aws: Option<Arc<dyn Aws>>,
}

impl Runtime {
    pub fn production() -> Self {
        Self {
            clock: Arc::new(clock::SystemClock),
            aws: None,
        }
    }
}

/// Runs the HTTP server on `listener`, and the protection engine beside it, until
/// `shutdown` completes; then drains open requests and finishes steps in flight.
pub async fn serve(
    config: ServeConfig,
    listener: TcpListener,
    runtime: Runtime,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store: Arc<dyn store::Store> = Arc::new(store::Batched::new(
        store::connect_and_migrate(&config.database)
            .await
            .with_context(|| format!("DATABASE_URL {:?}", config.database.database_url))?,
    ));
    warn_about_open_settings(&config);
    let clock = runtime.clock;
    let settings = config.engine;
    let wakeup = Arc::new(Notify::new());
    let launcher = Launcher {
        mode: match settings.state_machine_arn {
            Some(_) => Mode::StepFunctions,
            None => Mode::Internal,
        },
        max_duration: settings.max_duration,
        wakeup: wakeup.clone(),
        notify: settings.notify_url.is_some(),
    };

    let sns = config.sns;
    let http = http::sns_client();
    let verifier = Verifier {
        allowed_topics: sns.topic_arns.0,
        extra_hosts: sns.sns_extra_hosts.0,
        max_age: sns.sns_max_age,
        max_future_skew: config::SnsConfig::MAX_FUTURE_SKEW,
        certs: CertStore::new(sns.sns_cert_dir, http.clone()),
        clock: clock.clone(),
    };
    let metrics = Arc::new(metrics::Metrics::default());
    let aws: Arc<dyn Aws> = Arc::new(Metered::new(
        match runtime.aws {
            Some(aws) => aws,
            None => Arc::new(SdkAws::from_environment().await),
        },
        metrics.clone(),
    ));
    let app = api::router(api::Shared {
        store: store.clone(),
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

    // One signal stops both halves; the server drains its requests, the engine its steps.
    let stop = CancellationToken::new();
    let engine = if settings.engine_enabled {
        let engine = Engine::new(store, aws, engine_settings(settings), clock, wakeup);
        Some(tokio::spawn(engine.run(stop.clone())))
    } else {
        tracing::warn!("RESTOP_ENGINE is off: executions are recorded but not worked here");
        None
    };

    tracing::info!(address = %listener.local_addr()?, "restop listening");
    let server_stop = stop.clone();
    let served = axum::serve(listener, app)
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

fn engine_settings(config: config::EngineConfig) -> EngineSettings {
    EngineSettings {
        policy: Policy {
            tag_key: config.tag_key,
            tag_value: config.tag_value,
            poll_interval: config.poll_interval,
            start_grace: config.start_grace,
            retry_base: Duration::from_secs(2),
            retry_max: config.poll_interval.min(Duration::from_secs(300)),
        },
        max_duration: config.max_duration,
        dry_run: config.dry_run,
        state_machine_arn: config.state_machine_arn,
        notify_url: config.notify_url,
        lease: config.job_lease,
        owner: format!(
            "{}-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "restop".into()),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
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
