//! The reports: who they are about, what one server's probe found, one target's cycle
//! (component flow and watch), and how they serialize for `probe --output json` and the
//! debug page.

use super::*;
use crate::address::{ClientTlsMode, Jid, Protocol, TlsMode};
use crate::config::{ServerSource, Target};

/// Who a report is about, as every view names it: the target's identity and schedule, taken
/// from its config once, so that no view reads the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub name: String,
    pub protocol: Protocol,
    /// Empty only for a `protocol: tls` target that names no domain.
    pub domain: String,
    /// Empty for a `protocol: tls` target.
    pub component: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Run only when a request asks (`/probe?module=`): Prometheus sets its pace.
    pub requested: bool,
    /// The configured server; `None` when the servers come from the SRV answer.
    pub server: Option<Server>,
    pub tls_mode: TlsMode,
    /// When the configured client certificate (mutual TLS) expires (Unix time).
    pub client_cert_not_after: Option<i64>,
    pub watch: Option<WatchSubject>,
}

/// Who logs in on the client path, how, and which components it pings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSubject {
    pub jid: Jid,
    pub tls_mode: ClientTlsMode,
    /// The components' JIDs, in the config's order.
    pub components: Vec<String>,
}

impl Subject {
    pub fn of(target: &Target) -> Subject {
        Subject {
            name: target.name.clone(),
            protocol: target.protocol,
            domain: target.domain.clone(),
            component: target.component.clone(),
            interval: target.interval,
            timeout: target.timeout,
            requested: target.requested,
            server: match &target.servers {
                ServerSource::Srv => None,
                ServerSource::Static(server) => Some(server.clone()),
            },
            tls_mode: target.tls_mode,
            client_cert_not_after: target
                .tls
                .client_auth
                .as_ref()
                .filter(|_| target.tls_mode == TlsMode::Direct)
                .map(|identity| identity.not_after),
            watch: target.watch.as_ref().map(|watch| WatchSubject {
                jid: watch.jid.clone(),
                tls_mode: watch.tls_mode,
                components: watch.components.clone(),
            }),
        }
    }
}

/// Everything one server's probe found.
#[derive(Clone, Debug)]
pub struct ServerReport {
    pub server: Server,
    /// The steps that ran, in order; the last one failed if any did.
    pub steps: Vec<StepRecord>,
    /// What `resolve` found, in the order `connect` tried them.
    pub addresses: Vec<IpAddr>,
    /// What DNSSEC said of them, when the target validates.
    pub dnssec: Option<Dnssec>,
    /// Its TLSA records, for a server of a secure SRV answer that has them, or why they could
    /// not be had.
    pub tlsa: Option<Result<TlsaAnswer, Failure>>,
    /// How those records judged the chain it sent (DANE), when they and its addresses are
    /// secure.
    pub dane: Option<DaneFacts>,
    /// The address that accepted the TCP connection.
    pub address: Option<SocketAddr>,
    pub tls: Option<TlsFacts>,
    /// Shared with what the store remembers of the server.
    pub cert: Option<Arc<CertFacts>>,
    /// What showed a TLS link's server's verdict on the client certificate, when it kept the
    /// connection.
    pub client_cert: Option<ClientCertVerdict>,
    pub stream_id: Option<String>,
    /// What a TLS 1.1 hello met, when `tls.check_legacy_versions` asked.
    pub legacy_tls: Option<LegacyTls>,
}

impl ServerReport {
    /// A server about to be probed: nothing found yet.
    pub(crate) fn new(server: Server) -> Self {
        ServerReport {
            server,
            steps: Vec::new(),
            addresses: Vec::new(),
            dnssec: None,
            tlsa: None,
            dane: None,
            address: None,
            tls: None,
            cert: None,
            client_cert: None,
            stream_id: None,
            legacy_tls: None,
        }
    }

    /// The failing step and its failure, if any step failed.
    pub fn failure(&self) -> Option<(Step, &Failure)> {
        self.steps
            .iter()
            .find_map(|s| s.result.as_ref().err().map(|f| (s.step, f)))
    }

    /// True when every step that the target requires ran and succeeded.
    pub fn up(&self, expected: &[Step]) -> bool {
        self.failure().is_none() && expected.iter().all(|e| self.ran(*e))
    }

    /// The TLSA answer DANE may use (RFC 7673): secure, as the addresses it goes with.
    pub(crate) fn dane_answer(&self) -> Option<&TlsaAnswer> {
        let secure =
            |dnssec: Option<Dnssec>| dnssec.is_some_and(|d| d.state == DnssecState::Secure);
        let tlsa = self.tlsa.as_ref()?.as_ref().ok()?;
        (secure(Some(tlsa.dnssec)) && secure(self.dnssec)).then_some(tlsa)
    }

    /// The steps a view shows for this server: those the flow requires, then a kept watch
    /// session's `session` when it was lost.
    pub fn shown_steps<'a>(&self, expected: &'a [Step]) -> impl Iterator<Item = Step> + 'a {
        let lost = self.ran(Step::Session).then_some(Step::Session);
        expected.iter().copied().chain(lost)
    }

    pub fn ran(&self, step: Step) -> bool {
        self.steps.iter().any(|s| s.step == step)
    }

    pub fn record(&self, step: Step) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.step == step)
    }
}

/// Everything one probe cycle of one target found: the one record every view renders.
#[derive(Clone, Debug)]
pub struct TargetReport {
    pub subject: Arc<Subject>,
    pub started: SystemTime,
    pub duration: Duration,
    /// The SRV step, when the target discovers its servers through DNS.
    pub srv: Option<StepRecord>,
    /// What DNSSEC said of the SRV answer, when the target validates.
    pub srv_dnssec: Option<Dnssec>,
    /// Servers of the SRV answer beyond `dns.max_servers_per_target`, not probed.
    pub srv_skipped: usize,
    /// The servers probed (the SRV answer, or the configured one), in RFC 2782 order.
    pub servers: Vec<ServerReport>,
    /// The per-server steps this target requires (depends on TLS mode and handshake).
    pub expected_steps: Vec<Step>,
    /// The client path, when the target watches production components and this run logged
    /// in (the record keeps the latest: [`crate::store::TargetState::watch`]).
    pub watch: Option<Arc<WatchReport>>,
}

impl TargetReport {
    /// At least one server completed every step: a Callbridge could register.
    pub fn success(&self) -> bool {
        self.servers.iter().any(|s| s.up(&self.expected_steps))
    }

    /// Whether a step failed for want of the exporter's own resources (see
    /// [`Reason::LocalResources`]).
    pub fn exhausted_locally(&self) -> bool {
        self.failures()
            .any(|(_, _, failure)| failure.reason == Reason::LocalResources)
            || self
                .watch
                .as_ref()
                .is_some_and(|watch| watch.exhausted_locally())
    }

    /// What DNSSEC said of each answer the run relied on: the SRV answer's (`None` server),
    /// then each server's addresses'. A TLSA answer is DANE's (a Callbridge asks none): a bogus
    /// one is the finding `dane_tlsa_bogus`, not a registration's page.
    pub fn dnssec(&self) -> impl Iterator<Item = (Option<&Server>, Dnssec)> {
        let srv = self.srv_dnssec.map(|dnssec| (None, dnssec));
        let servers = self
            .servers
            .iter()
            .filter_map(|s| s.dnssec.map(|dnssec| (Some(&s.server), dnssec)));
        srv.into_iter().chain(servers)
    }

    /// When the first signature of the run's secure answers (TLSA included) expires (Unix
    /// time).
    pub fn dnssec_expires(&self) -> Option<i64> {
        self.first_expiring_answer().map(|(_, expires)| expires)
    }

    /// The secure answer of the run whose signature expires first, and when (Unix time): what
    /// `cms_xmpp_dnssec_signature_expiry_timestamp_seconds` is about.
    pub fn first_expiring_answer(&self) -> Option<(SignedAnswer<'_>, i64)> {
        let servers = self.servers.iter().flat_map(|s| {
            let addresses = s.dnssec.map(|d| (SignedAnswer::Addresses(&s.server), d));
            let tlsa = s.tlsa.as_ref().and_then(|t| t.as_ref().ok());
            let tlsa = tlsa.map(|t| (SignedAnswer::Tlsa(&t.name), t.dnssec));
            addresses.into_iter().chain(tlsa)
        });
        self.srv_dnssec
            .map(|d| (SignedAnswer::Srv, d))
            .into_iter()
            .chain(servers)
            .filter_map(|(answer, dnssec)| Some((answer, dnssec.expires?)))
            .min_by_key(|(_, expires)| *expires)
    }

    /// When the cycle finished.
    pub fn finished(&self) -> SystemTime {
        self.started + self.duration
    }

    /// The steps that failed: the SRV step's (`None` server) and each server's.
    pub fn failures(&self) -> impl Iterator<Item = (Option<&Server>, Step, &Failure)> {
        failures(self.srv.as_ref(), &self.servers)
    }
}

/// One DNSSEC-validated answer a run relied on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignedAnswer<'a> {
    /// The SRV answer of the target's domain.
    Srv,
    /// A server's A/AAAA answer.
    Addresses(&'a Server),
    /// A server's TLSA answer, by its name.
    Tlsa(&'a str),
}

/// What pinging one component found: its answer's round trip, or why there was none.
#[derive(Clone, Debug)]
pub struct Ping {
    pub component: String,
    pub result: Result<Duration, Failure>,
}

impl Ping {
    /// The component answered: it holds a connection to the XMPP server.
    pub fn registered(&self) -> bool {
        self.result.is_ok()
    }
}

impl Serialize for Ping {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("Ping", 4)?;
        out.serialize_field("component", &self.component)?;
        out.serialize_field("registered", &self.registered())?;
        match &self.result {
            Ok(round_trip) => {
                out.serialize_field("round_trip_seconds", &round_trip.as_secs_f64())?
            }
            Err(failure) => {
                out.serialize_field("reason", &failure.reason)?;
                out.serialize_field("detail", &failure.detail)?;
            }
        }
        out.end()
    }
}

/// The client path of one probe cycle: a monitoring user's login, then a ping to each
/// production component.
#[derive(Clone, Debug)]
pub struct WatchReport {
    /// The SRV step, when the login's servers come from DNS.
    pub srv: Option<StepRecord>,
    /// The servers tried, in RFC 2782 order, until one let the user in.
    pub servers: Vec<ServerReport>,
    /// The servers of the answer after the one that let the user in.
    pub untried: Vec<Server>,
    /// The pings, sent through the server that let the user in; empty when none did.
    pub pings: Vec<Ping>,
    /// The per-server steps of this login (depend on the TLS mode).
    pub expected_steps: Vec<Step>,
}

impl WatchReport {
    /// The user logged in and the pings went out.
    pub fn success(&self) -> bool {
        self.servers.iter().any(|s| s.up(&self.expected_steps))
    }

    /// Whether the login failed for want of the exporter's own resources (see
    /// [`Reason::LocalResources`]): only sockets being opened (DNS, connect) meet it; pings
    /// reuse the session's.
    pub fn exhausted_locally(&self) -> bool {
        self.failures()
            .any(|(_, _, failure)| failure.reason == Reason::LocalResources)
    }

    /// The user logged in and every component answered.
    pub fn all_registered(&self) -> bool {
        self.success() && self.pings.iter().all(Ping::registered)
    }

    /// The steps that failed: the SRV step's (`None` server) and each server's.
    pub fn failures(&self) -> impl Iterator<Item = (Option<&Server>, Step, &Failure)> {
        failures(self.srv.as_ref(), &self.servers)
    }

    /// Why the monitoring user could not log in: the last failure among the servers tried.
    pub fn login_failure(&self) -> Option<(Option<&Server>, Step, &Failure)> {
        if self.success() {
            return None;
        }
        self.failures().last()
    }
}

/// The failed steps of a flow: the SRV step's (`None` server), then each server's.
fn failures<'a>(
    srv: Option<&'a StepRecord>,
    servers: &'a [ServerReport],
) -> impl Iterator<Item = (Option<&'a Server>, Step, &'a Failure)> {
    let srv = srv.into_iter().filter_map(|s| {
        let failure = s.result.as_ref().err()?;
        Some((None, s.step, failure))
    });
    let servers = servers.iter().filter_map(|s| {
        let (step, failure) = s.failure()?;
        Some((Some(&s.server), step, failure))
    });
    srv.chain(servers)
}

impl Serialize for WatchReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let servers = ServerJson::all(&self.servers, &self.expected_steps);
        let untried: Vec<&Endpoint> = self.untried.iter().map(|s| &s.endpoint).collect();
        let mut out = serializer.serialize_struct("WatchReport", 5)?;
        out.serialize_field("success", &self.success())?;
        out.serialize_field("srv", &self.srv)?;
        out.serialize_field("servers", &servers)?;
        out.serialize_field("untried", &untried)?;
        out.serialize_field("pings", &self.pings)?;
        out.end()
    }
}

/// A point in time as Unix seconds, for series and JSON.
pub fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// A server report with its verdict, for JSON.
struct ServerJson<'a> {
    report: &'a ServerReport,
    up: bool,
}

impl<'a> ServerJson<'a> {
    fn all(servers: &'a [ServerReport], expected: &[Step]) -> Vec<ServerJson<'a>> {
        servers
            .iter()
            .map(|report| ServerJson {
                report,
                up: report.up(expected),
            })
            .collect()
    }
}

impl Serialize for ServerJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.report;
        let mut out = serializer.serialize_struct("ServerReport", 13)?;
        out.serialize_field("server", &r.server.endpoint)?;
        out.serialize_field("origin", &r.server.origin)?;
        out.serialize_field("up", &self.up)?;
        out.serialize_field("addresses", &r.addresses)?;
        match &r.dnssec {
            Some(dnssec) => out.serialize_field("dnssec", dnssec)?,
            None => out.skip_field("dnssec")?,
        }
        out.serialize_field("address", &r.address)?;
        out.serialize_field("steps", &r.steps)?;
        // Absent, not null, when the probe did not get that far (as before the record was one).
        match &r.tls {
            Some(tls) => out.serialize_field("tls", tls)?,
            None => out.skip_field("tls")?,
        }
        match &r.cert {
            Some(cert) => out.serialize_field("certificate", &**cert)?,
            None => out.skip_field("certificate")?,
        }
        match &r.client_cert {
            Some(verdict) => out.serialize_field("client_cert", verdict)?,
            None => out.skip_field("client_cert")?,
        }
        out.serialize_field("stream_id", &r.stream_id)?;
        match &r.legacy_tls {
            Some(legacy) => out.serialize_field("legacy_tls", legacy)?,
            None => out.skip_field("legacy_tls")?,
        }
        match &r.dane {
            Some(dane) => out.serialize_field("dane", dane)?,
            None => out.skip_field("dane")?,
        }
        out.end()
    }
}

impl Serialize for TargetReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let servers = ServerJson::all(&self.servers, &self.expected_steps);
        let mut out = serializer.serialize_struct("TargetReport", 8)?;
        out.serialize_field("target", &self.subject.name)?;
        out.serialize_field("success", &self.success())?;
        out.serialize_field("started", &unix_seconds(self.started))?;
        out.serialize_field("duration_seconds", &self.duration.as_secs_f64())?;
        out.serialize_field("srv", &self.srv)?;
        match &self.srv_dnssec {
            Some(dnssec) => out.serialize_field("srv_dnssec", dnssec)?,
            None => out.skip_field("srv_dnssec")?,
        }
        out.serialize_field("servers", &servers)?;
        out.end()
    }
}
