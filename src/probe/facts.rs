//! What a server's TLS and certificate showed (kept even when rejected), and the findings
//! judged from them: worth fixing, not failing a step.

use super::*;

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
        /// The server's TLSA records (DANE, from a secure SRV answer) are usable and none
        /// matches the chain it sends: renewed the certificate, forgot the TLSA?
        DaneMismatch => "dane_mismatch",
        /// Some of the server's TLSA records use a usage, selector or matching type unknown,
        /// or data of the wrong length: ignored by every DANE client.
        DaneUnusableRecords => "dane_unusable_records",
        /// The server's TLSA answer fails DNSSEC validation: DANE clients refuse to connect; a
        /// Callbridge, which asks for none, is not affected.
        DaneTlsaBogus => "dane_tlsa_bogus",
        /// A TLS link with a client certificate whose server asked for none: mutual TLS is not
        /// in force, anyone may connect.
        ClientCertNotRequested => "client_cert_not_requested",
    }
}

label_values! {
    /// What showed a TLS link's server's verdict on the client certificate (`client_cert`
    /// step), when it kept the connection.
    pub enum ClientCertVerdict {
        /// It asked for no client certificate.
        NotRequested => "not_requested",
        /// TLS 1.2: its Finished came after our certificate.
        Handshake => "handshake",
        /// TLS 1.3: it issued a session ticket, which it does after reading our certificate.
        SessionTicket => "session_ticket",
        /// TLS 1.3: it sent data after the handshake.
        Data => "data",
        /// TLS 1.3: neither ticket, data, alert nor close within the wait: accepted as far as
        /// TLS can tell.
        Silence => "silence",
    }
}

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
    /// How its TLSA records judged that certificate's chain.
    pub dane: Option<&'a DaneFacts>,
    /// Why its TLSA answer of the run was bogus, when it was.
    pub tlsa_bogus: Option<&'a Failure>,
    pub legacy_tls: Option<&'a LegacyTls>,
    /// It asked for none of the client certificate the target presents (a TLS link's run).
    pub client_cert_unasked: bool,
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
        if let Some(dane) = presented.dane {
            found.extend(dane_findings(dane).map(|finding| (server, finding)));
        }
        if let Some(bogus) = presented.tlsa_bogus {
            let detail = format!(
                "its TLSA records fail DNSSEC validation, so DANE clients refuse to connect (a \
                 Callbridge asks for none and is not affected): {}",
                bogus.detail
            );
            found.push((
                server,
                Finding {
                    kind: FindingKind::DaneTlsaBogus,
                    detail,
                },
            ));
        }
        if presented.client_cert_unasked {
            let detail = "it asked for no client certificate, so it let in a client that \
                          presented none: mutual TLS is not in force (for C2W, the Web Bridge's \
                          c2w trust bundle is not set)"
                .to_owned();
            found.push((
                server,
                Finding {
                    kind: FindingKind::ClientCertNotRequested,
                    detail,
                },
            ));
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

/// What DANE finds wrong: usable records none of which matches, records no client can use.
fn dane_findings(dane: &DaneFacts) -> impl Iterator<Item = Finding> + '_ {
    let usable = dane.records.len() - dane.unusable().count();
    let mismatch = (dane.valid() == Some(false)).then(|| Finding {
        kind: FindingKind::DaneMismatch,
        detail: format!(
            "none of the {usable} usable TLSA record(s) of {} matches the chain it sends: a \
             DANE client refuses it (the certificate renewed, its TLSA record not?)",
            dane.name
        ),
    });
    let unusable: Vec<String> = dane
        .unusable()
        .map(|(record, why)| format!("{record} ({why})"))
        .collect();
    let unusable = (!unusable.is_empty()).then(|| Finding {
        kind: FindingKind::DaneUnusableRecords,
        detail: format!(
            "every DANE client ignores {} TLSA record(s) of {}: {}",
            unusable.len(),
            dane.name,
            unusable.join("; ")
        ),
    });
    mismatch.into_iter().chain(unusable)
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
