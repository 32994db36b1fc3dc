//! The server's verdict on the client certificate (mutual TLS): whether it asked for one,
//! which alerts refuse it, and a short wait after the handshake for a verdict that comes
//! later: under TLS 1.3 the server judges the certificate after the client's handshake is
//! over, and some servers close the connection rather than send an alert.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls::{AlertDescription, SignatureScheme};
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::{failure, TlsOutcome};
use crate::probe::{Failure, Reason};

/// The longest a `protocol: tls` target waits after the handshake, when the server asked for
/// a client certificate, for the server's verdict on it: an alert or a close refuses it, data
/// shows it kept. Silence that long counts as accepted, as far as TLS can tell: a server that
/// judges the certificate only above TLS (an HTTP 400, as nginx answers) is not seen.
const CLIENT_VERDICT_WAIT: Duration = Duration::from_secs(1);
/// The wait ends this much before the probe's deadline, whatever is left of the second.
const DEADLINE_MARGIN: Duration = Duration::from_millis(50);

impl TlsOutcome {
    /// When the server asked for a client certificate, waits up to [`CLIENT_VERDICT_WAIT`]
    /// (ending before `deadline`) for its verdict on it.
    pub async fn await_client_verdict(&mut self, deadline: Instant) -> Result<(), Failure> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        if !self.client.asked() {
            return Ok(());
        }
        let before_deadline = deadline.checked_sub(DEADLINE_MARGIN).unwrap_or(deadline);
        let until = before_deadline.min(Instant::now() + CLIENT_VERDICT_WAIT);
        let mut byte = [0u8; 1];
        match tokio::time::timeout_at(until, stream.read(&mut byte)).await {
            // Silence, or the server spoke: it kept the connection.
            Err(_) | Ok(Ok(1..)) => Ok(()),
            Ok(Ok(0)) => Err(Failure::new(
                Reason::ClientCertRejected,
                "the server asked for a client certificate and closed the connection right \
                 after the handshake",
            )),
            Ok(Err(error)) => Err(failure(&error, true)),
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

/// Witnesses whether the server asked for a client certificate during one handshake: the
/// resolver is only asked then.
#[derive(Debug)]
pub(super) struct ClientWitness {
    resolver: Arc<dyn ResolvesClientCert>,
    asked: AtomicBool,
}

impl ClientWitness {
    /// A witness around the resolver the handshake would have used.
    pub(super) fn new(resolver: Arc<dyn ResolvesClientCert>) -> ClientWitness {
        ClientWitness {
            resolver,
            asked: AtomicBool::new(false),
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
