//! A DNS middlebox on loopback (UDP and TCP on one port) in front of an upstream server,
//! standing for what lies between a validator and a zone's data: it sends chosen records last
//! within every answer (the order of records is the server's or a cache's choice, never the
//! zone's), leaves a validating resolver's queries (checking disabled clear) of one type
//! under one zone unanswered, so that validation never finishes while anyone reading with
//! checking disabled is answered, or mistreats TLSA queries — dropped, refused or answered
//! SERVFAIL — as some DNS servers and middleboxes do with record types they do not know.
//! Stops when dropped.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hickory_resolver::proto::dnssec::rdata::DNSSECRData;
use hickory_resolver::proto::dnssec::PublicKey;
use hickory_resolver::proto::op::Message;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use super::serve_each;

/// What the middlebox does besides passing queries and answers on.
#[derive(Clone)]
pub enum Meddle {
    /// DNSKEY and RRSIG records whose key or signature (base64) is listed come after the
    /// others, in every section of every answer.
    Last(Arc<HashSet<String>>),
    /// Queries for `rtype` at `zone` or below with checking disabled clear go unanswered.
    Hold { zone: Name, rtype: RecordType },
    /// Every TLSA query meets this.
    Tlsa(Tlsa),
}

/// What becomes of a TLSA query.
#[derive(Clone, Copy, Debug)]
pub enum Tlsa {
    Dropped,
    Refused,
    Servfail,
}

pub struct Middlebox {
    pub addr: SocketAddr,
    meddled: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

/// What to do, and a count of the queries it was done to (a test shows it meddled at all).
#[derive(Clone)]
struct Meddling {
    meddle: Meddle,
    count: Arc<AtomicUsize>,
}

impl Drop for Middlebox {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// How long the upstream server may take to answer one query.
const UPSTREAM: Duration = Duration::from_secs(5);

impl Middlebox {
    pub async fn start(upstream: SocketAddr, meddle: Meddle) -> Middlebox {
        // The same port for both: a DNS client falls back from UDP to TCP on the server's.
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
                break (Arc::new(udp), tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let meddled = Arc::new(AtomicUsize::new(0));
        let meddle = Meddling {
            meddle,
            count: Arc::clone(&meddled),
        };
        let udp_meddle = meddle.clone();
        let udp_task = tokio::spawn(async move {
            let mut buffer = vec![0u8; 65_535];
            loop {
                let Ok((read, client)) = udp.recv_from(&mut buffer).await else {
                    continue;
                };
                let query = buffer[..read].to_vec();
                let (udp, meddle) = (Arc::clone(&udp), udp_meddle.clone());
                tokio::spawn(async move {
                    if let Some(answer) = exchange(upstream, &query, &meddle, over_udp).await {
                        let _ = udp.send_to(&answer, client).await;
                    }
                });
            }
        });
        let tcp_task = tokio::spawn(serve_each(tcp, move |stream| {
            let meddle = meddle.clone();
            async move { relay_tcp(stream, upstream, meddle).await }
        }));
        Middlebox {
            addr,
            meddled,
            tasks: vec![udp_task, tcp_task],
        }
    }

    /// How many queries or answers it has meddled with so far.
    pub fn meddled(&self) -> usize {
        self.meddled.load(Ordering::Relaxed)
    }
}

/// One query passed on and its answer back (meddled with), or `None` to leave it unanswered.
async fn exchange<F, Fut>(
    upstream: SocketAddr,
    query: &[u8],
    meddling: &Meddling,
    ask: F,
) -> Option<Vec<u8>>
where
    F: FnOnce(SocketAddr, Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = Option<Vec<u8>>>,
{
    let parsed = Message::from_vec(query).ok()?;
    let asked = parsed.queries.first()?;
    let meddled = || meddling.count.fetch_add(1, Ordering::Relaxed);
    match &meddling.meddle {
        Meddle::Hold { zone, rtype } => {
            let validating = !parsed.metadata.checking_disabled;
            if validating && asked.query_type() == *rtype && zone.zone_of(asked.name()) {
                meddled();
                return None;
            }
        }
        Meddle::Tlsa(tlsa) if asked.query_type() == RecordType::TLSA => {
            meddled();
            return match tlsa {
                Tlsa::Dropped => None,
                Tlsa::Refused => Some(refusal(query, 5)),
                Tlsa::Servfail => Some(refusal(query, 2)),
            };
        }
        _ => {}
    }
    let answer = tokio::time::timeout(UPSTREAM, ask(upstream, query.to_vec()))
        .await
        .ok()??;
    let Meddle::Last(listed) = &meddling.meddle else {
        return Some(answer);
    };
    let mut message = Message::from_vec(&answer).ok()?;
    // A truncated answer is asked again over TCP: only the one used is reordered.
    if message.metadata.truncation {
        return Some(answer);
    }
    let mut moved = false;
    for section in [
        &mut message.answers,
        &mut message.authorities,
        &mut message.additionals,
    ] {
        moved |= section.iter().any(|r| is_listed(r, listed));
        section.sort_by_key(|r| is_listed(r, listed));
    }
    if moved {
        meddled();
    }
    message.to_vec().ok()
}

/// The query turned into an answer with `rcode` and nothing else: the header's QR bit set and
/// its response code (RFC 1035 §4.1.1), the question kept.
fn refusal(query: &[u8], rcode: u8) -> Vec<u8> {
    let mut answer = query.to_vec();
    answer[2] |= 0x80;
    answer[3] = (answer[3] & 0xF0) | rcode;
    answer
}

fn is_listed(record: &Record, listed: &HashSet<String>) -> bool {
    let bytes = match &record.data {
        RData::DNSSEC(DNSSECRData::DNSKEY(key)) => key.public_key().public_bytes(),
        RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) => rrsig.sig(),
        _ => return false,
    };
    listed.contains(&base64::engine::general_purpose::STANDARD.encode(bytes))
}

async fn over_udp(upstream: SocketAddr, query: Vec<u8>) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    socket.connect(upstream).await.ok()?;
    socket.send(&query).await.ok()?;
    let mut buffer = vec![0u8; 65_535];
    let read = socket.recv(&mut buffer).await.ok()?;
    buffer.truncate(read);
    Some(buffer)
}

async fn over_tcp(upstream: SocketAddr, query: Vec<u8>) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await.ok()?;
    write_message(&mut stream, &query).await?;
    read_message(&mut stream).await
}

/// The client's queries in turn (RFC 1035 §4.2.2: each after its two-byte length), each
/// asked of the upstream over a connection of its own.
async fn relay_tcp(mut client: TcpStream, upstream: SocketAddr, meddle: Meddling) {
    while let Some(query) = read_message(&mut client).await {
        if let Some(answer) = exchange(upstream, &query, &meddle, over_tcp).await {
            if write_message(&mut client, &answer).await.is_none() {
                return;
            }
        }
    }
}

async fn read_message(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut length = [0u8; 2];
    stream.read_exact(&mut length).await.ok()?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message).await.ok()?;
    Some(message)
}

async fn write_message(stream: &mut TcpStream, message: &[u8]) -> Option<()> {
    let length = u16::try_from(message.len()).ok()?;
    stream.write_all(&length.to_be_bytes()).await.ok()?;
    stream.write_all(message).await.ok()
}
