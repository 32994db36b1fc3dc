#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cms_xmpp_exporter::config::Config;
use cms_xmpp_exporter::{error_chain, run};

/// Probes XMPP servers the way a Cisco Meeting Server Callbridge registers with them
/// (XEP-0114) and exports every step for Prometheus.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The YAML configuration file.
    #[arg(
        long,
        short = 'c',
        default_value = "/etc/cms-xmpp-exporter/config.yaml"
    )]
    config: PathBuf,
    /// Overrides `listen_address` from the configuration.
    #[arg(long)]
    listen_address: Option<SocketAddr>,
    /// trace, debug, info, warn or error.
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
}

/// Exit codes: 0 after a clean shutdown, 1 when the environment fails us (port taken), 2 when
/// the configuration is wrong.
fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_max_level(cli.log_level)
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal; log pipelines get plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let mut config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!("{}", error_chain(&error));
            return ExitCode::from(2);
        }
    };
    if let Some(address) = cli.listen_address {
        config.listen_address = address;
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async {
        match run(config).await {
            Ok(running) => match running.until_signal().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("cannot wait for signals: {error}");
                    ExitCode::from(1)
                }
            },
            Err(error) => {
                tracing::error!("{}", error_chain(&error));
                ExitCode::from(if error.is_config_problem() { 2 } else { 1 })
            }
        }
    })
}
