use restop::config::{Cli, Command, DoctorFormat, LogFormat};
use restop::{App, Deps};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_or_exit();
    let result = match cli.command {
        Command::Serve(config) => {
            restop::telemetry::init(config.log_format);
            serve(config).await
        }
        Command::Migrate(config) => {
            restop::telemetry::init(LogFormat::Text);
            restop::store::connect_and_migrate(&config)
                .await
                .map(|_| tracing::info!("migrations applied"))
                .map_err(|e| anyhow::anyhow!("DATABASE_URL {:?}: {e}", config.database_url))
        }
        Command::Doctor(config) => return doctor(config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("restop: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints every check to stdout (nothing else: the JSON stays parseable); exit status 1
/// when one failed.
async fn doctor(config: restop::config::DoctorConfig) -> ExitCode {
    let base = restop::aws::SdkAws::loader(config.serve.engine.aws_timeout)
        .load()
        .await;
    let report = restop::doctor::examine(&config, base).await;
    match config.format {
        DoctorFormat::Text => print!("{}", report.text()),
        DoctorFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report serialises")
        ),
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Binds the listener first, so that a taken port fails before any other work.
async fn serve(config: restop::config::ServeConfig) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("RESTOP_LISTEN {}: {e}", config.listen))?;
    App::build(config, Deps::production())
        .await?
        .run(listener, shutdown_signal())
        .await
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        _ = sigterm.recv() => tracing::info!("SIGTERM received, shutting down"),
    }
}
