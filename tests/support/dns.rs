//! A tiny authoritative DNS server (UDP and TCP on the same 127.0.0.1 port) that
//! answers from a [`Zone`] that tests can replace while it runs.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::proto::op::{
    Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_resolver::proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::timeout;

const TTL: u32 = 300;
/// Plain DNS over UDP without EDNS (RFC 1035).
const CLASSIC_UDP_LIMIT: usize = 512;
/// The payload size we advertise back to EDNS clients (the DNS flag day 2020 value).
const OUR_EDNS_PAYLOAD: u16 = 1232;
/// A TCP client that sends nothing for this long is dropped.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// The records a [`DnsServer`] serves. Names compare case-insensitively, with or
/// without a trailing dot.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    records: Vec<(String, RData)>,
    servfail: HashSet<String>,
    silent: HashSet<String>,
}

impl Zone {
    pub fn new() -> Zone {
        Zone::default()
    }

    /// `target` may be "." (RFC 2782: service decidedly not available).
    pub fn srv(self, name: &str, priority: u16, weight: u16, port: u16, target: &str) -> Self {
        self.record(
            name,
            RData::SRV(SRV::new(priority, weight, port, fqdn(target))),
        )
    }

    pub fn a(self, name: &str, ip: Ipv4Addr) -> Self {
        self.record(name, RData::A(A(ip)))
    }

    pub fn aaaa(self, name: &str, ip: Ipv6Addr) -> Self {
        self.record(name, RData::AAAA(AAAA(ip)))
    }

    /// Every query for `name` is answered with SERVFAIL.
    pub fn servfail(mut self, name: &str) -> Self {
        self.servfail.insert(normalize(name));
        self
    }

    /// Every query for `name` is received (and counted) but never answered.
    pub fn silent(mut self, name: &str) -> Self {
        self.silent.insert(normalize(name));
        self
    }

    fn record(mut self, name: &str, data: RData) -> Self {
        self.records.push((normalize(name), data));
        self
    }

    fn reply(&self, query: &Query) -> Reply {
        let name = normalize(&query.name().to_ascii());
        if self.silent.contains(&name) {
            return Reply::Silent;
        }
        if self.servfail.contains(&name) {
            return Reply::Error(ResponseCode::ServFail);
        }
        let answers: Vec<Record> = self
            .records
            .iter()
            .filter(|(owner, data)| *owner == name && data.record_type() == query.query_type())
            .map(|(_, data)| Record::from_rdata(query.name().clone(), TTL, data.clone()))
            .collect();
        // A name exists if it owns records or has descendants (an "empty non-terminal",
        // such as _tcp.example.test below _xmpp-component._tcp.example.test).
        let suffix = format!(".{name}");
        let exists = self
            .records
            .iter()
            .any(|(owner, _)| *owner == name || owner.ends_with(&suffix));
        match (exists, answers.is_empty()) {
            (false, _) => Reply::Negative(ResponseCode::NXDomain),
            (true, true) => Reply::Negative(ResponseCode::NoError),
            (true, false) => Reply::Answers(answers),
        }
    }
}

enum Reply {
    Silent,
    Error(ResponseCode),
    /// NXDOMAIN or NODATA: carries an SOA in the authority section.
    Negative(ResponseCode),
    Answers(Vec<Record>),
}

/// The running server; stops when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

struct Shared {
    zone: Mutex<Zone>,
    /// (normalized name, record type such as "SRV") -> queries received
    queries: Mutex<HashMap<(String, String), usize>>,
}

impl DnsServer {
    pub async fn start(zone: Zone) -> DnsServer {
        let (udp, tcp) = bind_same_port().await;
        let addr = udp.local_addr().expect("udp local addr");
        let shared = Arc::new(Shared {
            zone: Mutex::new(zone),
            queries: Mutex::default(),
        });
        let tasks = vec![
            tokio::spawn(serve_udp(udp, shared.clone())),
            tokio::spawn(serve_tcp(tcp, shared.clone())),
        ];
        DnsServer {
            addr,
            shared,
            tasks,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the zone; later queries see the new answers.
    pub fn set_zone(&self, zone: Zone) {
        *self.shared.zone.lock().unwrap() = zone;
    }

    /// How many queries for `name` and `rtype` ("SRV", "A", "AAAA", ...) arrived, over UDP and TCP.
    pub fn queries(&self, name: &str, rtype: &str) -> usize {
        let key = (normalize(name), rtype.to_ascii_uppercase());
        self.shared
            .queries
            .lock()
            .unwrap()
            .get(&key)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Binds UDP on an ephemeral port, then TCP on the same port (retrying if that TCP
/// port happens to be taken).
async fn bind_same_port() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind udp");
        let addr = udp.local_addr().expect("udp local addr");
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

async fn serve_udp(socket: UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue; // e.g. ICMP port unreachable surfaced from an earlier send
        };
        if let Some(response) = shared.respond(&buf[..len], Transport::Udp) {
            // Best effort, like any UDP server.
            let _ = socket.send_to(&response, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    // Dropping the set (when this task is aborted) aborts every connection task.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        while connections.try_join_next().is_some() {}
        connections.spawn(serve_tcp_connection(stream, shared.clone()));
    }
}

/// RFC 1035 4.2.2 / RFC 7766: 2-byte length prefix, several queries per connection.
async fn serve_tcp_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    loop {
        let mut len = [0u8; 2];
        if !matches!(
            timeout(TCP_IDLE, stream.read_exact(&mut len)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let mut request = vec![0u8; u16::from_be_bytes(len).into()];
        if !matches!(
            timeout(TCP_IDLE, stream.read_exact(&mut request)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let Some(response) = shared.respond(&request, Transport::Tcp) else {
            continue; // silent name or unparsable request: keep the connection, answer nothing
        };
        let Ok(len) = u16::try_from(response.len()) else {
            return;
        };
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(&response);
        if !matches!(
            timeout(TCP_IDLE, stream.write_all(&framed)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Udp,
    Tcp,
}

impl Shared {
    /// The encoded response to `request`, or None when it must go unanswered.
    fn respond(&self, request: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let request = Message::from_vec(request).ok()?;
        if request.metadata.message_type != MessageType::Query {
            return None;
        }
        let mut response = Message::response(request.metadata.id, request.metadata.op_code);
        response.metadata = Metadata::response_from_request(&request.metadata);
        response.metadata.authoritative = true;
        response.add_queries(request.queries.iter().cloned());
        // RFC 6891: answer an OPT with an OPT; we only speak EDNS version 0.
        if let Some(edns) = &request.edns {
            let mut ours = Edns::new();
            ours.set_max_payload(OUR_EDNS_PAYLOAD);
            response.set_edns(ours);
            if edns.version() > 0 {
                response.metadata.response_code = ResponseCode::BADVERS;
                return encode(&response, &request, transport);
            }
        }

        let code = match (request.metadata.op_code, request.queries.as_slice()) {
            (OpCode::Query, [query]) => {
                self.count(query);
                match self.zone.lock().unwrap().reply(query) {
                    Reply::Silent => return None,
                    Reply::Error(code) => code,
                    Reply::Negative(code) => {
                        response.add_authority(soa_for(query.name()));
                        code
                    }
                    Reply::Answers(answers) => {
                        response.add_answers(answers);
                        ResponseCode::NoError
                    }
                }
            }
            (OpCode::Query, _) => ResponseCode::FormErr,
            _ => ResponseCode::NotImp,
        };
        response.metadata.response_code = code;
        encode(&response, &request, transport)
    }

    fn count(&self, query: &Query) {
        let key = (
            normalize(&query.name().to_ascii()),
            query.query_type().to_string(),
        );
        *self.queries.lock().unwrap().entry(key).or_default() += 1;
    }
}

/// Encodes, truncating (TC bit, no records) when a UDP answer exceeds what the client accepts.
fn encode(response: &Message, request: &Message, transport: Transport) -> Option<Vec<u8>> {
    let bytes = response.to_vec().ok()?;
    let limit = match &request.edns {
        Some(edns) => usize::from(edns.max_payload()).max(CLASSIC_UDP_LIMIT),
        None => CLASSIC_UDP_LIMIT,
    };
    if transport == Transport::Udp && bytes.len() > limit {
        return response.truncate().to_vec().ok();
    }
    Some(bytes)
}

/// An SOA for negative answers (RFC 2308), owned by the query name's last two labels,
/// which stand in for the zone apex.
fn soa_for(qname: &Name) -> Record {
    let name = normalize(&qname.to_ascii());
    let labels: Vec<&str> = name.split('.').collect();
    let apex = labels[labels.len().saturating_sub(2)..].join(".");
    let soa = SOA::new(
        fqdn("ns.dns-test.invalid"),
        fqdn("hostmaster.dns-test.invalid"),
        1,
        3600,
        600,
        86400,
        TTL,
    );
    let apex = if apex.is_empty() { "." } else { &apex };
    Record::from_rdata(fqdn(apex), TTL, RData::SOA(soa))
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn fqdn(name: &str) -> Name {
    let mut name = Name::from_ascii(name).unwrap_or_else(|e| panic!("bad DNS name {name:?}: {e}"));
    name.set_fqdn(true);
    name
}
