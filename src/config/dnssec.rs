//! DNSSEC settings (`dns.dnssec`, a target's `dnssec`): what validation trusts, the trust
//! anchors file read and checked when the config loads.

use hickory_resolver::proto::dnssec::rdata::DS;
use hickory_resolver::proto::rr::Name;

use super::*;

/// The DNSSEC trust anchors: the IANA root keys hickory ships, and the DNSKEY and DS records
/// of `dns.dnssec.trust_anchors_file` (checked when the config loads).
#[derive(Clone, Default)]
pub enum TrustAnchors {
    #[default]
    IanaRoot,
    File {
        path: String,
        /// What the file said, to tell a changed file from the same one on reload.
        text: String,
        /// Its DNSKEY records.
        keys: Arc<hickory_resolver::proto::dnssec::TrustAnchors>,
        /// Its DS records: the keys they name are asked of the DNS when validation starts.
        ds: Arc<[DsAnchor]>,
    },
}

/// A DS record as a trust anchor: the key of `owner` whose digest it holds is trusted.
#[derive(Clone, Debug)]
pub struct DsAnchor {
    pub owner: Name,
    pub ds: DS,
}

impl PartialEq for TrustAnchors {
    /// The same keys, from the same file.
    fn eq(&self, other: &TrustAnchors) -> bool {
        match (self, other) {
            (TrustAnchors::IanaRoot, TrustAnchors::IanaRoot) => true,
            (
                TrustAnchors::File { path, text, .. },
                TrustAnchors::File {
                    path: other_path,
                    text: other_text,
                    ..
                },
            ) => path == other_path && text == other_text,
            _ => false,
        }
    }
}

impl Eq for TrustAnchors {}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrustAnchors::IanaRoot => f.write_str("IanaRoot"),
            TrustAnchors::File { path, .. } => write!(f, "File({path})"),
        }
    }
}

impl RawDnssec {
    /// The trust anchors file's DNSKEY and DS records, checked now: a file that does not
    /// parse would otherwise make every validated lookup bogus.
    pub(super) fn trust_anchors(&self, check: &mut Checker) -> TrustAnchors {
        let field = "dns.dnssec.trust_anchors_file";
        let Some(path) = non_empty(&self.trust_anchors_file) else {
            return TrustAnchors::IanaRoot;
        };
        let Some(bytes) = check.read_file(field, path) else {
            return TrustAnchors::IanaRoot;
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match file_anchors(&text) {
            Ok((keys, ds)) if keys.is_some() || !ds.is_empty() => TrustAnchors::File {
                path: path.to_owned(),
                keys: Arc::new(
                    keys.unwrap_or_else(hickory_resolver::proto::dnssec::TrustAnchors::empty),
                ),
                ds: ds.into(),
                text,
            },
            Ok(_) => {
                check.problem(field, format!("{path} holds no DNSKEY or DS record"));
                TrustAnchors::IanaRoot
            }
            Err(e) => {
                check.problem(
                    field,
                    format!("{path} is not DNSKEY and DS records in zone-file format: {e}"),
                );
                TrustAnchors::IanaRoot
            }
        }
    }
}

/// The DNSKEY records of a trust anchors file, each trusted at its owner name (`None` when
/// there is none), and its DS records, whose keys the DNS gives when validation starts.
fn file_anchors(
    text: &str,
) -> Result<
    (
        Option<hickory_resolver::proto::dnssec::TrustAnchors>,
        Vec<DsAnchor>,
    ),
    String,
> {
    use hickory_resolver::proto::dnssec::rdata::DNSSECRData;
    use hickory_resolver::proto::dnssec::TrustAnchors;
    use hickory_resolver::proto::rr::RData;
    use hickory_resolver::proto::serialize::txt::trust_anchor::{self, Entry};
    use hickory_resolver::proto::serialize::txt::Parser;
    // hickory reads keys with its trust anchor parser, which refuses DS records, and DS
    // records with its zone parser, which refuses keys: each gets its lines (one record per
    // line, as dnssec-keygen, keymgr and dnssec-dsfromkey write them).
    let (ds_lines, key_lines): (Vec<&str>, Vec<&str>) = text.lines().partition(|line| {
        let record = line.split(';').next().unwrap_or_default();
        record
            .split_whitespace()
            .skip(1)
            .take(3)
            .any(|field| field.eq_ignore_ascii_case("DS"))
    });
    let entries = trust_anchor::Parser::new(key_lines.join("\n"))
        .parse()
        .map_err(|e| e.to_string())?;
    // In addition to the IANA root's keys: names outside the file's islands validate from the
    // root, as with any validating resolver.
    let mut keys = TrustAnchors::default();
    for entry in &entries {
        if let Entry::DNSKEY(record) = entry {
            keys.insert_with_name(record.data().public_key(), record.name().into());
        }
    }
    // Records from dnssec-dsfromkey carry no TTL; it does not matter here.
    let input = format!("$TTL 0\n{}", ds_lines.join("\n"));
    let (_, sets) = Parser::new(input, None, Some(Name::root()))
        .parse()
        .map_err(|e| e.to_string())?;
    let ds = sets
        .values()
        .flat_map(|set| set.records_without_rrsigs())
        .filter_map(|record| match &record.data {
            RData::DNSSEC(DNSSECRData::DS(ds)) => Some(DsAnchor {
                owner: record.name.clone(),
                ds: ds.clone(),
            }),
            _ => None,
        })
        .collect();
    Ok(((!entries.is_empty()).then_some(keys), ds))
}
