//! What both flows do alike: a step run inside the deadline and timed, a server reached over
//! TCP (`resolve`, `connect`) and secured (`tls`, `cert`). The component flow
//! ([`super::component_flow`]) and the client flow ([`super::client_flow`]) are built from
//! these.

use std::future::Future;

use rustls::pki_types::{CertificateDer, ServerName};
use tokio::time::{timeout_at, Instant};
use tokio_rustls::client::TlsStream;

use super::cert::{self, CertInput};
use super::connect::Tcp;
use super::dns::Lookups;
use super::dns::{dane, resolve};
use super::tls::{Path, TlsClient};
use super::{
    connect, DaneFacts, Failure, Host, Reason, ServerReport, Step, StepRecord, TlsaAnswer,
};
use crate::config::FanOut;

/// Steps `resolve` and `connect`: the report's server reached over TCP.
pub(super) async fn reach(
    report: &mut ServerReport,
    lookups: &Lookups,
    fan_out: FanOut,
    deadline: Instant,
) -> Option<Tcp> {
    let server = report.server.clone();
    let resolving = resolve::lookup(lookups, server.host(), fan_out.addresses);
    let Some(resolved) = report.run(Step::Resolve, deadline, resolving).await else {
        report.dnssec = report.record(Step::Resolve).and_then(StepRecord::bogus);
        return None;
    };
    let addresses = resolved.addresses;
    report.dnssec = resolved.dnssec;
    report.addresses = addresses.clone();
    let (tcp, address) = report
        .run(
            Step::Connect,
            deadline,
            connect::connect(&addresses, server.port(), deadline),
        )
        .await?;
    report.address = Some(address);
    Some(tcp)
}

/// The name TLS sends and verifies: the configured one (`tls.server_name`), else `host`'s.
pub(super) fn tls_name(
    configured: Option<&ServerName<'static>>,
    host: &Host,
) -> Result<ServerName<'static>, Failure> {
    match configured {
        Some(name) => Ok(name.clone()),
        None => host.server_name().map_err(|e| {
            let detail = format!("{host} cannot be a TLS server name: {e}");
            Failure::new(Reason::TlsHandshake, detail)
        }),
    }
}

/// Who the TLS peer must be: the name to verify (or why there is none) and the names its
/// certificate must cover.
pub(super) struct Peer<'a> {
    pub domain: Option<&'a str>,
    pub name: Result<ServerName<'static>, Failure>,
    pub fqdn_required: bool,
    /// Nothing is sent after the handshake (a `protocol: tls` target): the server's verdict on
    /// the client certificate may come after it, so the `client_cert` step waits for it.
    pub await_client_verdict: bool,
}

/// What the handshake showed, kept for DANE, whose TLSA answer may come after it: the chain
/// as sent, the path verified, whether it passed, the name.
pub(super) struct Presented {
    chain: Vec<CertificateDer<'static>>,
    path: Option<Path>,
    accepted: bool,
    name: ServerName<'static>,
}

impl Presented {
    /// The server's TLSA records judged against what it presented.
    pub(super) fn judge(&self, tlsa: &TlsaAnswer) -> DaneFacts {
        let presented = dane::Presented {
            chain: &self.chain,
            path: self.path.as_ref(),
            pkix_valid: self.accepted,
            name: &self.name,
        };
        dane::judge(tlsa, &presented)
    }
}

/// What `secure` leaves: the stream to go on with, when the certificate is accepted, and what
/// was presented.
pub(super) struct Secured {
    pub stream: Option<TlsStream<Tcp>>,
    pub presented: Presented,
}

/// Steps `tls`, `cert` and, for a TLS link whose certificate is accepted, `client_cert`;
/// `None` when the handshake failed.
pub(super) async fn secure(
    report: &mut ServerReport,
    tls: &TlsClient,
    tcp: Tcp,
    peer: Peer<'_>,
    deadline: Instant,
) -> Option<Secured> {
    let handshake = async {
        let name = peer.name.clone()?;
        tls.handshake(tcp, name, peer.await_client_verdict).await
    };
    let mut outcome = report.run(Step::Tls, deadline, handshake).await?;
    report.tls = outcome.facts;
    // The handshake ran, so the name was one.
    let name = peer.name.ok()?;
    let inspected = Instant::now();
    let input = CertInput {
        chain: &outcome.chain,
        verdict: &outcome.verdict,
        path: outcome.path.as_ref(),
        ocsp: &outcome.ocsp,
        trust: tls.trust(),
        domain: peer.domain,
        verified: &name,
        fqdn_required: peer.fqdn_required,
    };
    let (facts, verdict) = cert::inspect_kept(&input, tls.kept_facts());
    report.cert = facts;
    let accepted = verdict.is_ok();
    report.steps.push(StepRecord {
        step: Step::Cert,
        duration: inspected.elapsed(),
        result: verdict,
    });
    if peer.await_client_verdict && accepted {
        let verdict = outcome.await_client_verdict(deadline);
        let heard = report.run(Step::ClientCert, deadline, verdict).await;
        report.client_cert = heard;
        if heard.is_none() {
            outcome.stream = None;
        }
    }
    Some(Secured {
        stream: outcome.stream.filter(|_| accepted),
        presented: Presented {
            chain: outcome.chain,
            path: outcome.path,
            accepted,
            name,
        },
    })
}

impl ServerReport {
    /// Runs one step inside the deadline and records it.
    pub(super) async fn run<T>(
        &mut self,
        step: Step,
        deadline: Instant,
        work: impl Future<Output = Result<T, Failure>>,
    ) -> Option<T> {
        let (record, value) = timed(step, deadline, work).await;
        self.steps.push(record);
        value
    }
}

pub(super) async fn timed<T>(
    step: Step,
    deadline: Instant,
    work: impl Future<Output = Result<T, Failure>>,
) -> (StepRecord, Option<T>) {
    let started = Instant::now();
    let result = timeout_at(deadline, work).await.unwrap_or_else(|_| {
        Err(Failure::new(
            step.timeout_reason(),
            format!(
                "no result before the probe's deadline ({} ms into this step)",
                started.elapsed().as_millis()
            ),
        ))
    });
    let duration = started.elapsed();
    let (result, value) = match result {
        Ok(value) => (Ok(()), Some(value)),
        Err(failure) => (Err(failure), None),
    };
    let record = StepRecord {
        step,
        duration,
        result,
    };
    (record, value)
}
