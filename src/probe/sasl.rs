//! Step `sasl` (client path): the monitoring user proves its password (RFC 6120 §6).
//! SCRAM-SHA-256 or SCRAM-SHA-1 (RFC 5802, RFC 7677) first: the password never crosses the
//! wire and the server proves it knows it too. PLAIN only inside TLS.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sasl::client::mechanisms::{Plain, Scram};
use sasl::client::Mechanism;
use sasl::common::scram::{Sha1, Sha256};
use sasl::common::{ChannelBinding, Credentials};
use tokio::io::{AsyncRead, AsyncWrite};

use super::client::{self, SASL_NAMESPACE};
use super::stream::unexpected;
use super::xmpp::{Element, Incoming, XmppConn};
use super::{Failure, Reason};
use crate::config::{Jid, Secret};

/// The mechanisms the probe uses, in the order it prefers them.
const PREFERRED: [&str; 3] = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"];

/// Opens the stream, authenticates, and returns the mechanism that was used.
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut XmppConn<S>,
    jid: &Jid,
    password: &Secret,
    encrypted: bool,
) -> Result<&'static str, Failure> {
    let features = client::open(conn, &jid.domain).await?;
    let name = choose(&features, encrypted)?;
    let credentials = Credentials::default().with_channel_binding(ChannelBinding::None);
    let mut mechanism: Box<dyn Mechanism + Send> = match name {
        "PLAIN" => Box::new(
            Plain::from_credentials(
                credentials
                    .with_username(jid.local.as_str())
                    .with_password(password.expose()),
            )
            .map_err(mechanism_error)?,
        ),
        scram => {
            let credentials = credentials
                .with_username(scram_name(&jid.local))
                .with_password(password.expose());
            if scram == "SCRAM-SHA-256" {
                Box::new(Scram::<Sha256>::from_credentials(credentials).map_err(mechanism_error)?)
            } else {
                Box::new(Scram::<Sha1>::from_credentials(credentials).map_err(mechanism_error)?)
            }
        }
    };
    conn.send(&format!(
        "<auth xmlns='{SASL_NAMESPACE}' mechanism='{name}'>{}</auth>",
        BASE64.encode(mechanism.initial())
    ))
    .await?;
    loop {
        match conn.next().await? {
            Incoming::Element(e) if e.is("challenge", SASL_NAMESPACE) => {
                let response = mechanism.response(&decode(&e)?).map_err(mechanism_error)?;
                conn.send(&format!(
                    "<response xmlns='{SASL_NAMESPACE}'>{}</response>",
                    BASE64.encode(response)
                ))
                .await?;
            }
            Incoming::Element(e) if e.is("success", SASL_NAMESPACE) => {
                // SCRAM: the server's signature proves it knows the password as well.
                mechanism.success(&decode(&e)?).map_err(|e| {
                    Failure::new(
                        Reason::SaslError,
                        format!("the server's proof does not verify ({e}): it does not know the user's password"),
                    )
                })?;
                return Ok(name);
            }
            Incoming::Element(e) if e.is("failure", SASL_NAMESPACE) => return Err(refusal(&e)),
            other => return Err(unexpected(other)),
        }
    }
}

/// The best mechanism the server offers; PLAIN only when the stream is encrypted.
fn choose(features: &Element, encrypted: bool) -> Result<&'static str, Failure> {
    let offered: Vec<&str> = features
        .child("mechanisms", SASL_NAMESPACE)
        .map(|m| m.children.iter().map(|c| c.text.as_str()).collect())
        .unwrap_or_default();
    PREFERRED
        .into_iter()
        .filter(|name| encrypted || *name != "PLAIN")
        .find(|name| offered.contains(name))
        .ok_or_else(|| {
            let needs = if encrypted {
                "SCRAM-SHA-256, SCRAM-SHA-1 or PLAIN"
            } else {
                "SCRAM-SHA-256 or SCRAM-SHA-1 (PLAIN would send the password in the clear)"
            };
            Failure::new(
                Reason::SaslMechanism,
                format!(
                    "the server offers [{}]; the probe needs {needs}",
                    offered.join(", ")
                ),
            )
        })
}

/// RFC 5802 §5.1: `=` and `,` in a SCRAM user name are escaped.
fn scram_name(local: &str) -> String {
    local.replace('=', "=3D").replace(',', "=2C")
}

fn decode(element: &Element) -> Result<Vec<u8>, Failure> {
    // RFC 6120 §6.4.2: "=" is an empty payload.
    let text = element.text.trim();
    if text == "=" {
        return Ok(Vec::new());
    }
    BASE64.decode(text).map_err(|e| {
        Failure::new(
            Reason::Protocol,
            format!("the server's <{}> is not base64: {e}", element.name),
        )
    })
}

fn mechanism_error(error: sasl::client::MechanismError) -> Failure {
    Failure::new(Reason::SaslError, format!("SASL: {error}"))
}

/// A `<failure/>`: `not-authorized` is a wrong password or an unknown user.
fn refusal(failure: &Element) -> Failure {
    let (condition, text) = client::condition_and_text(failure, SASL_NAMESPACE);
    let condition = condition.unwrap_or("(no condition)");
    let text = text.map(|t| format!(": {t}")).unwrap_or_default();
    let reason = if condition == "not-authorized" {
        Reason::NotAuthorized
    } else {
        Reason::SaslError
    };
    Failure::new(reason, format!("SASL failure {condition}{text}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sasl::common::scram::ScramProvider;
    use sasl::common::Password;

    /// ClientProof and ServerSignature from an exchange's messages (RFC 5802 §3).
    fn proof_and_signature<P: ScramProvider>(
        password: &str,
        salt: &str,
        iterations: u32,
        auth_message: &str,
    ) -> (String, String) {
        let salted = P::derive(
            &Password::Plain(password.to_owned()),
            &BASE64.decode(salt).unwrap(),
            iterations,
        )
        .unwrap();
        let client_key = P::hmac(b"Client Key", &salted).unwrap();
        let stored_key = P::hash(&client_key);
        let signature = P::hmac(auth_message.as_bytes(), &stored_key).unwrap();
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = P::hmac(b"Server Key", &salted).unwrap();
        let server_signature = P::hmac(auth_message.as_bytes(), &server_key).unwrap();
        (BASE64.encode(proof), BASE64.encode(server_signature))
    }

    #[test]
    fn scram_computes_the_rfc_test_vectors() {
        // RFC 5802 §5: SCRAM-SHA-1, user "user", password "pencil".
        let auth = "n=user,r=fyko+d2lbbFgONRv9qkxdawL,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096,c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
        assert_eq!(
            proof_and_signature::<Sha1>("pencil", "QSXCR+Q6sek8bf92", 4096, auth),
            (
                "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=".into(),
                "rmF9pqV8S7suAoZWja4dJRkFsKQ=".into()
            )
        );
        // RFC 7677 §3: SCRAM-SHA-256.
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        assert_eq!(
            proof_and_signature::<Sha256>("pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", 4096, auth),
            (
                "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=".into(),
                "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".into()
            )
        );
    }

    fn features(mechanisms: &[&str]) -> Element {
        let mechanism = |name: &str| Element {
            name: "mechanism".into(),
            namespace: SASL_NAMESPACE.into(),
            text: name.into(),
            ..Element::default()
        };
        Element {
            name: "features".into(),
            children: vec![Element {
                name: "mechanisms".into(),
                namespace: SASL_NAMESPACE.into(),
                children: mechanisms.iter().map(|m| mechanism(m)).collect(),
                ..Element::default()
            }],
            ..Element::default()
        }
    }

    #[test]
    fn scram_first_and_plain_only_inside_tls() {
        let all = features(&["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256", "X-OAUTH2"]);
        assert_eq!(choose(&all, true), Ok("SCRAM-SHA-256"));
        assert_eq!(
            choose(&features(&["PLAIN", "SCRAM-SHA-1"]), false),
            Ok("SCRAM-SHA-1")
        );
        assert_eq!(choose(&features(&["PLAIN"]), true), Ok("PLAIN"));
        let refused = choose(&features(&["PLAIN", "DIGEST-MD5"]), false).unwrap_err();
        assert_eq!(refused.reason, Reason::SaslMechanism);
        assert!(
            refused.detail.contains("[PLAIN, DIGEST-MD5]"),
            "{}",
            refused.detail
        );
        assert_eq!(
            choose(&Element::default(), true).unwrap_err().reason,
            Reason::SaslMechanism
        );
        assert_eq!(scram_name("a=b,c"), "a=3Db=2Cc");
    }
}
