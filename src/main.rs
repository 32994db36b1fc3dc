#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use cms_xmpp_exporter::config::web::load_optional;
use cms_xmpp_exporter::config::{AdHocTarget, Config, ConfigError, TlsMode};
use cms_xmpp_exporter::diagnosis::{render_text, Diagnosis, Style};
use cms_xmpp_exporter::supervisor::prepare;
use cms_xmpp_exporter::{
    error_chain, healthcheck, probe_once, raise_file_limit, run, RunError, WebOptions,
    DEFAULT_MAX_CONNECTIONS,
};

/// Probes XMPP servers the way a Cisco Meeting Server Callbridge registers with them
/// (XEP-0114) and exports every step for Prometheus.
///
/// Exit codes: 0 success; 1 failure (a probe failed, the port is taken, a health check
/// failed); 2 the configuration or the command line is wrong.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The YAML configuration file.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "CMS_XMPP_EXPORTER_CONFIG",
        default_value = "/etc/cms-xmpp-exporter/config.yaml"
    )]
    config: PathBuf,
    /// Overrides `listen_address` from the configuration.
    #[arg(long, visible_alias = "web.listen-address")]
    listen_address: Option<SocketAddr>,
    /// HTTP connections kept open at once; when full, the longest-idle one makes room.
    #[arg(long = "web.max-connections", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u16).range(1..))]
    web_max_connections: u16,
    /// TLS and basic authentication of the HTTP endpoint, in the exporter-toolkit format;
    /// re-read on every reload.
    #[arg(long = "web.config.file", global = true)]
    web_config_file: Option<PathBuf>,
    /// Accept `POST /-/reload` over HTTP (SIGHUP reloads regardless), as Prometheus's flag.
    #[arg(long = "web.enable-lifecycle")]
    web_enable_lifecycle: bool,
    /// trace, debug, info, warn or error.
    #[arg(long, global = true, default_value = "info")]
    log_level: tracing::Level,
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration, and prepare everything the exporter would before it binds
    /// its port (secrets, TLS roots, client certificates, the resolver), then exit: 0 valid,
    /// 2 not.
    CheckConfig,
    /// Probe once and print every step: 0 when registration succeeded for every target
    /// probed and every watched component is registered, 1 when not, 2 for a bad
    /// configuration.
    Probe(Box<ProbeArgs>),
    /// GET a health endpoint of a running exporter: 0 when it answers 200, else 1.
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:9523/-/healthy")]
        url: String,
    },
}

#[derive(Args)]
struct ProbeArgs {
    /// Probe only this target of the configuration file.
    #[arg(long)]
    target: Option<String>,
    #[command(flatten)]
    ad_hoc: AdHocArgs,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

/// A single target described on the command line instead of the configuration file.
#[derive(Clone, Args)]
struct AdHocArgs {
    /// Describe the target here instead of using the configuration file: the XMPP domain.
    #[arg(long)]
    domain: Option<String>,
    /// "host", "host:port" or empty for the SRV lookup (with --domain).
    #[arg(long, default_value = "")]
    server: String,
    /// The component name sent in the stream header (with --domain).
    #[arg(long, default_value = "")]
    component: String,
    #[arg(long)]
    secret_file: Option<String>,
    /// Stop after the server's stream header; send no credentials.
    #[arg(long)]
    no_handshake: bool,
    #[arg(long)]
    ca_file: Option<String>,
    #[arg(long)]
    server_name: Option<String>,
    #[arg(long, value_enum, default_value = "direct")]
    tls_mode: CliTlsMode,
    /// Also offer TLS 1.1 at most and say whether the server accepts it.
    #[arg(long)]
    check_legacy_tls: bool,
    /// The whole-probe deadline, e.g. "10s".
    #[arg(long)]
    timeout: Option<String>,
    /// DNS server(s) to ask instead of the system's, as IP[:port].
    #[arg(long = "dns-server")]
    dns_servers: Vec<String>,
}

/// `--tls-mode`, as `tls.mode` in a file.
#[derive(Clone, Copy, ValueEnum)]
enum CliTlsMode {
    Direct,
    None,
}

impl AdHocArgs {
    /// The target these flags describe; `None` without `--domain`.
    fn target(self) -> Option<AdHocTarget> {
        Some(AdHocTarget {
            domain: self.domain?,
            server: self.server,
            component: self.component,
            secret_file: self.secret_file,
            handshake: !self.no_handshake,
            ca_file: self.ca_file,
            server_name: self.server_name,
            tls_mode: match self.tls_mode {
                CliTlsMode::Direct => TlsMode::Direct,
                CliTlsMode::None => TlsMode::None,
            },
            check_legacy_tls: self.check_legacy_tls,
            timeout: self.timeout,
            dns_servers: self.dns_servers,
        })
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Renders, compression and config loads take turns on one thread: every thread that
        // allocates keeps its own allocator arena, and a render's buffers are megabytes.
        .max_blocking_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        None => runtime.block_on(serve(&cli)),
        Some(Command::CheckConfig) => match load(&cli.config) {
            Ok(config) => match prepare(&config)
                .and_then(|_| load_optional(cli.web_config_file.as_ref()).map_err(RunError::Web))
            {
                Ok(_) => {
                    println!(
                        "{}: valid, {} target(s)",
                        cli.config.display(),
                        config.targets.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    tracing::error!("{}", error_chain(&error));
                    ExitCode::from(if error.is_config_problem() { 2 } else { 1 })
                }
            },
            Err(code) => code,
        },
        Some(Command::Probe(ref args)) => runtime.block_on(probe(&cli, args)),
        Some(Command::Healthcheck { ref url }) => match runtime.block_on(healthcheck(url)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("unhealthy: {error}");
                ExitCode::from(1)
            }
        },
    }
}

fn init_logging(cli: &Cli) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(cli.log_level)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        // Colour only for a person at a terminal.
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    report_config(Config::load(path))
}

fn report_config(loaded: Result<Config, ConfigError>) -> Result<Config, ExitCode> {
    match loaded {
        Ok(config) => {
            for warning in &config.warnings {
                tracing::warn!("{warning}");
            }
            Ok(config)
        }
        Err(error) => {
            tracing::error!("{}", error_chain(&error));
            Err(ExitCode::from(2))
        }
    }
}

async fn serve(cli: &Cli) -> ExitCode {
    let mut config = match load(&cli.config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    if let Some(address) = cli.listen_address {
        config.listen_address = address;
    }
    match raise_file_limit() {
        Ok((before, after)) if after > before => {
            tracing::info!(
                before,
                after,
                "raised the open-files limit to its hard limit"
            )
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot raise the open-files limit"),
    }
    let web = WebOptions {
        max_connections: usize::from(cli.web_max_connections),
        enable_lifecycle: cli.web_enable_lifecycle,
        config_file: cli.web_config_file.clone(),
    };
    match run(config, web).await {
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
}

async fn probe(cli: &Cli, args: &ProbeArgs) -> ExitCode {
    let loaded = match args.ad_hoc.clone().target() {
        Some(ad_hoc) => report_config(ad_hoc.into_config()),
        None => load(&cli.config),
    };
    let config = match loaded {
        Ok(config) => config,
        Err(code) => return code,
    };
    let results = match probe_once(&config, args.target.as_deref()).await {
        Ok(Some(results)) => results,
        Ok(None) => {
            eprintln!(
                "no target named {:?} in {}",
                args.target.as_deref().unwrap_or(""),
                cli.config.display()
            );
            return ExitCode::from(2);
        }
        Err(error) => {
            tracing::error!("{}", error_chain(&error));
            return ExitCode::from(2);
        }
    };
    let style = Style::new(std::io::stdout().is_terminal());
    match args.output {
        Output::Text => {
            for record in &results {
                println!("{}", render_text(record, style));
            }
        }
        Output::Json => {
            let reports: Vec<_> = results.iter().filter_map(|r| Diagnosis::new(r)).collect();
            match serde_json::to_string(&reports) {
                Ok(json) => println!("{json}"),
                Err(error) => {
                    eprintln!("cannot write the report as JSON: {error}");
                    return ExitCode::from(1);
                }
            }
        }
    }
    if results.iter().all(|r| r.healthy()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_flags(args: &[&str]) -> Option<AdHocTarget> {
        let cli = Cli::try_parse_from(["cms-xmpp-exporter", "probe"].iter().chain(args)).unwrap();
        match cli.command {
            Some(Command::Probe(args)) => args.ad_hoc.target(),
            _ => panic!("not the probe command"),
        }
    }

    #[test]
    fn the_probe_flags_describe_an_ad_hoc_target_only_with_a_domain() {
        assert!(probe_flags(&["--server", "xmpp.example.com"]).is_none());
        let target = probe_flags(&[
            "--domain",
            "example.com",
            "--no-handshake",
            "--tls-mode",
            "none",
            "--dns-server",
            "10.0.0.53",
            "--dns-server",
            "10.0.0.54",
        ])
        .expect("a target");
        assert_eq!(target.domain, "example.com");
        assert!(!target.handshake);
        assert_eq!(target.tls_mode, TlsMode::None);
        assert_eq!(target.dns_servers, ["10.0.0.53", "10.0.0.54"]);
        let defaults = probe_flags(&["--domain", "example.com"]).expect("a target");
        assert!(defaults.handshake);
        assert_eq!(defaults.tls_mode, TlsMode::Direct);
        assert_eq!(defaults.server, "");
    }
}
