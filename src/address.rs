//! Where an XMPP server is: plain address types that the config reads and the probe uses
//! (neither owns them, so neither imports the other for them).

use std::fmt;
use std::net::IpAddr;

use rustls::pki_types::{InvalidDnsNameError, ServerName};
use serde::ser::Serializer;
use serde::Serialize;

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
