//! restop keeps stopped Amazon RDS databases stopped.
//!
//! Data flows one way: SNS body -> verified message -> RDS event -> stored record.
//! [`serve`] wires the parts together around a bound listener, so tests and the binary
//! start the very same server.

pub mod api;
pub mod clock;
pub mod config;
mod http;
pub mod metrics;
pub mod rds;
pub mod sns;
pub mod store;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::ServeConfig;
use crate::sns::certs::CertStore;
use crate::sns::verify::Verifier;

/// Runs the HTTP server on `listener` until `shutdown` completes, then drains open requests.
pub async fn serve(
    config: ServeConfig,
    listener: TcpListener,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let store = store::connect_and_migrate(&config.database)
        .await
        .with_context(|| format!("DATABASE_URL {:?}", config.database.database_url))?;
    warn_about_open_settings(&config);

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
    let app = api::router(api::Shared {
        store,
        verifier,
        http,
        auto_confirm: sns.sns_auto_confirm,
        basic_auth: sns.sns_basic_auth,
        event_ids: config.event_ids,
        metrics: Arc::default(),
        clock,
    });

    tracing::info!(address = %listener.local_addr()?, "restop listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed")?;
    tracing::info!("restop stopped");
    Ok(())
}

fn warn_about_open_settings(config: &ServeConfig) {
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
