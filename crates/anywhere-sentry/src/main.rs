use anyhow::Context;
use anywhere_sentry::cli::Cli;
use anywhere_sentry::daemon::Sentry;
use anywhere_sentry::decide::Smoothing;
use anywhere_sentry::docker::DockerEngine;
use anywhere_sentry::probe::{Prober, tls_config};
use anywhere_sentry::{logging, state::StateFile};
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(&cli.logfile, cli.loglevel)?;
    start(cli)
        .await
        .inspect_err(|e| tracing::error!(error = format!("{e:#}"), "cannot start"))
}

async fn start(cli: Cli) -> anyhow::Result<()> {
    let (tls, trust) = tls_config(cli.ca_file.as_deref()).context("--ca-file")?;
    let prober = Prober::new(cli.target(), tls, cli.probe_timeout)?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"), region = %cli.region, endpoint = %cli.target(),
        interval_s = cli.interval.as_secs_f64(), retries = cli.retries,
        offline_after = cli.offline_after, online_after = cli.online_after,
        probe_timeout_s = cli.probe_timeout.as_secs_f64(), docker_host = %cli.docker_host,
        logfile = %cli.logfile.display(), loglevel = %cli.loglevel,
        roots_public = trust.mozilla, roots_system = trust.system, roots_ca_file = trust.ca_file,
        "anywhere-sentry starting"
    );
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let smoothing = Smoothing {
        offline_after: cli.offline_after,
        online_after: cli.online_after,
    };
    let docker = DockerEngine::new(cli.docker_host.clone());
    let sentry = Sentry::start(
        prober,
        docker,
        StateFile::new(&cli.state_file),
        smoothing,
        cli.retries,
    )?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    };
    sentry.run(cli.interval, shutdown).await;
    Ok(())
}
