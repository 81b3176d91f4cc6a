//! Logging: human-readable text or one JSON object per line; levels from RUST_LOG.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Without RUST_LOG: restop at info; the AWS SDK's own probing (the instance metadata
/// service on a laptop, say) only at debug: restop says in one line what is missing.
const DEFAULT_FILTER: &str = "info,sqlx=warn,aws_config=error,aws_smithy_runtime=error";

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}
