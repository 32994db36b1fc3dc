//! Step `bind` (client path): a resource for the monitoring user (RFC 6120 §7), and the
//! session of RFC 3921 where a server still requires one.

use tokio::io::{AsyncRead, AsyncWrite};

use super::client::{self, answer, stanza_error};
use super::xmpp::{Element, XmppConn};
use super::xmpp::{BIND_NAMESPACE, SESSION_NAMESPACE};
use super::{Failure, Reason};

/// Opens the restarted stream and binds a resource the server picks, so that two exporters
/// (or two replicas) logging in as one user never replace each other's session.
pub async fn bind<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut XmppConn<S>,
    domain: &str,
) -> Result<String, Failure> {
    let features = client::open(conn, domain).await?;
    if features.child("bind", BIND_NAMESPACE).is_none() {
        return Err(Failure::new(
            Reason::BindError,
            "the server offers no resource binding after authentication",
        ));
    }
    conn.send(&format!(
        "<iq type='set' id='bind'><bind xmlns='{BIND_NAMESPACE}'/></iq>"
    ))
    .await?;
    let bound = answer(conn, "bind").await?;
    let jid = result(&bound, "binding a resource")?
        .child("bind", BIND_NAMESPACE)
        .and_then(|b| b.child("jid", BIND_NAMESPACE))
        .map(|j| j.text.clone())
        .ok_or_else(|| Failure::new(Reason::Protocol, "the bind result names no JID"))?;
    let session = features.child("session", SESSION_NAMESPACE);
    if session.is_some_and(|s| s.child("optional", SESSION_NAMESPACE).is_none()) {
        conn.send(&format!(
            "<iq type='set' id='session'><session xmlns='{SESSION_NAMESPACE}'/></iq>"
        ))
        .await?;
        result(&answer(conn, "session").await?, "opening a session")?;
    }
    Ok(jid)
}

/// The IQ if it is a result; its error as a failure otherwise.
fn result<'a>(iq: &'a Element, what: &str) -> Result<&'a Element, Failure> {
    match (iq.attribute("type"), stanza_error(iq)) {
        (Some("result"), _) => Ok(iq),
        (_, Some((condition, text))) => Err(Failure::new(
            Reason::BindError,
            format!("the server refused {what}: {condition} {text}")
                .trim_end()
                .to_owned(),
        )),
        (kind, None) => Err(Failure::new(
            Reason::Protocol,
            format!("an IQ of type {kind:?} answered {what}"),
        )),
    }
}
