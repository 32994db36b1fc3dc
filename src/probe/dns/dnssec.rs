//! DNSSEC, for targets that validate (`dns.dnssec`): what validation said of each answer the
//! probe relied on — `secure`, `insecure` (no signatures where none are expected: not an
//! error) or bogus (a failure, `dnssec_bogus`) — the earliest expiry of the signatures that
//! proved it, and, for a bogus answer, why: the DNS server asked again with checking
//! disabled, and its signatures and keys read.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use hickory_resolver::proto::dnssec::rdata::{DNSSECRData, DNSKEY, RRSIG};
use hickory_resolver::proto::dnssec::{Proof, Verifier};
use hickory_resolver::proto::op::{Edns, Message, Query};
use hickory_resolver::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use serde::ser::Serializer;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::probe::cert::rfc3339;
use crate::probe::{unix_seconds, Failure, Reason};

label_values! {
    /// What DNSSEC validation said of an answer.
    pub enum DnssecState {
        /// A chain of signatures leads from a trust anchor to the answer.
        Secure => "secure",
        /// The answer lies in a zone proven unsigned (a delegation without DS).
        Insecure => "insecure",
        /// The signatures do not verify, have expired, or a key is missing: a validating
        /// resolver (the Callbridge's, where its DNS validates) answers SERVFAIL.
        Bogus => "bogus",
    }
}

/// What DNSSEC said of one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Dnssec {
    pub state: DnssecState,
    /// When the first of the signatures that proved it secure expires (Unix time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
}

impl Dnssec {
    pub const BOGUS: Dnssec = Dnssec {
        state: DnssecState::Bogus,
        expires: None,
    };

    /// Two answers as one: the worse state (bogus, then insecure), and while both are secure
    /// the earlier expiry.
    pub fn worse(a: Dnssec, b: Dnssec) -> Dnssec {
        let rank = |d: &Dnssec| match d.state {
            DnssecState::Bogus => 2,
            DnssecState::Insecure => 1,
            DnssecState::Secure => 0,
        };
        match (a.state, b.state) {
            (DnssecState::Secure, DnssecState::Secure) => Dnssec {
                state: DnssecState::Secure,
                expires: a.expires.into_iter().chain(b.expires).min(),
            },
            _ => std::cmp::max_by_key(a, b, rank),
        }
    }
}

/// The records of `types` in a validated answer, judged: secure when every one is, with the
/// earliest expiry of the signatures that proved them; insecure when proven unsigned; anything
/// else (a record left indeterminate) fails as bogus would, naming `what`.
pub fn judge(answers: &[Record], types: &[RecordType], what: &str) -> Result<Dnssec, Failure> {
    let mut state = DnssecState::Secure;
    for record in answers.iter().filter(|r| types.contains(&r.record_type())) {
        match record.proof {
            Proof::Secure => {}
            Proof::Insecure => state = DnssecState::Insecure,
            Proof::Bogus => return Err(bogus(what, "a record's signature does not verify")),
            Proof::Indeterminate => {
                return Err(bogus(
                    what,
                    "no chain of trust from the trust anchors could be built (indeterminate)",
                ))
            }
        }
    }
    let expires = answers
        .iter()
        .filter(|r| r.proof == Proof::Secure)
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) => Some(rrsig),
            _ => None,
        })
        .filter(|rrsig| types.contains(&rrsig.input().type_covered))
        .map(|rrsig| i64::from(rrsig.input().sig_expiration.get()))
        .min();
    Ok(Dnssec {
        state,
        expires: expires.filter(|_| state == DnssecState::Secure),
    })
}

pub fn bogus(what: &str, why: &str) -> Failure {
    Failure::new(
        Reason::DnssecBogus,
        format!("{what}: DNSSEC validation failed: {why}"),
    )
}

/// How long asking a DNS server why may take: it only ever reads two small answers.
const EXPLAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// An answer with signatures and keys: EDNS's usual buffer.
const MAX_UDP_ANSWER_BYTES: usize = 4096;

/// Why `name`'s answer of `types` is bogus, as far as the DNS server's unchecked answers
/// show: no signature, an expired or not yet valid one, or no key to check it with.
pub async fn explain(nameservers: &[SocketAddr], name: &str, types: &[RecordType]) -> String {
    let Some(server) = nameservers.first() else {
        return "the signatures do not verify against the trust anchors".to_owned();
    };
    let diagnosed = async {
        for rtype in types {
            if let Some(why) = diagnose(*server, name, *rtype).await? {
                return Ok(why);
            }
        }
        Ok::<_, std::io::Error>(format!(
            "the signatures on {name} do not lead to a trust anchor (its zone's DS at the \
             parent, or the trust anchor, no longer matches its keys)"
        ))
    };
    match tokio::time::timeout(EXPLAIN_TIMEOUT, diagnosed).await {
        Ok(Ok(why)) => why,
        Ok(Err(error)) => format!(
            "the signatures do not verify against the trust anchors (asking {server} why \
             failed: {error})"
        ),
        Err(_) => format!(
            "the signatures do not verify against the trust anchors ({server} did not say why \
             in time)"
        ),
    }
}

/// What is wrong with the signatures of `name`'s `rtype` answer — its records, or for a
/// denial of existence the NSEC/NSEC3 records that prove it; `None` when it has none or
/// nothing wrong shows.
async fn diagnose(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
) -> std::io::Result<Option<String>> {
    let owner = Name::from_ascii(name).map_err(std::io::Error::other)?;
    let answer = unchecked(server, &owner, rtype).await?;
    let relied_on_positive = |t: RecordType| t == rtype || t == RecordType::CNAME;
    let positive = answer
        .answers
        .iter()
        .any(|r| relied_on_positive(r.record_type()));
    // The RRsets the answer rests on: its records, or the proof that there are none.
    let section = match positive {
        true => &answer.answers,
        false => &answer.authorities,
    };
    let mut rrsets: Vec<(&Name, RecordType)> = Vec::new();
    for record in section {
        let key = (&record.name, record.record_type());
        let relied_on = match positive {
            true => relied_on_positive(key.1),
            false => matches!(key.1, RecordType::NSEC | RecordType::NSEC3),
        };
        if relied_on && !rrsets.contains(&key) {
            rrsets.push(key);
        }
    }
    let now = unix_seconds(SystemTime::now()) as i64;
    for (rrset_owner, rrset_type) in rrsets {
        let records: Vec<&Record> = section
            .iter()
            .filter(|r| r.name == *rrset_owner && r.record_type() == rrset_type)
            .collect();
        let signatures: Vec<&RRSIG> = section
            .iter()
            .filter(|r| r.name == *rrset_owner)
            .filter_map(|r| match &r.data {
                RData::DNSSEC(DNSSECRData::RRSIG(s)) if s.input().type_covered == rrset_type => {
                    Some(s)
                }
                _ => None,
            })
            .take(MAX_SIGNATURES_TRIED)
            .collect();
        let what = match positive {
            true => format!("{rrset_type} {rrset_owner}"),
            false => format!(
                "{rrset_type} {rrset_owner} (the proof that {owner} has no {rtype} records)"
            ),
        };
        if let Some(why) = signatures_wrong(server, &what, &records, &signatures, now).await? {
            return Ok(Some(why));
        }
    }
    Ok(None)
}

/// At most this many of an RRset's signatures are tried, and this many keys of one key tag,
/// as hickory does (its bounds against KeyTrap; `keytrap` refuses a key set beyond them).
pub(super) const MAX_SIGNATURES_TRIED: usize = 8;
pub(super) const MAX_KEYS_PER_TAG: usize = 2;

/// What is wrong with the signatures of one RRset (`what` names it): none, none in its
/// validity, none by a key its zone publishes, or none that verifies (the records changed
/// after signing, or forged on the way).
async fn signatures_wrong(
    server: SocketAddr,
    what: &str,
    records: &[&Record],
    signatures: &[&RRSIG],
    now: i64,
) -> std::io::Result<Option<String>> {
    let Some(first) = signatures.first() else {
        return Ok(Some(format!(
            "{what} has no signature (RRSIG) where its zone is signed"
        )));
    };
    // Only when no signature is in its validity: during a rollover an old one beside a good
    // one is no reason.
    let current: Vec<&RRSIG> = signatures
        .iter()
        .copied()
        .filter(|s| {
            let input = s.input();
            i64::from(input.sig_inception.get()) <= now
                && now <= i64::from(input.sig_expiration.get())
        })
        .collect();
    if current.is_empty() {
        let latest_expiry = signatures
            .iter()
            .map(|s| i64::from(s.input().sig_expiration.get()))
            .max()
            .unwrap_or(now);
        if latest_expiry < now {
            return Ok(Some(format!(
                "the signature on {what} expired at {} (the zone is no longer re-signed?)",
                rfc3339(latest_expiry)
            )));
        }
        let earliest_inception = signatures
            .iter()
            .map(|s| i64::from(s.input().sig_inception.get()))
            .min()
            .unwrap_or(now);
        return Ok(Some(format!(
            "the signature on {what} is not valid before {} (the signer's clock?)",
            rfc3339(earliest_inception)
        )));
    }
    let signer = first.input().signer_name.clone();
    let keys = unchecked(server, &signer, RecordType::DNSKEY).await?;
    let keys: Vec<&DNSKEY> = keys
        .answers
        .iter()
        .filter(|r| r.name == signer)
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(key)) => Some(key),
            _ => None,
        })
        .collect();
    // At most MAX_KEYS_PER_TAG keys per tag, as hickory tries them.
    let keys_of = |s: &RRSIG| -> Vec<&DNSKEY> {
        keys.iter()
            .copied()
            .filter(|k| {
                k.calculate_key_tag().ok() == Some(s.input().key_tag)
                    && k.algorithm() == s.input().algorithm
            })
            .take(MAX_KEYS_PER_TAG)
            .collect()
    };
    if current.iter().all(|s| keys_of(s).is_empty()) {
        return Ok(Some(format!(
            "{what} is signed by key tag {}, which {signer} does not publish (missing DNSKEY)",
            current[0].input().key_tag
        )));
    }
    let verifies = current.iter().any(|s| {
        keys_of(s).iter().any(|key| {
            records.first().is_some_and(|r| {
                key.verify_rrsig(&r.name, DNSClass::IN, s, records.iter().copied())
                    .is_ok()
            })
        })
    });
    if !verifies {
        return Ok(Some(format!(
            "the signature on {what} does not verify with key tag {}: the records were changed \
             after signing, or forged on the way",
            current[0].input().key_tag
        )));
    }
    Ok(None)
}

/// One query with DNSSEC records asked for and checking disabled: what the server holds,
/// signatures included, however they verify. Over UDP, and again over TCP when the answer is
/// truncated (a zone's keys can outgrow the UDP buffer).
pub(super) async fn unchecked(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
) -> std::io::Result<Message> {
    let mut query = Message::query();
    query.add_query(Query::query(name.clone(), rtype));
    query.metadata.recursion_desired = true;
    query.metadata.checking_disabled = true;
    let mut edns = Edns::new();
    edns.set_max_payload(MAX_UDP_ANSWER_BYTES as u16);
    edns.enable_dnssec();
    query.set_edns(edns);
    let bytes = query.to_vec().map_err(std::io::Error::other)?;
    let answer = over_udp(server, &bytes, query.metadata.id).await?;
    if !answer.metadata.truncation {
        return Ok(answer);
    }
    over_tcp(server, &bytes, query.metadata.id).await
}

async fn over_udp(server: SocketAddr, query: &[u8], id: u16) -> std::io::Result<Message> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buffer = vec![0u8; MAX_UDP_ANSWER_BYTES];
    loop {
        let read = socket.recv(&mut buffer).await?;
        let answer = Message::from_vec(&buffer[..read]).map_err(std::io::Error::other)?;
        // Anything else on the socket is not the answer: wait on for it.
        if answer.metadata.id == id {
            return Ok(answer);
        }
    }
}

/// The same query over TCP (RFC 1035 §4.2.2: each message after its two-byte length), whose
/// answer is at most 65,535 bytes by that length.
async fn over_tcp(server: SocketAddr, query: &[u8], id: u16) -> std::io::Result<Message> {
    let mut stream = TcpStream::connect(server).await?;
    let length = u16::try_from(query.len()).map_err(std::io::Error::other)?;
    stream.write_all(&length.to_be_bytes()).await?;
    stream.write_all(query).await?;
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).await?;
    let mut buffer = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut buffer).await?;
    let answer = Message::from_vec(&buffer).map_err(std::io::Error::other)?;
    match answer.metadata.id == id {
        true => Ok(answer),
        false => Err(std::io::Error::other(
            "the answer over TCP is not to the query",
        )),
    }
}
