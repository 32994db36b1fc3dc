//! The server's verdict on the client certificate (mutual TLS): whether it asked for one,
//! which alerts refuse it, and the evidence of a verdict that comes after the handshake:
//! under TLS 1.3 the server judges the certificate once the client's handshake is over, then
//! issues session tickets, sends data, alerts or closes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::{
    ClientSessionStore, ResolvesClientCert, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, NamedGroup, ProtocolVersion, SignatureScheme};
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::TlsOutcome;
use crate::probe::{ClientCertVerdict, Failure, Reason};

/// The longest a `protocol: tls` target waits after the handshake, when the server asked for
/// a client certificate under TLS 1.3 and issues no session ticket, for its verdict on it: an
/// alert, a close or a reset refuses it, data shows it kept. Silence that long counts as
/// accepted, as far as TLS can tell: a server that judges the certificate only above TLS (an
/// HTTP 400, as nginx answers) is not seen.
const CLIENT_VERDICT_WAIT: Duration = Duration::from_secs(1);
/// The wait ends this much before the probe's deadline, whatever is left of the second.
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

impl TlsOutcome {
    /// The server's verdict on the client certificate, from the first evidence of it: none
    /// needed when it asked for none; under TLS 1.2 its Finished, which came after our
    /// certificate; under TLS 1.3 a session ticket (issued only after our certificate was
    /// read, RFC 8446 §4.6.1) or data, else up to [`CLIENT_VERDICT_WAIT`] of silence (ending
    /// before `deadline`). An alert, a close or a reset is a refusal.
    pub async fn await_client_verdict(
        &mut self,
        deadline: Instant,
    ) -> Result<ClientCertVerdict, Failure> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(Failure::new(
                Reason::TlsHandshake,
                "no connection to hear the server's verdict on",
            ));
        };
        if !self.client.asked() {
            return Ok(ClientCertVerdict::NotRequested);
        }
        if stream.get_ref().1.protocol_version() == Some(ProtocolVersion::TLSv1_2) {
            return Ok(ClientCertVerdict::Handshake);
        }
        let before_deadline = deadline.checked_sub(DEADLINE_MARGIN).unwrap_or(deadline);
        let until = before_deadline.min(Instant::now() + CLIENT_VERDICT_WAIT);
        let mut byte = [0u8; 1];
        // Reading drives the connection: a ticket is stored (and witnessed) while it reads.
        let read = tokio::time::timeout_at(until, stream.read(&mut byte));
        tokio::select! {
            () = self.client.ticket.notified() => Ok(ClientCertVerdict::SessionTicket),
            read = read => match read {
                Err(_) => Ok(ClientCertVerdict::Silence),
                Ok(Ok(1..)) => Ok(ClientCertVerdict::Data),
                Ok(Ok(0)) => Err(Failure::new(
                    Reason::ClientCertRejected,
                    "the server asked for a client certificate and closed the connection right \
                     after the handshake",
                )),
                Ok(Err(error)) => Err(refusal_after_handshake(&error)),
            },
        }
    }
}

/// What an error after the handshake means when the server had asked for a client
/// certificate: its alert or its reset refuses the certificate; anything else is TLS failing.
fn refusal_after_handshake(error: &std::io::Error) -> Failure {
    if let Some(refused) = post_handshake_refusal(error) {
        return refused;
    }
    match error.kind() {
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
            Failure::new(
                Reason::ClientCertRejected,
                format!(
                    "the server asked for a client certificate and reset the connection right \
                     after the handshake: {error}"
                ),
            )
        }
        _ => Failure::new(
            Reason::TlsHandshake,
            format!("TLS failed right after the handshake: {error}"),
        ),
    }
}

/// A server's alert about the client's certificate after the handshake, when `error` is one:
/// by then the server's own certificate is behind us, so such an alert can only be about the
/// certificate we sent (or its absence), which a TLS 1.3 server judges at that point.
pub(crate) fn post_handshake_refusal(error: &std::io::Error) -> Option<Failure> {
    let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    match tls {
        rustls::Error::AlertReceived(alert) if refuses_client_cert(*alert) => Some(Failure::new(
            Reason::ClientCertRejected,
            format!(
                "the server refused the client certificate sent (or its absence) after the \
                 handshake, as TLS 1.3 servers judge it: alert {alert:?}"
            ),
        )),
        _ => None,
    }
}

/// The alerts a server sends about the client's certificate (RFC 8446 §6.2, RFC 5246
/// §7.2.2): OpenSSL answers a missing one with `handshake_failure` under TLS 1.2 and
/// `certificate_required` under TLS 1.3, an untrusted one with `unknown_ca`.
pub(super) fn refuses_client_cert(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::HandshakeFailure
            | AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied
            | AlertDescription::DecryptError
            | AlertDescription::CertificateRequired
    )
}

/// Witnesses, during one handshake and the moments after it, whether the server asked for a
/// client certificate (the resolver is only asked then) and whether it issued a TLS 1.3
/// session ticket. It stands in for rustls' session store and keeps nothing: every probe is a
/// first contact, as a Callbridge's reconnect would be.
#[derive(Debug)]
pub(super) struct ClientWitness {
    resolver: Arc<dyn ResolvesClientCert>,
    asked: AtomicBool,
    ticket: Notify,
}

impl ClientWitness {
    /// A witness around the resolver the handshake would have used.
    pub(super) fn new(resolver: Arc<dyn ResolvesClientCert>) -> ClientWitness {
        ClientWitness {
            resolver,
            asked: AtomicBool::new(false),
            ticket: Notify::new(),
        }
    }

    pub(super) fn asked(&self) -> bool {
        self.asked.load(Ordering::Relaxed)
    }
}

impl ResolvesClientCert for ClientWitness {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::Relaxed);
        self.resolver.resolve(root_hint_subjects, sigschemes)
    }

    fn has_certs(&self) -> bool {
        self.resolver.has_certs()
    }
}

impl ClientSessionStore for ClientWitness {
    fn set_kx_hint(&self, _: ServerName<'static>, _: NamedGroup) {}

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        None
    }

    fn set_tls12_session(&self, _: ServerName<'static>, _: Tls12ClientSessionValue) {}

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {}

    fn insert_tls13_ticket(&self, _: ServerName<'static>, _: Tls13ClientSessionValue) {
        // A permit is kept when nobody waits yet: the verdict's wait sees it at once.
        self.ticket.notify_one();
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        None
    }
}
