//! The probe: re-enacts a Callbridge registering with its XMPP server, one module per step.
//!
//! Every step takes typed input and returns `Result<T, Failure>`; [`pipeline`] runs them in
//! order inside the target's deadline, times them and collects a [`TargetReport`]. Steps never
//! touch metrics: `crate::metrics` turns reports into series.

pub mod bind;
pub mod cert;
pub mod client;
pub mod connect;
pub mod dns;
pub mod handshake;
pub mod kdf;
pub mod legacy_tls;
pub mod ocsp;
pub mod ping;
pub mod pipeline;
pub mod resolve;
pub mod sasl;
pub mod scram;
pub mod srv;
pub mod starttls;
pub mod steps;
pub mod stream;
pub mod tls;
pub mod watch;
pub mod xmpp;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::{CipherSuite, ProtocolVersion};
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

pub use crate::address::{Endpoint, Host, Origin, Server};
pub use pipeline::{probe_target, TargetProbe};

/// An enum whose values are a label's values: each variant with its text, `ALL` of them in
/// order (what the contract test holds against docs/metrics.md), `as_str`, `Display` and
/// serialization as that text. One list, so a value cannot be added without its text.
macro_rules! label_values {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$doc:meta])* $variant:ident => $text:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$doc])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The label's value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

label_values! {
    /// One step of the Callbridge → XMPP signal flow, in order.
    pub enum Step {
        Srv => "srv",
        Resolve => "resolve",
        Connect => "connect",
        /// The client path: `<starttls/>` on a plaintext client stream.
        Starttls => "starttls",
        Tls => "tls",
        Cert => "cert",
        Stream => "stream",
        Handshake => "handshake",
        /// The client path: SASL authentication of the monitoring user.
        Sasl => "sasl",
        /// The client path: resource binding (and the session, where a server wants one).
        Bind => "bind",
    }
}

impl Step {
    /// The steps of the component flow, in order.
    pub const COMPONENT: [Step; 7] = [
        Step::Srv,
        Step::Resolve,
        Step::Connect,
        Step::Tls,
        Step::Cert,
        Step::Stream,
        Step::Handshake,
    ];

    /// Whether the step's duration says something about the servers. `cert` is judged in
    /// memory from what `tls` received: its time is the exporter's own CPU.
    pub fn timed(self) -> bool {
        self != Step::Cert
    }

    /// DNS steps report a deadline as `dns_timeout` so that alerts can tell DNS from network.
    fn timeout_reason(self) -> Reason {
        match self {
            Step::Srv | Step::Resolve => Reason::DnsTimeout,
            _ => Reason::Timeout,
        }
    }
}

label_values! {
    /// Why a step failed. The `reason` label takes exactly these values (see docs/metrics.md).
    pub enum Reason {
        Nxdomain => "nxdomain",
        NoRecords => "no_records",
        Servfail => "servfail",
        DnsError => "dns_error",
        DnsTimeout => "dns_timeout",
        SrvUnavailable => "srv_unavailable",
        Refused => "refused",
        Unreachable => "unreachable",
        Timeout => "timeout",
        TlsHandshake => "tls_handshake",
        TlsVersion => "tls_version",
        CertUntrusted => "cert_untrusted",
        CertExpired => "cert_expired",
        CertNotYetValid => "cert_not_yet_valid",
        CertNameMismatch => "cert_name_mismatch",
        /// A key or signature in the chain too weak to verify: RSA under 2048 bits, SHA-1, MD5.
        CertWeak => "cert_weak",
        NotAuthorized => "not_authorized",
        HostUnknown => "host_unknown",
        Conflict => "conflict",
        ImproperAddressing => "improper_addressing",
        InvalidNamespace => "invalid_namespace",
        StreamError => "stream_error",
        Closed => "closed",
        Protocol => "protocol",
        Oversized => "oversized",
        /// The client path: no STARTTLS offered, or refused.
        StarttlsUnavailable => "starttls_unavailable",
        /// The client path: no SASL mechanism the probe accepts.
        SaslMechanism => "sasl_mechanism",
        /// The client path: SASL failed otherwise, or the server's SCRAM proof was wrong.
        SaslError => "sasl_error",
        /// The client path: the server asks for more SCRAM rounds than
        /// `watch.max_scram_iterations` allows; refused before deriving anything.
        SaslIterations => "sasl_iterations",
        /// The client path: no resource could be bound.
        BindError => "bind_error",
        /// The client path: the server answered a ping for the component: nothing is routed there.
        ComponentUnavailable => "component_unavailable",
        /// The client path: a ping was answered from a JID other than the component's.
        WrongSender => "wrong_sender",
        /// The exporter itself ran out of file descriptors or socket buffers: no fact about any
        /// server, so a cycle that meets it is discarded, never recorded.
        LocalResources => "local_resources",
    }
}

impl Reason {}

/// A step's failure: the reason (a label) and a detail for logs. Never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct Failure {
    pub reason: Reason,
    pub detail: String,
}

impl Failure {
    /// `detail` often quotes the peer: it is kept printable (see [`printable`]).
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Failure {
            reason,
            detail: printable(&detail.into()),
        }
    }
}

/// Text from the network as data: control characters (ESC, BEL, CR, LF, …) become escapes
/// such as `\u{1b}`, so that no peer can colour a terminal, forge a log line or break a page.
pub fn printable(text: &str) -> String {
    // Most text has nothing to escape: no copy made char by char.
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// What one step did: how long it took and how it ended.
#[derive(Clone, Debug)]
pub struct StepRecord {
    pub step: Step,
    pub duration: Duration,
    pub result: Result<(), Failure>,
}

impl Serialize for StepRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let failed = self.result.as_ref().err();
        let mut out = serializer.serialize_struct("StepRecord", 5)?;
        out.serialize_field("step", &self.step)?;
        out.serialize_field("ok", &failed.is_none())?;
        out.serialize_field("duration_seconds", &self.duration.as_secs_f64())?;
        if let Some(failure) = failed {
            out.serialize_field("reason", &failure.reason)?;
            out.serialize_field("detail", &failure.detail)?;
        }
        out.end()
    }
}

/// Facts read from the server's leaf certificate, exported even when it is rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertFacts {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub sha256: String,
    pub sans: Vec<String>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The chain leads to a trusted root (judged apart from expiry and names).
    pub trusted: bool,
    pub coverage: Vec<NameCoverage>,
    /// Every certificate the server sent that parses, by position (0 = the leaf).
    pub chain: Vec<ChainCert>,
    /// What is wrong with the chain without stopping a Callbridge (yet).
    pub findings: Vec<Finding>,
    /// The OCSP response the server stapled, if it did.
    pub ocsp: Option<Staple>,
}

/// A stapled OCSP response: what it says, or why it says nothing trustworthy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Staple {
    Response(Stapled),
    Invalid(String),
}

/// A stapled OCSP response about the leaf, signed by its issuer (or a responder it delegated to).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Stapled {
    pub status: OcspStatus,
    /// Unix seconds.
    pub this_update: i64,
    /// Unix seconds; a response without one is never stale by its own account.
    pub next_update: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OcspStatus {
    Good,
    /// Revoked at this Unix time.
    Revoked {
        at: i64,
    },
    Unknown,
}

impl OcspStatus {
    /// The value of the `status` label.
    pub fn as_str(self) -> &'static str {
        match self {
            OcspStatus::Good => "good",
            OcspStatus::Revoked { .. } => "revoked",
            OcspStatus::Unknown => "unknown",
        }
    }
}

impl CertFacts {
    /// The certificate that expires first in the verified path (every certificate sent, when
    /// none was verified): an intermediate often does.
    pub fn earliest_expiry(&self) -> Option<&ChainCert> {
        let verified = self.chain.iter().any(|c| c.verified);
        self.chain
            .iter()
            .filter(|c| c.verified || !verified)
            .min_by_key(|c| (c.not_after, c.position))
    }
}

/// One certificate of the chain as the server sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainCert {
    pub position: usize,
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub sha256: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// e.g. "RSA 2048", "EC 256".
    pub key: String,
    /// e.g. "sha256WithRSAEncryption", "ecdsa-with-SHA256".
    pub signature: String,
    /// Part of the path verification built from the leaf to a trust anchor.
    pub verified: bool,
    /// Sent by the server; `false` for the trust anchor the path ends at, from `tls.ca_file`
    /// or the system (its position is then one past the last certificate sent).
    pub sent: bool,
    /// A key or signature too weak to be verified (a root's own signature does not count).
    pub weakness: Option<Weakness>,
}

/// Why a certificate cannot be verified by a modern client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Weakness {
    /// An RSA key of this many bits (under 2048).
    RsaKey(usize),
    Sha1Signature,
    Md5Signature,
}

impl fmt::Display for Weakness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Weakness::RsaKey(bits) => write!(f, "an RSA key of {bits} bits (2048 or more needed)"),
            Weakness::Sha1Signature => f.write_str("a SHA-1 signature"),
            Weakness::Md5Signature => f.write_str("an MD5 signature"),
        }
    }
}

label_values! {
    /// Something worth fixing that does not fail a step: the `finding` label takes exactly these
    /// values (see docs/metrics.md).
    pub enum FindingKind {
        /// The server does not send an intermediate: only `tls.ca_file` holding it saved the chain.
        ChainIncomplete => "chain_incomplete",
        /// The server sends its chain out of issuing order.
        ChainOrder => "chain_order",
        /// The leaf is its own issuer: trusted only because it is pinned.
        SelfSigned => "self_signed",
        /// The server's leaf is out of step with the target's first server's (another issuer, or
        /// ends more than a week apart): renewed on one node only?
        LeafDiffers => "leaf_differs",
        /// The server still accepts TLS 1.1 or 1.0 (`tls.check_legacy_versions`).
        LegacyTls => "legacy_tls",
        /// The stapled OCSP response says the leaf is revoked.
        OcspRevoked => "ocsp_revoked",
        /// The stapled OCSP response is past its next update: the server no longer refreshes it.
        OcspStale => "ocsp_stale",
        /// The stapled OCSP response does not parse, is about another certificate or is not signed
        /// by the issuer.
        OcspInvalid => "ocsp_invalid",
    }
}

impl FindingKind {}

/// A finding and what it is about, for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub detail: String,
}

/// What one server presented, as far as findings go.
pub struct Presented<'a> {
    pub server: &'a Endpoint,
    pub cert: Option<&'a CertFacts>,
    pub legacy_tls: Option<&'a LegacyTls>,
}

/// Every finding about the servers of one target (in the target's server order): each
/// chain's own, `leaf_differs` for a server whose leaf is out of step with the first server's
/// (renewed apart), and `legacy_tls` for one that accepted a TLS 1.1 hello.
pub fn findings<'a>(servers: &[Presented<'a>]) -> Vec<(&'a Endpoint, Finding)> {
    let reference = servers.iter().find_map(|p| Some((p.server, p.cert?)));
    let mut found = Vec::new();
    for presented in servers {
        let server = presented.server;
        if let Some(cert) = presented.cert {
            found.extend(cert.findings.iter().map(|f| (server, f.clone())));
            if let Some((first_server, first)) = reference.filter(|(_, c)| out_of_step(c, cert)) {
                let detail = format!(
                    "its leaf (serial {}, issuer {}, valid to {}) is out of step with the one \
                     {first_server} presents (serial {}, issuer {}, valid to {})",
                    cert.serial,
                    cert.issuer,
                    cert::rfc3339(cert.not_after),
                    first.serial,
                    first.issuer,
                    cert::rfc3339(first.not_after)
                );
                found.push((
                    server,
                    Finding {
                        kind: FindingKind::LeafDiffers,
                        detail,
                    },
                ));
            }
        }
        if let Some(LegacyTls::Accepted(version)) = presented.legacy_tls {
            let detail = format!(
                "it answered a TLS 1.1 hello with {}: CMS 2.3 and later refuse TLS below 1.2, \
                 and so should the server",
                legacy_tls::version_name(*version)
            );
            found.push((
                server,
                Finding {
                    kind: FindingKind::LegacyTls,
                    detail,
                },
            ));
        }
    }
    found
}

/// Leaves issued together (one certificate, or one per node from the same renewal) end within
/// a week of each other.
const RENEWED_TOGETHER: i64 = 7 * 86_400;

/// Whether two servers' leaves look renewed apart: another issuer, or ends more than
/// [`RENEWED_TOGETHER`] apart. Per-node certificates renewed together are in step.
fn out_of_step(first: &CertFacts, other: &CertFacts) -> bool {
    first.sha256 != other.sha256
        && (first.issuer != other.issuer
            || first.not_after.abs_diff(other.not_after) > RENEWED_TOGETHER.unsigned_abs())
}

/// What the server did with a TLS 1.1 hello (`tls.check_legacy_versions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LegacyTls {
    /// An alert, a close, or a TLS 1.2 answer.
    Refused,
    /// A ServerHello with this version (0x0302 TLS 1.1, 0x0301 TLS 1.0, 0x0300 SSL 3).
    Accepted(u16),
    /// No answer to judge by (the connection failed, the deadline passed, something odd).
    Unknown(String),
}

impl fmt::Display for LegacyTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LegacyTls::Refused => f.write_str("refused"),
            LegacyTls::Accepted(version) => {
                write!(f, "ACCEPTED ({})", legacy_tls::version_name(*version))
            }
            LegacyTls::Unknown(why) => write!(f, "unknown: {why}"),
        }
    }
}

impl Serialize for LegacyTls {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("LegacyTls", 2)?;
        match self {
            LegacyTls::Refused => {
                out.serialize_field("result", "refused")?;
                out.skip_field("detail")?;
            }
            LegacyTls::Accepted(version) => {
                out.serialize_field("result", "accepted")?;
                out.serialize_field("detail", &legacy_tls::version_name(*version))?;
            }
            LegacyTls::Unknown(why) => {
                out.serialize_field("result", "unknown")?;
                out.serialize_field("detail", why)?;
            }
        }
        out.end()
    }
}

/// Whether one name the Callbridge requires is covered by the certificate's SANs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NameCoverage {
    pub role: NameRole,
    pub name: String,
    pub covered: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
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

/// What the TLS handshake negotiated, as rustls names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsFacts {
    pub version: ProtocolVersion,
    pub cipher: CipherSuite,
}

impl TlsFacts {
    /// `TLSv1.2` or `TLSv1.3`: how openssl and the contract spell it.
    pub fn version_name(&self) -> String {
        match self.version {
            ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
            ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
            other => format!("{other:?}"),
        }
    }

    /// The rustls suite name, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub fn cipher_name(&self) -> String {
        format!("{:?}", self.cipher)
    }
}

impl Serialize for TlsFacts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("TlsFacts", 2)?;
        out.serialize_field("version", &self.version_name())?;
        out.serialize_field("cipher", &self.cipher_name())?;
        out.end()
    }
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
    /// Shared with what the store remembers of the server.
    pub cert: Option<Arc<CertFacts>>,
    pub stream_id: Option<String>,
    /// What a TLS 1.1 hello met, when `tls.check_legacy_versions` asked.
    pub legacy_tls: Option<LegacyTls>,
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
            legacy_tls: None,
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

    pub fn record(&self, step: Step) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.step == step)
    }
}

/// Everything one probe cycle of one target found: the one record every view renders.
#[derive(Clone, Debug)]
pub struct TargetReport {
    pub target: String,
    pub started: SystemTime,
    pub duration: Duration,
    /// The SRV step, when the target discovers its servers through DNS.
    pub srv: Option<StepRecord>,
    /// Servers of the SRV answer beyond `dns.max_servers_per_target`, not probed.
    pub srv_skipped: usize,
    /// The servers probed (the SRV answer, or the configured one), in RFC 2782 order.
    pub servers: Vec<ServerReport>,
    /// The per-server steps this target requires (depends on TLS mode and handshake).
    pub expected_steps: Vec<Step>,
    /// The client path, when the target watches production components.
    pub watch: Option<WatchReport>,
}

impl TargetReport {
    /// What is worth fixing about the certificates of this probe's servers (see [`findings`]).
    pub fn findings(&self) -> Vec<(&Endpoint, Finding)> {
        let presented: Vec<_> = self
            .servers
            .iter()
            .map(|s| Presented {
                server: &s.server.endpoint,
                cert: s.cert.as_deref(),
                legacy_tls: s.legacy_tls.as_ref(),
            })
            .collect();
        findings(&presented)
    }

    /// At least one server completed every step: a Callbridge could register.
    pub fn success(&self) -> bool {
        self.servers.iter().any(|s| s.up(&self.expected_steps))
    }

    /// Whether a step failed for want of the exporter's own resources (see
    /// [`Reason::LocalResources`]).
    pub fn exhausted_locally(&self) -> bool {
        // Only sockets being opened (DNS, connect) meet it; pings reuse the session's.
        let watch = self.watch.iter().flat_map(WatchReport::failures);
        self.failures()
            .chain(watch)
            .any(|(_, _, failure)| failure.reason == Reason::LocalResources)
    }

    /// A Callbridge could register and, where the target has a watch, every production
    /// component is registered: what the `probe` command's exit code says.
    pub fn healthy(&self) -> bool {
        self.success() && self.watch.as_ref().is_none_or(WatchReport::all_registered)
    }

    /// When the cycle finished.
    pub fn finished(&self) -> SystemTime {
        self.started + self.duration
    }

    /// The steps that failed: the SRV step's (`None` server) and each server's.
    pub fn failures(&self) -> impl Iterator<Item = (Option<&Server>, Step, &Failure)> {
        failures(self.srv.as_ref(), &self.servers)
    }
}

/// What pinging one component found: its answer's round trip, or why there was none.
#[derive(Clone, Debug)]
pub struct Ping {
    pub component: String,
    pub result: Result<Duration, Failure>,
}

impl Ping {
    /// The component answered: it holds a connection to the XMPP server.
    pub fn registered(&self) -> bool {
        self.result.is_ok()
    }
}

impl Serialize for Ping {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Ping", 4)?;
        out.serialize_field("component", &self.component)?;
        out.serialize_field("registered", &self.registered())?;
        match &self.result {
            Ok(round_trip) => {
                out.serialize_field("round_trip_seconds", &round_trip.as_secs_f64())?
            }
            Err(failure) => {
                out.serialize_field("reason", &failure.reason)?;
                out.serialize_field("detail", &failure.detail)?;
            }
        }
        out.end()
    }
}

/// The client path of one probe cycle: a monitoring user's login, then a ping to each
/// production component.
#[derive(Clone, Debug)]
pub struct WatchReport {
    /// The SRV step, when the login's servers come from DNS.
    pub srv: Option<StepRecord>,
    /// The servers tried, in RFC 2782 order, until one let the user in.
    pub servers: Vec<ServerReport>,
    /// The servers of the answer after the one that let the user in.
    pub untried: Vec<Server>,
    /// The pings, sent through the server that let the user in; empty when none did.
    pub pings: Vec<Ping>,
    /// The per-server steps of this login (depend on the TLS mode).
    pub expected_steps: Vec<Step>,
}

impl WatchReport {
    /// The user logged in and the pings went out.
    pub fn success(&self) -> bool {
        self.servers.iter().any(|s| s.up(&self.expected_steps))
    }

    /// The user logged in and every component answered.
    pub fn all_registered(&self) -> bool {
        self.success() && self.pings.iter().all(Ping::registered)
    }

    /// The steps that failed: the SRV step's (`None` server) and each server's.
    pub fn failures(&self) -> impl Iterator<Item = (Option<&Server>, Step, &Failure)> {
        failures(self.srv.as_ref(), &self.servers)
    }
}

/// The failed steps of a flow: the SRV step's (`None` server), then each server's.
fn failures<'a>(
    srv: Option<&'a StepRecord>,
    servers: &'a [ServerReport],
) -> impl Iterator<Item = (Option<&'a Server>, Step, &'a Failure)> {
    let srv = srv.into_iter().filter_map(|s| {
        let failure = s.result.as_ref().err()?;
        Some((None, s.step, failure))
    });
    let servers = servers.iter().filter_map(|s| {
        let (step, failure) = s.failure()?;
        Some((Some(&s.server), step, failure))
    });
    srv.chain(servers)
}

impl Serialize for WatchReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let servers = ServerJson::all(&self.servers, &self.expected_steps);
        let untried: Vec<&Endpoint> = self.untried.iter().map(|s| &s.endpoint).collect();
        let mut out = serializer.serialize_struct("WatchReport", 5)?;
        out.serialize_field("success", &self.success())?;
        out.serialize_field("srv", &self.srv)?;
        out.serialize_field("servers", &servers)?;
        out.serialize_field("untried", &untried)?;
        out.serialize_field("pings", &self.pings)?;
        out.end()
    }
}

/// A point in time as Unix seconds, for series and JSON.
pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// A server report with its verdict, for JSON.
struct ServerJson<'a> {
    report: &'a ServerReport,
    up: bool,
}

impl<'a> ServerJson<'a> {
    fn all(servers: &'a [ServerReport], expected: &[Step]) -> Vec<ServerJson<'a>> {
        servers
            .iter()
            .map(|report| ServerJson {
                report,
                up: report.up(expected),
            })
            .collect()
    }
}

impl Serialize for ServerJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.report;
        let mut out = serializer.serialize_struct("ServerReport", 10)?;
        out.serialize_field("server", &r.server.endpoint)?;
        out.serialize_field("origin", &r.server.origin)?;
        out.serialize_field("up", &self.up)?;
        out.serialize_field("addresses", &r.addresses)?;
        out.serialize_field("address", &r.address)?;
        out.serialize_field("steps", &r.steps)?;
        // Absent, not null, when the probe did not get that far (as before the record was one).
        match &r.tls {
            Some(tls) => out.serialize_field("tls", tls)?,
            None => out.skip_field("tls")?,
        }
        match &r.cert {
            Some(cert) => out.serialize_field("certificate", &**cert)?,
            None => out.skip_field("certificate")?,
        }
        out.serialize_field("stream_id", &r.stream_id)?;
        match &r.legacy_tls {
            Some(legacy) => out.serialize_field("legacy_tls", legacy)?,
            None => out.skip_field("legacy_tls")?,
        }
        out.end()
    }
}

impl Serialize for TargetReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let servers = ServerJson::all(&self.servers, &self.expected_steps);
        let mut out = serializer.serialize_struct("TargetReport", 7)?;
        out.serialize_field("target", &self.target)?;
        out.serialize_field("success", &self.success())?;
        out.serialize_field("started", &unix_seconds(self.started))?;
        out.serialize_field("duration_seconds", &self.duration.as_secs_f64())?;
        out.serialize_field("srv", &self.srv)?;
        out.serialize_field("servers", &servers)?;
        match &self.watch {
            Some(watch) => out.serialize_field("watch", watch)?,
            None => out.skip_field("watch")?,
        }
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_from_a_peer_are_escaped_everywhere_they_go() {
        assert_eq!(printable("plain text é"), "plain text é");
        assert_eq!(
            printable("a\u{1b}[31mb\u{7}c\r\nd\u{9b}"),
            "a\\u{1b}[31mb\\u{7}c\\r\\nd\\u{9b}"
        );
        let failure = Failure::new(Reason::Protocol, "the server said \u{1b}]0;owned\u{7}");
        assert_eq!(failure.detail, "the server said \\u{1b}]0;owned\\u{7}");
    }
}
