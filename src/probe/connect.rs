//! Step `connect`: TCP to each address in turn until one accepts.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};

use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::{Failure, Reason};

/// Tries the addresses in order; each gets an equal share of the time left, so a black-holed
/// AAAA cannot eat the time of a working A. Reports the address that accepted.
pub async fn connect(
    addresses: &[IpAddr],
    port: u16,
    deadline: Instant,
) -> Result<(TcpStream, SocketAddr), Failure> {
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
                    return Ok((stream, addr));
                }
                Ok(Err(e)) => (classify(&e), e.to_string()),
                Err(_) => (Reason::Timeout, "no answer in time".to_owned()),
            };
        attempts.push(format!("{addr}: {detail}"));
        last_reason = reason;
    }
    Err(Failure::new(last_reason, attempts.join("; ")))
}

fn classify(error: &std::io::Error) -> Reason {
    match error.kind() {
        ErrorKind::ConnectionRefused => Reason::Refused,
        ErrorKind::TimedOut => Reason::Timeout,
        _ => Reason::Unreachable,
    }
}
