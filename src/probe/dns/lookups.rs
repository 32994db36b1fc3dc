//! Shared DNS helpers for the `srv` and `resolve` steps: the resolver and error mapping.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::rdata::DNSKEY;
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RecordType};
use hickory_resolver::TokioResolver;

use super::anchors::{self, Island, Primed};

use crate::config::DnsConfig;
use crate::probe::{Failure, Reason};

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot set up the DNS resolver from the system configuration (/etc/resolv.conf); \
     set dns.nameservers in the config"
)]
pub struct ResolverSetupError(#[source] NetError);

/// How a target's lookups are made: the resolver, and for a target that validates (DNSSEC),
/// the DNS servers its trust anchors' keys and a bogus answer's reason are asked of.
#[derive(Clone)]
pub struct Lookups {
    resolver: Resolving,
    pub validation: Option<Arc<[SocketAddr]>>,
}

#[derive(Clone)]
enum Resolving {
    Plain(Box<TokioResolver>),
    Validating(Arc<Validating>),
}

/// A validating resolver, rebuilt whenever the keys its trust anchors prove change.
struct Validating {
    config: DnsConfig,
    request_timeout: Duration,
    islands: Vec<Island>,
    state: tokio::sync::Mutex<ValidatingState>,
}

struct ValidatingState {
    resolver: TokioResolver,
    /// What priming found of each island (as `islands`), `None` before it was tried.
    primed: Vec<Option<Primed>>,
}

impl Lookups {
    /// `name`'s records of `rtype` (`name` absolute). The outer error: the lookup could not be
    /// made (its zone's trust anchor proves no key); the inner result: the answer or the
    /// resolver's error. An answer bogus in an island of trust is asked once more when the
    /// island's keys, read again, changed (a key rollover the last priming did not see).
    pub async fn lookup(
        &self,
        name: &str,
        rtype: RecordType,
    ) -> Result<Result<Lookup, NetError>, Failure> {
        let validating = match &self.resolver {
            Resolving::Plain(resolver) => return Ok(resolver.lookup(name, rtype).await),
            Resolving::Validating(validating) => validating,
        };
        let nameservers = self.validation.as_deref().unwrap_or_default();
        let owner = Name::from_ascii(name)
            .map_err(|e| Failure::new(Reason::DnsError, format!("{rtype} {name}: {e}")))?;
        let (resolver, _) = validating.resolver(nameservers, &owner, false).await?;
        let answer = resolver.lookup(name, rtype).await;
        if !matches!(answer, Err(NetError::Dns(DnsError::DnssecBogus))) {
            return Ok(answer);
        }
        match validating.resolver(nameservers, &owner, true).await? {
            (resolver, true) => Ok(resolver.lookup(name, rtype).await),
            (_, false) => Ok(answer),
        }
    }
}

impl Validating {
    /// The resolver, with every island whose keys are due (never primed, or past their TTL or
    /// signature) primed first, and `name`'s island too when `again`; fails when `name`'s
    /// island proved no key. Also says whether `name`'s island's keys changed.
    async fn resolver(
        &self,
        nameservers: &[SocketAddr],
        name: &Name,
        again: bool,
    ) -> Result<(TokioResolver, bool), Failure> {
        let mut state = self.state.lock().await;
        let own = self.islands.iter().position(|i| i.owner.zone_of(name));
        let now = Instant::now();
        let (mut rebuild, mut changed) = (false, false);
        for (i, island) in self.islands.iter().enumerate() {
            let due = state.primed[i].as_ref().is_none_or(|p| now >= p.until());
            let asked_again = again && own == Some(i);
            if !due && !asked_again {
                continue;
            }
            let primed = anchors::prime(nameservers, island, self.request_timeout).await;
            if keys(Some(&primed)) != keys(state.primed[i].as_ref()) {
                rebuild = true;
                changed |= own == Some(i);
            }
            state.primed[i] = Some(primed);
        }
        if rebuild {
            let mut anchors = hickory_resolver::proto::dnssec::TrustAnchors::default();
            for (island, primed) in self.islands.iter().zip(&state.primed) {
                for key in keys(primed.as_ref()) {
                    anchors.insert_with_name(key.public_key(), island.owner.clone().into());
                }
            }
            state.resolver = resolver(&self.config, self.request_timeout, Some(Arc::new(anchors)))
                .map_err(|e| Failure::new(Reason::DnsError, e.to_string()))?;
        }
        if let Some(Some(Primed::Failed { failure, .. })) = own.map(|i| &state.primed[i]) {
            return Err(failure.clone());
        }
        Ok((state.resolver.clone(), changed))
    }
}

/// The keys an island's priming proved.
fn keys(primed: Option<&Primed>) -> &[DNSKEY] {
    match primed {
        Some(Primed::Trusted { keys, .. }) => keys,
        _ => &[],
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
                let islands = anchors::islands(config.trust_anchors.file_anchors());
                let resolver = Resolving::Validating(Arc::new(Validating {
                    config: config.clone(),
                    request_timeout,
                    state: tokio::sync::Mutex::new(ValidatingState {
                        resolver: resolver(config, request_timeout, Some(Arc::default()))?,
                        primed: vec![None; islands.len()],
                    }),
                    islands,
                }));
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
                resolver: Resolving::Plain(Box::new(self.plain.clone())),
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
