//! Step `srv`: `_xmpp-component._tcp.<domain>`, as a Callbridge with an empty Server Address
//! (and, on the client path, `_xmpp-client._tcp` or `_xmpps-client._tcp`).

use hickory_resolver::proto::rr::{RData, RecordType};

use super::dnssec::{self, Dnssec};
use super::lookups::{self, Lookups};
use crate::config::normalise_host;
use crate::probe::{Failure, Host, Origin, Reason, Server};

/// The SRV service a Callbridge looks up.
pub const COMPONENT_SERVICE: &str = "_xmpp-component._tcp";

/// The servers to probe, and how many more the answer held.
#[derive(Debug, Default)]
pub struct SrvAnswer {
    pub servers: Vec<Server>,
    pub skipped: usize,
    /// What DNSSEC said of the answer, when the target validates.
    pub dnssec: Option<Dnssec>,
}

/// The first `max_servers` servers of the SRV answer in RFC 2782 order (priority, then heavier
/// weight first); the lowest-priority group is marked preferred. A lone "." target means
/// "decidedly not offered".
pub async fn lookup(
    lookups: &Lookups,
    service: &str,
    domain: &str,
    max_servers: usize,
) -> Result<SrvAnswer, Failure> {
    let name = lookups::absolute(&format!("{service}.{domain}"));
    let what = format!("SRV {name}");
    let answer = match lookups.lookup(&name, RecordType::SRV).await? {
        Ok(answer) => answer,
        Err(error) => {
            return Err(lookups::failure(&error, &what, lookups, &name, &[RecordType::SRV]).await)
        }
    };
    let dnssec = lookups
        .validation
        .as_ref()
        .map(|_| dnssec::judge(answer.answers(), &[RecordType::SRV], &what))
        .transpose()?;
    let mut records: Vec<_> = answer
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some(srv.clone()),
            _ => None,
        })
        .collect();
    if records.is_empty() {
        return Err(Failure::new(
            Reason::NoRecords,
            format!("SRV {name}: no SRV records"),
        ));
    }
    if records.iter().any(|r| r.target.is_root()) {
        return Err(Failure::new(
            Reason::SrvUnavailable,
            format!("SRV {name}: target \".\", the service is decidedly not available"),
        ));
    }
    records.sort_by_key(|r| (r.priority, std::cmp::Reverse(r.weight)));
    let first_priority = records[0].priority;
    let mut servers: Vec<Server> = Vec::with_capacity(records.len());
    for record in records {
        let server = Server::new(
            Host::parse(&normalise_host(&record.target.to_ascii())),
            record.port,
            Origin::Srv {
                priority: record.priority,
                weight: record.weight,
                preferred: record.priority == first_priority,
            },
        );
        // One label per host:port: a duplicated record would otherwise collide in metrics.
        if !servers.iter().any(|s| s.endpoint == server.endpoint) {
            servers.push(server);
        }
    }
    let skipped = servers.len().saturating_sub(max_servers);
    servers.truncate(max_servers);
    Ok(SrvAnswer {
        servers,
        skipped,
        dnssec,
    })
}
