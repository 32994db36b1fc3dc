//! KeyTrap (CVE-2023-50387): a zone whose DNSKEY RRset holds more keys with one key tag, or
//! more signatures over it, than a validator tries is refused, whatever order the server sends
//! keys and signatures in. hickory bounds what it spends on such a set (two keys per key tag,
//! eight signatures per RRset) but applies its bounds in the order the records arrive: when
//! the zone's one real key and its one real signature fall inside them, it calls the answer
//! secure, where BIND's validator calls it bogus. So the shape of the key set decides, here:
//! a name is screened before it is validated (a KeyTrap-shaped zone then costs two reads,
//! never a validation that may outrun the probe's deadline), and the zones whose keys proved
//! what validation calls secure are screened before that answer is trusted. What screening
//! found of a zone is kept for its keys' TTL, as a validating resolver keeps the keys.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::rdata::{DNSSECRData, DNSKEY, RRSIG};
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use super::dnssec::{unchecked, MAX_KEYS_PER_TAG, MAX_SIGNATURES_TRIED};
use crate::probe::connect::out_of_local_resources;
use crate::probe::{Failure, Reason};

/// How long what screening found is kept: the keys' TTL, within these bounds (a TTL of 0
/// must not make every lookup read the keys again; an hour notices a changed key set soon).
const MIN_KEEP: Duration = Duration::from_secs(10);
const MAX_KEEP: Duration = Duration::from_secs(3_600);

/// What screening found.
#[derive(Debug)]
pub(super) enum Verdict {
    /// No zone screened has a KeyTrap-shaped key set.
    Sound,
    /// `zone`'s key set is KeyTrap-shaped: why.
    Trapped { zone: Name, why: String },
    /// A zone's keys could not be read (a DNS reason).
    Unread(Failure),
}

/// What screening found of zones and names, for a validating resolver's lifetime.
pub(super) struct Screen {
    /// Where a chain of trust is not followed further up: the islands of trust, whose key
    /// sets priming proves (and refuses when KeyTrap-shaped).
    anchored: Vec<Name>,
    /// Zones found sound, they and the zones above them up to a trust anchor, until when.
    sound: Mutex<Vec<(Name, Instant)>>,
    /// Names screened before validation, for a record type, until when they need not be
    /// again.
    names: Mutex<Vec<((Name, RecordType), Instant)>>,
    /// The index of the server that answered the last read (see [`Servers`]).
    first: AtomicUsize,
}

impl Screen {
    pub(super) fn new(anchored: Vec<Name>) -> Screen {
        Screen {
            anchored,
            sound: Mutex::default(),
            names: Mutex::default(),
            first: AtomicUsize::new(0),
        }
    }

    /// The zones that sign `name`'s answer of `rtype` (read with checking disabled), before
    /// it is validated; `Sound` without reading when it was screened lately, unless `again`.
    pub(super) async fn name(
        &self,
        servers: &[SocketAddr],
        name: &Name,
        rtype: RecordType,
        again: bool,
        timeout: Duration,
    ) -> Verdict {
        let at = Servers::within(servers, timeout, &self.first);
        let key = (name.clone(), rtype);
        if !again && kept(&self.names, &key) {
            return Verdict::Sound;
        }
        let what = format!("{rtype} {name}");
        let screened = async {
            let answer = read(at, name, rtype).await?;
            let records = || answer.answers.iter().chain(&answer.authorities);
            let zones = signers(records());
            let verdict = self.zones(at, &zones, again).await?;
            if matches!(verdict, Verdict::Sound) {
                let ttl = records().map(|r| r.ttl).min();
                remember(&self.names, &key, self.zones_until(&zones, keep(ttl)));
            }
            Ok(verdict)
        };
        settle(tokio::time::timeout(timeout, screened).await, &what)
    }

    /// The zones whose keys proved what `answer` calls secure (nothing to read when it calls
    /// nothing secure), screened before the answer is trusted.
    pub(super) async fn answer(
        &self,
        servers: &[SocketAddr],
        answer: &Result<Lookup, NetError>,
        what: &str,
        timeout: Duration,
    ) -> Verdict {
        let zones = secure_signers(answer);
        if zones.is_empty() {
            return Verdict::Sound;
        }
        settle(
            tokio::time::timeout(
                timeout,
                self.zones(
                    Servers::within(servers, timeout, &self.first),
                    &zones,
                    false,
                ),
            )
            .await,
            what,
        )
    }

    /// Each of `zones`, and the zones above it up to a trust anchor (the chain that proves
    /// it), read unless found sound lately (and not `again`). Every step goes up at least one
    /// label, and the callers bound the whole by their timeout.
    async fn zones(
        &self,
        at: Servers<'_>,
        zones: &[Name],
        again: bool,
    ) -> std::io::Result<Verdict> {
        for signer in zones {
            let mut walked: Vec<(Name, Instant)> = Vec::new();
            let mut zone = signer.clone();
            let above = loop {
                if self.anchored.contains(&zone) {
                    break None;
                }
                if let Some(until) = until(&self.sound, &zone).filter(|_| !again) {
                    break Some(until);
                }
                let keys = read(at, &zone, RecordType::DNSKEY).await?;
                // A zone that signs publishes keys: none read is no proof of a sound set.
                if !keys
                    .answers
                    .iter()
                    .any(|r| r.record_type() == RecordType::DNSKEY)
                {
                    return Err(std::io::Error::other(format!(
                        "DNSKEY {zone}: no keys in the answer"
                    )));
                }
                if let Some(why) = keytrap_shaped(&zone, &keys.answers) {
                    return Ok(Verdict::Trapped { zone, why });
                }
                let ttl = keys.answers.iter().map(|r| r.ttl).min();
                walked.push((zone.clone(), Instant::now() + keep(ttl)));
                if zone.is_root() {
                    break None;
                }
                // The DS that delegates to the zone is signed by the zone above it.
                let ds = read(at, &zone, RecordType::DS).await?;
                let parent = signers(ds.answers.iter())
                    .into_iter()
                    .find(|p| p.zone_of(&zone) && *p != zone);
                match parent {
                    Some(parent) => zone = parent,
                    None => break None,
                }
            };
            // A zone is as sound as the chain above it: each keeps the earliest expiry upward.
            let mut until = above;
            for (zone, own) in walked.into_iter().rev() {
                let kept = until.map_or(own, |u| u.min(own));
                remember(&self.sound, &zone, kept);
                until = Some(kept);
            }
        }
        Ok(Verdict::Sound)
    }

    /// The earliest of `fallback` and when the verdicts on `zones` run out.
    fn zones_until(&self, zones: &[Name], fallback: Duration) -> Instant {
        zones
            .iter()
            .filter_map(|z| until(&self.sound, z))
            .fold(Instant::now() + fallback, Instant::min)
    }
}

/// The DNS servers screening reads from, in turn, and how long each may take: the screening's
/// time shared among them, so that one that does not answer leaves time for the next. Reads
/// start with the server that answered last (`first`), so that a silent one costs its time
/// once, not once per read.
#[derive(Clone, Copy)]
struct Servers<'a> {
    addrs: &'a [SocketAddr],
    attempt: Duration,
    first: &'a AtomicUsize,
}

impl<'a> Servers<'a> {
    fn within(addrs: &'a [SocketAddr], timeout: Duration, first: &'a AtomicUsize) -> Servers<'a> {
        let shares = u32::try_from(addrs.len().max(1)).unwrap_or(u32::MAX);
        Servers {
            addrs,
            attempt: timeout / shares,
            first,
        }
    }
}

/// `name`'s records of `rtype` (checking disabled), from the first server that answers
/// NOERROR or NXDOMAIN in its time (a SERVFAIL holds no keys to count); the last server's
/// failure when none does.
async fn read(
    at: Servers<'_>,
    name: &Name,
    rtype: RecordType,
) -> std::io::Result<hickory_resolver::proto::op::Message> {
    let mut failed = std::io::Error::other("no DNS server to ask");
    let first = at.first.load(Ordering::Relaxed);
    for index in (0..at.addrs.len()).map(|i| (first + i) % at.addrs.len()) {
        let server = at.addrs[index];
        failed = match tokio::time::timeout(at.attempt, unchecked(server, name, rtype)).await {
            Ok(Ok(answer)) => match answer.metadata.response_code {
                ResponseCode::NoError | ResponseCode::NXDomain => {
                    at.first.store(index, Ordering::Relaxed);
                    return Ok(answer);
                }
                code => std::io::Error::other(format!("{rtype} {name}: {server} answered {code}")),
            },
            // The exporter's own shortage: the next server would meet it too.
            Ok(Err(error)) if out_of_local_resources(&error) => return Err(error),
            Ok(Err(error)) => error,
            Err(_) => std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{rtype} {name}: no answer from {server} in time"),
            ),
        };
    }
    Err(failed)
}

/// A screening's outcome, or why there is none (`what` names the lookup).
fn settle(
    screened: Result<std::io::Result<Verdict>, tokio::time::error::Elapsed>,
    what: &str,
) -> Verdict {
    let why = "its zone's keys could not be read to rule out a KeyTrap-shaped key set";
    match screened {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(error)) => Verdict::Unread(Failure::new(
            if out_of_local_resources(&error) {
                Reason::LocalResources
            } else if error.kind() == std::io::ErrorKind::TimedOut {
                Reason::DnsTimeout
            } else {
                Reason::DnsError
            },
            format!("{what}: {why}: {error}"),
        )),
        Err(_) => Verdict::Unread(Failure::new(
            Reason::DnsTimeout,
            format!("{what}: {why} in time"),
        )),
    }
}

fn keep(ttl: Option<u32>) -> Duration {
    Duration::from_secs(u64::from(ttl.unwrap_or(0))).clamp(MIN_KEEP, MAX_KEEP)
}

/// Until when `name`'s entry in `kept` holds, if it still does (expired entries are dropped).
fn until<K: PartialEq>(kept: &Mutex<Vec<(K, Instant)>>, name: &K) -> Option<Instant> {
    let now = Instant::now();
    let mut kept = kept.lock().expect("screened zones");
    kept.retain(|(_, until)| now < *until);
    kept.iter()
        .find(|(n, _)| n == name)
        .map(|(_, until)| *until)
}

fn kept<K: PartialEq>(kept: &Mutex<Vec<(K, Instant)>>, name: &K) -> bool {
    until(kept, name).is_some()
}

fn remember<K: PartialEq + Clone>(kept: &Mutex<Vec<(K, Instant)>>, name: &K, until: Instant) {
    let mut kept = kept.lock().expect("screened zones");
    kept.retain(|(n, _)| n != name);
    kept.push((name.clone(), until));
}

/// The zones that signed `records` (each signature's signer, where it may sign the record:
/// the record's zone or one above it), each once.
fn signers<'a>(records: impl Iterator<Item = &'a Record>) -> Vec<Name> {
    let mut zones: Vec<Name> = Vec::new();
    for record in records {
        if let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = &record.data {
            let signer = &rrsig.input().signer_name;
            if signer.zone_of(&record.name) && !zones.contains(signer) {
                zones.push(signer.clone());
            }
        }
    }
    zones
}

/// The zones whose keys proved what `answer` calls secure: the signers of the signatures
/// validation used (it marks those secure), in a positive answer or in a secure denial.
fn secure_signers(answer: &Result<Lookup, NetError>) -> Vec<Name> {
    let records: &[Record] = match answer {
        Ok(lookup) => lookup.answers(),
        Err(NetError::Dns(DnsError::Nsec {
            response,
            proof: Proof::Secure,
            ..
        })) => &response.authorities,
        _ => return Vec::new(),
    };
    signers(records.iter().filter(|r| r.proof == Proof::Secure))
}

/// The signatures over `owner`'s DNSKEY RRset among `records`.
pub(super) fn signatures_over_keys<'a>(owner: &Name, records: &'a [Record]) -> Vec<&'a RRSIG> {
    records
        .iter()
        .filter(|r| r.name == *owner)
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(s))
                if s.input().type_covered == RecordType::DNSKEY =>
            {
                Some(s)
            }
            _ => None,
        })
        .collect()
}

/// Why `owner`'s DNSKEY RRset (in `records`, with its signatures) is shaped for KeyTrap:
/// more keys with one key tag, or more signatures over it, than a validator tries; `None`
/// when it is not. Counted, so the same whatever order the records come in.
pub(super) fn keytrap_shaped(owner: &Name, records: &[Record]) -> Option<String> {
    let tags: Vec<u16> = records
        .iter()
        .filter(|r| r.name == *owner)
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(key)) => Some(tag(key)),
            _ => None,
        })
        .collect();
    if let Some(crowded) = tags
        .iter()
        .find(|t| tags.iter().filter(|o| o == t).count() > MAX_KEYS_PER_TAG)
    {
        return Some(format!(
            "{owner} publishes more than {MAX_KEYS_PER_TAG} keys with key tag {crowded}: refused, \
             as validating resolvers refuse a KeyTrap-shaped key set (CVE-2023-50387)"
        ));
    }
    let signatures = signatures_over_keys(owner, records).len();
    (signatures > MAX_SIGNATURES_TRIED).then(|| {
        format!(
            "{owner}'s DNSKEY RRset carries {signatures} signatures, more than the \
             {MAX_SIGNATURES_TRIED} a validator tries: refused, as KeyTrap-shaped answers are \
             (CVE-2023-50387)"
        )
    })
}

/// A key's key tag (RFC 4034 appendix B).
pub(super) fn tag(key: &DNSKEY) -> u16 {
    key.calculate_key_tag().unwrap_or_default()
}

#[cfg(test)]
mod tests;
