//! Shared helper for the client path's steps (`starttls`, `sasl`, `bind`, the pings): the
//! `jabber:client` stream, its features and stanza errors (RFC 6120).

use tokio::io::{AsyncRead, AsyncWrite};

use super::stream::unexpected;
use super::xmpp::{
    Element, Incoming, XmppConn, CLIENT_NAMESPACE, STANZAS_NAMESPACE, STREAMS_NAMESPACE,
};
use super::{Failure, Reason};

/// Opens a client stream to `domain` and returns the server's stream features.
pub async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut XmppConn<S>,
    domain: &str,
) -> Result<Element, Failure> {
    conn.send(&format!(
        "<?xml version='1.0'?><stream:stream xmlns='{CLIENT_NAMESPACE}' \
         xmlns:stream='{STREAMS_NAMESPACE}' to='{}' version='1.0'>",
        quick_xml::escape::escape(domain)
    ))
    .await?;
    match conn.next().await? {
        Incoming::Header { namespace, .. } if namespace.as_deref() == Some(CLIENT_NAMESPACE) => {}
        Incoming::Header { namespace, .. } => {
            let namespace = namespace.unwrap_or_default();
            return Err(Failure::new(
                Reason::InvalidNamespace,
                format!(
                    "the server answered in namespace {namespace:?}, not {CLIENT_NAMESPACE}: \
                     is this the client port?"
                ),
            ));
        }
        other => return Err(unexpected(other)),
    }
    match conn.next().await? {
        Incoming::Element(features) if features.is("features", STREAMS_NAMESPACE) => Ok(features),
        other => Err(unexpected(other)),
    }
}

/// The defined condition and the text of a stanza's `<error>`, if it has one.
pub fn stanza_error(stanza: &Element) -> Option<(&str, &str)> {
    let error = stanza.child("error", &stanza.namespace)?;
    let (condition, text) = condition_and_text(error, STANZAS_NAMESPACE);
    Some((condition.unwrap_or(""), text.unwrap_or("")))
}

/// An error element's defined condition (its first child in `namespace` other than
/// `<text>`) and its `<text>`: the shape of stanza errors and SASL failures alike.
pub fn condition_and_text<'a>(
    error: &'a Element,
    namespace: &str,
) -> (Option<&'a str>, Option<&'a str>) {
    let condition = error
        .children
        .iter()
        .find(|c| c.namespace == namespace && c.name != "text")
        .map(|c| c.name.as_str());
    let text = error.child("text", namespace).map(|t| t.text.as_str());
    (condition, text)
}

/// Reads until the IQ answer with `id`, skipping the stanzas a server may push meanwhile.
pub async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut XmppConn<S>,
    id: &str,
) -> Result<Element, Failure> {
    loop {
        match conn.next().await? {
            Incoming::Element(iq) if iq.name == "iq" && iq.attribute("id") == Some(id) => {
                return Ok(iq)
            }
            Incoming::Element(_) => continue,
            other => return Err(unexpected(other)),
        }
    }
}
