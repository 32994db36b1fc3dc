//! Step `resolve`: the server's FQDN to addresses (AAAA and A); and, apart from the step, the
//! TLSA records of a server of a secure SRV answer (DANE, RFC 7673), which a Callbridge never
//! asks for: whatever that lookup meets, it is no part of registering.

use std::net::IpAddr;

use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{RData, RecordType};
use tokio::time::{timeout_at, Instant};

use super::dane::{TlsaAnswer, TlsaRecord};
use super::dnssec::{self, Dnssec};
use super::lookups::{self, Lookups};
use crate::probe::{Failure, Host, Reason};

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
    let (addresses, dnssec) = addresses(lookups, host, max_addresses).await?;
    Ok(Resolved { addresses, dnssec })
}

/// AAAA and A, asked side by side. Either bogus fails the step (a validating resolver
/// answers SERVFAIL: no forged address is ever connected to); one answer is enough otherwise,
/// and with none the more telling error is reported (a timeout before "no records").
async fn addresses(
    lookups: &Lookups,
    host: &str,
    max_addresses: usize,
) -> Result<(Vec<IpAddr>, Option<Dnssec>), Failure> {
    let name = lookups::absolute(host);
    let what = format!("A/AAAA {name}");
    // Each error read as soon as it comes: whether the exporter itself was out of sockets is
    // only true at the time.
    let ask = |rtype: RecordType| {
        let name = &name;
        async move {
            match lookups.lookup(name, rtype).await? {
                Ok(answer) => Ok(answer),
                Err(error) => {
                    let what = format!("{rtype} {name}");
                    Err(lookups::failure(&error, &what, lookups, name, &[rtype]).await)
                }
            }
        }
    };
    let (aaaa, a) = tokio::join!(ask(RecordType::AAAA), ask(RecordType::A));
    let answers = [aaaa, a];
    let found: Vec<&Lookup> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
    let failures = || answers.iter().filter_map(|a| a.as_ref().err());
    let bogus = failures().find(|f| f.reason == Reason::DnssecBogus);
    let failed = bogus.or_else(|| match found.is_empty() {
        true => failures()
            .find(|f| !matches!(f.reason, Reason::NoRecords | Reason::Nxdomain))
            .or_else(|| failures().next_back()),
        false => None,
    });
    if let Some(failure) = failed {
        return Err(failure.clone());
    }
    let types = [RecordType::A, RecordType::AAAA, RecordType::CNAME];
    let dnssec = match lookups.validation {
        Some(_) => found
            .iter()
            .map(|answer| dnssec::judge(answer.answers(), &types, &what))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .reduce(Dnssec::worse),
        None => None,
    };
    // AAAA first, as `connect` tries them.
    let addresses: Vec<IpAddr> = found
        .iter()
        .flat_map(|answer| answer.answers())
        .filter_map(|record| match &record.data {
            RData::AAAA(ip) => Some(IpAddr::V6(ip.0)),
            RData::A(ip) => Some(IpAddr::V4(ip.0)),
            _ => None,
        })
        .take(max_addresses)
        .collect();
    if addresses.is_empty() {
        return Err(Failure::new(
            Reason::NoRecords,
            format!("A/AAAA {name}: no addresses"),
        ));
    }
    Ok((addresses, dnssec))
}

/// The TLSA records of `_<port>._tcp.<host>` by `deadline`: `None` where there are none, the
/// failure (no answer in time, a bogus answer, SERVFAIL, …) where they could not be had. Only
/// asked after a secure SRV answer, so always of a validating resolver.
pub async fn tlsa(
    lookups: &Lookups,
    port: u16,
    host: &str,
    deadline: Instant,
) -> Option<Result<TlsaAnswer, Failure>> {
    let name = lookups::absolute(&format!("_{port}._tcp.{host}"));
    let what = format!("TLSA {name}");
    match timeout_at(deadline, tlsa_answer(lookups, name, &what)).await {
        Ok(answer) => answer,
        Err(_) => {
            let detail = format!("{what}: no answer before the probe's deadline");
            Some(Err(Failure::new(Reason::DnsTimeout, detail)))
        }
    }
}

async fn tlsa_answer(
    lookups: &Lookups,
    name: String,
    what: &str,
) -> Option<Result<TlsaAnswer, Failure>> {
    let answer = match lookups.lookup(&name, RecordType::TLSA).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(NetError::Dns(DnsError::NoRecordsFound(_)))) => return None,
        Err(failure) => return Some(Err(failure)),
        Ok(Err(error)) => {
            let types = [RecordType::TLSA];
            return Some(Err(
                lookups::failure(&error, what, lookups, &name, &types).await
            ));
        }
    };
    let records: Vec<TlsaRecord> = answer
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::TLSA(tlsa) => Some(TlsaRecord::from(tlsa)),
            _ => None,
        })
        .collect();
    if records.is_empty() {
        return None;
    }
    Some(
        dnssec::judge(answer.answers(), &[RecordType::TLSA], what).map(|dnssec| TlsaAnswer {
            name,
            dnssec,
            records,
        }),
    )
}
