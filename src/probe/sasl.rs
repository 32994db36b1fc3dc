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

    /// What the probe's side of a SCRAM-SHA-1 login ends with, against a client port that
    /// answers the `<auth>` with `after_auth` when given, else with a server-first challenge
    /// extending the probe's nonce and then answers the probe's final message with `last`.
    async fn scram_ending(after_auth: Option<&'static str>, last: &'static str) -> Failure {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        async fn read_until<R: AsyncRead + Unpin>(from: &mut R, seen: &mut String, end: &str) {
            let mut chunk = [0u8; 4096];
            while !seen.contains(end) {
                let n = from.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the probe closed before {end}");
                seen.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        }

        let (client, server) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let (mut input, mut output) = tokio::io::split(server);
            let mut seen = String::new();
            let opening = format!(
                "<?xml version='1.0'?><stream:stream from='e2e.test' id='1' \
                 xmlns:stream='http://etherx.jabber.org/streams' version='1.0' \
                 xmlns='jabber:client'><stream:features><mechanisms xmlns='{SASL_NAMESPACE}'>\
                 <mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>"
            );
            output.write_all(opening.as_bytes()).await.unwrap();
            read_until(&mut input, &mut seen, "</auth>").await;
            let answer = match after_auth {
                Some(answer) => answer.to_owned(),
                None => {
                    let payload = seen.split("'>").last().unwrap();
                    let payload = payload.split("</auth>").next().unwrap();
                    let first = String::from_utf8(BASE64.decode(payload).unwrap()).unwrap();
                    let nonce = first.split("r=").nth(1).unwrap();
                    let server_first = format!("r={nonce}server,s=c2FsdA==,i=4096");
                    let challenge = BASE64.encode(server_first);
                    output
                        .write_all(
                            format!("<challenge xmlns='{SASL_NAMESPACE}'>{challenge}</challenge>")
                                .as_bytes(),
                        )
                        .await
                        .unwrap();
                    read_until(&mut input, &mut seen, "</response>").await;
                    last.to_owned()
                }
            };
            output.write_all(answer.as_bytes()).await.unwrap();
            let mut sink = [0u8; 4096];
            while input.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        });
        let mut conn = XmppConn::new(client);
        let jid = Jid {
            local: "monitor".into(),
            domain: "e2e.test".into(),
        };
        let cache = crate::probe::kdf::SaltedPasswords::default();
        let server = crate::probe::Endpoint {
            host: crate::probe::Host::Name("xmpp.e2e.test".into()),
            port: 5222,
        };
        let derivation = Derivation {
            cache: &cache,
            server: &server,
            max_iterations: 4096,
            deadline: tokio::time::Instant::now() + std::time::Duration::from_secs(10),
        };
        let password = Secret::new("pencil");
        authenticate(&mut conn, &jid, &password, true, derivation)
            .await
            .unwrap_err()
    }

    /// The server must prove it knows the password, whichever way it sends its last word.
    #[tokio::test]
    async fn a_server_that_proves_nothing_fails_the_login() {
        let success = "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>";
        let early = scram_ending(Some(success), "").await;
        assert!(
            early.detail.contains("before the client proved"),
            "{early:?}"
        );
        let bare = scram_ending(None, success).await;
        assert!(bare.detail.contains("without its SCRAM proof"), "{bare:?}");
        // RFC 6120 6.3.10: the server-final as a last challenge; this one does not verify.
        let challenge = "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>dj1BQUFB</challenge>";
        let wrong = scram_ending(None, challenge).await;
        assert!(wrong.detail.contains("does not verify"), "{wrong:?}");
        for failure in [early, bare, wrong] {
            assert_eq!(failure.reason, Reason::SaslError);
        }
    }
}
