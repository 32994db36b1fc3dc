//! The lookups of the `srv` and `resolve` steps — plain, or validating (`validating`) — and
//! how a resolver's errors read as reasons.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::TokioResolver;

use super::resolver::{resolver, ResolverSetupError};
use super::validating::Validating;
use crate::config::DnsConfig;
use crate::probe::{Failure, Reason};

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

impl Lookups {
    /// `name`'s records of `rtype` (`name` absolute). The outer error: the lookup could not be
    /// made (its zone's trust anchor proves no key, or its zone's key set is KeyTrap-shaped);
    /// the inner result: the answer or the resolver's error. An answer bogus in an island of
    /// trust is asked once more when the island's keys, read again, changed (a key rollover
    /// the last priming did not see).
    pub async fn lookup(
        &self,
        name: &str,
        rtype: RecordType,
    ) -> Result<Result<Lookup, NetError>, Failure> {
        let validating = match &self.resolver {
            Resolving::Plain(resolver) => return Ok(resolver.lookup(name, rtype).await),
            Resolving::Validating(validating) => validating,
        };
        let nameservers = self.validation.clone().unwrap_or_default();
        validating.lookup(nameservers, name, rtype).await
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
                let resolver =
                    Resolving::Validating(Arc::new(Validating::new(config, request_timeout)?));
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
