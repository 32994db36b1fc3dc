//! Shared DNS helpers for the `srv` and `resolve` steps: the resolver and error mapping.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::TokioResolver;
use tokio::sync::OnceCell;

use crate::config::{DnsConfig, DsAnchor, TrustAnchors};
use crate::probe::{Failure, Reason};

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot set up the DNS resolver from the system configuration (/etc/resolv.conf); \
     set dns.nameservers in the config"
)]
pub struct ResolverSetupError(#[source] NetError);

/// How a target's lookups are made: the resolver, and for a target that validates (DNSSEC),
/// the DNS servers to ask why an answer is bogus.
#[derive(Clone)]
pub struct Lookups {
    resolver: Resolving,
    pub validation: Option<Arc<[SocketAddr]>>,
}

/// How long a failure to get the keys DS trust anchors name stands before it is tried again.
const RETRY_DS_AFTER: Duration = Duration::from_secs(10);

#[derive(Clone)]
enum Resolving {
    Ready(Box<TokioResolver>),
    /// Validating up to trust anchors of which some are DS records: the keys they name are
    /// asked of the DNS first, as soon as it answers.
    AnchoredByDs(Arc<DsAnchored>),
}

struct DsAnchored {
    resolver: OnceCell<TokioResolver>,
    /// The last attempt's failure, given to every lookup for a while rather than each trying
    /// in turn (and the later ones meeting their deadline instead of the reason).
    failed: Mutex<Option<(Instant, Failure)>>,
    config: DnsConfig,
    request_timeout: Duration,
    keys: Arc<hickory_resolver::proto::dnssec::TrustAnchors>,
    ds: Arc<[DsAnchor]>,
}

impl Lookups {
    /// The resolver; for DS trust anchors, built the first time their keys can be had (a
    /// lookup fails, and the next one tries again, while they cannot).
    pub async fn resolver(&self) -> Result<&TokioResolver, Failure> {
        match &self.resolver {
            Resolving::Ready(resolver) => Ok(resolver),
            Resolving::AnchoredByDs(anchored) => {
                if let Some(resolver) = anchored.resolver.get() {
                    return Ok(resolver);
                }
                if let Some((at, failure)) = &*anchored.failed.lock().expect("DS lock") {
                    if at.elapsed() < RETRY_DS_AFTER {
                        return Err(failure.clone());
                    }
                }
                let nameservers = self.validation.as_deref().unwrap_or_default();
                let built = anchored
                    .resolver
                    .get_or_try_init(|| anchored.build(nameservers))
                    .await;
                if let Err(failure) = &built {
                    *anchored.failed.lock().expect("DS lock") =
                        Some((Instant::now(), failure.clone()));
                }
                built
            }
        }
    }
}

impl DsAnchored {
    async fn build(&self, nameservers: &[SocketAddr]) -> Result<TokioResolver, Failure> {
        let mut keys = (*self.keys).clone();
        for anchor in self.ds.iter() {
            let key = super::dnssec::key_of(nameservers, anchor).await?;
            keys.insert_with_name(key.public_key(), anchor.owner.clone().into());
        }
        resolver(&self.config, self.request_timeout, Some(Arc::new(keys)))
            .map_err(|e| Failure::new(Reason::DnsError, e.to_string()))
    }
}

/// The resolvers of one config: plain, and validating when a target or module validates.
pub struct Resolvers {
    plain: TokioResolver,
    validating: Option<Lookups>,
}

impl Resolvers {
    pub fn new(
        config: &DnsConfig,
        request_timeout: Duration,
        validate: bool,
    ) -> Result<Resolvers, ResolverSetupError> {
        let plain = resolver(config, request_timeout, None)?;
        let validating = match validate {
            false => None,
            true => {
                let nameservers = match config.nameservers.is_empty() {
                    true => system_nameservers()?,
                    false => config.nameservers.clone(),
                };
                let resolver = match &config.trust_anchors {
                    TrustAnchors::IanaRoot => Resolving::Ready(Box::new(resolver(
                        config,
                        request_timeout,
                        Some(Arc::default()),
                    )?)),
                    TrustAnchors::File { keys, ds, .. } if ds.is_empty() => Resolving::Ready(
                        Box::new(resolver(config, request_timeout, Some(keys.clone()))?),
                    ),
                    TrustAnchors::File { keys, ds, .. } => {
                        Resolving::AnchoredByDs(Arc::new(DsAnchored {
                            resolver: OnceCell::new(),
                            failed: Mutex::default(),
                            config: config.clone(),
                            request_timeout,
                            keys: keys.clone(),
                            ds: ds.clone(),
                        }))
                    }
                };
                Some(Lookups {
                    resolver,
                    validation: Some(nameservers.into()),
                })
            }
        };
        Ok(Resolvers { plain, validating })
    }

    /// The lookups of a target that validates or not.
    pub fn lookups(&self, dnssec: bool) -> Lookups {
        match (&self.validating, dnssec) {
            (Some(validating), true) => validating.clone(),
            _ => Lookups {
                resolver: Resolving::Ready(Box::new(self.plain.clone())),
                validation: None,
            },
        }
    }
}

/// The DNS servers of /etc/resolv.conf, where a bogus answer's reason is asked.
fn system_nameservers() -> Result<Vec<SocketAddr>, ResolverSetupError> {
    let (config, _) = hickory_resolver::system_conf::read_system_conf()
        .map_err(|e| ResolverSetupError(NetError::from(e.to_string())))?;
    Ok(config
        .name_servers()
        .iter()
        .map(|server| {
            let port = server.connections.first().map_or(53, |c| c.port);
            SocketAddr::new(server.ip, port)
        })
        .collect())
}

/// A resolver that asks the network on every call (no cache), so each probe measures a real
/// lookup, and never reads /etc/hosts: a Callbridge resolves through its DNS servers, and a
/// hosts entry on the exporter's host would hide a name they cannot resolve. With `anchors`,
/// it validates every answer (DNSSEC) up to them.
fn resolver(
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

/// Maps a resolver error to a reason; `what` names the query in the detail. A bogus answer
/// (of `name`'s `types`) is explained by asking the DNS server why.
pub async fn failure(
    error: &NetError,
    what: &str,
    lookups: &Lookups,
    name: &str,
    types: &[RecordType],
) -> Failure {
    if let NetError::Dns(DnsError::DnssecBogus) = error {
        // Only a validating resolver says so, and its lookups know where to ask why.
        let nameservers = lookups.validation.as_deref().unwrap_or_default();
        let why = super::dnssec::explain(nameservers, name, types).await;
        return super::dnssec::bogus(what, &why);
    }
    plain_failure(error, what)
}

/// Maps a resolver error to a reason, without asking anything more.
fn plain_failure(error: &NetError, what: &str) -> Failure {
    // The resolver turns the exporter's EMFILE into "no connections available" or even "no
    // records": no answer can be trusted while the exporter cannot open a socket.
    if crate::probe::connect::out_of_sockets_now() {
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
        // A denial of existence that validation could not call secure: proven unsigned (NSEC3
        // with more iterations than hickory computes is taken as such, RFC 9276), or not
        // proven at all.
        NetError::Dns(DnsError::Nsec {
            response, proof, ..
        }) => match proof {
            Proof::Secure | Proof::Insecure
                if response.metadata.response_code == ResponseCode::NXDomain =>
            {
                Failure::new(
                    Reason::Nxdomain,
                    format!("{what}: the name does not exist (NXDOMAIN, DNSSEC {proof})"),
                )
            }
            Proof::Secure | Proof::Insecure => Failure::new(
                Reason::NoRecords,
                format!("{what}: the name exists but has no such records (DNSSEC {proof})"),
            ),
            _ => super::dnssec::bogus(
                what,
                &format!("the answer that there is no such record is {proof}"),
            ),
        },
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
