//! The OCSP response a server staples to its certificate (RFC 6960), read for the `cert`
//! step: its status for the leaf, its validity, and whether the leaf's issuer (or a responder
//! it delegated to) signed it. Parsed with asn1-rs (through x509-parser), verified with the
//! same signature algorithms as the handshake.

use x509_parser::asn1_rs::{Any, Class, FromDer, GeneralizedTime, Tag};
use x509_parser::prelude::X509Certificate;

use super::{OcspStatus, Staple, Stapled};
use crate::crypto::provider;

/// `id-pkix-ocsp-basic`, DER contents.
const BASIC: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];

/// What `der` (the stapled bytes) says about `leaf`, issued by the holder of `issuer_spki`.
pub fn read(der: &[u8], leaf: &X509Certificate<'_>, issuer_spki: Option<&[u8]>) -> Staple {
    match parse(der, leaf, issuer_spki) {
        Ok(stapled) => Staple::Response(stapled),
        Err(why) => Staple::Invalid(why.to_owned()),
    }
}

fn parse(
    der: &[u8],
    leaf: &X509Certificate<'_>,
    issuer_spki: Option<&[u8]>,
) -> Result<Stapled, &'static str> {
    const MALFORMED: &str = "the stapled OCSP response does not parse";
    let mut response = Items::of(der, Tag::Sequence).ok_or(MALFORMED)?;
    let status = response.next().ok_or(MALFORMED)?;
    if status.header.tag() != Tag::Enumerated || status.data != [0] {
        return Err("the stapled OCSP response is not a successful one");
    }
    let bytes = response.explicit(0).ok_or(MALFORMED)?;
    let mut bytes = Items::within(&bytes, Tag::Sequence).ok_or(MALFORMED)?;
    let kind = bytes.next().ok_or(MALFORMED)?;
    if kind.data != BASIC {
        return Err("the stapled OCSP response is not a basic one");
    }
    let basic = bytes
        .next()
        .filter(|b| b.header.tag() == Tag::OctetString)
        .ok_or(MALFORMED)?;
    let mut basic = Items::of(basic.data, Tag::Sequence).ok_or(MALFORMED)?;
    let (tbs, tbs_raw) = basic.next_raw().ok_or(MALFORMED)?;
    let algorithm = basic
        .next()
        .filter(|a| a.header.tag() == Tag::Sequence)
        .ok_or(MALFORMED)?;
    let signature = bit_string(&basic.next().ok_or(MALFORMED)?).ok_or(MALFORMED)?;
    let responder_certs = basic.explicit(0);

    let mut data = Items::within(&tbs, Tag::Sequence).ok_or(MALFORMED)?;
    data.explicit(0); // version, v1 by default
    data.next().ok_or(MALFORMED)?; // responder id
    data.next().ok_or(MALFORMED)?; // produced at
    let responses = data
        .next()
        .filter(|r| r.header.tag() == Tag::Sequence)
        .ok_or(MALFORMED)?;
    let mut single = None;
    for response in Items::within(&responses, Tag::Sequence).ok_or(MALFORMED)? {
        let mut fields = Items::within(&response, Tag::Sequence).ok_or(MALFORMED)?;
        let cert_id = fields.next().ok_or(MALFORMED)?;
        let serial = Items::within(&cert_id, Tag::Sequence)
            .and_then(|mut id| id.nth(3))
            .ok_or(MALFORMED)?;
        if serial.data == leaf.raw_serial() {
            single = Some(fields);
            break;
        }
    }
    let mut single = single.ok_or("the stapled OCSP response is not about this certificate")?;
    let status = single.next().ok_or(MALFORMED)?;
    let status = match (status.class(), status.header.tag().0) {
        (Class::ContextSpecific, 0) => OcspStatus::Good,
        (Class::ContextSpecific, 1) => {
            let at = Items::within(&status, status.header.tag())
                .and_then(|mut info| info.next())
                .and_then(|time| timestamp(&time))
                .ok_or(MALFORMED)?;
            OcspStatus::Revoked { at }
        }
        (Class::ContextSpecific, 2) => OcspStatus::Unknown,
        _ => return Err(MALFORMED),
    };
    let this_update = single.next().and_then(|t| timestamp(&t)).ok_or(MALFORMED)?;
    let next_update = single.explicit(0).and_then(|t| timestamp(&t));

    let issuer = issuer_spki.ok_or("no issuer is known to check the stapled OCSP response by")?;
    let signer = responder_certs
        .and_then(|certs| delegated(&certs, issuer))
        .unwrap_or(issuer);
    if !signed(signer, algorithm.data, tbs_raw, signature) {
        return Err("the stapled OCSP response is not signed by the certificate's issuer");
    }
    Ok(Stapled {
        status,
        this_update,
        next_update,
    })
}

/// The SPKI of a responder certificate that the issuer signed for OCSP signing, if one is sent.
fn delegated<'a>(certs: &Any<'a>, issuer: &[u8]) -> Option<&'a [u8]> {
    let mut items = Items::within(certs, Tag::Sequence)?;
    while let Some((_, raw)) = items.next_raw() {
        let Ok((_, responder)) = x509_parser::parse_x509_certificate(raw) else {
            continue;
        };
        let for_ocsp = responder
            .extended_key_usage()
            .ok()
            .flatten()
            .is_some_and(|eku| eku.value.ocsp_signing);
        let issued = algorithm_contents(raw).is_some_and(|algorithm| {
            signed(
                issuer,
                algorithm,
                responder.tbs_certificate.as_ref(),
                &responder.signature_value.data,
            )
        });
        if for_ocsp && issued {
            return Some(responder.tbs_certificate.subject_pki.raw);
        }
    }
    None
}

/// The contents of a certificate's outer `signatureAlgorithm` (its second element).
fn algorithm_contents(cert_der: &[u8]) -> Option<&[u8]> {
    let mut cert = Items::of(cert_der, Tag::Sequence)?;
    cert.next()?;
    Some(cert.next()?.data)
}

/// Whether the key of `spki` (DER) made `signature` over `message` with `algorithm`.
fn signed(spki: &[u8], algorithm: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Some(mut spki) = Items::of(spki, Tag::Sequence) else {
        return false;
    };
    let (Some(key_algorithm), Some(key)) = (spki.next(), spki.next().and_then(|k| bit_string(&k)))
    else {
        return false;
    };
    provider()
        .signature_verification_algorithms
        .all
        .iter()
        .filter(|alg| {
            alg.signature_alg_id().as_ref() == algorithm
                && alg.public_key_alg_id().as_ref() == key_algorithm.data
        })
        .any(|alg| alg.verify_signature(key, message, signature).is_ok())
}

fn bit_string<'a>(any: &Any<'a>) -> Option<&'a [u8]> {
    // The first byte counts the unused bits: keys and signatures have none.
    match any.data.split_first() {
        Some((0, bits)) if any.header.tag() == Tag::BitString => Some(bits),
        _ => None,
    }
}

fn timestamp(any: &Any<'_>) -> Option<i64> {
    let time = GeneralizedTime::try_from(any.clone()).ok()?;
    Some(time.utc_datetime().ok()?.unix_timestamp())
}

/// The elements of one constructed DER value, in order.
struct Items<'a> {
    rest: &'a [u8],
}

impl<'a> Items<'a> {
    /// The elements inside `der`, which must be one value tagged `tag`.
    fn of(der: &'a [u8], tag: Tag) -> Option<Items<'a>> {
        let (_, outer) = Any::from_der(der).ok()?;
        Items::within(&outer, tag)
    }

    fn within(outer: &Any<'a>, tag: Tag) -> Option<Items<'a>> {
        (outer.header.tag() == tag && outer.header.is_constructed())
            .then_some(Items { rest: outer.data })
    }

    /// The next element with its whole encoding.
    fn next_raw(&mut self) -> Option<(Any<'a>, &'a [u8])> {
        let (rest, any) = Any::from_der(self.rest).ok()?;
        let raw = &self.rest[..self.rest.len() - rest.len()];
        self.rest = rest;
        Some((any, raw))
    }

    /// The next element if it is `[tag] EXPLICIT`: what it holds (it is skipped then).
    fn explicit(&mut self, tag: u32) -> Option<Any<'a>> {
        let (rest, any) = Any::from_der(self.rest).ok()?;
        if any.class() != Class::ContextSpecific || any.header.tag().0 != tag {
            return None;
        }
        self.rest = rest;
        let (_, inner) = Any::from_der(any.data).ok()?;
        Some(inner)
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = Any<'a>;

    fn next(&mut self) -> Option<Any<'a>> {
        self.next_raw().map(|(any, _)| any)
    }
}
