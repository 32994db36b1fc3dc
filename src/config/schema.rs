//! The file as written: the YAML's shape (serde, unknown fields refused), before validation.

use super::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) listen_address: Option<String>,
    #[serde(default)]
    pub(super) interval: Option<String>,
    #[serde(default)]
    pub(super) timeout: Option<String>,
    #[serde(default)]
    pub(super) dns: RawDns,
    #[serde(default)]
    pub(super) max_concurrent_probes: Option<usize>,
    #[serde(default)]
    pub(super) metrics: MetricsConfig,
    #[serde(default)]
    pub(super) targets: Vec<RawTarget>,
    /// A module is a target without name, domain, server or interval: each request names them.
    #[serde(default)]
    pub(super) modules: BTreeMap<String, RawTarget>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    #[serde(default)]
    pub(super) nameservers: Vec<String>,
    pub(super) max_servers_per_target: Option<usize>,
    pub(super) max_addresses_per_server: Option<usize>,
    #[serde(default)]
    pub(super) dnssec: RawDnssec,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDnssec {
    /// Every target's lookups validated, unless a target says `dnssec: false`.
    #[serde(default)]
    pub(super) validate: bool,
    #[serde(default)]
    pub(super) trust_anchors_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) protocol: Protocol,
    #[serde(default)]
    pub(super) domain: String,
    #[serde(default)]
    pub(super) server_address: String,
    #[serde(default)]
    pub(super) component: String,
    #[serde(default)]
    pub(super) secret_file: Option<String>,
    #[serde(default)]
    pub(super) secret_env: Option<String>,
    #[serde(default)]
    pub(super) secret: Option<String>,
    #[serde(default = "default_true")]
    pub(super) handshake: bool,
    #[serde(default)]
    pub(super) interval: Option<String>,
    #[serde(default)]
    pub(super) timeout: Option<String>,
    /// Validate this target's DNS answers (DNSSEC); default `dns.dnssec.validate`.
    #[serde(default)]
    pub(super) dnssec: Option<bool>,
    #[serde(default)]
    pub(super) tls: RawTls,
    #[serde(default)]
    pub(super) watch: Option<RawWatch>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWatch {
    #[serde(default)]
    pub(super) jid: String,
    #[serde(default)]
    pub(super) password_file: Option<String>,
    #[serde(default)]
    pub(super) password_env: Option<String>,
    #[serde(default)]
    pub(super) server_address: String,
    #[serde(default)]
    pub(super) tls: RawWatchTls,
    #[serde(default)]
    pub(super) components: Vec<String>,
    #[serde(default)]
    pub(super) max_scram_iterations: Option<u32>,
    #[serde(default)]
    pub(super) ping_interval: Option<String>,
    #[serde(default)]
    pub(super) ping_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWatchTls {
    #[serde(default)]
    pub(super) mode: ClientTlsMode,
    #[serde(default)]
    pub(super) ca_file: Option<String>,
    #[serde(default)]
    pub(super) server_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    #[serde(default)]
    pub(super) mode: TlsMode,
    #[serde(default)]
    pub(super) ca_file: Option<String>,
    #[serde(default)]
    pub(super) server_name: Option<String>,
    #[serde(default)]
    pub(super) client_cert_file: Option<String>,
    #[serde(default)]
    pub(super) client_key_file: Option<String>,
    /// Also offer TLS 1.1 at most, and report a server that accepts it.
    #[serde(default)]
    pub(super) check_legacy_versions: bool,
}

pub(super) fn default_true() -> bool {
    true
}
