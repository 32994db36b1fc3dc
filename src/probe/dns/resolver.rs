//! How a hickory resolver is set up for the probe: asking the network on every call, never
//! /etc/hosts, validating up to given trust anchors where asked.

use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::TokioResolver;

use crate::config::DnsConfig;

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot set up the DNS resolver from the system configuration (/etc/resolv.conf); \
     set dns.nameservers in the config"
)]
pub struct ResolverSetupError(#[source] pub(super) NetError);

/// A resolver that asks the network on every call (no cache), so each probe measures a real
/// lookup, and never reads /etc/hosts: a Callbridge resolves through its DNS servers, and a
/// hosts entry on the exporter's host would hide a name they cannot resolve. With `anchors`,
/// it validates every answer (DNSSEC) up to them.
pub(super) fn resolver(
    config: &DnsConfig,
    request_timeout: Duration,
    anchors: Option<Arc<hickory_resolver::proto::dnssec::TrustAnchors>>,
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
    if let Some(anchors) = anchors {
        builder = builder.with_trust_anchor(anchors);
    }
    builder.build().map_err(ResolverSetupError)
}
