//! Step `stream`: open a `jabber:component:accept` stream and read the server's header.

use tokio::io::{AsyncRead, AsyncWrite};

use super::xmpp::{stream_error_failure, Incoming, XmppConn, COMPONENT_NAMESPACE};
use super::{Failure, Reason};

/// The header a Callbridge sends, naming the component in `to`.
pub fn header(component: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{COMPONENT_NAMESPACE}' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{}'>",
        escape_attribute(component)
    )
}

fn escape_attribute(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

/// Sends our header and returns the server's stream id. A header without an id is how
/// Prosody begins a refusal, so the error that follows is read and reported.
pub async fn open<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut XmppConn<S>,
    component: &str,
) -> Result<String, Failure> {
    conn.send(&header(component)).await?;
    let namespace = match conn.next().await? {
        Incoming::Header {
            id: Some(id),
            namespace,
        } if !id.is_empty() => {
            check_namespace(namespace.as_deref())?;
            return Ok(id);
        }
        Incoming::Header { namespace, .. } => namespace,
        other => return Err(unexpected(other)),
    };
    // No id: the server will not accept a handshake. Say why, if it does.
    match conn.next().await {
        Ok(Incoming::StreamError { condition, text }) => {
            Err(stream_error_failure(&condition, &text))
        }
        _ => {
            check_namespace(namespace.as_deref())?;
            Err(Failure::new(
                Reason::Protocol,
                "the server's stream header has no id",
            ))
        }
    }
}

fn check_namespace(namespace: Option<&str>) -> Result<(), Failure> {
    match namespace {
        Some(ns) if ns != COMPONENT_NAMESPACE => Err(Failure::new(
            Reason::InvalidNamespace,
            format!("the server answered in namespace {ns}, not {COMPONENT_NAMESPACE}: is this the component port?"),
        )),
        _ => Ok(()),
    }
}

/// Anything but a header where the header belongs.
pub fn unexpected(item: Incoming) -> Failure {
    match item {
        Incoming::StreamError { condition, text } => stream_error_failure(&condition, &text),
        Incoming::End => Failure::new(Reason::Closed, "the server ended the stream"),
        other => Failure::new(
            Reason::Protocol,
            format!("unexpected {other:?} from the server"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `open` against a server that answers `reply` to any header.
    async fn open_against(reply: &'static [u8]) -> Result<String, Failure> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, mut server) = tokio::io::duplex(4096);
        tokio::spawn(async move {
            let mut header = [0u8; 512];
            let _ = server.read(&mut header).await;
            let _ = server.write_all(reply).await;
            let _ = server.shutdown().await;
        });
        open(&mut XmppConn::new(client), "probe.example.test").await
    }

    #[tokio::test]
    async fn the_client_port_is_told_apart_from_the_component_port() {
        let failure = open_against(
            b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1'>",
        )
            .await
            .unwrap_err();
        assert_eq!(failure.reason, Reason::InvalidNamespace);
        assert!(
            failure.detail.contains("jabber:client"),
            "{}",
            failure.detail
        );
    }

    #[tokio::test]
    async fn a_header_without_id_reports_the_error_that_follows() {
        let refusal = b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'><stream:error>\
            <host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>";
        assert_eq!(
            open_against(refusal).await.unwrap_err().reason,
            Reason::HostUnknown
        );
        let bare = b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>";
        assert_eq!(
            open_against(bare).await.unwrap_err().reason,
            Reason::Protocol
        );
        let ok = b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='abc'>";
        assert_eq!(open_against(ok).await, Ok("abc".to_owned()));
        // The `stream` prefix bound elsewhere, or not at all: not an XMPP stream.
        let foreign = b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='urn:example:not-streams' id='abc'>";
        assert_eq!(
            open_against(foreign).await.unwrap_err().reason,
            Reason::InvalidNamespace
        );
        let unbound = b"<stream:stream xmlns='jabber:component:accept' id='abc'>";
        assert_eq!(
            open_against(unbound).await.unwrap_err().reason,
            Reason::InvalidNamespace
        );
    }

    #[test]
    fn header_escapes_the_component_name() {
        let h = header("a'b&c");
        assert!(h.contains("to='a&apos;b&amp;c'"), "{h}");
        assert!(h.contains("xmlns='jabber:component:accept'"));
    }
}
