//! Step `cert`: what a Callbridge demands of the XMPP server's certificate, without network:
//! a trusted chain, inside its validity, and SANs covering both the XMPP domain and the
//! server's FQDN (RFC 6125 matching).

use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::CertificateError;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

use super::{printable, CertFacts, ChainCert, Failure, NameCoverage, NameRole, Reason};

/// What the step needs: the chain as sent, webpki's verdict from the handshake, and the
/// names the peer requires.
pub struct CertInput<'a> {
    pub chain: &'a [CertificateDer<'static>],
    pub verdict: &'a Result<(), rustls::Error>,
    pub verifier: &'a WebPkiServerVerifier,
    /// The XMPP domain, a DNS name: it must be covered.
    pub domain: &'a str,
    /// The name TLS verified: the server's FQDN (or `tls.server_name`), or an address; on the
    /// client path, the domain.
    pub verified: &'a ServerName<'static>,
    /// A Callbridge also requires the server's own name: the verified one must be covered.
    pub fqdn_required: bool,
}

/// A subject alternative name as it matters for matching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum San {
    Dns(String),
    Ip(IpAddr),
}

/// The facts (when the leaf parses) and the step's verdict.
pub fn inspect(input: &CertInput<'_>) -> (Option<CertFacts>, Result<(), Failure>) {
    let Some(leaf_der) = input.chain.first() else {
        return (
            None,
            Err(Failure::new(
                Reason::CertUntrusted,
                "the server sent no certificate",
            )),
        );
    };
    let leaf = match x509_parser::parse_x509_certificate(leaf_der) {
        Ok((_, leaf)) => leaf,
        Err(e) => {
            return (
                None,
                Err(Failure::new(
                    Reason::CertUntrusted,
                    format!("the certificate does not parse: {e}"),
                )),
            )
        }
    };
    let sans = subject_alt_names(&leaf);
    let domain = NameCoverage {
        role: NameRole::Domain,
        name: input.domain.to_owned(),
        covered: covers_dns(&sans, input.domain),
    };
    let fqdn = input.fqdn_required.then(|| NameCoverage {
        role: NameRole::Fqdn,
        name: input.verified.to_str().into_owned(),
        covered: covers(&sans, input.verified),
    });
    let coverage = std::iter::once(domain).chain(fqdn).collect();
    // The leaf is parsed and hashed once: its facts are the chain's first.
    let first = chain_cert(0, leaf_der, &leaf);
    let above = input
        .chain
        .iter()
        .enumerate()
        .skip(1)
        .filter_map(|(position, der)| {
            let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
            Some(chain_cert(position, der, &cert))
        });
    let chain: Vec<ChainCert> = std::iter::once(first.clone()).chain(above).collect();
    let facts = CertFacts {
        subject: first.subject,
        issuer: first.issuer,
        serial: first.serial,
        sha256: first.sha256,
        sans: sans.iter().map(|san| printable(&san.to_string())).collect(),
        not_before: first.not_before,
        not_after: first.not_after,
        trusted: chain_trusted(input, &leaf),
        coverage,
        chain,
    };
    let verdict = judge(input.verdict, &facts);
    (Some(facts), verdict)
}

/// What one certificate of the chain says about itself. (One that does not parse is left
/// out of the chain.)
fn chain_cert(position: usize, der: &[u8], cert: &X509Certificate<'_>) -> ChainCert {
    let key = match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(x509_parser::public_key::PublicKey::EC(point)) => format!("EC {}", point.key_size()),
        _ => name_of(&cert.public_key().algorithm.algorithm),
    };
    ChainCert {
        position,
        subject: printable(&cert.subject().to_string()),
        issuer: printable(&cert.issuer().to_string()),
        serial: serial_hex(cert.raw_serial()),
        sha256: hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        key,
        signature: name_of(&cert.signature_algorithm.algorithm),
    }
}

/// An algorithm's short name (`sha256WithRSAEncryption`), or its OID when it has none.
fn name_of(oid: &x509_parser::oid_registry::Oid<'_>) -> String {
    x509_parser::objects::oid2sn(oid, x509_parser::objects::oid_registry())
        .map_or_else(|_| oid.to_id_string(), str::to_owned)
}

fn judge(verdict: &Result<(), rustls::Error>, facts: &CertFacts) -> Result<(), Failure> {
    let missing: Vec<String> = facts
        .coverage
        .iter()
        .filter(|c| !c.covered)
        .map(|c| format!("{} {}", c.role.as_str(), c.name))
        .collect();
    let mismatch = || {
        Failure::new(
            Reason::CertNameMismatch,
            format!(
                "the certificate's SANs [{}] do not cover the {}",
                facts.sans.join(", "),
                missing.join(" and the ")
            ),
        )
    };
    match verdict {
        Err(rustls::Error::InvalidCertificate(error)) => Err(match error {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                // The leaf may be valid while a certificate above it is not: name the one.
                let expired = facts
                    .earliest_expiry()
                    .filter(|c| c.position > 0 && c.not_after < facts.not_after);
                let detail = match expired {
                    Some(cert) => format!(
                        "certificate {} of the chain ({}) expired at {}; the leaf is valid until {}",
                        cert.position,
                        cert.subject,
                        rfc3339(cert.not_after),
                        rfc3339(facts.not_after)
                    ),
                    None => format!("the certificate expired at {}", rfc3339(facts.not_after)),
                };
                Failure::new(Reason::CertExpired, detail)
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Failure::new(
                    Reason::CertNotYetValid,
                    format!(
                        "the certificate is valid only from {}",
                        rfc3339(facts.not_before)
                    ),
                )
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                mismatch()
            }
            other => Failure::new(
                Reason::CertUntrusted,
                format!(
                    "the certificate (issuer {}) is not trusted: {other:?}",
                    facts.issuer
                ),
            ),
        }),
        Err(other) => Err(Failure::new(Reason::CertUntrusted, other.to_string())),
        Ok(()) if !missing.is_empty() => Err(mismatch()),
        Ok(()) => Ok(()),
    }
}

/// Trust judged apart from time and names: verify as if it were the middle of the leaf's
/// validity; a name error means the chain itself was accepted.
fn chain_trusted(input: &CertInput<'_>, leaf: &X509Certificate<'_>) -> bool {
    let (from, until) = (
        leaf.validity().not_before.timestamp(),
        leaf.validity().not_after.timestamp(),
    );
    let middle = from.saturating_add(until.saturating_sub(from) / 2).max(0) as u64;
    let result = input.verifier.verify_server_cert(
        &input.chain[0],
        &input.chain[1..],
        input.verified,
        &[],
        UnixTime::since_unix_epoch(Duration::from_secs(middle)),
    );
    matches!(
        result,
        Ok(_)
            | Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            ))
    )
}

fn subject_alt_names(cert: &X509Certificate<'_>) -> Vec<San> {
    let Ok(Some(extension)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    extension
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(San::Dns(dns.to_ascii_lowercase())),
            GeneralName::IPAddress(bytes) => ip_from_bytes(bytes).map(San::Ip),
            _ => None,
        })
        .collect()
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Dns(name) => f.write_str(name),
            San::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Whether the SANs cover the name TLS verified: an address only by an IP SAN, a DNS name as
/// [`covers_dns`] says.
pub fn covers(sans: &[San], name: &ServerName<'_>) -> bool {
    match name {
        ServerName::IpAddress(ip) => sans.contains(&San::Ip(IpAddr::from(*ip))),
        ServerName::DnsName(dns) => covers_dns(sans, dns.as_ref()),
        _ => false,
    }
}

/// RFC 6125: names compare case-insensitively; `*` only as the whole left-most label, matching
/// exactly one label and never the apex nor a public suffix-like single label; IP SANs never
/// match a name.
pub fn covers_dns(sans: &[San], name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    sans.iter().any(|san| match san {
        San::Dns(pattern) => dns_matches(pattern.trim_end_matches('.'), &name),
        San::Ip(_) => false,
    })
}

fn dns_matches(pattern: &str, name: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(base) => {
            !base.contains('*')
                && base.contains('.')
                && name
                    .split_once('.')
                    .is_some_and(|(first, rest)| !first.is_empty() && rest == base)
        }
        None => !pattern.contains('*') && pattern == name,
    }
}

/// A serial number as `openssl x509 -serial` prints it (in lowercase): without the zero byte
/// that DER puts before a number whose top bit is set.
fn serial_hex(der: &[u8]) -> String {
    let significant = der
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(der.len().saturating_sub(1));
    hex(&der[significant..])
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// A Unix timestamp as RFC 3339, to the second.
pub fn rfc3339(timestamp: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_secs(timestamp.max(0) as u64);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(names: &[&str]) -> Vec<San> {
        names.iter().map(|n| San::Dns(n.to_string())).collect()
    }

    #[test]
    fn exact_names_match_case_insensitively() {
        let sans = dns(&["xmpp.Example.com"]);
        assert!(covers_dns(&sans, "XMPP.example.COM"));
        assert!(covers_dns(&sans, "xmpp.example.com."));
        assert!(!covers_dns(&sans, "example.com"));
    }

    #[test]
    fn wildcard_covers_one_label_only_never_the_apex() {
        let sans = dns(&["*.example.com"]);
        assert!(covers_dns(&sans, "xmpp.example.com"));
        assert!(covers_dns(&sans, "XMPP.EXAMPLE.COM"));
        assert!(!covers_dns(&sans, "example.com"));
        assert!(!covers_dns(&sans, "a.b.example.com"));
        assert!(!covers_dns(&sans, "xmppexample.com"));
    }

    #[test]
    fn partial_and_inner_wildcards_match_nothing() {
        for pattern in [
            "x*.example.com",
            "xmpp.*.com",
            "*",
            "*.com",
            "**.example.com",
        ] {
            assert!(
                !covers_dns(&dns(&[pattern]), "xmpp.example.com"),
                "{pattern}"
            );
        }
        assert!(!covers_dns(&dns(&["*.com"]), "example.com"));
    }

    #[test]
    fn ip_sans_match_only_ips() {
        let sans = vec![
            San::Ip("127.0.0.1".parse().unwrap()),
            San::Dns("127.0.0.2".into()),
        ];
        let ip = |text: &str| ServerName::from(text.parse::<IpAddr>().unwrap());
        assert!(covers(&sans, &ip("127.0.0.1")));
        assert!(
            !covers(&sans, &ip("127.0.0.2")),
            "a DNS SAN must not match an IP"
        );
        assert!(!covers(&dns(&["localhost"]), &ip("127.0.0.1")));
        let name = ServerName::try_from("xmpp.example.com").unwrap();
        assert!(covers(&dns(&["*.example.com"]), &name));
        assert!(!covers(&sans, &name));
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xAB, 0xff]), "00abff");
    }

    #[test]
    fn serials_read_as_openssl_prints_them() {
        assert_eq!(serial_hex(&[0x00, 0x8f, 0x8e]), "8f8e");
        assert_eq!(serial_hex(&[0x01, 0x00]), "0100");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[]), "");
    }
}
