//! DNSSEC, for targets that validate (`dns.dnssec`): what validation said of each answer the
//! probe relied on — `secure`, `insecure` (no signatures where none are expected: not an
//! error) or bogus (a failure, `dnssec_bogus`) — the earliest expiry of the signatures that
//! proved it, and, for a bogus answer, why: the DNS server asked again with checking
//! disabled, and its signatures and keys read.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use hickory_resolver::proto::dnssec::rdata::{DNSSECRData, DNSKEY, RRSIG};
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::op::{Edns, Message, Query};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
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

/// What is wrong with the signatures of `name`'s `rtype` records; `None` when it has no
/// such records or nothing wrong shows.
async fn diagnose(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
) -> std::io::Result<Option<String>> {
    let owner = Name::from_ascii(name).map_err(std::io::Error::other)?;
    let answer = unchecked(server, &owner, rtype).await?;
    if !answer.answers.iter().any(|r| r.record_type() == rtype) {
        return Ok(None);
    }
    let signatures: Vec<&RRSIG> = signatures(&answer, rtype).collect();
    if signatures.is_empty() {
        return Ok(Some(format!(
            "{rtype} {owner} has no signature (RRSIG) where its zone is signed"
        )));
    }
    // Only when no signature is in its validity: during a rollover an old one beside a good
    // one is no reason.
    let now = unix_seconds(SystemTime::now()) as i64;
    let latest_expiry = signatures
        .iter()
        .map(|s| i64::from(s.input().sig_expiration.get()))
        .max()
        .unwrap_or(now);
    if latest_expiry < now {
        return Ok(Some(format!(
            "the signature on {rtype} {owner} expired at {} (the zone is no longer re-signed?)",
            rfc3339(latest_expiry)
        )));
    }
    let earliest_inception = signatures
        .iter()
        .map(|s| i64::from(s.input().sig_inception.get()))
        .min()
        .unwrap_or(now);
    if earliest_inception > now {
        return Ok(Some(format!(
            "the signature on {rtype} {owner} is not valid before {} (the signer's clock?)",
            rfc3339(earliest_inception)
        )));
    }
    let signer = signatures[0].input().signer_name.clone();
    let keys = unchecked(server, &signer, RecordType::DNSKEY).await?;
    let tags: Vec<u16> = keys
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(key)) => DNSKEY::calculate_key_tag(key).ok(),
            _ => None,
        })
        .collect();
    if let Some(missing) = signatures
        .iter()
        .map(|s| s.input().key_tag)
        .find(|tag| !tags.contains(tag))
    {
        return Ok(Some(format!(
            "{rtype} {owner} is signed by key tag {missing}, which {signer} does not publish \
             (missing DNSKEY)"
        )));
    }
    Ok(None)
}

/// The RRSIGs of an answer that cover `rtype`.
fn signatures(answer: &Message, rtype: RecordType) -> impl Iterator<Item = &RRSIG> {
    answer.answers.iter().filter_map(move |r| match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) if rrsig.input().type_covered == rtype => {
            Some(rrsig)
        }
        _ => None,
    })
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
