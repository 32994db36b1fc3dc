//! A single target described on the command line (`probe --domain …`): the CLI's flags,
//! turned into the raw config a file would give and checked by the same validation, with
//! each problem named by its flag.

use super::*;

/// A single target described on the command line (`probe --domain ...`), checked by the
/// same validation as a file.
#[derive(Debug, Clone, clap::Args)]
pub struct AdHocTarget {
    /// Describe the target here instead of using the configuration file: the XMPP domain.
    #[arg(long)]
    pub domain: Option<String>,
    /// "host", "host:port" or empty for the SRV lookup (with --domain).
    #[arg(long, default_value = "")]
    pub server: String,
    /// The component name sent in the stream header (with --domain).
    #[arg(long, default_value = "")]
    pub component: String,
    #[arg(long)]
    pub secret_file: Option<String>,
    /// Stop after the server's stream header; send no credentials.
    #[arg(long)]
    pub no_handshake: bool,
    #[arg(long)]
    pub ca_file: Option<String>,
    #[arg(long)]
    pub server_name: Option<String>,
    #[arg(long, value_enum, default_value = "direct")]
    pub tls_mode: TlsMode,
    /// Also offer TLS 1.1 at most and say whether the server accepts it.
    #[arg(long)]
    pub check_legacy_tls: bool,
    /// The whole-probe deadline, e.g. "10s".
    #[arg(long)]
    pub timeout: Option<String>,
    /// DNS server(s) to ask instead of the system's, as IP[:port].
    #[arg(long = "dns-server")]
    pub dns_servers: Vec<String>,
}

/// The flag that sets a field of the ad-hoc target, so that a problem names what was typed.
fn ad_hoc_flag(field: &str) -> Option<&'static str> {
    Some(match field {
        "targets[0].domain" => "--domain",
        "targets[0].server_address" => "--server",
        "targets[0].component" => "--component",
        "targets[0].secret_file" => "--secret-file",
        "targets[0].interval" | "targets[0].timeout" => "--timeout",
        "targets[0].tls" => "--ca-file/--tls-mode",
        "targets[0].tls.ca_file" => "--ca-file",
        "targets[0].tls.server_name" => "--server-name",
        nameserver if nameserver.starts_with("dns.nameservers[") => "--dns-server",
        _ => return None,
    })
}

impl AdHocTarget {
    /// The one-target configuration these flags describe; `None` without `--domain`.
    pub fn into_config(self) -> Option<Result<Config, ConfigError>> {
        let domain = self.domain?;
        let target = RawTarget {
            name: domain.clone(),
            domain,
            server_address: self.server,
            component: self.component,
            secret_file: self.secret_file,
            secret_env: None,
            secret: None,
            handshake: !self.no_handshake,
            // One probe: the interval only has to admit the timeout.
            interval: Some(humantime::format_duration(INTERVAL_RANGE.1).to_string()),
            timeout: self.timeout,
            tls: RawTls {
                mode: self.tls_mode,
                ca_file: self.ca_file,
                server_name: self.server_name,
                client_cert_file: None,
                client_key_file: None,
                check_legacy_versions: self.check_legacy_tls,
            },
            watch: None,
        };
        let raw = RawConfig {
            listen_address: None,
            interval: None,
            timeout: None,
            dns: RawDns {
                nameservers: self.dns_servers,
                ..RawDns::default()
            },
            max_concurrent_probes: None,
            metrics: MetricsConfig::default(),
            targets: vec![target],
            modules: BTreeMap::new(),
        };
        Some(raw.validate_as(Some(ad_hoc_flag)).map_err(|mut problems| {
            // --timeout is both interval and timeout: one message is enough.
            problems.dedup();
            ConfigError::Invalid {
                path: PathBuf::from("the command line"),
                problems,
            }
        }))
    }
}
