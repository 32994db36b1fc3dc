//! The client path of a probe cycle: the monitoring user logs in as a client would, through
//! the first server that lets it in (in SRV order), then pings every listed component.
//!
//! srv (`_xmpp-client._tcp`, `_xmpps-client._tcp` for direct TLS) → resolve → connect →
//! starttls → tls → cert → sasl → bind, then the pings, then a polite close.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::dns::srv;
use super::dns::Lookups;
use super::kdf::SaltedPasswords;
use super::scram::Derivation;
use super::steps::{reach, secure, timed, tls_name, Peer};
use super::tls::TlsClient;
use super::xmpp::XmppConn;
use super::{bind, ping, sasl, starttls};
use super::{Host, ServerReport, Step, WatchReport};
use crate::config::{ClientTlsMode, FanOut, ServerSource, Watch};

/// A logged-in session, over TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub type Session = XmppConn<Box<dyn Io>>;

/// The per-server steps of a login in this TLS mode.
pub fn expected_steps(mode: ClientTlsMode) -> Vec<Step> {
    let tls: &[Step] = match mode {
        ClientTlsMode::Starttls => &[Step::Starttls, Step::Tls, Step::Cert],
        ClientTlsMode::Direct => &[Step::Tls, Step::Cert],
        ClientTlsMode::None => &[],
    };
    [Step::Resolve, Step::Connect]
        .into_iter()
        .chain(tls.iter().copied())
        .chain([Step::Sasl, Step::Bind])
        .collect()
}

/// What a login needs that lives as long as the config: the resolver, the TLS client (`None`
/// only in mode `none`) and the SCRAM derivations already made.
pub struct Client<'a> {
    pub lookups: &'a Lookups,
    pub fan_out: FanOut,
    pub tls: Option<&'a TlsClient>,
    pub salted: &'a SaltedPasswords,
}

/// One login and its pings, all inside `deadline`.
pub async fn probe(client: &Client<'_>, watch: &Watch, deadline: Instant) -> WatchReport {
    let (mut report, session) = log_in(client, watch, deadline).await;
    if let Some(mut session) = session {
        report.pings = ping::ping_all(&mut session, &watch.components, 0, deadline).await;
        session.close(deadline).await;
    }
    report
}

/// A login through the first server (in SRV order) that lets the user in, inside
/// `deadline`: the report of the servers tried (no pings yet), and the session when one did.
pub async fn log_in(
    client: &Client<'_>,
    watch: &Watch,
    deadline: Instant,
) -> (WatchReport, Option<Session>) {
    let Client {
        lookups, fan_out, ..
    } = *client;
    let (srv, servers) = match &watch.servers {
        ServerSource::Static(server) => (None, vec![server.clone()]),
        ServerSource::Srv => {
            let service = watch.tls_mode.srv_service();
            let lookup = srv::lookup(lookups, service, &watch.jid.domain, fan_out.servers);
            let (record, answer) = timed(Step::Srv, deadline, lookup).await;
            (Some(record), answer.map(|a| a.servers).unwrap_or_default())
        }
    };
    let mut report = WatchReport {
        srv,
        servers: Vec::new(),
        untried: Vec::new(),
        pings: Vec::new(),
        expected_steps: expected_steps(watch.tls_mode),
    };
    let mut servers = servers.into_iter();
    let mut session = None;
    for server in servers.by_ref() {
        let mut server_report = ServerReport::new(server);
        session = login(&mut server_report, client, watch, deadline).await;
        report.servers.push(server_report);
        if session.is_some() {
            break;
        }
    }
    report.untried = servers.collect();
    (report, session)
}

/// Every step up to a bound resource; `None` when one failed (the report says which).
async fn login(
    report: &mut ServerReport,
    client: &Client<'_>,
    watch: &Watch,
    deadline: Instant,
) -> Option<Session> {
    // DANE is the component flow's (RFC 7673 for its SRV answer).
    let tcp = reach(report, client.lookups, client.fan_out, deadline).await?;
    let io: Box<dyn Io> = match (watch.tls_mode, client.tls) {
        (ClientTlsMode::None, _) | (_, None) => Box::new(tcp),
        (mode, Some(tls)) => {
            let tcp = match mode {
                ClientTlsMode::Starttls => {
                    let negotiation = starttls::negotiate(tcp, &watch.jid.domain);
                    report.run(Step::Starttls, deadline, negotiation).await?
                }
                _ => tcp,
            };
            // A client verifies the XMPP domain (RFC 6125), not the SRV target's name.
            let domain = Host::Name(watch.jid.domain.clone());
            let name = tls_name(watch.tls.server_name.as_ref(), &domain);
            let peer = Peer {
                domain: Some(&watch.jid.domain),
                await_client_verdict: false,
                name,
                fqdn_required: false,
            };
            Box::new(secure(report, tls, tcp, peer, deadline).await?.stream?)
        }
    };
    let mut conn = XmppConn::new(io);
    let encrypted = watch.tls_mode != ClientTlsMode::None;
    let server = report.server.endpoint.clone();
    let derivation = Derivation {
        cache: client.salted,
        server: &server,
        max_iterations: watch.max_scram_iterations,
        deadline,
    };
    let authentication = sasl::authenticate(
        &mut conn,
        &watch.jid,
        &watch.password,
        encrypted,
        derivation,
    );
    report.run(Step::Sasl, deadline, authentication).await?;
    let mut conn = conn.restart();
    let jid = report
        .run(
            Step::Bind,
            deadline,
            bind::bind(&mut conn, &watch.jid.domain),
        )
        .await?;
    // The bound full JID stands where a component stream's id does.
    report.stream_id = Some(super::printable(&jid));
    Some(conn)
}
