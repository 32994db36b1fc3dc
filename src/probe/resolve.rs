//! Step `resolve`: the server's FQDN to addresses (AAAA and A).

use std::net::IpAddr;

use hickory_resolver::TokioResolver;

use super::{dns, Failure, Host, Reason};

/// An IP address needs no lookup; a name is looked up absolutely, AAAA first, and its first
/// `max_addresses` addresses are kept.
pub async fn lookup(
    resolver: &TokioResolver,
    host: &Host,
    max_addresses: usize,
) -> Result<Vec<IpAddr>, Failure> {
    let host = match host {
        Host::Ip(ip) => return Ok(vec![*ip]),
        Host::Name(name) => name,
    };
    let name = dns::absolute(host);
    let answer = resolver
        .lookup_ip(name.as_str())
        .await
        .map_err(|e| dns::failure(&e, &format!("A/AAAA {name}")))?;
    let addresses: Vec<IpAddr> = answer.iter().take(max_addresses).collect();
    if addresses.is_empty() {
        return Err(Failure::new(
            Reason::NoRecords,
            format!("A/AAAA {name}: no addresses"),
        ));
    }
    Ok(addresses)
}
