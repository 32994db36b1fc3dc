//! The trust anchors file as a validating resolver reads it (RFC 4035 §5.2, BIND's
//! `trust-anchors`): an anchor — a zone's key, or a DS record naming it — makes the zone's
//! DNSKEY RRset trusted when that key signs it (a valid signature, in its window), and then
//! every key in the set, zone-signing keys included, validates the zone's data. Trust follows
//! the anchored key's verified signature, never the key's mere presence in the set.
//!
//! hickory 0.26 trusts a zone's keys only when every one of them is an anchor (or through a DS
//! at the parent, which an island of trust has not): so each island's DNSKEY RRset is read
//! and its signature checked here ("primed"), and the keys it proves are handed to hickory as
//! the anchors, which it then validates every answer against. They are primed again when
//! their TTL or the signature that proved them runs out, and when an answer is signed by a key
//! the set did not hold (a key rollover).

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use hickory_resolver::proto::dnssec::rdata::{DNSSECRData, DNSKEY, RRSIG};
use hickory_resolver::proto::dnssec::Verifier;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::dnssec::{bogus, unchecked};
use super::keytrap::{keytrap_shaped, signatures_over_keys, tag};
use crate::config::Anchor;
use crate::probe::cert::rfc3339;
use crate::probe::{unix_seconds, Failure, Reason};

/// How long a failure to prime an island stands before it is tried again: every lookup in
/// the island gets it meanwhile instead of asking in turn.
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// Bounds on the primed keys' lifetime: a TTL of 0 must not make every lookup prime again,
/// and a day is long enough for any key rollover to have been noticed by a signature.
const MIN_TRUST: Duration = Duration::from_secs(1);
const MAX_TRUST: Duration = Duration::from_secs(86_400);

/// The anchors of one zone.
pub struct Island {
    pub owner: Name,
    anchors: Vec<Anchor>,
}

/// The file's anchors by zone, deepest zones first (a name is judged by the nearest island
/// above it).
pub fn islands(anchors: &[Anchor]) -> Vec<Island> {
    let mut islands: Vec<Island> = Vec::new();
    for anchor in anchors {
        match islands.iter_mut().find(|i| i.owner == anchor.owner) {
            Some(island) => island.anchors.push(anchor.clone()),
            None => islands.push(Island {
                owner: anchor.owner.clone(),
                anchors: vec![anchor.clone()],
            }),
        }
    }
    islands.sort_by_key(|i| std::cmp::Reverse(i.owner.num_labels()));
    islands
}

/// What priming found of an island.
#[derive(Clone)]
pub enum Primed {
    /// The keys its anchors proved, trusted until `until`.
    Trusted { keys: Vec<DNSKEY>, until: Instant },
    /// Why none could be proven: every lookup in the island fails so until `until`.
    Failed { failure: Failure, until: Instant },
}

impl Primed {
    pub fn until(&self) -> Instant {
        match self {
            Primed::Trusted { until, .. } | Primed::Failed { until, .. } => *until,
        }
    }
}

/// Reads the island's DNSKEY RRset from the DNS server (checking disabled: the signatures are
/// checked here) and proves it with the anchors, within `timeout`.
pub async fn prime(nameservers: &[SocketAddr], island: &Island, timeout: Duration) -> Primed {
    let owner = &island.owner;
    let failed = |failure| Primed::Failed {
        failure,
        until: Instant::now() + RETRY_AFTER,
    };
    let Some(server) = nameservers.first() else {
        let detail = format!("the trust anchor of {owner}: no DNS server to ask for its keys");
        return failed(Failure::new(Reason::DnsError, detail));
    };
    let answer =
        match tokio::time::timeout(timeout, unchecked(*server, owner, RecordType::DNSKEY)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => {
                let detail = format!(
                    "the trust anchor of {owner}: asking {server} for its keys failed: {error}"
                );
                return failed(Failure::new(Reason::DnsError, detail));
            }
            Err(_) => {
                let detail =
                    format!("the trust anchor of {owner}: {server} did not give its keys in time");
                return failed(Failure::new(Reason::DnsTimeout, detail));
            }
        };
    if answer.metadata.response_code != ResponseCode::NoError {
        let code = answer.metadata.response_code;
        let reason = match code {
            ResponseCode::ServFail => Reason::Servfail,
            ResponseCode::NXDomain => Reason::Nxdomain,
            _ => Reason::DnsError,
        };
        let detail = format!("the trust anchor of {owner}: {server} answered {code} for its keys");
        return failed(Failure::new(reason, detail));
    }
    let now = unix_seconds(SystemTime::now()) as i64;
    match prove(island, &answer.answers, now) {
        Ok((keys, trust)) => Primed::Trusted {
            keys,
            until: Instant::now() + trust,
        },
        Err(why) => failed(bogus(&format!("DNSKEY {owner}"), &why)),
    }
}

/// The zone keys of the DNSKEY RRset in `records` and how long they may be trusted, when a
/// key the island anchors signed the set; otherwise why not.
fn prove(island: &Island, records: &[Record], now: i64) -> Result<(Vec<DNSKEY>, Duration), String> {
    let owner = &island.owner;
    let rrset: Vec<&Record> = records
        .iter()
        .filter(|r| r.name == *owner && r.record_type() == RecordType::DNSKEY)
        .collect();
    let keys: Vec<&DNSKEY> = rrset
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(key)) => Some(key),
            _ => None,
        })
        .collect();
    if keys.is_empty() {
        return Err(format!(
            "{owner} publishes no DNSKEY records, so its trust anchor proves nothing"
        ));
    }
    // Refused outright, whatever a signature says: once they are anchors, hickory would try
    // every key of such a set (CVE-2023-50387, `keytrap`).
    if let Some(why) = keytrap_shaped(owner, records) {
        return Err(why);
    }
    let tags: Vec<u16> = keys.iter().map(|k| tag(k)).collect();
    let signatures: Vec<&RRSIG> = signatures_over_keys(owner, records);
    let anchored: Vec<&DNSKEY> = keys
        .iter()
        .copied()
        .filter(|k| k.zone_key() && !k.revoke())
        .filter(|k| island.anchors.iter().any(|a| a.names(owner, k)))
        .collect();
    if anchored.is_empty() {
        return Err(format!(
            "none of the keys {owner} publishes (key tags {}) is one its trust anchors name (key \
             tags {}): the zone's key-signing key changed, or the trust anchors file is stale",
            list(&tags),
            list(
                &island
                    .anchors
                    .iter()
                    .filter_map(Anchor::key_tag)
                    .collect::<Vec<_>>()
            )
        ));
    }
    // The anchored keys' signatures over the set: the first that verifies in its window wins.
    let mut seen: Option<String> = None;
    for signature in &signatures {
        let input = signature.input();
        let Some(key) = anchored
            .iter()
            .find(|k| tag(k) == input.key_tag && k.algorithm() == input.algorithm)
        else {
            continue;
        };
        let (inception, expiration) = (
            i64::from(input.sig_inception.get()),
            i64::from(input.sig_expiration.get()),
        );
        if expiration < now {
            seen.get_or_insert(format!(
                "the signature of the trust anchor's key (tag {}) on DNSKEY {owner} expired at {}",
                input.key_tag,
                rfc3339(expiration)
            ));
            continue;
        }
        if inception > now {
            seen.get_or_insert(format!(
                "the signature of the trust anchor's key (tag {}) on DNSKEY {owner} is not valid \
                 before {} (the signer's clock?)",
                input.key_tag,
                rfc3339(inception)
            ));
            continue;
        }
        let records = rrset.iter().copied();
        if key
            .verify_rrsig(owner, DNSClass::IN, signature, records)
            .is_err()
        {
            seen.get_or_insert(format!(
                "the signature of the trust anchor's key (tag {}) on DNSKEY {owner} does not verify",
                input.key_tag
            ));
            continue;
        }
        let ttl = rrset
            .iter()
            .map(|r| r.ttl)
            .min()
            .unwrap_or(0)
            .min(input.original_ttl);
        let trust = Duration::from_secs(u64::from(ttl))
            .min(Duration::from_secs((expiration - now) as u64))
            .clamp(MIN_TRUST, MAX_TRUST);
        let proven = keys
            .iter()
            .filter(|k| k.zone_key() && !k.revoke())
            .map(|k| (*k).clone())
            .collect();
        return Ok((proven, trust));
    }
    Err(seen.unwrap_or_else(|| {
        format!(
            "DNSKEY {owner} is not signed by a key its trust anchors name (key tags {}); it is \
             signed by key tags {} only",
            list(&anchored.iter().map(|k| tag(k)).collect::<Vec<_>>()),
            list(
                &signatures
                    .iter()
                    .map(|s| s.input().key_tag)
                    .collect::<Vec<_>>()
            )
        )
    }))
}

fn list(tags: &[u16]) -> String {
    match tags {
        [] => "none".to_owned(),
        tags => tags
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}
