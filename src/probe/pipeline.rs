//! Runs the steps in order for one target: SRV (or the configured server), then every server
//! concurrently through resolve → connect → tls → cert → stream → handshake, each step bounded
//! by what is left of the target's deadline and timed.

use std::sync::Arc;
use std::time::SystemTime;

use hickory_resolver::TokioResolver;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::kdf::SaltedPasswords;
use super::steps::{reach, secure, timed, Peer};
use super::tls::TlsClient;
use super::xmpp::XmppConn;
use super::{
    handshake, legacy_tls, srv, stream, watch, Failure, Reason, Server, ServerReport, Step,
    StepRecord, Subject, TargetReport,
};
use crate::config::{FanOut, ServerSource, Target};

/// A target with what probing it needs, built once per config load.
pub struct TargetProbe {
    pub target: Arc<Target>,
    /// Who its reports are about.
    pub subject: Arc<Subject>,
    resolver: TokioResolver,
    /// How far one DNS answer may multiply this target's probe.
    fan_out: FanOut,
    /// `None` for plaintext; shared by every target with the same TLS settings.
    tls: Option<TlsClient>,
    /// The client path's TLS client, when the target watches components over TLS.
    watch_tls: Option<TlsClient>,
    /// The watch's SCRAM derivations, kept for the life of this config.
    salted: SaltedPasswords,
    /// Held while a probe runs. Shared by every target with the same component name: an XMPP
    /// server must never see the name twice at once, or it answers `conflict`.
    exclusive: Arc<tokio::sync::Mutex<()>>,
    /// Shared by every target: bounds the probes (sockets, handshakes) running at once.
    slots: Arc<Semaphore>,
}

impl TargetProbe {
    pub fn new(
        target: Arc<Target>,
        resolver: TokioResolver,
        fan_out: FanOut,
        tls: Option<TlsClient>,
        watch_tls: Option<TlsClient>,
        exclusive: Arc<tokio::sync::Mutex<()>>,
        slots: Arc<Semaphore>,
    ) -> TargetProbe {
        TargetProbe {
            subject: Arc::new(Subject::of(&target)),
            target,
            resolver,
            fan_out,
            tls,
            watch_tls,
            salted: SaltedPasswords::default(),
            exclusive,
            slots,
        }
    }

    /// One probe cycle, waiting for any other run under this component name to finish first,
    /// then for a free slot; the deadline starts once it runs.
    pub async fn run_exclusive(self: &Arc<Self>) -> TargetReport {
        let _running = self.exclusive.lock().await;
        // The semaphore is never closed, so acquiring only fails in theory.
        let _slot = self.slots.acquire().await;
        probe_target(self.clone()).await
    }

    #[cfg(test)]
    pub fn tls(&self) -> Option<&TlsClient> {
        self.tls.as_ref()
    }

    /// The per-server steps this target runs: TLS mode and `handshake` decide.
    pub fn expected_steps(&self) -> Vec<Step> {
        let tls = self.tls.is_some();
        let handshake = self.target.handshake();
        Step::COMPONENT
            .into_iter()
            .filter(|step| match step {
                Step::Srv => false,
                Step::Tls | Step::Cert => tls,
                Step::Handshake => handshake,
                _ => true,
            })
            .collect()
    }
}

/// One probe cycle of one target: the component flow and, when configured, the client path,
/// side by side inside one deadline.
pub async fn probe_target(probe: Arc<TargetProbe>) -> TargetReport {
    let started = SystemTime::now();
    let clock = Instant::now();
    let deadline = clock + probe.target.timeout;
    let client_path = async {
        let watch = probe.target.watch.as_ref()?;
        let client = watch::Client {
            resolver: &probe.resolver,
            fan_out: probe.fan_out,
            tls: probe.watch_tls.as_ref(),
            salted: &probe.salted,
        };
        Some(watch::probe(&client, watch, deadline).await)
    };
    let ((srv, srv_skipped, servers), watch) =
        tokio::join!(components(&probe, deadline), client_path);
    TargetReport {
        subject: probe.subject.clone(),
        started,
        duration: clock.elapsed(),
        srv,
        srv_skipped,
        servers,
        expected_steps: probe.expected_steps(),
        watch,
    }
}

/// The component flow: the SRV step (if any), how many servers of its answer were left out,
/// and every server's report, in RFC 2782 order.
async fn components(
    probe: &Arc<TargetProbe>,
    deadline: Instant,
) -> (Option<StepRecord>, usize, Vec<ServerReport>) {
    let (srv, answer) = match &probe.target.servers {
        ServerSource::Static(server) => (
            None,
            srv::SrvAnswer {
                servers: vec![server.clone()],
                skipped: 0,
            },
        ),
        ServerSource::Srv => {
            let (record, servers) = timed(
                Step::Srv,
                deadline,
                srv::lookup(
                    &probe.resolver,
                    srv::COMPONENT_SERVICE,
                    &probe.target.domain,
                    probe.fan_out.servers,
                ),
            )
            .await;
            (Some(record), servers.unwrap_or_default())
        }
    };
    let servers = answer.servers;

    // Servers are probed concurrently: a dead one never delays another.
    let mut tasks = JoinSet::new();
    for (index, server) in servers.into_iter().enumerate() {
        let probe = probe.clone();
        tasks.spawn(async move { (index, probe_server(&probe, server, deadline).await) });
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
    let reports = reports.into_iter().map(|(_, report)| report).collect();
    (srv, answer.skipped, reports)
}

async fn probe_server(probe: &TargetProbe, server: Server, deadline: Instant) -> ServerReport {
    let mut report = ServerReport::new(server.clone());
    let Some(tcp) = reach(&mut report, &probe.resolver, probe.fan_out, deadline).await else {
        return report;
    };
    let Some(tls) = &probe.tls else {
        converse(probe, &mut report, tcp, deadline).await;
        return report;
    };
    let name = match &probe.target.tls.server_name {
        Some(name) => Ok(name.clone()),
        None => server.host().server_name().map_err(|e| {
            let detail = format!("{} cannot be a TLS server name: {e}", server.host());
            Failure::new(Reason::TlsHandshake, detail)
        }),
    };
    let peer = Peer {
        domain: &probe.target.domain,
        name,
        fqdn_required: true,
    };
    let sni = match &peer.name {
        Ok(ServerName::DnsName(dns)) => Some(dns.as_ref().to_owned()),
        _ => None,
    };
    if let Some(stream) = secure(&mut report, tls, tcp, peer, deadline).await {
        converse(probe, &mut report, stream, deadline).await;
    }
    // After the Callbridge's own connection has closed (some servers serve one at a time),
    // within what is left of the deadline.
    if let Some(address) = report.address.filter(|_| probe.target.check_legacy_tls) {
        report.legacy_tls = Some(legacy_tls::check(address, sni.as_deref(), deadline).await);
    }
    report
}

/// The XMPP part: stream header, handshake, then a polite close.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    probe: &TargetProbe,
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
