//! DANE for the servers of a secure SRV answer (RFC 7673): the TLSA records of
//! `_<port>._tcp.<server>` (looked up by `resolve`, used only when they and the server's
//! addresses are secure), each matched against the chain the server sent (RFC 6698, RFC 7671):
//! usages PKIX-TA, PKIX-EE, DANE-TA and DANE-EE; selectors the full certificate and its
//! SubjectPublicKeyInfo; matching exact, SHA-256 and SHA-512.

use std::borrow::Cow;
use std::fmt;

use hickory_resolver::proto::rr::rdata::tlsa::{CertUsage, Matching, Selector, TLSA};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use super::dnssec::Dnssec;
use crate::crypto::provider;
use crate::probe::tls::Path;

/// The TLSA answer of one server, as `resolve` found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsaAnswer {
    /// `_<port>._tcp.<server>.`
    pub name: String,
    pub dnssec: Dnssec,
    pub records: Vec<TlsaRecord>,
}

/// One TLSA record: usage, selector, matching type and the association data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsaRecord {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

impl From<&TLSA> for TlsaRecord {
    fn from(tlsa: &TLSA) -> TlsaRecord {
        TlsaRecord {
            usage: tlsa.cert_usage.into(),
            selector: tlsa.selector.into(),
            matching: tlsa.matching.into(),
            data: tlsa.cert_data.clone(),
        }
    }
}

/// Association data longer than this is shown cut on the page and in `probe` (a full
/// certificate is kilobytes); every digest, SHA-512's included, is shown whole.
const SHOWN_DATA_BYTES: usize = 64;

impl TlsaRecord {
    /// As a zone file writes it, its data cut after `shown` bytes (with `…`).
    fn write(&self, f: &mut impl fmt::Write, shown: usize) -> fmt::Result {
        write!(f, "{} {} {} ", self.usage, self.selector, self.matching)?;
        for byte in self.data.iter().take(shown) {
            write!(f, "{byte:02x}")?;
        }
        if self.data.len() > shown {
            f.write_str("…")?;
        }
        Ok(())
    }
}

/// As a zone file writes it: `3 1 1 0a1b…`, a certificate's data cut.
impl fmt::Display for TlsaRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, SHOWN_DATA_BYTES)
    }
}

/// The JSON report's: the record whole, as a zone file writes it.
impl Serialize for TlsaRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut whole = String::new();
        self.write(&mut whole, usize::MAX)
            .map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&whole)
    }
}

/// What one record said of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsaVerdict {
    /// It matches the certificate at this position (0 = the leaf, as sent; one past the last
    /// certificate sent = the trust anchor the PKIX path ends at).
    Matched(usize),
    /// Usable, and no certificate it may name matches (or, for PKIX-TA and PKIX-EE, the chain
    /// is not PKIX-valid).
    NotMatched,
    /// DANE-TA: it matches the certificate at this position, but the leaf does not chain to
    /// it, or does not name the server (RFC 7671 §5.2).
    Unchained(usize),
    /// A usage, selector or matching type this client does not know, or data of the wrong
    /// length for its digest: ignored, as RFC 7671 §4 says.
    Unusable(String),
}

/// The server's TLSA records, each with its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaneFacts {
    pub name: String,
    pub records: Vec<(TlsaRecord, TlsaVerdict)>,
}

impl DaneFacts {
    /// Whether a DANE client accepts the chain: a usable record matches it (`Some(true)`) or
    /// none does (`Some(false)`); `None` when no record is usable, which a client treats as no
    /// TLSA records at all (RFC 7671 §4.1, RFC 7672 §2.2): DANE does not apply.
    pub fn valid(&self) -> Option<bool> {
        let usable = self
            .records
            .iter()
            .any(|(_, verdict)| !matches!(verdict, TlsaVerdict::Unusable(_)));
        usable.then(|| {
            self.records
                .iter()
                .any(|(_, verdict)| matches!(verdict, TlsaVerdict::Matched(_)))
        })
    }

    /// The verdict in words, as the page and `probe` write it.
    pub fn verdict_text(&self) -> &'static str {
        match self.valid() {
            Some(true) => "valid",
            Some(false) => "NOT valid",
            None => "not used (no usable TLSA record)",
        }
    }

    pub fn unusable(&self) -> impl Iterator<Item = (&TlsaRecord, &str)> {
        self.records
            .iter()
            .filter_map(|(record, verdict)| match verdict {
                TlsaVerdict::Unusable(why) => Some((record, why.as_str())),
                _ => None,
            })
    }
}

impl Serialize for DaneFacts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Record<'a>(&'a TlsaRecord, &'a TlsaVerdict);
        impl Serialize for Record<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut out = serializer.serialize_struct("TlsaRecord", 3)?;
                out.serialize_field("record", self.0)?;
                match self.1 {
                    TlsaVerdict::Matched(position) => {
                        out.serialize_field("matched_position", position)?
                    }
                    TlsaVerdict::NotMatched => out.skip_field("matched_position")?,
                    TlsaVerdict::Unchained(position) => {
                        out.serialize_field("unchained_position", position)?
                    }
                    TlsaVerdict::Unusable(why) => out.serialize_field("unusable", why)?,
                }
                out.end()
            }
        }
        let records: Vec<Record> = self.records.iter().map(|(r, v)| Record(r, v)).collect();
        let mut out = serializer.serialize_struct("DaneFacts", 3)?;
        out.serialize_field("name", &self.name)?;
        match self.valid() {
            Some(valid) => out.serialize_field("valid", &valid)?,
            None => out.skip_field("valid")?,
        }
        out.serialize_field("records", &records)?;
        out.end()
    }
}

/// What the server presented, as DANE judges it.
pub struct Presented<'a> {
    /// The chain as sent, the leaf first.
    pub chain: &'a [CertificateDer<'a>],
    /// The PKIX path the handshake verified (its anchor counts as one past the last
    /// certificate sent).
    pub path: Option<&'a Path>,
    /// Whether the `cert` step accepted the chain: what PKIX-TA and PKIX-EE also require.
    pub pkix_valid: bool,
    /// The name TLS verified: what a DANE-TA chain's leaf must name.
    pub name: &'a ServerName<'a>,
}

/// Each record of `answer` judged against what the server presented.
pub fn judge(answer: &TlsaAnswer, presented: &Presented<'_>) -> DaneFacts {
    let records = answer
        .records
        .iter()
        .map(|record| (record.clone(), verdict(record, presented)))
        .collect();
    DaneFacts {
        name: answer.name.clone(),
        records,
    }
}

fn verdict(record: &TlsaRecord, presented: &Presented<'_>) -> TlsaVerdict {
    let Presented {
        chain,
        path,
        pkix_valid,
        name,
    } = *presented;
    let usage = CertUsage::from(record.usage);
    let selector = Selector::from(record.selector);
    let matching = Matching::from(record.matching);
    let digest_length = match matching {
        Matching::Raw => None,
        Matching::Sha256 => Some(32),
        Matching::Sha512 => Some(64),
        _ => return TlsaVerdict::Unusable(format!("matching type {} unknown", record.matching)),
    };
    if !matches!(selector, Selector::Full | Selector::Spki) {
        return TlsaVerdict::Unusable(format!("selector {} unknown", record.selector));
    }
    if let Some(length) = digest_length.filter(|l| *l != record.data.len()) {
        return TlsaVerdict::Unusable(format!(
            "{} bytes of association data for a {}-byte digest",
            record.data.len(),
            length
        ));
    }
    let anchor = path.and_then(|p| p.anchor.as_ref());
    // The certificates each usage may name, by position.
    let candidates: Vec<(usize, &[u8])> = match usage {
        CertUsage::DaneEe => chain.first().map(|c| (0, c.as_ref())).into_iter().collect(),
        CertUsage::PkixEe if pkix_valid => {
            chain.first().map(|c| (0, c.as_ref())).into_iter().collect()
        }
        CertUsage::DaneTa => chain
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, c)| (i, c.as_ref()))
            .collect(),
        CertUsage::PkixTa if pkix_valid => {
            let sent = path
                .map(|p| p.positions.iter().skip(1).copied().collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|i| chain.get(i).map(|c| (i, c.as_ref())));
            let anchor = anchor.map(|a| (chain.len(), a.der.as_ref()));
            sent.chain(anchor).collect()
        }
        CertUsage::PkixEe | CertUsage::PkixTa => Vec::new(),
        _ => return TlsaVerdict::Unusable(format!("usage {} unknown", record.usage)),
    };
    let mut unchained = None;
    for (position, der) in candidates {
        let Some(selected) = select(der, selector) else {
            continue;
        };
        let matches = match matching {
            Matching::Raw => *selected == *record.data,
            Matching::Sha256 => digest(&ring::digest::SHA256, &selected) == record.data,
            _ => digest(&ring::digest::SHA512, &selected) == record.data,
        };
        match matches {
            false => {}
            true if usage != CertUsage::DaneTa || chains_to(chain, position, name) => {
                return TlsaVerdict::Matched(position)
            }
            true => unchained = unchained.or(Some(position)),
        }
    }
    unchained.map_or(TlsaVerdict::NotMatched, TlsaVerdict::Unchained)
}

/// DANE-TA (RFC 7671 §5.2.2): the leaf must chain to the matched certificate, trusted as the
/// only anchor, and name the server.
fn chains_to(chain: &[CertificateDer<'_>], anchor: usize, name: &ServerName<'_>) -> bool {
    let (Some(leaf), Some(anchor)) = (chain.first(), chain.get(anchor)) else {
        return false;
    };
    let (Ok(leaf), Ok(anchor)) = (
        webpki::EndEntityCert::try_from(leaf),
        webpki::anchor_from_trusted_cert(anchor),
    ) else {
        return false;
    };
    leaf.verify_for_usage(
        provider().signature_verification_algorithms.all,
        &[anchor],
        &chain[1..],
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .is_ok()
        && leaf.verify_is_valid_for_subject_name(name).is_ok()
}

/// The bytes a selector names: the whole certificate, or its SubjectPublicKeyInfo.
fn select(der: &[u8], selector: Selector) -> Option<Cow<'_, [u8]>> {
    match selector {
        Selector::Full => Some(Cow::Borrowed(der)),
        _ => {
            let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
            Some(Cow::Owned(cert.tbs_certificate.subject_pki.raw.to_vec()))
        }
    }
}

fn digest(algorithm: &'static ring::digest::Algorithm, bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(algorithm, bytes).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::UnixTime;

    use super::*;
    use crate::probe::cert::tests::ca_and_leaf;
    use crate::probe::DnssecState;

    fn answer(records: &[(u8, u8, u8, Vec<u8>)]) -> TlsaAnswer {
        TlsaAnswer {
            name: "_5223._tcp.xmpp1.example.com.".into(),
            dnssec: Dnssec {
                state: DnssecState::Secure,
                expires: None,
            },
            records: records
                .iter()
                .map(|(usage, selector, matching, data)| TlsaRecord {
                    usage: *usage,
                    selector: *selector,
                    matching: *matching,
                    data: data.clone(),
                })
                .collect(),
        }
    }

    fn spki(der: &[u8]) -> Vec<u8> {
        select(der, Selector::Spki).unwrap().into_owned()
    }

    #[test]
    fn every_usage_selector_and_matching_type_names_the_certificates_it_may() {
        let (ca, leaf) = ca_and_leaf(&["xmpp1.example.com"]);
        let client = crate::probe::tls::TlsClient::new(&crate::config::TlsSettings {
            ca_certs: Some(vec![ca.clone()]),
            server_name: None,
            client_auth: None,
        })
        .unwrap();
        let chain = vec![leaf.clone()];
        let path = client.trust().path(&chain, UnixTime::now());
        assert!(path.is_some());
        let sha256 = |b: &[u8]| digest(&ring::digest::SHA256, b);
        let sha512 = |b: &[u8]| digest(&ring::digest::SHA512, b);
        let records = [
            (3, 0, 0, leaf.to_vec()),
            (3, 1, 1, sha256(&spki(&leaf))),
            (3, 1, 2, sha512(&spki(&leaf))),
            (1, 0, 1, sha256(&leaf)),
            // The anchor is not sent: one past the last certificate sent.
            (0, 1, 1, sha256(&spki(&ca))),
            // DANE-TA names only what the server sends above the leaf.
            (2, 0, 1, sha256(&ca)),
            (2, 0, 1, sha256(&leaf)),
            (3, 1, 1, sha256(b"another key")),
            (4, 1, 1, sha256(&leaf)),
            (3, 2, 1, sha256(&leaf)),
            (3, 1, 3, sha256(&leaf)),
            (3, 1, 2, sha256(&spki(&leaf))),
        ];
        let name = ServerName::try_from("xmpp1.example.com").unwrap();
        let presented = |pkix_valid| Presented {
            chain: &chain,
            path: path.as_ref(),
            pkix_valid,
            name: &name,
        };
        let judged = |pkix_valid| {
            let facts = judge(&answer(&records), &presented(pkix_valid));
            facts
                .records
                .into_iter()
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
        };
        let unusable = |why: &str| TlsaVerdict::Unusable(why.to_owned());
        use TlsaVerdict::{Matched, NotMatched};
        assert_eq!(
            judged(true),
            [
                Matched(0),
                Matched(0),
                Matched(0),
                Matched(0),
                Matched(1),
                NotMatched,
                NotMatched,
                NotMatched,
                unusable("usage 4 unknown"),
                unusable("selector 2 unknown"),
                unusable("matching type 3 unknown"),
                unusable("32 bytes of association data for a 64-byte digest"),
            ]
        );
        // PKIX-EE and PKIX-TA also need the chain to be PKIX-valid; DANE-EE does not.
        let without_pkix = judged(false);
        assert_eq!(
            &without_pkix[..5],
            [Matched(0), Matched(0), Matched(0), NotMatched, NotMatched]
        );

        let facts = judge(&answer(&records[7..9]), &presented(true));
        assert_eq!(facts.valid(), Some(false));
        assert_eq!(facts.unusable().count(), 1);
        assert_eq!(serde_json::to_value(&facts).unwrap()["valid"], false);
        // Only an unusable record: no verdict, as with no TLSA records (RFC 7671 §4.1).
        let unusable = judge(&answer(&records[8..9]), &presented(true));
        assert_eq!(unusable.valid(), None);
        assert_eq!(unusable.verdict_text(), "not used (no usable TLSA record)");
        assert!(serde_json::to_value(&unusable)
            .unwrap()
            .get("valid")
            .is_none());
        // A digest is shown whole, a certificate cut; the JSON has every record whole.
        assert_eq!(facts.records[0].0.to_string().len(), "3 1 1 ".len() + 64);
        let sha512 = answer(&records[2..3]).records.remove(0);
        assert_eq!(sha512.to_string().len(), "3 1 2 ".len() + 128);
        let certificate = answer(&records[..1]).records.remove(0);
        let json = serde_json::to_value(&certificate).unwrap();
        assert_eq!(
            json.as_str().unwrap().len(),
            "3 0 0 ".len() + 2 * certificate.data.len()
        );
        let shown = answer(&records[..1]).records[0].to_string();
        assert!(
            shown.starts_with("3 0 0 ") && shown.ends_with('…'),
            "{shown}"
        );
    }

    #[test]
    fn dane_ta_needs_the_leaf_to_chain_to_the_matched_certificate_and_name_the_server() {
        let (ca, leaf) = ca_and_leaf(&["xmpp1.example.com"]);
        let (stray, _) = ca_and_leaf(&["xmpp1.example.com"]);
        let sha256 = |b: &[u8]| digest(&ring::digest::SHA256, b);
        // The issuing CA sent above the leaf; and a stray CA certificate left in the bundle.
        let chain = vec![leaf, ca.clone(), stray.clone()];
        let records = answer(&[(2, 0, 1, sha256(&ca)), (2, 0, 1, sha256(&stray))]);
        let judged = |name: &str| {
            let name = ServerName::try_from(name.to_owned()).unwrap();
            let presented = Presented {
                chain: &chain,
                path: None,
                pkix_valid: false,
                name: &name,
            };
            let facts = judge(&records, &presented);
            facts
                .records
                .into_iter()
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            judged("xmpp1.example.com"),
            [TlsaVerdict::Matched(1), TlsaVerdict::Unchained(2)]
        );
        assert_eq!(
            judged("xmpp2.example.com"),
            [TlsaVerdict::Unchained(1), TlsaVerdict::Unchained(2)],
            "the leaf must name the server"
        );
    }
}
