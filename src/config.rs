//! The YAML configuration: parsed with serde, then checked by one `validate()` that reports
//! every problem at once with its field path. Secrets and key files are read here, so that a
//! config that loads is a config that can probe.

mod ad_hoc;
mod check;
pub use ad_hoc::AdHocTarget;
use check::{expand_environment, non_empty, read_bounded, redact_values, Checker};
mod module;
mod schema;
use schema::*;
mod tls;
pub use module::{Module, ModuleTargetError};
use tls::tls_settings;
pub mod web;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;

use crate::address::{Host, Origin, Server};

pub const DEFAULT_LISTEN_ADDRESS: &str = "0.0.0.0:9523";
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Enough for a fleet of healthy targets at once, few enough file descriptors (up to four
/// per running probe) for the default limit of 1024.
pub const DEFAULT_MAX_CONCURRENT_PROBES: usize = 128;
/// Far beyond any file-descriptor limit; a semaphore cannot hold more than about 2^61.
const MAX_CONCURRENT_PROBES: usize = 65_536;
/// The port a Callbridge uses when the Server Address names none.
pub const CMS_COMPONENT_PORT: u16 = 5223;
/// RFC 6120's client port (STARTTLS), and the usual one for TLS from the first byte.
const CLIENT_PORT: u16 = 5222;
const CLIENT_DIRECT_TLS_PORT: u16 = 5223;
/// One login pings every component: a few dozen is a large CMS deployment.
const MAX_WATCHED_COMPONENTS: usize = 64;
/// `watch.max_scram_iterations` by default: above what honest servers ask (4,096 for
/// ejabberd, 10,000 to 600,000 where hardened); about 0.23 s of one core with SHA-256 on the
/// development machine (`cargo bench --bench sidecar -- scram`).
const DEFAULT_MAX_SCRAM_ITERATIONS: u32 = 1_000_000;
/// RFC 7677 §4: servers must ask for at least 4,096 rounds.
const MIN_SCRAM_ITERATIONS: u32 = 4096;
const DNS_PORT: u16 = 53;
/// Secrets and PEM files are small; a bigger file is a mistake, not something to read whole.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// The configuration file itself: room for a fleet of tens of thousands of targets.
const MAX_CONFIG_BYTES: u64 = 64 << 20;
/// A probe interval. Below a second is for labs and tests; production wants 15 s or more.
const INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(86_400));
/// A probe deadline (and never longer than the target's interval).
const TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(86_400));
const MAX_SECRET_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// serde's message with the offending values left out (see [`redact_values`]).
    #[error("config file {path} is not valid: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path} has {} problem(s):\n{}", problems.len(), Problems(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

struct Problems<'a>(&'a [String]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen_address: SocketAddr,
    pub dns: DnsConfig,
    /// How many target probes may run at once; the others wait their turn.
    pub max_concurrent_probes: usize,
    pub metrics: MetricsConfig,
    pub targets: Vec<Arc<Target>>,
    /// Settings for targets that Prometheus names: `/probe?module=NAME&target=DOMAIN`.
    pub modules: BTreeMap<String, Arc<Module>>,
    /// Things that work but should be changed (e.g. an inline secret); logged at startup.
    pub warnings: Vec<String>,
    /// The file it was loaded from, re-read on reload; `None` when built in memory.
    pub source: Option<PathBuf>,
}

/// What `/metrics` carries beyond the default set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Per-step duration histograms: 16 series per step and server.
    #[serde(default)]
    pub step_histograms: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// Empty: use the system resolver configuration.
    pub nameservers: Vec<SocketAddr>,
    pub fan_out: FanOut,
}

/// How far one DNS answer may multiply a probe: servers of an SRV answer probed (the first
/// in RFC 2782 order), and addresses of a server tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FanOut {
    pub servers: usize,
    pub addresses: usize,
}

impl Default for FanOut {
    fn default() -> Self {
        FanOut {
            servers: 32,
            addresses: 8,
        }
    }
}

/// The largest values `dns.max_servers_per_target` and `dns.max_addresses_per_server` take.
const MAX_FAN_OUT: (usize, usize) = (1024, 64);

#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// The XMPP domain, lowercase without a trailing dot.
    pub domain: String,
    pub servers: ServerSource,
    pub component: String,
    /// `None` when `handshake: false`: no credentials are sent.
    pub secret: Option<Secret>,
    pub interval: Duration,
    pub timeout: Duration,
    pub tls_mode: TlsMode,
    pub tls: TlsSettings,
    /// `tls.check_legacy_versions`: a second, bare hello per server offering TLS 1.1 at most.
    pub check_legacy_tls: bool,
    /// The client path: a monitoring user who pings production components.
    pub watch: Option<Watch>,
    /// A module's target (`/probe?module=`): run only when a request names it, so Prometheus
    /// sets its pace and it has no interval of its own (its `interval` is its timeout).
    pub requested: bool,
}

/// A monitoring user's login, and the components whose registration it checks (issue 10).
#[derive(Debug, Clone)]
pub struct Watch {
    pub jid: Jid,
    pub password: Secret,
    pub servers: ServerSource,
    pub tls_mode: ClientTlsMode,
    pub tls: TlsSettings,
    /// The components' JIDs (domains), lowercase, in the config's order.
    pub components: Vec<String>,
    /// The most SCRAM (PBKDF2) rounds a server may ask of the login: more is refused before
    /// any is computed.
    pub max_scram_iterations: u32,
}

/// A bare JID `local@domain`; the domain lowercase, without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jid {
    pub local: String,
    pub domain: String,
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// How the monitoring client secures its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientTlsMode {
    /// RFC 6120: plaintext stream, then `<starttls/>`, as clients on 5222 do.
    #[default]
    Starttls,
    /// XEP-0368: TLS from the first byte.
    Direct,
    /// No TLS at all: only SCRAM, which never sends the password.
    None,
}

impl ClientTlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientTlsMode::Starttls => "starttls",
            ClientTlsMode::Direct => "direct",
            ClientTlsMode::None => "none",
        }
    }

    /// The SRV service of this mode (XEP-0368 for direct TLS).
    pub fn srv_service(self) -> &'static str {
        match self {
            ClientTlsMode::Direct => "_xmpps-client._tcp",
            _ => "_xmpp-client._tcp",
        }
    }

    /// The port of a `server_address` that names none.
    fn default_port(self) -> u16 {
        match self {
            ClientTlsMode::Direct => CLIENT_DIRECT_TLS_PORT,
            _ => CLIENT_PORT,
        }
    }
}

impl Target {
    pub fn handshake(&self) -> bool {
        self.secret.is_some()
    }

    /// Whether `other` probes the same thing the same way, so that a reload keeps this
    /// target's record: every setting, TLS material by content, but not the secrets' values
    /// (a rotated secret or password is the same check of the same thing).
    pub fn same_settings(&self, other: &Target) -> bool {
        // Destructured so that a new setting cannot be forgotten here.
        let Target {
            name,
            domain,
            servers,
            component,
            secret,
            interval,
            timeout,
            tls_mode,
            tls,
            check_legacy_tls,
            watch,
            requested,
        } = self;
        let watches = match (watch, &other.watch) {
            (None, None) => true,
            (Some(a), Some(b)) => a.same_settings(b),
            _ => false,
        };
        *name == other.name
            && *domain == other.domain
            && *servers == other.servers
            && *component == other.component
            && secret.is_some() == other.secret.is_some()
            && *interval == other.interval
            && *timeout == other.timeout
            && *tls_mode == other.tls_mode
            && tls.same_as(&other.tls)
            && *check_legacy_tls == other.check_legacy_tls
            && *requested == other.requested
            && watches
    }
}

impl Watch {
    /// As [`Target::same_settings`]: all but the password.
    fn same_settings(&self, other: &Watch) -> bool {
        let Watch {
            jid,
            password: _,
            servers,
            tls_mode,
            tls,
            components,
            max_scram_iterations,
        } = self;
        *jid == other.jid
            && *servers == other.servers
            && *tls_mode == other.tls_mode
            && tls.same_as(&other.tls)
            && *components == other.components
            && *max_scram_iterations == other.max_scram_iterations
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSource {
    /// Discover servers with an SRV lookup of `_xmpp-component._tcp.<domain>`.
    Srv,
    /// One fixed server (`server_address`).
    Static(Server),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte, as a Callbridge does on port 5223.
    #[default]
    Direct,
    /// Plaintext XEP-0114, as Prosody's `component_ports`.
    None,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Direct => "direct",
            TlsMode::None => "none",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Trust anchors from `ca_file`; `None` means the system roots.
    pub ca_certs: Option<Vec<CertificateDer<'static>>>,
    /// SNI and verification name; `None` means the server's host.
    pub server_name: Option<ServerName<'static>>,
    pub client_auth: Option<ClientIdentity>,
}

impl TlsSettings {
    /// Whether a TLS client built for `self` would do for `other` too: the same trust anchors
    /// and client identity (SNI and verification names are per handshake).
    pub fn same_trust(&self, other: &TlsSettings) -> bool {
        let same_identity = match (&self.client_auth, &other.client_auth) {
            (None, None) => true,
            (Some(a), Some(b)) => a.chain == b.chain && a.key.secret_der() == b.key.secret_der(),
            _ => false,
        };
        self.ca_certs == other.ca_certs && same_identity
    }

    /// The same trust, identity and names.
    pub fn same_as(&self, other: &TlsSettings) -> bool {
        self.same_trust(other) && self.server_name == other.server_name
    }
}

/// A client certificate chain and its key for mutual TLS.
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        ClientIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ClientIdentity({} certificate(s), key redacted)",
            self.chain.len()
        )
    }
}

/// The component's shared secret. It has no `Display`, and `Debug` prints no part of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The only way to the value: for computing the handshake digest.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let bytes = read_bounded(path, MAX_CONFIG_BYTES).map_err(read)?;
        let text =
            String::from_utf8(bytes).map_err(|_| read(std::io::Error::other("not UTF-8 text")))?;
        let mut config = Config::parse(&text, path)?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Parses and validates YAML text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: redact_values(&e.to_string()),
        })?;
        raw.validate().map_err(|problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }
}

impl RawConfig {
    fn validate(self) -> Result<Config, Vec<String>> {
        self.validate_as(None)
    }

    /// Checks, naming each field as `rename` says (its path in the file when `None`).
    fn validate_as(
        self,
        rename: Option<fn(&str) -> Option<&'static str>>,
    ) -> Result<Config, Vec<String>> {
        let mut check = Checker {
            rename,
            ..Checker::default()
        };

        let listen = self
            .listen_address
            .as_deref()
            .unwrap_or(DEFAULT_LISTEN_ADDRESS);
        let listen_address = listen.parse().unwrap_or_else(|_| {
            check.problem("listen_address", "is not an address like \"0.0.0.0:9523\"");
            SocketAddr::from(([0, 0, 0, 0], 0))
        });
        let interval = check.duration(
            "interval",
            self.interval.as_deref(),
            DEFAULT_INTERVAL,
            INTERVAL_RANGE,
        );
        let timeout = check.duration(
            "timeout",
            self.timeout.as_deref(),
            DEFAULT_TIMEOUT,
            TIMEOUT_RANGE,
        );
        let max_concurrent_probes = self
            .max_concurrent_probes
            .unwrap_or(DEFAULT_MAX_CONCURRENT_PROBES);
        if !(1..=MAX_CONCURRENT_PROBES).contains(&max_concurrent_probes) {
            check.problem(
                "max_concurrent_probes",
                format!("{max_concurrent_probes} is not between 1 and {MAX_CONCURRENT_PROBES}"),
            );
        }

        let defaults = FanOut::default();
        let mut bounded = |field: &str, value: Option<usize>, default: usize, max: usize| {
            let value = value.unwrap_or(default);
            if !(1..=max).contains(&value) {
                check.problem(field, format!("must be from 1 to {max}"));
            }
            value.clamp(1, max)
        };
        let fan_out = FanOut {
            servers: bounded(
                "dns.max_servers_per_target",
                self.dns.max_servers_per_target,
                defaults.servers,
                MAX_FAN_OUT.0,
            ),
            addresses: bounded(
                "dns.max_addresses_per_server",
                self.dns.max_addresses_per_server,
                defaults.addresses,
                MAX_FAN_OUT.1,
            ),
        };
        let nameservers = self
            .dns
            .nameservers
            .iter()
            .enumerate()
            .filter_map(|(i, ns)| {
                let parsed = parse_nameserver(ns);
                if parsed.is_none() {
                    check.problem(
                        &format!("dns.nameservers[{i}]"),
                        "is not an IP address with an optional port, like \"10.0.0.2:53\"",
                    );
                }
                parsed
            })
            .collect();

        if self.targets.is_empty() && self.modules.is_empty() {
            check.problem(
                "targets",
                "at least one target (or a module, for /probe?module=) is required",
            );
        }
        let modules = self
            .modules
            .into_iter()
            .filter_map(|(name, raw)| {
                let module = raw.validate_module(&name, timeout, &mut check)?;
                Some((name, Arc::new(module)))
            })
            .collect();
        let mut names = HashSet::new();
        let targets = self
            .targets
            .into_iter()
            .enumerate()
            .filter_map(|(i, raw)| {
                let field = format!("targets[{i}]");
                if !raw.name.is_empty() && !names.insert(raw.name.clone()) {
                    check.problem(
                        &format!("{field}.name"),
                        format!(
                            "{:?} is used by another target; names must be unique",
                            raw.name
                        ),
                    );
                }
                raw.validate(&field, interval, timeout, &mut check)
                    .map(Arc::new)
            })
            .collect();

        if check.problems.is_empty() {
            Ok(Config {
                listen_address,
                dns: DnsConfig {
                    nameservers,
                    fan_out,
                },
                max_concurrent_probes,
                metrics: self.metrics,
                targets,
                modules,
                warnings: check.warnings,
                source: None,
            })
        } else {
            Err(check.problems)
        }
    }
}

impl RawTarget {
    fn validate(
        self,
        field: &str,
        default_interval: Duration,
        default_timeout: Duration,
        check: &mut Checker,
    ) -> Option<Target> {
        let problems_before = check.problems.len();
        if self.name.trim().is_empty() {
            check.problem(
                &format!("{field}.name"),
                "is required (it becomes the `target` label)",
            );
        }
        let domain = normalise_host(&self.domain);
        if domain.is_empty() {
            check.problem(&format!("{field}.domain"), "is required (the XMPP domain)");
        } else if !is_dns_name(&domain) {
            check.problem(&format!("{field}.domain"), "is not a DNS name");
        }
        let servers = parse_server_address(&self.server_address, CMS_COMPONENT_PORT)
            .unwrap_or_else(|message| {
                check.problem(&format!("{field}.server_address"), message);
                ServerSource::Srv
            });
        // `${HOSTNAME}` and the like give each replica a name of its own.
        let component = match expand_environment(self.component.trim()) {
            Ok(name) => name,
            Err(problem) => {
                check.problem(&format!("{field}.component"), problem);
                String::new()
            }
        };
        if self.component.trim().is_empty() {
            check.problem(
                &format!("{field}.component"),
                "is required (the component name sent in the stream header)",
            );
        } else if !component.is_empty() && !is_dns_name(&component) {
            check.problem(
                &format!("{field}.component"),
                "is not a component name (a DNS name), once expanded",
            );
        }
        let secret = self.secret(field, check);
        let interval = check.duration(
            &format!("{field}.interval"),
            self.interval.as_deref(),
            default_interval,
            INTERVAL_RANGE,
        );
        let timeout = check.duration(
            &format!("{field}.timeout"),
            self.timeout.as_deref(),
            default_timeout,
            TIMEOUT_RANGE,
        );
        if timeout > interval {
            check.problem(
                &format!("{field}.timeout"),
                format!(
                    "{} is longer than the interval {}; probes of one target must not overlap",
                    humantime::format_duration(timeout),
                    humantime::format_duration(interval)
                ),
            );
        }
        let tls_mode = self.tls.mode;
        let check_legacy_tls = self.tls.check_legacy_versions;
        if check_legacy_tls && tls_mode == TlsMode::None {
            check.warnings.push(format!(
                "{field}.tls: mode is none (plaintext), so check_legacy_versions has nothing to check"
            ));
        }
        let tls = self.tls.validate(&format!("{field}.tls"), check);
        let watch = self
            .watch
            .and_then(|watch| watch.validate(&format!("{field}.watch"), check));

        if check.problems.len() > problems_before {
            return None;
        }
        Some(Target {
            name: self.name,
            domain,
            servers,
            component,
            secret,
            interval,
            timeout,
            tls_mode,
            tls: tls?,
            check_legacy_tls: check_legacy_tls && tls_mode != TlsMode::None,
            requested: false,
            watch,
        })
    }

    /// Exactly one source when the handshake is on; the value itself never enters a message.
    fn secret(&self, field: &str, check: &mut Checker) -> Option<Secret> {
        let sources = [
            ("secret_file", self.secret_file.as_deref()),
            ("secret_env", self.secret_env.as_deref()),
            ("secret", self.secret.as_deref()),
        ];
        if !self.handshake {
            if sources.iter().any(|(_, source)| source.is_some()) {
                check.warnings.push(format!(
                    "{field}: handshake is false, so the configured secret is not used"
                ));
            }
            return None;
        }
        check.secret(field, sources, "(or handshake: false)")
    }
}

impl RawWatch {
    fn validate(self, field: &str, check: &mut Checker) -> Option<Watch> {
        let before = check.problems.len();
        let jid = parse_jid(&self.jid).unwrap_or_else(|message| {
            check.problem(&format!("{field}.jid"), message);
            Jid {
                local: String::new(),
                domain: String::new(),
            }
        });
        let sources = [
            ("password_file", self.password_file.as_deref()),
            ("password_env", self.password_env.as_deref()),
        ];
        let password = check.secret(field, sources, "");
        let port = self.tls.mode.default_port();
        let servers = parse_server_address(&self.server_address, port).unwrap_or_else(|message| {
            check.problem(&format!("{field}.server_address"), message);
            ServerSource::Srv
        });
        let tls = tls_settings(
            check,
            &format!("{field}.tls"),
            self.tls.ca_file.as_deref(),
            self.tls.server_name.as_deref(),
            None,
        );
        if self.tls.mode == ClientTlsMode::None {
            check.warnings.push(format!(
                "{field}.tls: mode is none: the session is plaintext (the password is only sent \
                 as SCRAM, never in the clear)"
            ));
        }
        let mut components: Vec<String> = Vec::with_capacity(self.components.len());
        for (i, component) in self.components.iter().enumerate() {
            let name = normalise_host(component);
            let place = format!("{field}.components[{i}]");
            if !is_dns_name(&name) {
                check.problem(&place, "is not a component JID (a DNS name)");
            } else if components.contains(&name) {
                check.problem(&place, format!("{name:?} is listed twice"));
            } else {
                components.push(name);
            }
        }
        if self.components.is_empty() {
            check.problem(
                &format!("{field}.components"),
                "list the production components to ping (the Callbridges' component JIDs)",
            );
        } else if self.components.len() > MAX_WATCHED_COMPONENTS {
            check.problem(
                &format!("{field}.components"),
                format!(
                    "{} components; at most {MAX_WATCHED_COMPONENTS}",
                    self.components.len()
                ),
            );
        }
        let max_scram_iterations = self
            .max_scram_iterations
            .unwrap_or(DEFAULT_MAX_SCRAM_ITERATIONS);
        if max_scram_iterations < MIN_SCRAM_ITERATIONS {
            check.problem(
                &format!("{field}.max_scram_iterations"),
                format!(
                    "{max_scram_iterations} is below {MIN_SCRAM_ITERATIONS}, the count RFC 7677 \
                     requires of every server: no login could pass"
                ),
            );
        }
        if check.problems.len() > before {
            return None;
        }
        Some(Watch {
            jid,
            password: password?,
            servers,
            tls_mode: self.tls.mode,
            tls: tls?,
            components,
            max_scram_iterations,
        })
    }
}

/// `local@domain`: a bare JID, as a monitoring user logs in with.
fn parse_jid(text: &str) -> Result<Jid, String> {
    let text = text.trim();
    let bad = || "is not a bare JID like \"monitor@example.com\"".to_owned();
    let (local, domain) = text.split_once('@').ok_or_else(bad)?;
    let domain = normalise_host(domain);
    let local_ok = !local.is_empty()
        && local.len() <= 1023
        && !local.contains(['@', '/', '"', '&', '\'', ':', '<', '>', ' ']);
    if !local_ok || !is_dns_name(&domain) {
        return Err(bad());
    }
    Ok(Jid {
        local: local.to_owned(),
        domain,
    })
}

/// Lowercase, trimmed, without the trailing dot that names from DNS carry.
pub fn normalise_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn is_dns_name(name: &str) -> bool {
    name.parse::<IpAddr>().is_err() && ServerName::try_from(name).is_ok()
}

fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    text.parse::<SocketAddr>().ok().or_else(|| {
        text.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, DNS_PORT))
    })
}

/// `""` → SRV; `host`, `host:port`, `ip`, `[v6]:port`; without a port, `default_port`.
fn parse_server_address(text: &str, default_port: u16) -> Result<ServerSource, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(ServerSource::Srv);
    }
    let bad = || {
        "is not \"host\", \"host:port\", \"ip\" or \"[ipv6]:port\" (empty means SRV lookup)"
            .to_owned()
    };
    let fixed =
        |host: Host, port: u16| ServerSource::Static(Server::new(host, port, Origin::Static));
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(fixed(Host::Ip(addr.ip()), addr.port()));
    }
    if let Ok(ip) = text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(fixed(Host::Ip(ip), default_port));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(bad)?,
        ),
        None => (text, default_port),
    };
    let host = normalise_host(host);
    if !is_dns_name(&host) {
        return Err(bad());
    }
    Ok(fixed(Host::Name(host), port))
}

#[cfg(test)]
mod tests;
