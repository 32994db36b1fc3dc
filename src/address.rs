//! Where an XMPP server is and who logs in to it: plain address types that the config reads,
//! the probe uses and the views print (none owns them, so none imports another for them).

use std::fmt;
use std::net::IpAddr;

use rustls::pki_types::{InvalidDnsNameError, ServerName};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// The port a Callbridge uses when the Server Address names none.
pub const CMS_COMPONENT_PORT: u16 = 5223;
/// RFC 6120's client port (STARTTLS), and the usual one for TLS from the first byte.
const CLIENT_PORT: u16 = 5222;
const CLIENT_DIRECT_TLS_PORT: u16 = 5223;

/// Where a server came from: the SRV answer (with its RFC 2782 fields) or the config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum Origin {
    Srv {
        priority: u16,
        weight: u16,
        /// In the group that RFC 2782 tries first (lowest priority).
        preferred: bool,
    },
    Static,
}

/// A server's host: a DNS name (lowercase, without the trailing dot) or an IP address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    Name(String),
    Ip(IpAddr),
}

impl Host {
    /// An address where the text is one, a name otherwise: decided once, where it is read.
    pub fn parse(text: &str) -> Host {
        text.parse()
            .map_or_else(|_| Host::Name(text.to_owned()), Host::Ip)
    }

    /// The name TLS sends (SNI) and verifies the certificate against.
    pub fn server_name(&self) -> Result<ServerName<'static>, InvalidDnsNameError> {
        match self {
            Host::Ip(ip) => Ok(ServerName::from(*ip)),
            Host::Name(name) => ServerName::try_from(name.clone()),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(name) => f.write_str(name),
            Host::Ip(ip) => ip.fmt(f),
        }
    }
}

/// Where an XMPP server listens. What identifies a server across probes (its SRV priority
/// and weight may change).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
}

/// The value of the `server` label: `host:port`, `[v6]:port` for an IPv6 address.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            host => write!(f, "{host}:{}", self.port),
        }
    }
}

impl Serialize for Endpoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// An XMPP server to probe, and where the probe learnt of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub endpoint: Endpoint,
    pub origin: Origin,
}

impl Server {
    pub fn new(host: Host, port: u16, origin: Origin) -> Server {
        Server {
            endpoint: Endpoint { host, port },
            origin,
        }
    }

    pub fn host(&self) -> &Host {
        &self.endpoint.host
    }

    pub fn port(&self) -> u16 {
        self.endpoint.port
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.endpoint.fmt(f)
    }
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
    pub(crate) fn default_port(self) -> u16 {
        match self {
            ClientTlsMode::Direct => CLIENT_DIRECT_TLS_PORT,
            _ => CLIENT_PORT,
        }
    }
}

/// How the component port is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
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

/// What a target speaks once connected: an XMPP external component (XEP-0114) registering,
/// or TLS alone, as a CMS 3 Callbridge's link to a Web Bridge 3 (C2W) is from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// srv, resolve, connect, tls, cert, stream, handshake.
    #[default]
    XmppComponent,
    /// resolve, connect, tls, cert: the server's certificate and, when one is configured,
    /// whether it accepts the client's.
    Tls,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::XmppComponent => "xmpp-component",
            Protocol::Tls => "tls",
        }
    }
}
