//! The server's verdict on the client certificate (mutual TLS): whether it asked for one,
//! which alerts refuse it, and under TLS 1.3 — where the server judges it after the client's
//! handshake is over — a short wait for that verdict.

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

use super::{failure, TlsOutcome};
use crate::probe::{Failure, Reason};

/// The longest a `protocol: tls` target waits, after a TLS 1.3 handshake where the server
/// asked for a client certificate, for the server's verdict on it: an alert refuses it, a
/// session ticket or data shows it accepted (OpenSSL sends tickets as soon as it has checked
/// the certificate, one round trip after the handshake). Silence that long counts as
/// accepted, as it does for a Callbridge until its first read.
pub const CLIENT_VERDICT_WAIT: Duration = Duration::from_secs(1);

impl TlsOutcome {
    /// Under TLS 1.3 the server checks the client certificate after the client's handshake
    /// is over: waits up to [`CLIENT_VERDICT_WAIT`] for its verdict, when it asked for one.
    pub async fn await_client_verdict(&mut self) -> Result<(), Failure> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        let tls13 = stream.get_ref().1.protocol_version() == Some(ProtocolVersion::TLSv1_3);
        if !tls13 || !self.client.asked() {
            return Ok(());
        }
        let mut byte = [0u8; 1];
        tokio::select! {
            read = stream.read(&mut byte) => match read {
                // The server spoke: it took the certificate.
                Ok(1..) => Ok(()),
                Ok(0) => Err(Failure::new(
                    Reason::ClientCertRejected,
                    "the server closed the connection right after the handshake, without an \
                     alert: it asked for a client certificate and did not keep the connection",
                )),
                Err(error) => Err(failure(&error, true)),
            },
            () = self.client.ticket.notified() => Ok(()),
            () = tokio::time::sleep(CLIENT_VERDICT_WAIT) => Ok(()),
        }
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

/// Witnesses what the server says of the client certificate during one handshake: whether
/// it asked for one (the resolver is only asked then) and whether it sent a session ticket
/// (the store is only given one after the handshake is over, the certificate accepted).
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

/// Stores nothing: a ticket is only a sign that the server finished its handshake.
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
        self.ticket.notify_one();
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        None
    }
}
