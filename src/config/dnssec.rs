//! DNSSEC settings (`dns.dnssec`, a target's `dnssec`): what validation trusts, the trust
//! anchors file read and checked when the config loads.

use hickory_resolver::proto::serialize::txt::ParseError;

use super::*;

/// The DNSSEC trust anchors: the IANA root keys hickory ships, or the DNSKEY records of
/// `dns.dnssec.trust_anchors_file` (checked when the config loads).
#[derive(Clone, Default)]
pub enum TrustAnchors {
    #[default]
    IanaRoot,
    File {
        path: String,
        /// What the file said, to tell a changed file from the same one on reload.
        text: String,
        anchors: Arc<hickory_resolver::proto::dnssec::TrustAnchors>,
    },
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
    /// The trust anchors file's DNSKEY records, checked now: a file that does not parse would
    /// otherwise make every validated lookup bogus.
    pub(super) fn trust_anchors(&self, check: &mut Checker) -> TrustAnchors {
        let field = "dns.dnssec.trust_anchors_file";
        let Some(path) = non_empty(&self.trust_anchors_file) else {
            return TrustAnchors::IanaRoot;
        };
        let Some(bytes) = check.read_file(field, path) else {
            return TrustAnchors::IanaRoot;
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match dnskey_anchors(&text) {
            Ok(Some(anchors)) => TrustAnchors::File {
                path: path.to_owned(),
                text,
                anchors: Arc::new(anchors),
            },
            Ok(None) => {
                check.problem(field, format!("{path} holds no DNSKEY record"));
                TrustAnchors::IanaRoot
            }
            Err(e) => {
                check.problem(
                    field,
                    format!("{path} is not DNSKEY records in zone-file format: {e}"),
                );
                TrustAnchors::IanaRoot
            }
        }
    }
}

/// The DNSKEY records of a trust anchors file, each trusted at its owner name; `None` when
/// there is none. (DS records are refused by the parser: hickory takes keys only.)
fn dnskey_anchors(
    text: &str,
) -> Result<Option<hickory_resolver::proto::dnssec::TrustAnchors>, ParseError> {
    use hickory_resolver::proto::dnssec::TrustAnchors;
    use hickory_resolver::proto::serialize::txt::trust_anchor::{Entry, Parser};
    let entries = Parser::new(text).parse()?;
    let mut anchors = TrustAnchors::empty();
    for entry in &entries {
        if let Entry::DNSKEY(record) = entry {
            anchors.insert_with_name(record.data().public_key(), record.name().into());
        }
    }
    Ok((!entries.is_empty()).then_some(anchors))
}
