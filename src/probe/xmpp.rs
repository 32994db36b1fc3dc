//! Shared helper for the `stream` and `handshake` steps: an XMPP stream over any byte stream,
//! read with quick-xml (no entity expansion, no DTD) and capped in bytes so a hostile server
//! cannot grow our memory.

use std::time::Duration;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, Take};

use super::{Failure, Reason};

/// Far more than any real negotiation (a few hundred bytes), small enough to be harmless.
pub const READ_LIMIT: u64 = 64 * 1024;
const STREAM_ERROR_TEXT_LIMIT: usize = 256;

/// What the server said next, at the level of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// `<stream:stream ...>` with its `id` and default namespace.
    Header {
        id: Option<String>,
        namespace: Option<String>,
    },
    /// `<handshake/>` or `<handshake></handshake>`.
    Handshake,
    /// `<stream:error>` with its condition element's name and the optional text.
    StreamError { condition: String, text: String },
    /// Any other top-level element, skipped whole.
    Other(String),
    /// `</stream:stream>`.
    End,
}

pub struct XmppConn<S> {
    reader: Reader<BufReader<Take<S>>>,
    opened: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> XmppConn<S> {
    pub fn new(io: S) -> Self {
        let mut reader = Reader::from_reader(BufReader::new(io.take(READ_LIMIT)));
        let config = reader.config_mut();
        config.trim_text(true);
        config.check_end_names = true;
        XmppConn {
            reader,
            opened: false,
        }
    }

    fn io(&mut self) -> &mut S {
        self.reader.get_mut().get_mut().get_mut()
    }

    fn limit_reached(&self) -> bool {
        self.reader.get_ref().get_ref().limit() == 0
    }

    pub async fn send(&mut self, data: &str) -> Result<(), Failure> {
        let io = self.io();
        let sent = async {
            io.write_all(data.as_bytes()).await?;
            io.flush().await
        };
        sent.await
            .map_err(|e| Failure::new(Reason::Closed, format!("cannot send to the server: {e}")))
    }

    /// Reads until the next stream-level item.
    pub async fn next(&mut self) -> Result<Incoming, Failure> {
        let mut buf = Vec::new();
        loop {
            match self.read_event(&mut buf).await? {
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Text(text) if text.iter().all(u8::is_ascii_whitespace) => {}
                Event::DocType(_) => {
                    return Err(protocol("the server sent a DTD, which XMPP forbids"))
                }
                Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) => {
                    return Err(protocol(if self.opened {
                        "the server sent text where only elements belong"
                    } else {
                        "the server answered with something other than an XML stream"
                    }))
                }
                Event::Eof => return Err(self.read_failure(None)),
                Event::End(_) => return Ok(Incoming::End),
                Event::Start(start) if !self.opened => {
                    if start.local_name().as_ref() != b"stream" {
                        return Err(protocol(format!(
                            "expected a <stream:stream> header, got <{}>",
                            String::from_utf8_lossy(start.name().as_ref())
                        )));
                    }
                    self.opened = true;
                    return header(&start);
                }
                Event::Empty(_) if !self.opened => {
                    return Err(protocol(
                        "the server sent an empty element instead of a stream header",
                    ))
                }
                Event::Empty(element) => return Ok(child(&element)),
                Event::Start(element) => {
                    let element = element.into_owned();
                    return match child(&element) {
                        Incoming::StreamError { .. } => self.stream_error().await,
                        item => {
                            self.skip(&element).await?;
                            Ok(item)
                        }
                    };
                }
            }
        }
    }

    async fn read_event<'b>(&mut self, buf: &'b mut Vec<u8>) -> Result<Event<'b>, Failure> {
        buf.clear();
        let event = self.reader.read_event_into_async(buf).await;
        event.map_err(|e| self.read_failure(Some(&e)))
    }

    async fn skip(&mut self, element: &BytesStart<'static>) -> Result<(), Failure> {
        let mut buf = Vec::new();
        self.reader
            .read_to_end_into_async(element.name(), &mut buf)
            .await
            .map(|_| ())
            .map_err(|e| self.read_failure(Some(&e)))
    }

    /// The inside of `<stream:error>`: the first child names the condition; `<text>` explains.
    async fn stream_error(&mut self) -> Result<Incoming, Failure> {
        let mut buf = Vec::new();
        let (mut condition, mut text) = (String::new(), String::new());
        let (mut depth, mut in_text) = (0usize, false);
        loop {
            let event = self.read_event(&mut buf).await?;
            match event {
                Event::Start(ref e) | Event::Empty(ref e) if depth == 0 => {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    in_text = name == "text";
                    if !in_text && condition.is_empty() {
                        condition = name;
                    }
                    if matches!(event, Event::Start(_)) {
                        depth += 1;
                    }
                }
                Event::Start(_) => depth += 1,
                Event::Text(t) if in_text && text.len() < STREAM_ERROR_TEXT_LIMIT => {
                    text.push_str(&String::from_utf8_lossy(&t));
                    text.truncate(STREAM_ERROR_TEXT_LIMIT);
                }
                Event::End(_) if depth == 0 => {
                    return Ok(Incoming::StreamError { condition, text })
                }
                Event::End(_) => {
                    depth -= 1;
                    in_text = false;
                }
                // A server that errs and hangs up at once still told us the condition.
                Event::Eof => return Ok(Incoming::StreamError { condition, text }),
                _ => {}
            }
        }
    }

    /// Why reading stopped; `None` is a clean end of the byte stream.
    fn read_failure(&self, error: Option<&quick_xml::Error>) -> Failure {
        if self.limit_reached() {
            return Failure::new(
                Reason::Oversized,
                format!(
                    "the server sent more than {READ_LIMIT} bytes without completing negotiation"
                ),
            );
        }
        match error {
            None => Failure::new(Reason::Closed, "the server closed the connection"),
            Some(quick_xml::Error::Io(io)) => {
                match io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                    // TLS 1.3 servers judge a client certificate after the client's handshake is done.
                    Some(tls) => Failure::new(
                        Reason::TlsHandshake,
                        format!(
                            "TLS failed after the handshake (a client certificate problem?): {tls}"
                        ),
                    ),
                    None => Failure::new(Reason::Closed, format!("the connection failed: {io}")),
                }
            }
            Some(other) => protocol(format!("malformed XML from the server: {other}")),
        }
    }

    /// Ends the stream politely (`</stream:stream>`, the peer's answer, then TLS close_notify
    /// and FIN) so the server frees the component name before the next probe.
    pub async fn close(mut self, wait: Duration) {
        let _ = tokio::time::timeout(wait, async {
            if self.send("</stream:stream>").await.is_ok() {
                while let Ok(item) = self.next().await {
                    if item == Incoming::End {
                        break;
                    }
                }
            }
            let _ = self.io().shutdown().await;
        })
        .await;
    }
}

fn protocol(detail: impl Into<String>) -> Failure {
    Failure::new(Reason::Protocol, detail)
}

fn header(start: &BytesStart<'_>) -> Result<Incoming, Failure> {
    let (mut id, mut namespace) = (None, None);
    for attribute in start.attributes() {
        let attribute =
            attribute.map_err(|e| protocol(format!("bad attribute in the stream header: {e}")))?;
        let value = || {
            attribute
                .unescape_value()
                .map(|v| v.into_owned())
                .map_err(|e| protocol(format!("bad attribute value in the stream header: {e}")))
        };
        match attribute.key.as_ref() {
            b"id" => id = Some(value()?),
            b"xmlns" => namespace = Some(value()?),
            _ => {}
        }
    }
    Ok(Incoming::Header { id, namespace })
}

/// A top-level element. Stream errors are recognised by a prefixed `error` (`stream:error`),
/// since an unprefixed one would be in the component namespace.
fn child(element: &BytesStart<'_>) -> Incoming {
    let (name, local) = (element.name(), element.local_name());
    match local.as_ref() {
        b"handshake" => Incoming::Handshake,
        b"error" if name.as_ref() != local.as_ref() => Incoming::StreamError {
            condition: String::new(),
            text: String::new(),
        },
        _ => Incoming::Other(String::from_utf8_lossy(name.as_ref()).into_owned()),
    }
}

/// A stream error's condition as a reason; unknown conditions are `stream_error`.
pub fn stream_error_failure(condition: &str, text: &str) -> Failure {
    let reason = match condition {
        "not-authorized" => Reason::NotAuthorized,
        "host-unknown" => Reason::HostUnknown,
        "conflict" => Reason::Conflict,
        "improper-addressing" => Reason::ImproperAddressing,
        "invalid-namespace" => Reason::InvalidNamespace,
        _ => Reason::StreamError,
    };
    let condition = if condition.is_empty() {
        "(no condition)"
    } else {
        condition
    };
    let detail = if text.is_empty() {
        format!("stream error {condition}")
    } else {
        format!("stream error {condition}: {text}")
    };
    Failure::new(reason, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Feeds `server` bytes to a connection and collects items until an error or `End`.
    async fn read_all(server: &'static [u8]) -> (Vec<Incoming>, Option<Failure>) {
        let (client, mut peer) = tokio::io::duplex(1024);
        tokio::spawn(async move {
            let _ = peer.write_all(server).await;
            let _ = peer.shutdown().await;
            // Keep the peer alive until the client is done.
            let mut sink = Vec::new();
            let _ = peer.read_to_end(&mut sink).await;
        });
        let mut conn = XmppConn::new(client);
        let mut items = Vec::new();
        loop {
            match conn.next().await {
                Ok(Incoming::End) => return (items, None),
                Ok(item) => items.push(item),
                Err(f) => return (items, Some(f)),
            }
        }
    }

    fn header_with(id: &str) -> Incoming {
        Incoming::Header {
            id: Some(id.into()),
            namespace: Some("jabber:component:accept".into()),
        }
    }

    #[tokio::test]
    async fn header_attribute_order_and_quotes_vary() {
        let (items, _) = read_all(
            b"<stream:stream id=\"a&amp;b\" xmlns=\"jabber:component:accept\" from='c' xmlns:stream='http://etherx.jabber.org/streams'>",
        )
        .await;
        assert_eq!(items, vec![header_with("a&b")]);
        let (items, _) = read_all(
            b"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' from='c' id='x1'>",
        )
        .await;
        assert_eq!(items, vec![header_with("x1")]);
    }

    #[tokio::test]
    async fn handshake_both_forms_and_stream_errors() {
        let (items, failure) = read_all(
            b"<stream:stream xmlns='jabber:component:accept' id='1'>\n<handshake/> <handshake></handshake><stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bad token</text></stream:error></stream:stream>",
        )
        .await;
        assert_eq!(failure, None);
        assert_eq!(
            items,
            vec![
                header_with("1"),
                Incoming::Handshake,
                Incoming::Handshake,
                Incoming::StreamError {
                    condition: "not-authorized".into(),
                    text: "bad token".into()
                }
            ]
        );
    }

    #[tokio::test]
    async fn entities_are_not_expanded_and_dtds_refused() {
        let (_, failure) =
            read_all(b"<!DOCTYPE x [<!ENTITY big 'boom'>]><stream:stream id='&big;'>").await;
        assert_eq!(failure.unwrap().reason, Reason::Protocol);
        let (_, failure) = read_all(b"<stream:stream id='&big;'>").await;
        assert_eq!(failure.unwrap().reason, Reason::Protocol);
    }

    #[tokio::test]
    async fn closed_and_garbage_are_told_apart() {
        let (items, failure) = read_all(b"<stream:stream id='1'>").await;
        assert_eq!(items.len(), 1);
        assert_eq!(failure.unwrap().reason, Reason::Closed);
        let (_, failure) = read_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        assert_eq!(failure.unwrap().reason, Reason::Protocol);
    }

    #[tokio::test]
    async fn reading_stops_at_the_limit() {
        let (client, mut peer) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let _ = peer.write_all(b"<stream:stream id='").await;
            let chunk = vec![b'a'; 8192];
            while peer.write_all(&chunk).await.is_ok() {}
        });
        let failure = XmppConn::new(client).next().await.unwrap_err();
        assert_eq!(failure.reason, Reason::Oversized);
    }

    #[test]
    fn conditions_map_to_reasons() {
        assert_eq!(
            stream_error_failure("conflict", "").reason,
            Reason::Conflict
        );
        assert_eq!(
            stream_error_failure("connection-timeout", "").reason,
            Reason::StreamError
        );
        assert!(stream_error_failure("connection-timeout", "idle")
            .detail
            .contains("connection-timeout: idle"));
    }
}
