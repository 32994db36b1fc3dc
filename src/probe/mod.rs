//! The probe: re-enacts a Callbridge registering with its XMPP server, one module per step.
//!
//! Every step takes typed input and returns `Result<T, Failure>`; [`target`] runs a cycle —
//! the [`component_flow`] and the [`client_flow`] side by side — inside the target's deadline,
//! times the steps and collects a [`TargetReport`]. Steps never
//! touch metrics: `crate::metrics` turns reports into series. Here: the steps and reasons
//! (label values) and a step's failure; `report` the reports, `facts` what TLS and the
//! certificate showed and the findings judged from it.

pub mod bind;
pub mod cert;
pub mod client;
pub mod client_flow;
pub mod component_flow;
pub mod connect;
pub mod handshake;
pub mod kdf;
pub mod legacy_tls;
pub mod ocsp;
pub mod ping;
pub mod sasl;
pub mod scram;
pub mod session;
pub mod starttls;
pub mod steps;
pub mod stream;
pub mod target;
pub mod tls;
pub mod xmpp;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::{CipherSuite, ProtocolVersion};
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

pub use crate::address::{Endpoint, Host, Origin, Server};
pub use target::{probe_target, TargetProbe};

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

pub mod dns;
mod facts;
mod report;

pub use dns::dane::{DaneFacts, TlsaAnswer};
pub use dns::dnssec::{Dnssec, DnssecState};
pub use facts::*;
pub use report::*;

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
        /// A TLS link (`protocol: tls`): the server's verdict on the client certificate.
        ClientCert => "client_cert",
        Stream => "stream",
        Handshake => "handshake",
        /// The client path: SASL authentication of the monitoring user.
        Sasl => "sasl",
        /// The client path: resource binding (and the session, where a server wants one).
        Bind => "bind",
        /// The client path of a configured target: the kept session, between logins (the
        /// server's answers to its own pings, the stream itself).
        Session => "session",
    }
}

impl Step {
    /// The steps of the component flow, in order.
    pub const COMPONENT: [Step; 8] = [
        Step::Srv,
        Step::Resolve,
        Step::Connect,
        Step::Tls,
        Step::Cert,
        Step::ClientCert,
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
        /// DNSSEC validation failed (`dns.dnssec`): expired or wrong signatures, a missing key.
        DnssecBogus => "dnssec_bogus",
        SrvUnavailable => "srv_unavailable",
        Refused => "refused",
        Unreachable => "unreachable",
        Timeout => "timeout",
        TlsHandshake => "tls_handshake",
        TlsVersion => "tls_version",
        /// The server asked for a client certificate and refused the one sent (or none).
        ClientCertRejected => "client_cert_rejected",
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

impl StepRecord {
    /// Bogus, when the step failed DNSSEC validation.
    pub fn bogus(&self) -> Option<Dnssec> {
        match &self.result {
            Err(failure) if failure.reason == Reason::DnssecBogus => Some(Dnssec::BOGUS),
            _ => None,
        }
    }
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
