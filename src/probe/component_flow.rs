//! The component flow of a probe cycle, as a Callbridge registers: SRV (or the configured
//! server), then every server concurrently through resolve → connect → tls → cert → stream →
//! handshake, each step bounded by what is left of the target's deadline and timed.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio::time::{timeout_at, Instant};

use super::dns::{resolve, srv, Lookups};
use super::steps::{reach, secure, timed, tls_name, Peer, Presented, Secured};
use super::tls::TlsClient;
use super::xmpp::XmppConn;
use super::{
    handshake, legacy_tls, stream, Dnssec, DnssecState, Host, Server, ServerReport, Step,
    StepRecord,
};
use crate::config::{FanOut, Protocol, ServerSource, Target};

/// What the component flow of one target needs, built once per config load.
pub struct ComponentFlow {
    pub target: Arc<Target>,
    pub lookups: Lookups,
    /// How far one DNS answer may multiply this target's probe.
    pub fan_out: FanOut,
    /// `None` for plaintext; shared by every target with the same TLS settings.
    pub tls: Option<TlsClient>,
}

impl ComponentFlow {
    /// The per-server steps this target runs: TLS mode and `handshake` decide.
    pub fn expected_steps(&self) -> Vec<Step> {
        let tls = self.tls.is_some();
        let xmpp = self.target.protocol == Protocol::XmppComponent;
        let handshake = self.target.handshake();
        Step::COMPONENT
            .into_iter()
            .filter(|step| match step {
                Step::Srv => false,
                Step::Tls | Step::Cert => tls,
                Step::ClientCert => tls && !xmpp,
                Step::Stream => xmpp,
                Step::Handshake => handshake,
                _ => true,
            })
            .collect()
    }

    /// The SRV step (if any) and what DNSSEC said of its answer, how many servers of its
    /// answer were left out, and every server's report, in RFC 2782 order.
    pub async fn run(self: &Arc<Self>, deadline: Instant) -> ComponentRun {
        let probe = self;
        let (srv, answer) = match &probe.target.servers {
            ServerSource::Static(server) => (
                None,
                srv::SrvAnswer {
                    servers: vec![server.clone()],
                    skipped: 0,
                    dnssec: None,
                },
            ),
            ServerSource::Srv => {
                let (record, answer) = timed(
                    Step::Srv,
                    deadline,
                    srv::lookup(
                        &probe.lookups,
                        srv::COMPONENT_SERVICE,
                        &probe.target.domain,
                        probe.fan_out.servers,
                    ),
                )
                .await;
                let answer = answer.unwrap_or_else(|| srv::SrvAnswer {
                    dnssec: record.bogus(),
                    ..srv::SrvAnswer::default()
                });
                (Some(record), answer)
            }
        };
        let srv_dnssec = answer.dnssec;
        // RFC 7673: the servers of a secure SRV answer have their TLSA records looked up.
        let dane = srv_dnssec.is_some_and(|d| d.state == DnssecState::Secure);
        let servers = answer.servers;

        // Servers are probed concurrently: a dead one never delays another.
        let mut tasks = JoinSet::new();
        for (index, server) in servers.into_iter().enumerate() {
            let probe = probe.clone();
            tasks.spawn(async move { (index, probe_server(&probe, server, dane, deadline).await) });
        }
        let mut reports = Vec::with_capacity(tasks.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(report) => reports.push(report),
                Err(error) => {
                    tracing::error!(target = %probe.target.name, %error, "a server probe task failed")
                }
            }
        }
        reports.sort_by_key(|(index, _)| *index);
        let servers = reports.into_iter().map(|(_, report)| report).collect();
        ComponentRun {
            srv,
            srv_dnssec,
            srv_skipped: answer.skipped,
            servers,
        }
    }
}

/// What the component flow of one cycle found.
pub struct ComponentRun {
    pub srv: Option<StepRecord>,
    pub srv_dnssec: Option<Dnssec>,
    pub srv_skipped: usize,
    pub servers: Vec<ServerReport>,
}

async fn probe_server(
    probe: &ComponentFlow,
    server: Server,
    dane: bool,
    deadline: Instant,
) -> ServerReport {
    let mut report = ServerReport::new(server.clone());
    // RFC 7673: the server's TLSA records, asked beside its registration (a Callbridge asks
    // none, so their answer, or its absence, never holds a step up), by the deadline.
    let tlsa = async {
        match (dane, server.host()) {
            (true, Host::Name(host)) => {
                resolve::tlsa(&probe.lookups, server.port(), host, deadline).await
            }
            _ => None,
        }
    };
    let (presented, tlsa) = tokio::join!(register(probe, &mut report, &server, deadline), tlsa);
    report.tlsa = tlsa;
    report.dane = match (presented, report.dane_answer()) {
        (Some(presented), Some(tlsa)) => Some(presented.judge(tlsa)),
        _ => None,
    };
    report
}

/// The server's registration: reached, secured, conversed; what its handshake presented.
async fn register(
    probe: &ComponentFlow,
    report: &mut ServerReport,
    server: &Server,
    deadline: Instant,
) -> Option<Presented> {
    let tcp = reach(report, &probe.lookups, probe.fan_out, deadline).await?;
    let Some(tls) = &probe.tls else {
        converse(probe, report, tcp, deadline).await;
        return None;
    };
    let name = tls_name(probe.target.tls.server_name.as_ref(), server.host());
    let xmpp = probe.target.protocol == Protocol::XmppComponent;
    let peer = Peer {
        domain: Some(probe.target.domain.as_str()).filter(|domain| !domain.is_empty()),
        name,
        fqdn_required: true,
        await_client_verdict: !xmpp,
    };
    let sni = match &peer.name {
        Ok(ServerName::DnsName(dns)) => Some(dns.as_ref().to_owned()),
        _ => None,
    };
    let secured = secure(report, tls, tcp, peer, deadline).await;
    let presented = match secured {
        Some(Secured {
            stream: Some(mut stream),
            presented,
        }) => {
            if xmpp {
                converse(probe, report, &mut stream, deadline).await;
            } else {
                // The TLS link is all a tls target checks: close it as politely as XMPP.
                let _ = timeout_at(deadline, stream.shutdown()).await;
            }
            Some(presented)
        }
        Some(Secured { presented, .. }) => Some(presented),
        None => None,
    };
    // After the Callbridge's own connection has closed (some servers serve one at a time),
    // within what is left of the deadline.
    if let Some(address) = report.address.filter(|_| probe.target.check_legacy_tls) {
        report.legacy_tls = Some(legacy_tls::check(address, sni.as_deref(), deadline).await);
    }
    presented
}

/// The XMPP part: stream header, handshake, then a polite close.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    probe: &ComponentFlow,
    report: &mut ServerReport,
    io: S,
    deadline: Instant,
) {
    let mut conn = XmppConn::new(io);
    let Some(id) = report
        .run(
            Step::Stream,
            deadline,
            stream::open(&mut conn, &probe.target.component),
        )
        .await
    else {
        return;
    };
    report.stream_id = Some(super::printable(&id));
    if let Some(secret) = &probe.target.secret {
        let authenticated = report
            .run(
                Step::Handshake,
                deadline,
                handshake::authenticate(&mut conn, &id, secret),
            )
            .await;
        if authenticated.is_none() {
            return;
        }
    }
    conn.close(deadline).await;
}
