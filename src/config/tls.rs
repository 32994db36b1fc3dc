//! The TLS settings of a target or watch: trust anchors (`ca_file`), the verification name
//! and the client identity (certificate and key), read and checked.

use super::*;

impl RawTls {
    pub(super) fn validate(self, field: &str, check: &mut Checker) -> Option<TlsSettings> {
        let client_auth = match (
            non_empty(&self.client_cert_file),
            non_empty(&self.client_key_file),
        ) {
            (None, None) => Some(None),
            (Some(cert), Some(key)) => Some(client_identity(field, cert, key, check)),
            _ => {
                check.problem(
                    field,
                    "client_cert_file and client_key_file go together: set both or neither",
                );
                None
            }
        };
        let settings = tls_settings(
            check,
            field,
            self.ca_file.as_deref(),
            self.server_name.as_deref(),
            client_auth.clone().flatten(),
        );
        if self.mode == TlsMode::None
            && settings.as_ref().is_some_and(|s| {
                s.ca_certs.is_some() || s.server_name.is_some() || s.client_auth.is_some()
            })
        {
            check.warnings.push(format!(
                "{field}: mode is none (plaintext), so the other tls settings are not used"
            ));
        }
        settings.filter(|_| client_auth.is_some())
    }
}

/// Trust anchors (`ca_file`), the verification name and a client identity, checked.
pub(super) fn tls_settings(
    check: &mut Checker,
    field: &str,
    ca_file: Option<&str>,
    server_name: Option<&str>,
    client_auth: Option<ClientIdentity>,
) -> Option<TlsSettings> {
    let before = check.problems.len();
    let ca_certs = ca_file
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .and_then(|path| {
            let field = format!("{field}.ca_file");
            let pem = check.read_file(&field, path)?;
            let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
            match certs {
                Ok(certs) if !certs.is_empty() => Some(certs),
                Ok(_) => {
                    check.problem(&field, format!("{path} holds no PEM certificate"));
                    None
                }
                Err(e) => {
                    check.problem(&field, format!("{path} is not valid PEM: {e}"));
                    None
                }
            }
        });
    let server_name = server_name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .and_then(|text| {
            let name = normalise_host(text);
            let parsed = ServerName::try_from(name.clone()).ok();
            if parsed.is_none() {
                check.problem(
                    &format!("{field}.server_name"),
                    "is not a DNS name or IP address",
                );
            }
            parsed
        });
    (check.problems.len() == before).then_some(TlsSettings {
        ca_certs,
        server_name,
        client_auth,
    })
}

fn client_identity(
    field: &str,
    cert: &str,
    key: &str,
    check: &mut Checker,
) -> Option<ClientIdentity> {
    let cert_field = format!("{field}.client_cert_file");
    let key_field = format!("{field}.client_key_file");
    let cert_pem = check.read_file(&cert_field, cert);
    let key_pem = check.read_file(&key_field, key);
    let chain: Vec<_> = CertificateDer::pem_slice_iter(&cert_pem?)
        .filter_map(Result::ok)
        .collect();
    let not_after = match chain.first() {
        None => {
            check.problem(&cert_field, format!("{cert} holds no PEM certificate"));
            None
        }
        Some(leaf) => match x509_parser::parse_x509_certificate(leaf) {
            Ok((_, parsed)) => Some(parsed.validity().not_after.timestamp()),
            Err(_) => {
                check.problem(
                    &cert_field,
                    format!("{cert}: its first certificate is not X.509"),
                );
                None
            }
        },
    };
    // The key's parse error could quote key material, so only the path is reported.
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem?).ok();
    if private_key.is_none() {
        check.problem(&key_field, format!("{key} holds no PEM private key"));
    }
    Some(ClientIdentity {
        chain,
        key: private_key?,
        not_after: not_after?,
    })
}
