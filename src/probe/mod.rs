//! The probe: re-enacts a Callbridge registering with its XMPP server, one module per step.
//!
//! Every step takes typed input and returns `Result<T, Failure>`; [`pipeline`] runs them in
//! order inside the target's deadline, times them and collects a [`TargetReport`]. Steps never
//! touch metrics: `crate::metrics` turns reports into series.

pub mod cert;
pub mod connect;
pub mod dns;
pub mod handshake;
pub mod pipeline;
pub mod resolve;
pub mod srv;
pub mod stream;
pub mod tls;
pub mod xmpp;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

pub use pipeline::{probe_target, TargetProbe};

/// One step of the Callbridge → XMPP signal flow, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    Srv,
    Resolve,
    Connect,
    Tls,
    Cert,
    Stream,
    Handshake,
}

impl Step {
    pub const ALL: [Step; 7] = [
        Step::Srv,
        Step::Resolve,
        Step::Connect,
        Step::Tls,
        Step::Cert,
        Step::Stream,
        Step::Handshake,
    ];

    /// The value of the `step` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Srv => "srv",
            Step::Resolve => "resolve",
            Step::Connect => "connect",
            Step::Tls => "tls",
            Step::Cert => "cert",
            Step::Stream => "stream",
            Step::Handshake => "handshake",
        }
    }

    /// DNS steps report a deadline as `dns_timeout` so that alerts can tell DNS from network.
    fn timeout_reason(self) -> Reason {
        match self {
            Step::Srv | Step::Resolve => Reason::DnsTimeout,
            _ => Reason::Timeout,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a step failed. The `reason` label takes exactly these values (see docs/metrics.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Nxdomain,
    NoRecords,
    Servfail,
    DnsError,
    DnsTimeout,
    SrvUnavailable,
    Refused,
    Unreachable,
    Timeout,
    TlsHandshake,
    TlsVersion,
    CertUntrusted,
    CertExpired,
    CertNotYetValid,
    CertNameMismatch,
    NotAuthorized,
    HostUnknown,
    Conflict,
    ImproperAddressing,
    InvalidNamespace,
    StreamError,
    Closed,
    Protocol,
    Oversized,
}

impl Reason {
    pub const ALL: [Reason; 24] = [
        Reason::Nxdomain,
        Reason::NoRecords,
        Reason::Servfail,
        Reason::DnsError,
        Reason::DnsTimeout,
        Reason::SrvUnavailable,
        Reason::Refused,
        Reason::Unreachable,
        Reason::Timeout,
        Reason::TlsHandshake,
        Reason::TlsVersion,
        Reason::CertUntrusted,
        Reason::CertExpired,
        Reason::CertNotYetValid,
        Reason::CertNameMismatch,
        Reason::NotAuthorized,
        Reason::HostUnknown,
        Reason::Conflict,
        Reason::ImproperAddressing,
        Reason::InvalidNamespace,
        Reason::StreamError,
        Reason::Closed,
        Reason::Protocol,
        Reason::Oversized,
    ];

    /// The value of the `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Nxdomain => "nxdomain",
            Reason::NoRecords => "no_records",
            Reason::Servfail => "servfail",
            Reason::DnsError => "dns_error",
            Reason::DnsTimeout => "dns_timeout",
            Reason::SrvUnavailable => "srv_unavailable",
            Reason::Refused => "refused",
            Reason::Unreachable => "unreachable",
            Reason::Timeout => "timeout",
            Reason::TlsHandshake => "tls_handshake",
            Reason::TlsVersion => "tls_version",
            Reason::CertUntrusted => "cert_untrusted",
            Reason::CertExpired => "cert_expired",
            Reason::CertNotYetValid => "cert_not_yet_valid",
            Reason::CertNameMismatch => "cert_name_mismatch",
            Reason::NotAuthorized => "not_authorized",
            Reason::HostUnknown => "host_unknown",
            Reason::Conflict => "conflict",
            Reason::ImproperAddressing => "improper_addressing",
            Reason::InvalidNamespace => "invalid_namespace",
            Reason::StreamError => "stream_error",
            Reason::Closed => "closed",
            Reason::Protocol => "protocol",
            Reason::Oversized => "oversized",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A step's failure: the reason (a label) and a detail for logs. Never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Failure {
    pub reason: Reason,
    pub detail: String,
}

impl Failure {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Failure {
            reason,
            detail: detail.into(),
        }
    }
}

/// What one step did: how long it took and how it ended.
#[derive(Clone, Debug)]
pub struct StepRecord {
    pub step: Step,
    pub duration: Duration,
    pub result: Result<(), Failure>,
}

/// Where a server came from: the SRV answer (with its RFC 2782 fields) or the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Srv {
        priority: u16,
        weight: u16,
        /// In the group that RFC 2782 tries first (lowest priority).
        preferred: bool,
    },
    Static,
}

/// An XMPP server to probe: FQDN (lowercase, no trailing dot) or IP literal, and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub origin: Origin,
}

impl Server {
    /// The value of the `server` label.
    pub fn label(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Facts read from the server's leaf certificate, exported even when it is rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFacts {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub sha256: String,
    pub sans: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    /// The chain leads to a trusted root (judged apart from expiry and names).
    pub trusted: bool,
    pub coverage: Vec<NameCoverage>,
}

/// Whether one name the Callbridge requires is covered by the certificate's SANs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameCoverage {
    pub role: NameRole,
    pub name: String,
    pub covered: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRole {
    /// The XMPP domain.
    Domain,
    /// The XMPP server's FQDN (or the configured verification name).
    Fqdn,
}

impl NameRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NameRole::Domain => "domain",
            NameRole::Fqdn => "fqdn",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFacts {
    pub version: String,
    pub cipher: String,
}

/// Everything one server's probe found.
#[derive(Clone, Debug)]
pub struct ServerReport {
    pub server: Server,
    /// The steps that ran, in order; the last one failed if any did.
    pub steps: Vec<StepRecord>,
    /// What `resolve` found, in the order `connect` tried them.
    pub addresses: Vec<IpAddr>,
    /// The address that accepted the TCP connection.
    pub address: Option<SocketAddr>,
    pub tls: Option<TlsFacts>,
    pub cert: Option<CertFacts>,
    pub stream_id: Option<String>,
}

impl ServerReport {
    fn new(server: Server) -> Self {
        ServerReport {
            server,
            steps: Vec::new(),
            addresses: Vec::new(),
            address: None,
            tls: None,
            cert: None,
            stream_id: None,
        }
    }

    /// The failing step and its failure, if any step failed.
    pub fn failure(&self) -> Option<(Step, &Failure)> {
        self.steps
            .iter()
            .find_map(|s| s.result.as_ref().err().map(|f| (s.step, f)))
    }

    /// True when every step that the target requires ran and succeeded.
    pub fn up(&self, expected: &[Step]) -> bool {
        self.failure().is_none() && expected.iter().all(|e| self.ran(*e))
    }

    pub fn ran(&self, step: Step) -> bool {
        self.steps.iter().any(|s| s.step == step)
    }
}

/// Everything one probe cycle of one target found.
#[derive(Clone, Debug)]
pub struct TargetReport {
    pub target: String,
    pub started: SystemTime,
    pub duration: Duration,
    /// The SRV step, when the target discovers its servers through DNS.
    pub srv: Option<StepRecord>,
    /// The servers probed (the SRV answer, or the configured one), in RFC 2782 order.
    pub servers: Vec<ServerReport>,
    /// The per-server steps this target requires (depends on TLS mode and handshake).
    pub expected_steps: Vec<Step>,
}

impl TargetReport {
    /// At least one server completed every step: a Callbridge could register.
    pub fn success(&self) -> bool {
        self.servers.iter().any(|s| s.up(&self.expected_steps))
    }
}
