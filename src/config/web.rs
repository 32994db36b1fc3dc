//! `--web.config.file`: TLS and basic authentication for the HTTP endpoint, in the format of
//! prometheus/exporter-toolkit that Prometheus exporters read. Every problem is reported at
//! once with its field path; no value is quoted (the file holds password hashes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;

use super::{read_bounded, redact_values, Checker, ConfigError, MAX_FILE_BYTES};

/// The web configuration, checked: what the HTTP endpoint serves with.
#[derive(Clone, Default)]
pub struct WebConfig {
    /// `None`: plain HTTP.
    pub tls: Option<Arc<ServerConfig>>,
    /// User name → bcrypt hash; empty: no authentication.
    pub users: BTreeMap<String, String>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTlsServer>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTlsServer {
    cert_file: String,
    key_file: String,
    #[serde(default)]
    client_auth_type: ClientAuthType,
    client_ca_file: Option<String>,
    min_version: Option<TlsVersion>,
    max_version: Option<TlsVersion>,
}

/// exporter-toolkit's names (Go's `tls.ClientAuthType`).
#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq, Debug)]
enum ClientAuthType {
    #[default]
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum TlsVersion {
    TLS10,
    TLS11,
    TLS12,
    TLS13,
}

impl WebConfig {
    /// Reads and checks the file: certificate and key (they must match), client CA, versions,
    /// and that every password is a bcrypt hash.
    pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
        let invalid = |problems: Vec<String>| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        };
        let bytes = read_bounded(path, MAX_FILE_BYTES).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let raw: RawWebConfig =
            serde_yaml::from_slice(&bytes).map_err(|e| ConfigError::Syntax {
                path: path.to_owned(),
                message: redact_values(&e.to_string()),
            })?;
        let mut check = Checker::default();
        let tls = raw
            .tls_server_config
            .and_then(|tls| tls.validate(&mut check));
        for (user, hash) in &raw.basic_auth_users {
            let field = format!("basic_auth_users.{user}");
            if user.is_empty() || user.contains(':') {
                check.problem(&field, "a user name must be non-empty and hold no ':'");
            }
            if hash.parse::<bcrypt::HashParts>().is_err() {
                check.problem(&field, "is not a bcrypt hash (htpasswd -nBC 10 USER)");
            }
        }
        if !check.problems.is_empty() {
            return Err(invalid(check.problems));
        }
        Ok(WebConfig {
            tls,
            users: raw.basic_auth_users,
        })
    }
}

impl RawTlsServer {
    fn validate(self, check: &mut Checker) -> Option<Arc<ServerConfig>> {
        let field = "tls_server_config";
        let before = check.problems.len();
        let cert_pem = check.read_file(&format!("{field}.cert_file"), &self.cert_file);
        let key_pem = check.read_file(&format!("{field}.key_file"), &self.key_file);
        let chain: Vec<CertificateDer<'static>> = cert_pem
            .as_deref()
            .map(|pem| {
                CertificateDer::pem_slice_iter(pem)
                    .filter_map(Result::ok)
                    .collect()
            })
            .unwrap_or_default();
        if cert_pem.is_some() && chain.is_empty() {
            check.problem(&format!("{field}.cert_file"), "holds no PEM certificate");
        }
        // The key's parse error could quote key material: only the field is named.
        let key = key_pem
            .as_deref()
            .and_then(|pem| PrivateKeyDer::from_pem_slice(pem).ok());
        if key_pem.is_some() && key.is_none() {
            check.problem(&format!("{field}.key_file"), "holds no PEM private key");
        }
        let roots = self.client_roots(field, check);
        let versions = self.versions(field, check);
        if check.problems.len() > before {
            return None;
        }
        let provider = crate::crypto::provider();
        let built = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| e.to_string())
            .and_then(|builder| {
                let builder = match roots {
                    None => builder.with_no_client_auth(),
                    Some(roots) => {
                        let verifier =
                            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                        let verifier =
                            if self.client_auth_type == ClientAuthType::VerifyClientCertIfGiven {
                                verifier.allow_unauthenticated()
                            } else {
                                verifier
                            };
                        builder
                            .with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
                    }
                };
                builder
                    .with_single_cert(chain, key.ok_or("no private key")?)
                    .map_err(|e| format!("the key does not fit the certificate ({e})"))
            });
        match built {
            Ok(mut config) => {
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(Arc::new(config))
            }
            Err(problem) => {
                check.problem(field, problem);
                None
            }
        }
    }

    /// The CAs a client certificate must chain to, when one is asked for.
    fn client_roots(&self, field: &str, check: &mut Checker) -> Option<RootCertStore> {
        let ca_field = format!("{field}.client_ca_file");
        match self.client_auth_type {
            ClientAuthType::NoClientCert => None,
            ClientAuthType::RequestClientCert | ClientAuthType::RequireAnyClientCert => {
                check.problem(
                    &format!("{field}.client_auth_type"),
                    "certificates that are not verified are not supported: use \
                     VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file",
                );
                None
            }
            ClientAuthType::VerifyClientCertIfGiven
            | ClientAuthType::RequireAndVerifyClientCert => {
                let Some(path) = self.client_ca_file.as_deref() else {
                    check.problem(&ca_field, "is required to verify client certificates");
                    return None;
                };
                let pem = check.read_file(&ca_field, path)?;
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok) {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    check.problem(&ca_field, "holds no usable PEM certificate");
                    return None;
                }
                Some(roots)
            }
        }
    }

    fn versions(
        &self,
        field: &str,
        check: &mut Checker,
    ) -> Vec<&'static rustls::SupportedProtocolVersion> {
        let min = self.min_version.unwrap_or(TlsVersion::TLS12);
        let max = self.max_version.unwrap_or(TlsVersion::TLS13);
        if min < TlsVersion::TLS12 {
            check.problem(
                &format!("{field}.min_version"),
                "TLS 1.0 and 1.1 are not offered (TLS12 or TLS13)",
            );
        }
        if max < min.max(TlsVersion::TLS12) {
            check.problem(
                &format!("{field}.max_version"),
                "is below min_version (or below TLS12)",
            );
        }
        [
            (TlsVersion::TLS12, &rustls::version::TLS12),
            (TlsVersion::TLS13, &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(version, _)| (min..=max).contains(version))
        .map(|(_, supported)| supported)
        .collect()
    }
}

/// Where the web config comes from, for a reload.
pub fn load_optional(path: Option<&PathBuf>) -> Result<WebConfig, ConfigError> {
    path.map_or_else(|| Ok(WebConfig::default()), |p| WebConfig::load(p))
}
