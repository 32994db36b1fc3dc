//! Screening against a DNS server of fixed records: a KeyTrap-shaped key set is found
//! whatever order its records come in, what validation calls secure is trusted only when its
//! signers' key sets are sound, and a screening cut short leaves nothing behind.

use std::net::SocketAddr;

use hickory_resolver::proto::dnssec::rdata::{DNSSECRData, SigInput, DNSKEY, DS, RRSIG};
use hickory_resolver::proto::dnssec::{Algorithm, DigestType, Proof, PublicKeyBuf};
use hickory_resolver::proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_resolver::proto::rr::rdata::SRV;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use super::*;

const SHORT: Duration = Duration::from_millis(300);

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

/// An RSA-sized zone key of `zone` whose key tag is `wanted`: two bytes of it are chosen to
/// make the RFC 4034 appendix B sum come out at `wanted` (`seed` makes the rest differ).
fn key_with_tag(zone: &str, flags: u16, wanted: u16, seed: u8) -> Record {
    let mut bytes: Vec<u8> = (0..260u32)
        .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(seed))
        .collect();
    let rdata = |bytes: &[u8]| -> Vec<u8> {
        [(flags >> 8) as u8, flags as u8, 3, 8]
            .into_iter()
            .chain(bytes.iter().copied())
            .collect()
    };
    // The pair at key bytes 10 and 11 (rdata offsets 14 and 15: high byte, then low byte).
    bytes[10..12].copy_from_slice(&[0, 0]);
    let partial: u32 = rdata(&bytes)
        .iter()
        .enumerate()
        .map(|(i, b)| u32::from(*b) << if i % 2 == 0 { 8 } else { 0 })
        .sum();
    let value = (0..=u16::MAX)
        .find(|v| {
            let total = partial + u32::from(*v);
            ((total + (total >> 16)) & 0xFFFF) as u16 == wanted
        })
        .unwrap();
    bytes[10..12].copy_from_slice(&value.to_be_bytes());
    let key = DNSKEY::with_flags(flags, PublicKeyBuf::new(bytes, Algorithm::RSASHA256));
    assert_eq!(tag(&key), wanted);
    Record::from_rdata(name(zone), 300, RData::DNSSEC(DNSSECRData::DNSKEY(key)))
}

/// A signature over `owner`'s `covered` records by `signer`'s key `key_tag` (bytes that
/// verify nothing: screening only asks who signed).
fn signature(owner: &str, covered: RecordType, signer: &str, key_tag: u16) -> Record {
    let input = SigInput {
        type_covered: covered,
        algorithm: Algorithm::RSASHA256,
        num_labels: name(owner).num_labels(),
        original_ttl: 300,
        sig_expiration: u32::MAX.into(),
        sig_inception: 0.into(),
        key_tag,
        signer_name: name(signer),
    };
    let rrsig = RRSIG::from_sig(input, vec![7; 256]);
    Record::from_rdata(name(owner), 300, RData::DNSSEC(DNSSECRData::RRSIG(rrsig)))
}

/// A KeyTrap-shaped key set of `zone`: a KSK, and three zone-signing keys sharing tag 4242
/// (one more than a validator tries), each set signed by the KSK.
fn trapped(zone: &str) -> Vec<Record> {
    vec![
        key_with_tag(zone, 256, 4242, 3),
        key_with_tag(zone, 256, 4242, 5),
        key_with_tag(zone, 256, 4242, 7),
        key_with_tag(zone, 257, 1000, 11),
        signature(zone, RecordType::DNSKEY, zone, 1000),
    ]
}

/// A healthy key set: a KSK and a ZSK, the set signed by the KSK.
fn sound(zone: &str) -> Vec<Record> {
    vec![
        key_with_tag(zone, 256, 4242, 3),
        key_with_tag(zone, 257, 1000, 11),
        signature(zone, RecordType::DNSKEY, zone, 1000),
    ]
}

/// `_xmpp-component._tcp.<zone>`'s SRV record and its signature by `zone`, as validation
/// marks them: `proof` on both.
fn srv(zone: &str, proof: Proof) -> Vec<Record> {
    let owner = format!("_xmpp-component._tcp.{zone}");
    let target = name(&format!("xmpp.{zone}"));
    let mut records = vec![
        Record::from_rdata(name(&owner), 300, RData::SRV(SRV::new(0, 0, 5275, target))),
        signature(&owner, RecordType::SRV, zone, 4242),
    ];
    for record in &mut records {
        record.proof = proof;
    }
    records
}

fn answer(records: Vec<Record>) -> Result<Lookup, NetError> {
    let query = Query::query(records[0].name.clone(), RecordType::SRV);
    Ok(Lookup::new_with_max_ttl(query, records))
}

/// A DNS server on loopback answering from `records` (the records of the name and type
/// asked, with their signatures), or never answering when `records` is `None`.
struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What `screen` makes of an SRV answer at `zone` whose signatures validation marked `proof`.
async fn screened_srv(screen: &Screen, at: &[SocketAddr], zone: &str, proof: Proof) -> Verdict {
    screen
        .answer(at, &answer(srv(zone, proof)), "SRV", SHORT)
        .await
}

/// Whether `verdict` refuses `zone` as KeyTrap-shaped.
fn trapped_at(verdict: &Verdict, zone: &str) -> bool {
    matches!(verdict, Verdict::Trapped { zone: found, .. } if *found == name(zone))
}

async fn server(records: Option<Vec<Record>>) -> Server {
    server_failing(records, Vec::new()).await
}

/// A server of `records` that answers SERVFAIL to the questions in `failing`.
async fn server_failing(records: Option<Vec<Record>>, failing: Vec<(Name, RecordType)>) -> Server {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        loop {
            let (read, client) = socket.recv_from(&mut buffer).await.unwrap();
            let (Some(records), Ok(query)) = (&records, Message::from_vec(&buffer[..read])) else {
                continue;
            };
            let asked = query.queries[0].clone();
            let mut reply = Message::response(query.metadata.id, OpCode::Query);
            let wanted = |r: &&Record| {
                r.name == *asked.name()
                    && match &r.data {
                        RData::DNSSEC(DNSSECRData::RRSIG(s)) => {
                            s.input().type_covered == asked.query_type()
                        }
                        _ => r.record_type() == asked.query_type(),
                    }
            };
            if failing.contains(&(asked.name().clone(), asked.query_type())) {
                reply.metadata.response_code = ResponseCode::ServFail;
            } else {
                reply.add_answers(records.iter().filter(wanted).cloned());
            }
            reply.add_query(asked);
            socket
                .send_to(&reply.to_vec().unwrap(), client)
                .await
                .unwrap();
        }
    });
    Server { addr, task }
}

#[test]
fn a_keytrap_shaped_key_set_is_found_whatever_order_its_records_come_in() {
    let zone = name("trap.example.");
    let mut records = trapped("trap.example.");
    for _ in 0..records.len() {
        records.rotate_left(1);
        let why = keytrap_shaped(&zone, &records).expect("KeyTrap-shaped");
        assert!(
            why.contains("KeyTrap-shaped key set (CVE-2023-50387)"),
            "{why}"
        );
    }
    let mut records = sound("trap.example.");
    for _ in 0..records.len() {
        records.rotate_left(1);
        assert_eq!(keytrap_shaped(&zone, &records), None);
    }
    // Nine signatures over the set: one more than a validator tries.
    let mut records = sound("trap.example.");
    records.extend(
        (0..8).map(|_| signature("trap.example.", RecordType::DNSKEY, "trap.example.", 1000)),
    );
    assert!(keytrap_shaped(&zone, &records).is_some());
}

#[test]
fn the_zones_that_proved_an_answer_are_the_signers_of_the_signatures_validation_used() {
    let mut records = srv("a.example.", Proof::Secure);
    // A signature validation did not use, by a zone the record is in too.
    let mut unused = signature(
        "_xmpp-component._tcp.a.example.",
        RecordType::SRV,
        "example.",
        1,
    );
    unused.proof = Proof::Indeterminate;
    records.push(unused);
    assert_eq!(secure_signers(&answer(records)), vec![name("a.example.")]);
    assert!(secure_signers(&answer(srv("a.example.", Proof::Insecure))).is_empty());
    assert!(secure_signers(&Err(NetError::Timeout)).is_empty());
}

#[tokio::test]
async fn what_validation_calls_secure_stands_only_when_its_signers_key_sets_are_sound() {
    let mut records = trapped("trap.example.");
    records.extend(sound("sound.example."));
    let dns = server(Some(records)).await;
    let screen = Screen::new(Vec::new());
    let at = &[dns.addr][..];

    // However validation got there (hickory's bounds let such a set through when its real key
    // and signature come first), an answer the trapped zone signed is refused.
    let verdict = screened_srv(&screen, at, "trap.example.", Proof::Secure).await;
    assert!(trapped_at(&verdict, "trap.example."), "{verdict:?}");
    let verdict = screened_srv(&screen, at, "sound.example.", Proof::Secure).await;
    assert!(matches!(verdict, Verdict::Sound), "{verdict:?}");
    // Kept for the keys' TTL: read once, not for every answer.
    drop(dns);
    let verdict = screened_srv(&screen, &[], "sound.example.", Proof::Secure).await;
    assert!(matches!(verdict, Verdict::Sound), "{verdict:?}");
    // Nothing secure: nothing to read.
    let verdict = screened_srv(&screen, &[], "trap.example.", Proof::Insecure).await;
    assert!(matches!(verdict, Verdict::Sound), "{verdict:?}");
}

#[tokio::test]
async fn a_zone_is_as_sound_as_the_zone_that_signs_its_ds_up_to_a_trust_anchor() {
    let ds = DS::new(1000, Algorithm::RSASHA256, DigestType::SHA256, vec![0; 32]);
    let mut records = sound("child.parent.example.");
    records.push(Record::from_rdata(
        name("child.parent.example."),
        300,
        RData::DNSSEC(DNSSECRData::DS(ds)),
    ));
    records.push(signature(
        "child.parent.example.",
        RecordType::DS,
        "parent.example.",
        4242,
    ));
    records.extend(trapped("parent.example."));
    let dns = server(Some(records)).await;
    let secure = answer(srv("child.parent.example.", Proof::Secure));

    let verdict = Screen::new(Vec::new())
        .answer(&[dns.addr], &secure, "SRV", SHORT)
        .await;
    assert!(trapped_at(&verdict, "parent.example."), "{verdict:?}");
    // An island of trust's keys are priming's to prove: the walk stops there.
    let verdict = Screen::new(vec![name("parent.example.")])
        .answer(&[dns.addr], &secure, "SRV", SHORT)
        .await;
    assert!(matches!(verdict, Verdict::Sound), "{verdict:?}");
}

#[tokio::test]
async fn a_name_screened_in_vain_is_screened_again_and_then_refused() {
    let owner = name("_xmpp-component._tcp.trap.example.");
    let screen = Screen::new(Vec::new());
    // No answer in time (as a validation cut by the deadline): unread, and nothing kept.
    let silent = server(None).await;
    let verdict = screen
        .name(&[silent.addr], &owner, RecordType::SRV, false, SHORT)
        .await;
    assert!(
        matches!(&verdict, Verdict::Unread(f) if f.reason == Reason::DnsTimeout),
        "{verdict:?}"
    );
    let mut records = trapped("trap.example.");
    records.extend(srv("trap.example.", Proof::Indeterminate));
    let dns = server(Some(records)).await;
    let verdict = screen
        .name(&[dns.addr], &owner, RecordType::SRV, false, SHORT)
        .await;
    assert!(trapped_at(&verdict, "trap.example."), "{verdict:?}");
}

#[tokio::test]
async fn a_sound_name_is_not_read_again_until_its_keys_ttl_runs_out_unless_asked_to() {
    let owner = name("_xmpp-component._tcp.sound.example.");
    let screen = Screen::new(Vec::new());
    let mut records = sound("sound.example.");
    records.extend(srv("sound.example.", Proof::Indeterminate));
    let dns = server(Some(records)).await;
    let at = &[dns.addr][..];
    let verdict = screen.name(at, &owner, RecordType::SRV, false, SHORT).await;
    assert!(matches!(verdict, Verdict::Sound), "{verdict:?}");
    drop(dns);
    let verdict = screen
        .name(&[], &owner, RecordType::SRV, false, SHORT)
        .await;
    assert!(matches!(verdict, Verdict::Sound), "{verdict:?}");
    let verdict = screen.name(&[], &owner, RecordType::SRV, true, SHORT).await;
    assert!(matches!(verdict, Verdict::Unread(_)), "{verdict:?}");
}

#[tokio::test]
async fn keys_that_cannot_be_read_prove_nothing_and_are_not_kept() {
    let screen = Screen::new(Vec::new());
    // The keys' read answered SERVFAIL, or answered without keys: no key set was counted.
    let servfail = server_failing(
        Some(sound("sound.example.")),
        vec![(name("sound.example."), RecordType::DNSKEY)],
    )
    .await;
    let verdict = screened_srv(&screen, &[servfail.addr], "sound.example.", Proof::Secure).await;
    assert!(
        matches!(&verdict, Verdict::Unread(f) if f.reason == Reason::DnsError && f.detail.contains("Server Failure")),
        "{verdict:?}"
    );
    let keyless = server(Some(Vec::new())).await;
    let verdict = screened_srv(&screen, &[keyless.addr], "sound.example.", Proof::Secure).await;
    assert!(
        matches!(&verdict, Verdict::Unread(f) if f.reason == Reason::DnsError && f.detail.contains("no keys")),
        "{verdict:?}"
    );
    // Nothing was kept: the trapped set, once readable, is found.
    let trap = server(Some(trapped("sound.example."))).await;
    let verdict = screened_srv(&screen, &[trap.addr], "sound.example.", Proof::Secure).await;
    assert!(trapped_at(&verdict, "sound.example."), "{verdict:?}");
}

#[test]
fn a_screening_short_of_file_descriptors_is_the_exporter_s_own_failure() {
    let verdict = settle(
        Ok(Err(std::io::Error::from_raw_os_error(24))),
        "SRV x.example.",
    );
    assert!(
        matches!(&verdict, Verdict::Unread(f) if f.reason == Reason::LocalResources),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn a_name_screened_again_has_its_zones_keys_read_again() {
    let owner = name("_xmpp-component._tcp.sound.example.");
    let screen = Screen::new(Vec::new());
    let mut records = sound("sound.example.");
    records.extend(srv("sound.example.", Proof::Indeterminate));
    let before = server(Some(records)).await;
    let verdict = screen
        .name(&[before.addr], &owner, RecordType::SRV, false, SHORT)
        .await;
    assert!(matches!(verdict, Verdict::Sound), "{verdict:?}");
    // The zone's key set turned KeyTrap-shaped: kept as sound until asked again.
    let mut records = trapped("sound.example.");
    records.extend(srv("sound.example.", Proof::Indeterminate));
    let after = server(Some(records)).await;
    let verdict = screen
        .name(&[after.addr], &owner, RecordType::SRV, false, SHORT)
        .await;
    assert!(matches!(verdict, Verdict::Sound), "{verdict:?}");
    let verdict = screen
        .name(&[after.addr], &owner, RecordType::SRV, true, SHORT)
        .await;
    assert!(trapped_at(&verdict, "sound.example."), "{verdict:?}");
    // A name is kept as screened for the type it was read for only.
    drop((before, after));
    let verdict = screen
        .name(&[], &owner, RecordType::TXT, false, SHORT)
        .await;
    assert!(matches!(verdict, Verdict::Unread(_)), "{verdict:?}");
}

#[tokio::test]
async fn a_server_that_does_not_answer_leaves_the_next_one_to_read() {
    let owner = name("_xmpp-component._tcp.trap.example.");
    let silent = server(None).await;
    let mut records = trapped("trap.example.");
    records.extend(srv("trap.example.", Proof::Indeterminate));
    let dns = server(Some(records)).await;
    let verdict = Screen::new(Vec::new())
        .name(
            &[silent.addr, dns.addr],
            &owner,
            RecordType::SRV,
            false,
            SHORT,
        )
        .await;
    assert!(trapped_at(&verdict, "trap.example."), "{verdict:?}");
    // Neither answers: a DNS timeout.
    let other = server(None).await;
    let verdict = Screen::new(Vec::new())
        .name(
            &[silent.addr, other.addr],
            &owner,
            RecordType::SRV,
            false,
            SHORT,
        )
        .await;
    assert!(
        matches!(&verdict, Verdict::Unread(f) if f.reason == Reason::DnsTimeout),
        "{verdict:?}"
    );
}

#[test]
fn a_key_set_at_the_validator_s_bounds_is_not_keytrap_shaped() {
    // Two keys sharing a tag (a collision during a rollover) and eight signatures over the set
    // are what a validator still tries: refusing them would call a healthy zone bogus.
    let zone = name("sound.example.");
    let mut records = sound("sound.example.");
    records.push(key_with_tag("sound.example.", 256, 4242, 5));
    records.extend(
        (0..7).map(|_| signature("sound.example.", RecordType::DNSKEY, "sound.example.", 1000)),
    );
    assert_eq!(keytrap_shaped(&zone, &records), None);
}
