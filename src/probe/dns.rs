//! Shared DNS helpers for the `srv` and `resolve` steps: the resolver and error mapping.

use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::TokioResolver;

use super::{Failure, Reason};
use crate::config::DnsConfig;

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot set up the DNS resolver from the system configuration (/etc/resolv.conf); \
     set dns.nameservers in the config"
)]
pub struct ResolverSetupError(#[source] NetError);

/// A resolver that asks the network on every call (no cache), so each probe measures a real
/// lookup, and never reads /etc/hosts: a Callbridge resolves through its DNS servers, and a
/// hosts entry on the exporter's host would hide a name they cannot resolve.
pub fn resolver(
    config: &DnsConfig,
    request_timeout: Duration,
) -> Result<TokioResolver, ResolverSetupError> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = if config.nameservers.is_empty() {
        TokioResolver::builder(provider).map_err(ResolverSetupError)?
    } else {
        let servers = config
            .nameservers
            .iter()
            .map(|addr| {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                server
            })
            .collect();
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
    };
    let options: &mut ResolverOpts = builder.options_mut();
    options.cache_size = 0;
    options.use_hosts_file = ResolveHosts::Never;
    options.timeout = request_timeout;
    options.attempts = 1;
    // AAAA first, like a dual-stack client; `connect` falls back to A when AAAA is dead.
    options.ip_strategy = hickory_resolver::config::LookupIpStrategy::Ipv6AndIpv4;
    builder.build().map_err(ResolverSetupError)
}

/// Maps a resolver error to a reason; `what` names the query in the detail.
pub fn failure(error: &NetError, what: &str) -> Failure {
    // The resolver turns the exporter's EMFILE into "no connections available" or even "no
    // records": no answer can be trusted while the exporter cannot open a socket.
    if super::connect::out_of_sockets_now() {
        return Failure::new(
            Reason::LocalResources,
            format!("{what}: failed while the exporter is out of file descriptors ({error})"),
        );
    }
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no))
            if no.response_code == ResponseCode::NXDomain =>
        {
            Failure::new(
                Reason::Nxdomain,
                format!("{what}: the name does not exist (NXDOMAIN)"),
            )
        }
        NetError::Dns(DnsError::NoRecordsFound(_)) => Failure::new(
            Reason::NoRecords,
            format!("{what}: the name exists but has no such records"),
        ),
        NetError::Dns(DnsError::ResponseCode(ResponseCode::ServFail)) => Failure::new(
            Reason::Servfail,
            format!("{what}: the DNS server answered SERVFAIL"),
        ),
        NetError::Timeout => {
            Failure::new(Reason::DnsTimeout, format!("{what}: no DNS answer in time"))
        }
        other => Failure::new(Reason::DnsError, format!("{what}: {other}")),
    }
}

/// The absolute form of a name, so that search domains never apply.
pub fn absolute(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}
