//! The YAML configuration: parsed with serde, then checked by one `validate()` that reports
//! every problem at once with its field path. Secrets and key files are read here, so that a
//! config that loads is a config that can probe.
//!
//! This file holds the validated model; its jobs are apart: `schema` (the file as written),
//! `validate` (schema to model), `check` (the problem collector, bounded reads, `${NAME}`),
//! `tls` (trust anchors and client identity), `dnssec` (DNSSEC's trust anchors), `module`
//! (the `{domain}` templates), `ad_hoc` (a target from the command line, whose flags main.rs
//! parses), `web` (`--web.config.file`).

mod ad_hoc;
mod check;
mod dnssec;
mod module;
mod schema;
mod tls;
mod validate;
pub mod web;

pub use ad_hoc::AdHocTarget;
pub use dnssec::{Anchor, AnchorKey, TrustAnchors};
pub use module::{Module, ModuleTargetError};
pub use validate::normalise_host;

use check::{expand_environment, non_empty, read_bounded, redact_values, Checker};
use schema::*;
use tls::tls_settings;
use validate::*;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;

pub use crate::address::{ClientTlsMode, Jid, Protocol, TlsMode, CMS_COMPONENT_PORT};
use crate::address::{Host, Origin, Server};

pub const DEFAULT_LISTEN_ADDRESS: &str = "0.0.0.0:9523";
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Enough for a fleet of healthy targets at once, few enough file descriptors (up to four
/// per running probe) for the default limit of 1024.
pub const DEFAULT_MAX_CONCURRENT_PROBES: usize = 128;
/// Far beyond any file-descriptor limit; a semaphore cannot hold more than about 2^61.
const MAX_CONCURRENT_PROBES: usize = 65_536;
/// One login pings every component: a few dozen is a large CMS deployment.
const MAX_WATCHED_COMPONENTS: usize = 64;
/// `watch.max_scram_iterations` by default: above what honest servers ask (4,096 for
/// ejabberd, 10,000 to 600,000 where hardened); about 0.23 s of one core with SHA-256 on the
/// development machine (`cargo bench --bench sidecar -- scram`).
const DEFAULT_MAX_SCRAM_ITERATIONS: u32 = 1_000_000;
/// RFC 7677 §4: servers must ask for at least 4,096 rounds.
const MIN_SCRAM_ITERATIONS: u32 = 4096;
/// How often a configured target's kept watch session pings its components, and how long it
/// waits for their answers: a component that leaves is seen at the next round (the server
/// answers for it at once), one that hangs when its round's wait ends: both within 5 s.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(2);
/// `watch.ping_interval`: often enough for a live view, not so often that pings become load.
const PING_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_millis(200), Duration::from_secs(3600));
/// `watch.ping_timeout` (and never longer than the ping interval).
const PING_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(3600));
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

/// What a target takes from the top of the file when it says nothing itself.
#[derive(Clone, Copy)]
struct TargetDefaults {
    interval: Duration,
    timeout: Duration,
    dnssec: bool,
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
    /// What DNSSEC validation trusts, for the targets that validate.
    pub trust_anchors: TrustAnchors,
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
    pub protocol: Protocol,
    /// The XMPP domain, lowercase without a trailing dot. Empty only for a `protocol: tls`
    /// target that names none (then only the server's name is required of its certificate).
    pub domain: String,
    pub servers: ServerSource,
    /// The component name sent in the stream header; empty for `protocol: tls`.
    pub component: String,
    /// `None` when `handshake: false`: no credentials are sent.
    pub secret: Option<Secret>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Its DNS answers are validated (DNSSEC) against `dns.dnssec`'s trust anchors.
    pub dnssec: bool,
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
    /// A configured target's kept session pings every component this often...
    pub ping_interval: Duration,
    /// ... and waits this long for their answers (and the server's to its own ping).
    pub ping_timeout: Duration,
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
            protocol,
            domain,
            servers,
            component,
            secret,
            interval,
            timeout,
            dnssec,
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
            && *protocol == other.protocol
            && *domain == other.domain
            && *servers == other.servers
            && *component == other.component
            && secret.is_some() == other.secret.is_some()
            && *interval == other.interval
            && *timeout == other.timeout
            && *dnssec == other.dnssec
            && *tls_mode == other.tls_mode
            && tls.same_as(&other.tls)
            && *check_legacy_tls == other.check_legacy_tls
            && *requested == other.requested
            && watches
    }
}

impl Watch {
    /// The TLS settings of the login, when it uses TLS.
    pub fn tls_settings(&self) -> Option<&TlsSettings> {
        (self.tls_mode != ClientTlsMode::None).then_some(&self.tls)
    }

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
            ping_interval,
            ping_timeout,
        } = self;
        *jid == other.jid
            && *servers == other.servers
            && *tls_mode == other.tls_mode
            && tls.same_as(&other.tls)
            && *components == other.components
            && *max_scram_iterations == other.max_scram_iterations
            && *ping_interval == other.ping_interval
            && *ping_timeout == other.ping_timeout
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSource {
    /// Discover servers with an SRV lookup of `_xmpp-component._tcp.<domain>`.
    Srv,
    /// One fixed server (`server_address`).
    Static(Server),
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
    /// The end of the first certificate's validity (Unix time): the client certificate
    /// expires too.
    pub not_after: i64,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        ClientIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            not_after: self.not_after,
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

#[cfg(test)]
mod tests;
