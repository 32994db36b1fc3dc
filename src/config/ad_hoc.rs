//! A single target described on the command line (`probe --domain …`): what the CLI's flags
//! say (main.rs parses them), turned into the raw config a file would give and checked by the
//! same validation, with each problem named by its flag.

use super::*;

/// A single target described on the command line (`probe --domain ...`), checked by the
/// same validation as a file; each field is the flag of its name.
#[derive(Debug, Clone, Default)]
pub struct AdHocTarget {
    pub domain: String,
    /// "host", "host:port" or empty for the SRV lookup.
    pub server: String,
    pub component: String,
    pub secret_file: Option<String>,
    pub handshake: bool,
    pub ca_file: Option<String>,
    pub server_name: Option<String>,
    pub tls_mode: TlsMode,
    pub check_legacy_tls: bool,
    pub timeout: Option<String>,
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
    /// The one-target configuration these flags describe.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let target = RawTarget {
            name: self.domain.clone(),
            protocol: Protocol::XmppComponent,
            domain: self.domain,
            server_address: self.server,
            component: self.component,
            secret_file: self.secret_file,
            secret_env: None,
            secret: None,
            handshake: self.handshake,
            // One probe: the interval only has to admit the timeout.
            interval: Some(humantime::format_duration(INTERVAL_RANGE.1).to_string()),
            timeout: self.timeout,
            dnssec: None,
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
        raw.validate_as(Some(ad_hoc_flag)).map_err(|mut problems| {
            // --timeout is both interval and timeout: one message is enough.
            problems.dedup();
            ConfigError::Invalid {
                path: PathBuf::from("the command line"),
                problems,
            }
        })
    }
}
