//! Step `sasl` (client path): the monitoring user proves its password (RFC 6120 §6).
//! SCRAM-SHA-256 or SCRAM-SHA-1 (RFC 5802, RFC 7677) first: the password never crosses the
//! wire and the server proves it knows it too (see [`super::scram`]). PLAIN only inside TLS.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sasl::client::mechanisms::Plain;
use sasl::client::Mechanism;
use sasl::common::Credentials;
use tokio::io::{AsyncRead, AsyncWrite};

use super::client;
use super::kdf::Hash;
use super::scram::{self, Derivation, Scram};
use super::stream::unexpected;
use super::xmpp::SASL_NAMESPACE;
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
    derivation: Derivation<'_>,
) -> Result<&'static str, Failure> {
    let features = client::open(conn, &jid.domain).await?;
    let name = choose(&features, encrypted)?;
    let hash = match name {
        "SCRAM-SHA-256" => Hash::Sha256,
        "SCRAM-SHA-1" => Hash::Sha1,
        _ => {
            let credentials = Credentials::default()
                .with_username(jid.local.as_str())
                .with_password(password.expose());
            let initial = Plain::from_credentials(credentials)
                .map_err(mechanism_error)?
                .initial();
            send_auth(conn, name, &initial).await?;
            return match next_sasl(conn).await? {
                Answer::Success(_) => Ok(name),
                Answer::Challenge(_) => Err(Failure::new(
                    Reason::SaslError,
                    "the server sent a challenge to PLAIN, which has none",
                )),
            };
        }
    };
    let (scram, first) = Scram::start(hash, &scram_name(&jid.local))?;
    send_auth(conn, name, &first).await?;
    let Answer::Challenge(challenge) = next_sasl(conn).await? else {
        return Err(Failure::new(
            Reason::SaslError,
            "the server declared success before the client proved anything",
        ));
    };
    let server_first = scram.read_server_first(&challenge)?;
    let (last, expected) = scram
        .client_final(&server_first, password, &derivation)
        .await?;
    send_response(conn, &last).await?;
    // RFC 6120 §6.3.10: the server's proof comes with the success, or as a last challenge
    // answered with an empty response.
    match next_sasl(conn).await? {
        Answer::Success(data) if data.is_empty() => Err(Failure::new(
            Reason::SaslError,
            "the server declared success without its SCRAM proof",
        )),
        Answer::Success(data) => scram::verify_server_final(&expected, &data).map(|()| name),
        Answer::Challenge(data) => {
            scram::verify_server_final(&expected, &data)?;
            send_response(conn, &[]).await?;
            match next_sasl(conn).await? {
                Answer::Success(_) => Ok(name),
                Answer::Challenge(_) => Err(Failure::new(
                    Reason::SaslError,
                    "the server sent a challenge after its SCRAM proof",
                )),
            }
        }
    }
}

async fn send_auth<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut XmppConn<S>,
    mechanism: &str,
    initial: &[u8],
) -> Result<(), Failure> {
    conn.send(&format!(
        "<auth xmlns='{SASL_NAMESPACE}' mechanism='{mechanism}'>{}</auth>",
        BASE64.encode(initial)
    ))
    .await
}

async fn send_response<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut XmppConn<S>,
    payload: &[u8],
) -> Result<(), Failure> {
    // RFC 6120 §6.4.2: an empty response is "=".
    let payload = if payload.is_empty() {
        "=".to_owned()
    } else {
        BASE64.encode(payload)
    };
    conn.send(&format!(
        "<response xmlns='{SASL_NAMESPACE}'>{payload}</response>"
    ))
    .await
}

/// What the server said next in the SASL exchange, decoded.
enum Answer {
    Challenge(Vec<u8>),
    Success(Vec<u8>),
}

async fn next_sasl<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut XmppConn<S>,
) -> Result<Answer, Failure> {
    match conn.next().await? {
        Incoming::Element(e) if e.is("challenge", SASL_NAMESPACE) => {
            Ok(Answer::Challenge(decode(&e)?))
        }
        Incoming::Element(e) if e.is("success", SASL_NAMESPACE) => Ok(Answer::Success(decode(&e)?)),
        Incoming::Element(e) if e.is("failure", SASL_NAMESPACE) => Err(refusal(&e)),
        other => Err(unexpected(other)),
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
