//! DNSSEC settings (`dns.dnssec`, a target's `dnssec`): what validation trusts, the trust
//! anchors file read and checked when the config loads.

use base64::Engine;
use hickory_resolver::proto::dnssec::rdata::{DNSKEY, DS};
use hickory_resolver::proto::dnssec::{Algorithm, DigestType, PublicKey, PublicKeyBuf, Verifier};
use hickory_resolver::proto::rr::Name;

use super::*;

/// The DNSSEC trust anchors: the IANA root keys hickory ships, and beside them the DNSKEY and
/// DS records of `dns.dnssec.trust_anchors_file` (checked when the config loads).
#[derive(Clone, Default)]
pub enum TrustAnchors {
    #[default]
    IanaRoot,
    File {
        path: String,
        /// What the file said, to tell a changed file from the same one on reload.
        text: String,
        anchors: Arc<[Anchor]>,
    },
}

impl TrustAnchors {
    /// The anchors the file adds to the IANA root's.
    pub fn file_anchors(&self) -> &[Anchor] {
        match self {
            TrustAnchors::IanaRoot => &[],
            TrustAnchors::File { anchors, .. } => anchors,
        }
    }
}

/// One line of the trust anchors file: a key of the zone `owner`, given as the key itself
/// (DNSKEY) or as its digest (DS, as the parent zone would publish it).
#[derive(Clone, Debug)]
pub struct Anchor {
    pub owner: Name,
    pub key: AnchorKey,
}

#[derive(Clone, Debug)]
pub enum AnchorKey {
    Dnskey(DNSKEY),
    Ds(DS),
}

impl Anchor {
    /// Whether `key`, published by the zone `owner`, is the key this anchor names.
    pub fn names(&self, owner: &Name, key: &DNSKEY) -> bool {
        if self.owner != *owner {
            return false;
        }
        match &self.key {
            AnchorKey::Dnskey(anchor) => {
                anchor.algorithm() == key.algorithm()
                    && anchor.public_key().public_bytes() == key.public_key().public_bytes()
            }
            AnchorKey::Ds(ds) => ds.covers(owner, key).unwrap_or(false),
        }
    }

    /// The key tag the anchor's key has.
    pub fn key_tag(&self) -> Option<u16> {
        match &self.key {
            AnchorKey::Dnskey(key) => key.calculate_key_tag().ok(),
            AnchorKey::Ds(ds) => Some(ds.key_tag()),
        }
    }
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
    /// The trust anchors file's DNSKEY and DS records, checked now, each bad line reported
    /// with its number: a file that does not parse would otherwise make every validated
    /// lookup bogus.
    pub(super) fn trust_anchors(&self, check: &mut Checker) -> TrustAnchors {
        let field = "dns.dnssec.trust_anchors_file";
        let Some(path) = non_empty(&self.trust_anchors_file) else {
            return TrustAnchors::IanaRoot;
        };
        let Some(bytes) = check.read_file(field, path) else {
            return TrustAnchors::IanaRoot;
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let mut anchors = Vec::new();
        let mut bad = false;
        for (number, line) in text.lines().enumerate() {
            match anchor_line(line) {
                Ok(Some(anchor)) => anchors.push(anchor),
                Ok(None) => {}
                Err(why) => {
                    bad = true;
                    check.problem(field, format!("{path} line {}: {why}", number + 1));
                }
            }
        }
        if bad {
            return TrustAnchors::IanaRoot;
        }
        if anchors.is_empty() {
            check.problem(field, format!("{path} holds no DNSKEY or DS record"));
            return TrustAnchors::IanaRoot;
        }
        TrustAnchors::File {
            path: path.to_owned(),
            text,
            anchors: anchors.into(),
        }
    }
}

/// One line of a trust anchors file, one record per line as `dnssec-keygen`,
/// `dnssec-dsfromkey` and Knot's `keymgr … dnskey` / `keymgr … ds` print them: `owner [TTL]
/// [class] DNSKEY|DS rdata`, TTL and class optional and in either order, `;` starting a
/// comment. `None` for a blank or comment line.
fn anchor_line(line: &str) -> Result<Option<Anchor>, String> {
    let record = line.split(';').next().unwrap_or_default();
    let mut fields = record.split_whitespace().peekable();
    let Some(owner) = fields.next() else {
        return Ok(None);
    };
    if record.contains('(') {
        return Err("a record spread over lines with ( ) is not read: one record per line, as dnssec-keygen and keymgr print them".into());
    }
    if !owner.ends_with('.') {
        return Err(format!(
            "the owner name {owner:?} is not absolute (it must end with a dot)"
        ));
    }
    let owner = Name::from_ascii(owner).map_err(|e| format!("the owner name {owner:?}: {e}"))?;
    // TTL and class, either optional, in either order (RFC 1035 §5.1).
    let mut rtype = None;
    for _ in 0..3 {
        match fields.next() {
            Some(ttl) if ttl.bytes().all(|b| b.is_ascii_digit()) => {}
            Some(class) if class.eq_ignore_ascii_case("IN") => {}
            Some(other) => {
                rtype = Some(other);
                break;
            }
            None => break,
        }
    }
    let rdata: Vec<&str> = fields.collect();
    let key = match rtype {
        Some(t) if t.eq_ignore_ascii_case("DNSKEY") => AnchorKey::Dnskey(dnskey(&rdata)?),
        Some(t) if t.eq_ignore_ascii_case("DS") => AnchorKey::Ds(ds(&rdata)?),
        Some(other) => {
            return Err(format!(
                "a {other} record is not a trust anchor (DNSKEY or DS expected, class IN)"
            ))
        }
        None => return Err("no record type (DNSKEY or DS expected)".into()),
    };
    Ok(Some(Anchor { owner, key }))
}

/// A DNSKEY's RDATA: flags, protocol 3, an algorithm validation supports, the public key in
/// base64 (spaces allowed).
fn dnskey(rdata: &[&str]) -> Result<DNSKEY, String> {
    let [flags, protocol, algorithm, key @ ..] = rdata else {
        return Err("a DNSKEY needs flags, protocol, algorithm and key".into());
    };
    let flags: u16 = flags
        .parse()
        .map_err(|_| format!("DNSKEY flags {flags:?} are not a number"))?;
    if *protocol != "3" {
        return Err(format!("DNSKEY protocol {protocol:?} is not 3"));
    }
    let algorithm = algorithm_of(algorithm)?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key.concat())
        .map_err(|e| format!("the DNSKEY's key is not base64: {e}"))?;
    let key = DNSKEY::with_flags(flags, PublicKeyBuf::new(bytes, algorithm));
    if !key.zone_key() {
        return Err(format!(
            "DNSKEY flags {flags} lack the zone key bit (256): such a key signs no zone"
        ));
    }
    if key.revoke() {
        return Err(format!("DNSKEY flags {flags} mark the key revoked"));
    }
    Verifier::key(&key).map_err(|e| format!("the DNSKEY's key is not a {algorithm} key: {e}"))?;
    Ok(key)
}

/// A DS record's RDATA: key tag, an algorithm and a digest type validation supports, the
/// digest in hex (spaces allowed) of the length its type gives.
fn ds(rdata: &[&str]) -> Result<DS, String> {
    let [tag, algorithm, digest_type, digest @ ..] = rdata else {
        return Err("a DS needs key tag, algorithm, digest type and digest".into());
    };
    let tag: u16 = tag
        .parse()
        .map_err(|_| format!("DS key tag {tag:?} is not a number from 0 to 65535"))?;
    let algorithm = algorithm_of(algorithm)?;
    let digest_type = match digest_type.parse::<u8>().map(DigestType::from) {
        Ok(known) if known.is_supported() => known,
        _ => {
            return Err(format!(
                "DS digest type {digest_type} is not one validation supports (1 SHA-1, 2 SHA-256, 4 SHA-384)"
            ))
        }
    };
    let hex = digest.concat();
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("the DS digest {hex:?} is not hexadecimal"))?;
    let length = match digest_type {
        DigestType::SHA1 => 20,
        DigestType::SHA256 => 32,
        _ => 48,
    };
    if bytes.len() != length {
        return Err(format!(
            "the DS digest is {} bytes; digest type {} makes {length}",
            bytes.len(),
            u8::from(digest_type)
        ));
    }
    Ok(DS::new(tag, algorithm, digest_type, bytes))
}

fn algorithm_of(field: &str) -> Result<Algorithm, String> {
    match field.parse::<u8>().map(Algorithm::from_u8) {
        Ok(algorithm) if algorithm.is_supported() => Ok(algorithm),
        _ => Err(format!(
            "algorithm {field} is not one validation supports (5, 7, 8, 10, 13, 14 or 15)"
        )),
    }
}
