//! Step `resolve`: the server's FQDN to addresses (AAAA and A).

use std::net::IpAddr;

use hickory_resolver::proto::rr::RecordType;

use super::dns::Lookups;
use super::{dns, dnssec, Dnssec, Failure, Host, Reason};

/// What `resolve` found: the addresses to try, and what DNSSEC said of them.
pub struct Resolved {
    pub addresses: Vec<IpAddr>,
    pub dnssec: Option<Dnssec>,
}

/// An IP address needs no lookup; a name is looked up absolutely, AAAA first, and its first
/// `max_addresses` addresses are kept.
pub async fn lookup(
    lookups: &Lookups,
    host: &Host,
    max_addresses: usize,
) -> Result<Resolved, Failure> {
    let host = match host {
        Host::Ip(ip) => {
            return Ok(Resolved {
                addresses: vec![*ip],
                dnssec: None,
            })
        }
        Host::Name(name) => name,
    };
    let name = dns::absolute(host);
    let what = format!("A/AAAA {name}");
    let answer = match lookups.resolver.lookup_ip(name.as_str()).await {
        Ok(answer) => answer,
        // Both were asked; AAAA first, as `connect` tries them.
        Err(error) => {
            return Err(dns::failure(
                &error,
                &what,
                lookups,
                &name,
                &[RecordType::AAAA, RecordType::A],
            )
            .await)
        }
    };
    let types = [RecordType::A, RecordType::AAAA, RecordType::CNAME];
    let dnssec = lookups
        .validation
        .as_ref()
        .map(|_| dnssec::judge(answer.as_lookup().answers(), &types, &what))
        .transpose()?;
    let addresses: Vec<IpAddr> = answer.iter().take(max_addresses).collect();
    if addresses.is_empty() {
        return Err(Failure::new(
            Reason::NoRecords,
            format!("A/AAAA {name}: no addresses"),
        ));
    }
    Ok(Resolved { addresses, dnssec })
}
