//! Step `tls`: a TLS handshake as a Callbridge does it (TLS 1.2 or newer, direct TLS).
//!
//! The verifier records the peer's chain, webpki's verdict and the path it verified before
//! returning, so the `cert` step can export facts about certificates that are rejected and
//! never verifies an accepted chain a second time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, Resumption, Tls12Resumption, WebPkiServerVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{AlertDescription, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

mod client_cert;

pub(crate) use client_cert::post_handshake_refusal;
use client_cert::{refuses_client_cert, ClientWitness};

use super::connect::Tcp;
use super::{CertFacts, ChainCert, Failure, Reason, TlsFacts};
use crate::config::TlsSettings;
use crate::crypto::provider;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("no trust anchors: the system has no CA certificates; set tls.ca_file")]
    NoSystemRoots,
    #[error("tls.ca_file holds no certificate that parses as X.509")]
    UnusableCaFile,
    #[error("tls.ca_file or the system roots hold no usable CA certificate")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
    #[error("cannot use the client certificate and key")]
    ClientAuth(#[source] rustls::Error),
    #[error("cannot set up TLS")]
    Rustls(#[source] rustls::Error),
}

/// Per-target TLS client, built once per config load.
#[derive(Clone, Debug)]
pub struct TlsClient {
    base: Arc<ClientConfig>,
    webpki: Arc<WebPkiServerVerifier>,
    trust: Arc<Trust>,
    kept: Arc<KeptFacts>,
}

/// The certificate facts of chains accepted lately, by a digest of everything they are made
/// from (the `cert` step's): an unchanged chain is neither parsed nor described again, and
/// every report of it shares one copy. Lives as long as the client (one config).
#[derive(Debug, Default)]
pub struct KeptFacts(Mutex<HashMap<[u8; 32], Arc<CertFacts>>>);

/// Far more than the servers of a large fleet; beyond, the facts start afresh.
const MAX_KEPT_FACTS: usize = 4096;

impl KeptFacts {
    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<CertFacts>> {
        self.0.lock().expect("kept facts lock").get(key).cloned()
    }

    pub fn keep(&self, key: [u8; 32], facts: Arc<CertFacts>) {
        let mut kept = self.0.lock().expect("kept facts lock");
        if kept.len() >= MAX_KEPT_FACTS {
            kept.clear();
        }
        kept.insert(key, facts);
    }
}

/// The trust anchors, to find the path a chain verifies by, and which of them are not roots.
#[derive(Debug)]
pub struct Trust {
    anchors: Arc<Anchors>,
    /// Subjects (DER) of `tls.ca_file` certificates that are not self-issued: intermediates.
    pinned_intermediates: Vec<Vec<u8>>,
}

/// Trust anchors with the certificates they came from: webpki ignores an anchor's validity,
/// a Callbridge (OpenSSL) does not, so the chain's end counts the anchor's too.
#[derive(Debug)]
struct Anchors {
    store: Arc<RootCertStore>,
    /// The certificate of each root of `store`, in its order: a path names the root it ends
    /// at by reference, so no lookup by subject (re-keyed and cross-signed roots share one)
    /// and nothing copied.
    certs: Vec<Arc<Anchor>>,
}

/// A trust anchor's certificate, and how the `cert` step describes it: worked out the first
/// time a path ends there and kept as long as the anchor (the config's `tls.ca_file`, or the
/// system roots, read once per process), not parsed every probe.
#[derive(Debug)]
pub struct Anchor {
    pub der: CertificateDer<'static>,
    described: OnceLock<Option<ChainCert>>,
}

impl Anchor {
    /// The description `describe` makes of this anchor, made once.
    pub fn described(
        &self,
        describe: impl FnOnce(&[u8]) -> Option<ChainCert>,
    ) -> Option<&ChainCert> {
        self.described.get_or_init(|| describe(&self.der)).as_ref()
    }
}

impl Anchors {
    fn new(certs: Vec<CertificateDer<'static>>) -> (Anchors, usize) {
        let given = certs.len();
        let mut store = RootCertStore::empty();
        let mut kept = Vec::with_capacity(given);
        for der in certs {
            // One root per certificate that parses, in order: `kept` follows `store.roots`.
            if store.add(der.clone()).is_ok() {
                kept.push(Arc::new(Anchor {
                    der,
                    described: OnceLock::new(),
                }));
            }
        }
        let ignored = given - kept.len();
        let anchors = Anchors {
            store: Arc::new(store),
            certs: kept,
        };
        (anchors, ignored)
    }
}

/// A verified path from the leaf to a trust anchor.
#[derive(Debug)]
pub struct Path {
    /// The positions in the chain as sent of the path's certificates, the leaf first.
    pub positions: Vec<usize>,
    /// The public key (SubjectPublicKeyInfo, DER) of the leaf's issuer: an intermediate or the
    /// trust anchor.
    pub issuer_spki: Vec<u8>,
    /// The trust anchor the path ends at.
    pub anchor: Option<Arc<Anchor>>,
}

impl Trust {
    fn new(anchors: Arc<Anchors>, ca_certs: Option<&[CertificateDer<'static>]>) -> Trust {
        let pinned_intermediates = ca_certs
            .unwrap_or_default()
            .iter()
            .filter_map(|der| x509_parser::parse_x509_certificate(der).ok())
            .filter(|(_, cert)| cert.subject().as_raw() != cert.issuer().as_raw())
            .map(|(_, cert)| cert.subject().as_raw().to_vec())
            .collect();
        Trust {
            anchors,
            pinned_intermediates,
        }
    }

    /// The path that verifies `chain` at `time`, apart from names; `None` when no path leads
    /// to a trust anchor.
    pub fn path(&self, chain: &[CertificateDer<'_>], time: UnixTime) -> Option<Path> {
        let (leaf, intermediates) = chain.split_first()?;
        let leaf = webpki::EndEntityCert::try_from(leaf).ok()?;
        let path = leaf
            .verify_for_usage(
                provider().signature_verification_algorithms.all,
                &self.anchors.store.roots,
                intermediates,
                time,
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .ok()?;
        let above = path.intermediate_certificates().filter_map(|cert| {
            let der = cert.der();
            intermediates
                .iter()
                .position(|sent| sent.as_ref() == der.as_ref())
                .map(|index| index + 1)
        });
        let used = path.anchor();
        let anchor = self
            .anchors
            .store
            .roots
            .iter()
            .position(|root| std::ptr::eq(root, used))
            .and_then(|root| self.anchors.certs.get(root).cloned());
        Some(Path {
            positions: std::iter::once(0).chain(above).collect(),
            issuer_spki: path.issuer_spki().as_ref().to_vec(),
            anchor,
        })
    }

    /// Whether a certificate with this subject is an intermediate in `tls.ca_file`.
    pub fn pins_intermediate(&self, subject: &[u8]) -> bool {
        self.pinned_intermediates.iter().any(|s| s == subject)
    }
}

/// What the handshake yielded. `stream` is `None` when the probe rejected the certificate:
/// the server did its part, the `cert` step says what is wrong.
pub struct TlsOutcome {
    pub stream: Option<TlsStream<Tcp>>,
    /// What the server said of the client certificate: asked for one, sent a ticket.
    client: Arc<ClientWitness>,
    pub chain: Vec<CertificateDer<'static>>,
    pub verdict: Result<(), rustls::Error>,
    /// The path the handshake verified the chain by at the time of the handshake, apart from
    /// names (`None`: no path leads to a trust anchor then).
    pub path: Option<Path>,
    pub facts: Option<TlsFacts>,
    /// The OCSP response the server stapled (empty when it did not).
    pub ocsp: Vec<u8>,
}

/// The system's CA certificates, read once.
fn system_roots() -> Arc<Anchors> {
    static ROOTS: OnceLock<Arc<Anchors>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::warn!(%error, "could not read some system CA certificates");
            }
            let (anchors, ignored) = Anchors::new(found.certs);
            tracing::debug!(
                added = anchors.store.len(),
                ignored,
                "loaded system CA certificates"
            );
            Arc::new(anchors)
        })
        .clone()
}

impl TlsClient {
    pub fn new(settings: &TlsSettings) -> Result<TlsClient, TlsSetupError> {
        let anchors = match &settings.ca_certs {
            Some(certs) => Arc::new(Anchors::new(certs.clone()).0),
            None => system_roots(),
        };
        let roots = anchors.store.clone();
        if roots.is_empty() {
            return Err(match settings.ca_certs {
                Some(_) => TlsSetupError::UnusableCaFile,
                None => TlsSetupError::NoSystemRoots,
            });
        }
        let trust = Arc::new(Trust::new(anchors, settings.ca_certs.as_deref()));
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(TlsSetupError::Verifier)?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsSetupError::Rustls)?
            .dangerous()
            .with_custom_certificate_verifier(webpki.clone());
        let mut config = match &settings.client_auth {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                .map_err(TlsSetupError::ClientAuth)?,
            None => builder.with_no_client_auth(),
        };
        // Every probe is a first contact, as a Callbridge's reconnect would be (each
        // handshake's witness stands in for the session store and keeps nothing).
        config.resumption = Resumption::disabled();
        Ok(TlsClient {
            base: Arc::new(config),
            webpki,
            trust,
            kept: Arc::default(),
        })
    }

    /// Whether `other` is this very client (built once, shared by targets).
    #[cfg(test)]
    pub fn is(&self, other: &TlsClient) -> bool {
        Arc::ptr_eq(&self.base, &other.base)
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    pub fn kept_facts(&self) -> &KeptFacts {
        &self.kept
    }

    /// A handshake with the server at `name`. The server's refusal of a client certificate
    /// is `client_cert_rejected` when one is configured, or when `client_judged` (a `protocol:
    /// tls` target, whose server is there to judge it); otherwise a server that asks for an
    /// optional certificate and fails for another reason is not blamed on it.
    pub async fn handshake(
        &self,
        tcp: Tcp,
        name: ServerName<'static>,
        client_judged: bool,
    ) -> Result<TlsOutcome, Failure> {
        let recorder = Arc::new(RecordingVerifier {
            inner: self.webpki.clone(),
            trust: self.trust.clone(),
            seen: Mutex::new(None),
        });
        let mut config = (*self.base).clone();
        config
            .dangerous()
            .set_certificate_verifier(recorder.clone());
        let resolver = config.client_auth_cert_resolver.clone();
        let client_judged = client_judged || resolver.has_certs();
        let client = Arc::new(ClientWitness::new(resolver));
        config.client_auth_cert_resolver = client.clone();
        config.resumption =
            Resumption::store(client.clone()).tls12_resumption(Tls12Resumption::Disabled);
        let result = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await;
        let seen = recorder.seen.lock().expect("verifier lock").take();
        match (result, seen) {
            (Ok(stream), Some(seen)) => {
                let (_, connection) = stream.get_ref();
                let facts = connection
                    .protocol_version()
                    .zip(connection.negotiated_cipher_suite())
                    .map(|(version, suite)| TlsFacts {
                        version,
                        cipher: suite.suite(),
                    });
                Ok(TlsOutcome {
                    stream: Some(stream),
                    client,
                    chain: seen.chain,
                    verdict: seen.verdict,
                    path: seen.path,
                    facts,
                    ocsp: seen.ocsp,
                })
            }
            // Our own verifier aborted the handshake: the certificate is the problem.
            (Err(_), Some(seen)) if seen.verdict.is_err() => Ok(TlsOutcome {
                stream: None,
                client,
                chain: seen.chain,
                verdict: seen.verdict,
                path: seen.path,
                facts: None,
                ocsp: seen.ocsp,
            }),
            (Err(error), _) => Err(failure(&error, client.asked() && client_judged)),
            (Ok(_), None) => Err(Failure::new(
                Reason::TlsHandshake,
                "handshake finished without a server certificate",
            )),
        }
    }
}

/// What a handshake's error means; `asked` when the server had asked for a client
/// certificate, so that an alert about certificates is about ours.
fn failure(error: &std::io::Error, asked: bool) -> Failure {
    let tls_error = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    match tls_error {
        Some(rustls::Error::AlertReceived(alert)) if asked && refuses_client_cert(*alert) => {
            Failure::new(
                Reason::ClientCertRejected,
                format!(
                    "the server asked for a client certificate and refused the one sent (or its \
                     absence): alert {alert:?}"
                ),
            )
        }
        Some(rustls::Error::AlertReceived(AlertDescription::ProtocolVersion))
        | Some(rustls::Error::PeerIncompatible(_)) => Failure::new(
            Reason::TlsVersion,
            format!("no common TLS version or cipher (TLS 1.2 or newer required): {error}"),
        ),
        Some(e) => Failure::new(Reason::TlsHandshake, e.to_string()),
        None if error.kind() == std::io::ErrorKind::UnexpectedEof && asked => Failure::new(
            Reason::ClientCertRejected,
            "the server asked for a client certificate, then closed the connection without an \
             alert",
        ),
        None if error.kind() == std::io::ErrorKind::UnexpectedEof => Failure::new(
            Reason::TlsHandshake,
            "the server closed the connection during the TLS handshake (is this port TLS?)",
        ),
        None => Failure::new(Reason::TlsHandshake, error.to_string()),
    }
}

struct Seen {
    chain: Vec<CertificateDer<'static>>,
    verdict: Result<(), rustls::Error>,
    path: Option<Path>,
    ocsp: Vec<u8>,
}

/// Verifies as webpki does, and remembers the chain, the verdict and the path it verified by.
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    trust: Arc<Trust>,
    seen: Mutex<Option<Seen>>,
}

impl std::fmt::Debug for RecordingVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordingVerifier")
    }
}

impl RecordingVerifier {
    /// A signature the leaf's key cannot make acceptably (an RSA key under 2048 bits) is the
    /// certificate's fault: the `cert` step says so.
    fn signature_verdict(
        &self,
        verdict: Result<HandshakeSignatureValid, rustls::Error>,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if let Err(error @ rustls::Error::InvalidCertificate(_)) = &verdict {
            if let Some(seen) = self.seen.lock().expect("verifier lock").as_mut() {
                seen.verdict = Err(error.clone());
            }
        }
        verdict
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain: Vec<CertificateDer<'static>> = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        // The same verification as `WebPkiServerVerifier`'s (no CRLs; the staple is the `cert`
        // step's), keeping the path. Only a chain without one is verified again, by webpki's
        // own verifier, for rustls' account of why.
        let path = self.trust.path(&chain, now);
        let verdict = match path {
            Some(_) => ParsedCertificate::try_from(end_entity)
                .and_then(|leaf| verify_server_name(&leaf, server_name)),
            None => self
                .inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ()),
        };
        *self.seen.lock().expect("verifier lock") = Some(Seen {
            chain,
            verdict: verdict.clone(),
            path,
            ocsp: ocsp_response.to_vec(),
        });
        verdict.map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature_verdict(self.inner.verify_tls12_signature(message, cert, dss))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature_verdict(self.inner.verify_tls13_signature(message, cert, dss))
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
