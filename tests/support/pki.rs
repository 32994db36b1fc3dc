//! A throw-away certificate authority (rcgen) and rustls configs built from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use time::{Duration, OffsetDateTime};

/// Validity window of a leaf certificate, relative to now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// now - 1 day .. now + 90 days
    Good,
    /// not_after was 2 days ago
    Expired,
    /// not_before is 10 days ahead
    NotYetValid,
    /// now - 1 day .. now + n days (n may be negative)
    ExpiresInDays(i64),
}

impl Validity {
    fn window(self) -> (OffsetDateTime, OffsetDateTime) {
        let now = OffsetDateTime::now_utc();
        let (not_before, not_after) = match self {
            Validity::Good => (now - Duration::days(1), now + Duration::days(90)),
            Validity::Expired => (now - Duration::days(30), now - Duration::days(2)),
            Validity::NotYetValid => (now + Duration::days(10), now + Duration::days(100)),
            Validity::ExpiresInDays(n) => (now - Duration::days(1), now + Duration::days(n)),
        };
        // Keep the window well-formed for large negative ExpiresInDays.
        (not_before.min(not_after - Duration::days(1)), not_after)
    }
}

/// The crypto provider every config here uses: the process-wide default is never
/// installed, because rustls is built without a default provider.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const TLS_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A self-signed test CA, or an intermediate under one.
pub struct Pki {
    ca_cert: CertificateDer<'static>,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// The intermediates a server sends after its leaf, nearest first (empty for a root).
    above: String,
}

/// A certificate issued by a [`Pki`], PEM encoded.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// The leaf certificate, then the intermediates of its issuer (none under a root).
    pub cert_pem: String,
    /// PKCS#8 private key.
    pub key_pem: String,
}

impl Pki {
    pub fn new(common_name: &str) -> Pki {
        Pki::root(common_name, Validity::ExpiresInDays(365))
    }

    /// A self-signed CA valid as `validity` says.
    pub fn root(common_name: &str, validity: Validity) -> Pki {
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        (params.not_before, params.not_after) = validity.window();
        let cert = params.self_signed(&key).expect("self-sign CA");
        Pki {
            ca_pem: cert.pem(),
            ca_cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
            above: String::new(),
        }
    }

    /// An intermediate CA issued by this one, valid as `validity` says: its leaves come with
    /// it (their `cert_pem` is leaf, then intermediates), and this CA stays the trust anchor.
    pub fn intermediate(&self, common_name: &str, validity: Validity) -> Pki {
        let key = KeyPair::generate().expect("generate intermediate key");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = validity.window();
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign intermediate");
        Pki {
            ca_pem: cert.pem(),
            ca_cert: cert.der().clone(),
            above: format!("{}{}", cert.pem(), self.above),
            issuer: Issuer::new(params, key),
        }
    }

    /// This CA's certificate, PEM encoded.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes this CA's certificate and key (`<name>.pem`, `<name>.key`) into `dir`, for
    /// `openssl x509 -req -CA … -CAkey …`.
    pub fn write_ca_and_key(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert, &self.ca_pem).expect("write CA certificate");
        std::fs::write(&key, self.issuer.key().serialize_pem()).expect("write CA key");
        (cert, key)
    }

    /// A leaf that is its own issuer (no CA): trusted only where it is pinned.
    pub fn self_signed_leaf(sans: &[&str]) -> Leaf {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("valid SANs");
        params.distinguished_name.push(DnType::CommonName, sans[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        (params.not_before, params.not_after) = Validity::Good.window();
        let key = KeyPair::generate().expect("generate leaf key");
        let cert = params.self_signed(&key).expect("self-sign leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes `ca.pem` into `dir` and returns its path.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("write ca.pem");
        path
    }

    /// A server certificate. Each SAN that parses as an IP address becomes an IP SAN,
    /// anything else (including wildcards such as `*.example.test`) a DNS SAN.
    pub fn leaf(&self, sans: &[&str], validity: Validity) -> Leaf {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans.clone()).expect("valid SANs");
        if let Some(first) = sans.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        (params.not_before, params.not_after) = validity.window();
        self.issue(params)
    }

    /// A client certificate for mutual TLS (clientAuth EKU, no SANs).
    pub fn client_leaf(&self, common_name: &str) -> Leaf {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        (params.not_before, params.not_after) = Validity::Good.window();
        self.issue(params)
    }

    fn issue(&self, mut params: CertificateParams) -> Leaf {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("generate leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Leaf {
            cert_pem: format!("{}{}", cert.pem(), self.above),
            key_pem: key.serialize_pem(),
        }
    }

    /// Trust store holding only this CA.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_cert.clone()).expect("add CA to roots");
        roots
    }

    /// A client config trusting only this CA, optionally presenting a client certificate.
    pub fn client_config(&self, client_cert: Option<&Leaf>) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(TLS_VERSIONS)
            .expect("ring supports TLS 1.2 and 1.3")
            .with_root_certificates(self.roots());
        let config = match client_cert {
            None => builder.with_no_client_auth(),
            Some(leaf) => builder
                .with_client_auth_cert(leaf.cert_chain(), leaf.private_key())
                .expect("client cert and key match"),
        };
        Arc::new(config)
    }
}

impl Leaf {
    /// TLS 1.2 + 1.3 server presenting this certificate, no client authentication.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let config = ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(TLS_VERSIONS)
            .expect("ring supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_single_cert(self.cert_chain(), self.private_key())
            .expect("server cert and key match");
        Arc::new(config)
    }

    /// Like [`Leaf::server_config`], stapling `ocsp` (a DER OCSP response) to the certificate.
    pub fn server_config_stapling(&self, ocsp: Vec<u8>) -> Arc<ServerConfig> {
        let config = ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(TLS_VERSIONS)
            .expect("ring supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_single_cert_with_ocsp(self.cert_chain(), self.private_key(), ocsp)
            .expect("server cert and key match");
        Arc::new(config)
    }

    /// Like [`Leaf::server_config`], but the client must present a certificate issued by `client_ca`.
    pub fn server_config_requiring_client_cert(&self, client_ca: &Pki) -> Arc<ServerConfig> {
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(client_ca.roots()),
            crypto_provider(),
        )
        .build()
        .expect("client verifier");
        let config = ServerConfig::builder_with_provider(crypto_provider())
            .with_protocol_versions(TLS_VERSIONS)
            .expect("ring supports TLS 1.2 and 1.3")
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert_chain(), self.private_key())
            .expect("server cert and key match");
        Arc::new(config)
    }

    /// The same key with only the certificates at `positions` of the chain, in that order:
    /// a server that omits or reorders its intermediates.
    pub fn sending(&self, positions: &[usize]) -> Leaf {
        let blocks: Vec<&str> = self
            .cert_pem
            .split_inclusive("-----END CERTIFICATE-----")
            .filter(|block| block.contains("BEGIN CERTIFICATE"))
            .collect();
        Leaf {
            cert_pem: positions
                .iter()
                .map(|p| blocks[*p].trim())
                .collect::<Vec<_>>()
                .join("\n"),
            key_pem: self.key_pem.clone(),
        }
    }

    pub fn cert_chain(&self) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("leaf PEM")
    }

    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("key PEM")
    }
}
