//! A DNS forwarder on loopback (UDP) that passes every query to an upstream server but
//! mistreats TLSA queries — dropped, refused or answered SERVFAIL — as some DNS servers and
//! middleboxes do with record types they do not know. Stops when dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::op::Message;
use hickory_resolver::proto::rr::RecordType;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What becomes of a TLSA query.
#[derive(Clone, Copy, Debug)]
pub enum Tlsa {
    Dropped,
    Refused,
    Servfail,
}

pub struct Forwarder {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Forwarder {
    pub async fn start(upstream: SocketAddr, tlsa: Tlsa) -> Forwarder {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = socket.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buffer = vec![0u8; 65_535];
            loop {
                let Ok((read, client)) = socket.recv_from(&mut buffer).await else {
                    continue;
                };
                let query = buffer[..read].to_vec();
                let is_tlsa = Message::from_vec(&query).is_ok_and(|m| {
                    m.queries
                        .first()
                        .is_some_and(|q| q.query_type() == RecordType::TLSA)
                });
                let answer = match (is_tlsa, tlsa) {
                    (true, Tlsa::Dropped) => continue,
                    (true, Tlsa::Refused) => Some(refusal(&query, 5)),
                    (true, Tlsa::Servfail) => Some(refusal(&query, 2)),
                    (false, _) => None,
                };
                let socket = Arc::clone(&socket);
                tokio::spawn(async move {
                    let answer = match answer {
                        Some(answer) => answer,
                        None => match forward(upstream, &query).await {
                            Some(answer) => answer,
                            None => return,
                        },
                    };
                    let _ = socket.send_to(&answer, client).await;
                });
            }
        });
        Forwarder { addr, task }
    }
}

/// The query turned into an answer with `rcode` and nothing else: the header's QR bit set and
/// its response code (RFC 1035 §4.1.1), the question kept.
fn refusal(query: &[u8], rcode: u8) -> Vec<u8> {
    let mut answer = query.to_vec();
    answer[2] |= 0x80;
    answer[3] = (answer[3] & 0xF0) | rcode;
    answer
}

async fn forward(upstream: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    socket.connect(upstream).await.ok()?;
    socket.send(query).await.ok()?;
    let mut buffer = vec![0u8; 65_535];
    let read = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buffer))
        .await
        .ok()?
        .ok()?;
    buffer.truncate(read);
    Some(buffer)
}
