//! Step `connect`: TCP to each address in turn until one accepts.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::{Failure, Reason};

/// Tries the addresses in order; each gets an equal share of the time left, so a black-holed
/// AAAA cannot eat the time of a working A. Reports the address that accepted.
pub async fn connect(
    addresses: &[IpAddr],
    port: u16,
    deadline: Instant,
) -> Result<(Tcp, SocketAddr), Failure> {
    let mut attempts = Vec::with_capacity(addresses.len());
    let mut last_reason = Reason::Unreachable;
    for (i, ip) in addresses.iter().enumerate() {
        let addr = SocketAddr::new(*ip, port);
        let left = addresses.len() - i;
        let share = deadline.saturating_duration_since(Instant::now()) / left as u32;
        let (reason, detail) =
            match timeout_at(Instant::now() + share, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    // Negotiation is many small writes; waiting for ACKs would only skew timings.
                    let _ = stream.set_nodelay(true);
                    return Ok((Tcp::new(stream), addr));
                }
                Ok(Err(e)) => (classify(&e), e.to_string()),
                Err(_) => (Reason::Timeout, "no answer in time".to_owned()),
            };
        attempts.push(format!("{addr}: {detail}"));
        last_reason = reason;
        // The next address would meet the same limit.
        if reason == Reason::LocalResources {
            break;
        }
    }
    Err(Failure::new(last_reason, attempts.join("; ")))
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: the exporter's own limits, not the server's doing.
pub fn out_of_local_resources(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Whether the exporter could not open a socket right now: where a library hides the cause
/// of a failure (the resolver reports "no connections available", or no records), this tells
/// the exporter's own exhaustion from the network's answer.
pub fn out_of_sockets_now() -> bool {
    std::net::UdpSocket::bind((std::net::Ipv4Addr::LOCALHOST, 0))
        .err()
        .is_some_and(|e| out_of_local_resources(&e))
}

fn classify(error: &std::io::Error) -> Reason {
    if out_of_local_resources(error) {
        return Reason::LocalResources;
    }
    match error.kind() {
        ErrorKind::ConnectionRefused => Reason::Refused,
        ErrorKind::TimedOut => Reason::Timeout,
        _ => Reason::Unreachable,
    }
}

/// A probe's TCP connection. It acknowledges the server's segments at once: a server with
/// Nagle on (Prosody's default) holds its next answer until its last segment (a TLS session
/// ticket, say) is acknowledged, and a delayed ACK would add ~40 ms to a step that takes well
/// under a millisecond. Linux leaves quick-ACK mode by itself once segments came, so it is set
/// again before the first read after data: not on every poll of a read that waits (a kept
/// watch session polls a waiting read every round, and each setting is a system call).
pub struct Tcp {
    stream: TcpStream,
    /// Whether quick-ACK mode was set since data last came.
    quick_ack_set: bool,
}

impl Tcp {
    fn new(stream: TcpStream) -> Tcp {
        Tcp {
            stream,
            quick_ack_set: false,
        }
    }
}

impl AsyncRead for Tcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        #[cfg(target_os = "linux")]
        if !self.quick_ack_set {
            let _ = socket2::SockRef::from(&self.stream).set_tcp_quickack(true);
            self.quick_ack_set = true;
        }
        let filled = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > filled {
            self.quick_ack_set = false;
        }
        polled
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
