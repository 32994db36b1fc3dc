//! Step `starttls` (client path): RFC 6120 §5, a plaintext client stream upgraded to TLS.

use super::client;
use super::connect::Tcp;
use super::stream::unexpected;
use super::xmpp::TLS_NAMESPACE;
use super::xmpp::{Incoming, XmppConn};
use super::{Failure, Reason};

/// Asks for TLS and returns the connection to start it on, once the server proceeds.
pub async fn negotiate(tcp: Tcp, domain: &str) -> Result<Tcp, Failure> {
    let mut conn = XmppConn::new(tcp);
    let features = client::open(&mut conn, domain).await?;
    if features.child("starttls", TLS_NAMESPACE).is_none() {
        return Err(Failure::new(
            Reason::StarttlsUnavailable,
            "the server offers no STARTTLS on this port",
        ));
    }
    conn.send(&format!("<starttls xmlns='{TLS_NAMESPACE}'/>"))
        .await?;
    match conn.next().await? {
        Incoming::Element(e) if e.is("proceed", TLS_NAMESPACE) => conn.into_io(),
        Incoming::Element(e) if e.is("failure", TLS_NAMESPACE) => Err(Failure::new(
            Reason::StarttlsUnavailable,
            "the server refused STARTTLS (<failure/>)",
        )),
        other => Err(unexpected(other)),
    }
}
