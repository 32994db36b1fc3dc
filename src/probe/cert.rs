//! Step `cert`: what a Callbridge demands of the XMPP server's certificate, without network:
//! a trusted chain, inside its validity, and SANs covering both the XMPP domain and the
//! server's FQDN (RFC 6125 matching).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::CertificateError;
use x509_parser::der_parser::oid;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::X509Certificate;
use x509_parser::public_key::PublicKey;

use super::tls::{KeptFacts, Path, Trust};
use super::{
    ocsp, printable, CertFacts, ChainCert, Failure, Finding, FindingKind, NameCoverage, NameRole,
    OcspStatus, Reason, Staple, Stapled, Weakness,
};

/// What the step needs: the chain as sent, webpki's verdict and path from the handshake, and
/// the names the peer requires.
pub struct CertInput<'a> {
    pub chain: &'a [CertificateDer<'static>],
    pub verdict: &'a Result<(), rustls::Error>,
    /// The path the handshake verified the chain by, if it found one.
    pub path: Option<&'a Path>,
    /// The stapled OCSP response, empty when none.
    pub ocsp: &'a [u8],
    pub trust: &'a Trust,
    /// The XMPP domain, a DNS name: it must be covered. `None` for a `protocol: tls` target
    /// that names no domain.
    pub domain: Option<&'a str>,
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

/// One certificate as sent, parsed.
struct Sent<'a> {
    position: usize,
    der: &'a [u8],
    cert: X509Certificate<'a>,
}

impl Sent<'_> {
    fn self_issued(&self) -> bool {
        self.cert.subject().as_raw() == self.cert.issuer().as_raw()
    }

    fn issued(&self, other: &Sent<'_>) -> bool {
        self.position != other.position
            && self.cert.subject().as_raw() == other.cert.issuer().as_raw()
    }
}

/// Like [`inspect`], but an accepted chain seen before (the same certificates, names and
/// path, nothing stapled) gets the facts made then: the verdict is still this handshake's.
pub fn inspect_kept(
    input: &CertInput<'_>,
    kept: &KeptFacts,
) -> (Option<Arc<CertFacts>>, Result<(), Failure>) {
    let key = facts_key(input);
    if let Some(facts) = key.as_ref().and_then(|key| kept.get(key)) {
        let verdict = accepted(&facts);
        return (Some(facts), verdict);
    }
    let (facts, verdict) = inspect(input);
    let facts = facts.map(Arc::new);
    if let (Some(key), Some(facts)) = (key, &facts) {
        kept.keep(key, facts.clone());
    }
    (facts, verdict)
}

/// A digest of everything the facts of an accepted chain are made from, when they can be
/// kept: not with a stapled response (whether it is stale depends on the time).
fn facts_key(input: &CertInput<'_>) -> Option<[u8; 32]> {
    if input.verdict.is_err() || !input.ocsp.is_empty() {
        return None;
    }
    let path = input.path?;
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut field = |bytes: &[u8]| {
        digest.update(&(bytes.len() as u64).to_be_bytes());
        digest.update(bytes);
    };
    for der in input.chain {
        field(der);
    }
    field(input.domain.unwrap_or_default().as_bytes());
    field(input.verified.to_str().as_bytes());
    field(&[u8::from(input.fqdn_required)]);
    for position in &path.positions {
        field(&(*position as u64).to_be_bytes());
    }
    field(path.anchor.as_ref().map_or(&[][..], |a| a.der.as_ref()));
    digest.finish().as_ref().try_into().ok()
}

/// The facts (when the leaf parses) and the step's verdict.
pub fn inspect(input: &CertInput<'_>) -> (Option<CertFacts>, Result<(), Failure>) {
    if input.chain.is_empty() {
        return (
            None,
            Err(Failure::new(
                Reason::CertUntrusted,
                "the server sent no certificate",
            )),
        );
    }
    let mut sent = Vec::with_capacity(input.chain.len());
    for (position, der) in input.chain.iter().enumerate() {
        match x509_parser::parse_x509_certificate(der) {
            Ok((_, cert)) => sent.push(Sent {
                position,
                der,
                cert,
            }),
            Err(e) if position == 0 => {
                return (
                    None,
                    Err(Failure::new(
                        Reason::CertUntrusted,
                        format!("the certificate does not parse: {e}"),
                    )),
                )
            }
            // One that does not parse is left out of the chain.
            Err(_) => {}
        }
    }
    let leaf = &sent[0];
    let sans = subject_alt_names(&leaf.cert);
    let domain = input.domain.map(|domain| NameCoverage {
        role: NameRole::Domain,
        name: domain.to_owned(),
        covered: covers_dns(&sans, domain),
    });
    let fqdn = input.fqdn_required.then(|| NameCoverage {
        role: NameRole::Fqdn,
        name: input.verified.to_str().into_owned(),
        covered: covers(&sans, input.verified),
    });
    let coverage = domain.into_iter().chain(fqdn).collect();
    // Verified once: by the handshake, and again only to explain a chain it found no path for.
    let other_path = match input.path {
        Some(_) => None,
        None => path_at_another_time(input.trust, input.chain, &sent),
    };
    let path = input.path.or(other_path.as_ref());
    let mut chain: Vec<ChainCert> = sent
        .iter()
        .map(|s| {
            chain_cert(
                s,
                path.as_ref()
                    .is_some_and(|p| p.positions.contains(&s.position)),
            )
        })
        .collect();
    // The anchor the path ends at: sent too, or from the trust store (described once).
    if let Some(anchor) = path.and_then(|p| p.anchor.as_ref()) {
        match sent.iter().position(|s| s.der == anchor.der.as_ref()) {
            Some(index) => chain[index].verified = true,
            None => {
                if let Some(stored) = anchor.described(describe_anchor) {
                    chain.push(ChainCert {
                        position: input.chain.len(),
                        ..stored.clone()
                    });
                }
            }
        }
    }
    let top = issuing_top(&sent);
    // Without a verified path, the issuer is whichever certificate sent issued the leaf.
    let issuer_spki = match path {
        Some(path) => Some(path.issuer_spki.as_slice()),
        None => sent
            .iter()
            .find(|s| s.issued(leaf))
            .map(|s| s.cert.public_key().raw),
    };
    let ocsp = (!input.ocsp.is_empty()).then(|| ocsp::read(input.ocsp, &leaf.cert, issuer_spki));
    let mut found = findings(&sent, top, path.is_some(), input.trust);
    found.extend(ocsp.as_ref().and_then(staple_finding));
    let first = chain[0].clone();
    let facts = CertFacts {
        subject: first.subject,
        issuer: first.issuer,
        serial: first.serial,
        sha256: first.sha256,
        sans: sans.iter().map(|san| printable(&san.to_string())).collect(),
        not_before: first.not_before,
        not_after: first.not_after,
        trusted: path.is_some(),
        coverage,
        findings: found,
        ocsp,
        chain,
    };
    let verdict = judge(input.verdict, &facts, top);
    (Some(facts), verdict)
}

/// A trust anchor not sent, as the chain shows it.
fn describe_anchor(der: &[u8]) -> Option<ChainCert> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    // Never the leaf: a position past it (the chain's own is set where it is shown).
    let stored = Sent {
        position: 1,
        der,
        cert,
    };
    Some(ChainCert {
        sent: false,
        ..chain_cert(&stored, true)
    })
}

/// For a chain the handshake found no path for, the path that verifies it apart from names
/// at another time, to tell an expired chain from an untrusted one: when every certificate
/// sent is valid, or else in the middle of the leaf's validity.
fn path_at_another_time(
    trust: &Trust,
    chain: &[CertificateDer<'static>],
    sent: &[Sent<'_>],
) -> Option<Path> {
    let middle = |from: i64, until: i64| from.saturating_add(until.saturating_sub(from) / 2);
    let validity = |s: &Sent<'_>| {
        let v = s.cert.validity();
        (v.not_before.timestamp(), v.not_after.timestamp())
    };
    let (from, until) = sent
        .iter()
        .map(validity)
        .fold((i64::MIN, i64::MAX), |(f, u), (nb, na)| {
            (f.max(nb), u.min(na))
        });
    let (leaf_from, leaf_until) = validity(&sent[0]);
    let at = |seconds: i64| UnixTime::since_unix_epoch(Duration::from_secs(seconds.max(0) as u64));
    (from <= until)
        .then(|| at(middle(from, until)))
        .into_iter()
        .chain(std::iter::once(at(middle(leaf_from, leaf_until))))
        .find_map(|time| trust.path(chain, time))
}

/// The last certificate reached from the leaf by following issuers among those sent.
fn issuing_top<'s, 'a>(sent: &'s [Sent<'a>]) -> &'s Sent<'a> {
    let mut top = &sent[0];
    // A chain cannot be longer than what was sent: loops end there.
    for _ in 1..sent.len() {
        match sent.iter().find(|s| s.issued(top)) {
            Some(issuer) if !top.self_issued() => top = issuer,
            _ => break,
        }
    }
    top
}

/// What is wrong with the chain as sent, without failing the step.
fn findings(sent: &[Sent<'_>], top: &Sent<'_>, trusted: bool, trust: &Trust) -> Vec<Finding> {
    let mut found = Vec::new();
    let leaf = &sent[0];
    if leaf.self_issued() {
        found.push(Finding {
            kind: FindingKind::SelfSigned,
            detail: format!(
                "the leaf ({}) is its own issuer: only a client that pins it accepts it",
                printable(&leaf.cert.subject().to_string())
            ),
        });
    }
    let misplaced = sent.iter().enumerate().find_map(|(index, child)| {
        let issuer = sent.iter().find(|s| s.issued(child))?;
        let next = sent.get(index + 1).map(|s| s.position);
        (Some(issuer.position) != next).then_some((child, issuer))
    });
    if let Some((child, issuer)) = misplaced {
        found.push(Finding {
            kind: FindingKind::ChainOrder,
            detail: format!(
                "certificate {} ({}) issued certificate {} but is not sent right after it: \
                 TLS 1.2 clients may expect the chain in issuing order",
                issuer.position,
                printable(&issuer.cert.subject().to_string()),
                child.position
            ),
        });
    }
    if trusted && !top.self_issued() && trust.pins_intermediate(top.cert.issuer().as_raw()) {
        found.push(Finding {
            kind: FindingKind::ChainIncomplete,
            detail: format!(
                "the server does not send the certificate that issued {} ({}): it verifies only \
                 because tls.ca_file holds that intermediate, and a client without it fails",
                printable(&top.cert.subject().to_string()),
                printable(&top.cert.issuer().to_string())
            ),
        });
    }
    found
}

/// What a stapled response says that needs fixing: revoked, stale or not to be trusted.
fn staple_finding(staple: &Staple) -> Option<Finding> {
    let (kind, detail) = match staple {
        Staple::Invalid(why) => (FindingKind::OcspInvalid, why.clone()),
        Staple::Response(Stapled {
            status: OcspStatus::Revoked { at },
            ..
        }) => (
            FindingKind::OcspRevoked,
            format!(
                "the stapled OCSP response says the leaf was revoked at {}",
                rfc3339(*at)
            ),
        ),
        Staple::Response(Stapled {
            next_update: Some(next),
            ..
        }) if *next < super::unix_seconds(std::time::SystemTime::now()) as i64 => (
            FindingKind::OcspStale,
            format!(
                "the stapled OCSP response was to be replaced at {}: the server no longer refreshes it",
                rfc3339(*next)
            ),
        ),
        Staple::Response(_) => return None,
    };
    Some(Finding { kind, detail })
}

const SHA1_RSA: Oid<'static> = oid!(1.2.840 .113549 .1 .1 .5);
const SHA1_RSA_OIW: Oid<'static> = oid!(1.3.14 .3 .2 .29);
const SHA1_ECDSA: Oid<'static> = oid!(1.2.840 .10045 .4 .1);
const SHA1_DSA: Oid<'static> = oid!(1.2.840 .10040 .4 .3);
const MD5_RSA: Oid<'static> = oid!(1.2.840 .113549 .1 .1 .4);
const MD2_RSA: Oid<'static> = oid!(1.2.840 .113549 .1 .1 .2);

/// What one certificate of the chain says about itself.
fn chain_cert(sent: &Sent<'_>, verified: bool) -> ChainCert {
    let cert = &sent.cert;
    let parsed_key = cert.public_key().parsed();
    let key = match &parsed_key {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(point)) => format!("EC {}", point.key_size()),
        _ => name_of(&cert.public_key().algorithm.algorithm),
    };
    let signature = &cert.signature_algorithm.algorithm;
    let weak_key = match &parsed_key {
        Ok(PublicKey::RSA(rsa)) if rsa.key_size() < 2048 => Some(Weakness::RsaKey(rsa.key_size())),
        _ => None,
    };
    // A root's signature on itself is never checked: only the leaf's and the intermediates' count.
    let checked = sent.position == 0 || !sent.self_issued();
    let weak_signature = if !checked {
        None
    } else if [SHA1_RSA, SHA1_RSA_OIW, SHA1_ECDSA, SHA1_DSA].contains(signature) {
        Some(Weakness::Sha1Signature)
    } else if [MD5_RSA, MD2_RSA].contains(signature) {
        Some(Weakness::Md5Signature)
    } else {
        None
    };
    ChainCert {
        position: sent.position,
        subject: printable(&cert.subject().to_string()),
        issuer: printable(&cert.issuer().to_string()),
        serial: serial_hex(cert.raw_serial()),
        sha256: hex(ring::digest::digest(&ring::digest::SHA256, sent.der).as_ref()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        key,
        signature: name_of(signature),
        verified,
        sent: true,
        weakness: weak_key.or(weak_signature),
    }
}

/// An algorithm's short name (`sha256WithRSAEncryption`), or its OID when it has none.
fn name_of(oid: &Oid<'_>) -> String {
    x509_parser::objects::oid2sn(oid, x509_parser::objects::oid_registry())
        .map_or_else(|_| oid.to_id_string(), str::to_owned)
}

fn judge(
    verdict: &Result<(), rustls::Error>,
    facts: &CertFacts,
    top: &Sent<'_>,
) -> Result<(), Failure> {
    let weak = facts
        .chain
        .iter()
        .find_map(|c| c.weakness.map(|weakness| (c, weakness)));
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
                // rustls and the SANs disagree only if the names differ in what they ask.
                accepted(facts).err().unwrap_or_else(|| {
                    Failure::new(
                        Reason::CertNameMismatch,
                        format!(
                            "the certificate's SANs [{}] do not cover the name verified",
                            facts.sans.join(", ")
                        ),
                    )
                })
            }
            other => match weak {
                Some((cert, weakness)) => Failure::new(
                    Reason::CertWeak,
                    format!(
                        "certificate {} of the chain ({}) has {weakness}",
                        cert.position, cert.subject
                    ),
                ),
                None if matches!(other, CertificateError::UnknownIssuer) => {
                    let detail = if top.position == 0 && top.self_issued() {
                        "the certificate is self-signed and not in tls.ca_file".to_owned()
                    } else {
                        format!(
                            "the chain the server sends ends at {}, issued by {}, which the probe \
                             does not trust: trust that CA, or have the server send it if it is an \
                             intermediate",
                            printable(&top.cert.subject().to_string()),
                            printable(&top.cert.issuer().to_string())
                        )
                    };
                    Failure::new(Reason::CertUntrusted, detail)
                }
                None => Failure::new(
                    Reason::CertUntrusted,
                    format!(
                        "the certificate (issuer {}) is not trusted: {other:?}",
                        facts.issuer
                    ),
                ),
            },
        }),
        Err(other) => Err(Failure::new(Reason::CertUntrusted, other.to_string())),
        Ok(()) => accepted(facts),
    }
}

/// The verdict on a chain the handshake accepted: its SANs must cover every name a
/// Callbridge requires.
fn accepted(facts: &CertFacts) -> Result<(), Failure> {
    let missing: Vec<String> = facts
        .coverage
        .iter()
        .filter(|c| !c.covered)
        .map(|c| format!("{} {}", c.role.as_str(), c.name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Failure::new(
        Reason::CertNameMismatch,
        format!(
            "the certificate's SANs [{}] do not cover the {}",
            facts.sans.join(", "),
            missing.join(" and the ")
        ),
    ))
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
pub(crate) mod tests;
