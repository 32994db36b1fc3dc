//! Shared helper for the XMPP steps (component and client streams): an XMPP stream over any
//! byte stream, read with quick-xml (no entity expansion, no DTD), capped in bytes and depth
//! so a hostile server cannot grow our memory.

use std::time::Duration;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, Take};
use tokio::time::Instant;

use super::tls::post_handshake_refusal;
use super::{Failure, Reason};

/// Far more than any real negotiation (a few hundred bytes; a client session that pings a few
/// dozen components, a few kilobytes), small enough to be harmless.
pub const READ_LIMIT: u64 = 64 * 1024;
const STREAM_ERROR_TEXT_LIMIT: usize = 256;
/// Stanzas are a few levels deep; anything deeper is not XMPP we need.
const MAX_DEPTH: usize = 16;
// The XML namespaces of both flows, in one place.
pub const STREAMS_NAMESPACE: &str = "http://etherx.jabber.org/streams";
/// XEP-0114: a component's stream.
pub const COMPONENT_NAMESPACE: &str = "jabber:component:accept";
/// RFC 6120: a client's stream and its negotiation.
pub const CLIENT_NAMESPACE: &str = "jabber:client";
pub const TLS_NAMESPACE: &str = "urn:ietf:params:xml:ns:xmpp-tls";
pub const SASL_NAMESPACE: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
pub const BIND_NAMESPACE: &str = "urn:ietf:params:xml:ns:xmpp-bind";
pub const SESSION_NAMESPACE: &str = "urn:ietf:params:xml:ns:xmpp-session";
pub const STANZAS_NAMESPACE: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

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
    /// Any other top-level element (a stanza, stream features, a SASL element), whole.
    Element(Element),
    /// `</stream:stream>`.
    End,
}

/// An element as read, namespaces resolved. Text is kept for leaf elements only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub namespace: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn is(&self, name: &str, namespace: &str) -> bool {
        self.name == name && self.namespace == namespace
    }

    pub fn child(&self, name: &str, namespace: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(name, namespace))
    }
}

/// Namespace declarations in scope: the default one and the prefixed ones.
#[derive(Clone, Debug, Default)]
struct Scope {
    default: String,
    prefixes: Vec<(String, String)>,
}

impl Scope {
    /// The scope inside `start`, and its namespace (`None` for an undeclared prefix).
    fn enter(&self, start: &BytesStart<'_>) -> Result<(Scope, Option<String>), Failure> {
        let mut inner = self.clone();
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|e| protocol(format!("bad attribute: {e}")))?;
            let value = attribute
                .unescape_value()
                .map_err(|e| protocol(format!("bad attribute value: {e}")))?
                .into_owned();
            match attribute.key.as_ref() {
                b"xmlns" => inner.default = value,
                key => {
                    if let Some(prefix) = key.strip_prefix(b"xmlns:") {
                        let prefix = String::from_utf8_lossy(prefix).into_owned();
                        inner.prefixes.retain(|(p, _)| *p != prefix);
                        inner.prefixes.push((prefix, value));
                    }
                }
            }
        }
        let namespace = match start.name().prefix() {
            None => Some(inner.default.clone()),
            Some(prefix) => {
                let prefix = String::from_utf8_lossy(prefix.as_ref());
                inner
                    .prefixes
                    .iter()
                    .find(|(p, _)| *p == prefix)
                    .map(|(_, ns)| ns.clone())
            }
        };
        Ok((inner, namespace))
    }

    /// Like [`Scope::enter`], where an undeclared prefix is malformed XML.
    fn inside(&self, start: &BytesStart<'_>) -> Result<(Scope, String), Failure> {
        let (scope, namespace) = self.enter(start)?;
        let namespace = namespace.ok_or_else(|| {
            let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
            protocol(format!("<{name}> has an undeclared prefix"))
        })?;
        Ok((scope, namespace))
    }
}

pub struct XmppConn<S> {
    reader: Reader<BufReader<Take<S>>>,
    opened: bool,
    /// What the stream header declared, for the elements inside it.
    scope: Scope,
}

impl<S: AsyncRead + AsyncWrite + Unpin> XmppConn<S> {
    pub fn new(io: S) -> Self {
        Self::over(BufReader::new(io.take(READ_LIMIT)))
    }

    fn over(io: BufReader<Take<S>>) -> Self {
        let mut reader = Reader::from_reader(io);
        let config = reader.config_mut();
        // Text is trimmed per element, whole: trimming each piece would eat the spaces next to
        // an entity.
        config.trim_text(false);
        config.check_end_names = true;
        XmppConn {
            reader,
            opened: false,
            scope: Scope::default(),
        }
    }

    /// A new stream over the same connection (RFC 6120 §4.3.3, after SASL): the parser starts
    /// afresh, the byte cap goes on.
    pub fn restart(self) -> Self {
        Self::over(self.reader.into_inner())
    }

    /// The connection itself, to start TLS on (STARTTLS). Bytes already read past `<proceed/>`
    /// would be an attacker's injection into the TLS session: refused.
    pub fn into_io(self) -> Result<S, Failure> {
        let buffered = self.reader.into_inner();
        if !buffered.buffer().is_empty() {
            return Err(protocol(
                "the server sent data before the TLS handshake it had agreed to",
            ));
        }
        Ok(buffered.into_inner().into_inner())
    }

    /// A kept session reads for as long as it lives: each round of pings gets the budget a
    /// negotiation gets, so that a server can send no more than that between two rounds.
    pub fn renew_read_limit(&mut self) {
        self.reader.get_mut().get_mut().set_limit(READ_LIMIT);
    }

    fn io(&mut self) -> &mut S {
        self.reader.get_mut().get_mut().get_mut()
    }

    /// Whether the peer has sent more than whitespace that is not read yet.
    pub fn has_unread_input(&self) -> bool {
        self.reader
            .get_ref()
            .buffer()
            .iter()
            .any(|byte| !byte.is_ascii_whitespace())
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
                    let (scope, namespace) = self.scope.enter(&start)?;
                    if namespace.as_deref() != Some(STREAMS_NAMESPACE) {
                        let found = namespace.unwrap_or_else(|| "no namespace".to_owned());
                        return Err(Failure::new(
                            Reason::InvalidNamespace,
                            format!("the stream header is in {found:?}, not {STREAMS_NAMESPACE}"),
                        ));
                    }
                    self.scope = scope;
                    return header(&start);
                }
                Event::Empty(_) if !self.opened => {
                    return Err(protocol(
                        "the server sent an empty element instead of a stream header",
                    ))
                }
                Event::Empty(element) => {
                    let (_, namespace) = self.scope.inside(&element)?;
                    return match kind(&element, &namespace) {
                        Some(item) => Ok(item),
                        None => Ok(Incoming::Element(leaf(&element, namespace)?)),
                    };
                }
                Event::Start(element) => {
                    let element = element.into_owned();
                    let (scope, namespace) = self.scope.inside(&element)?;
                    return match kind(&element, &namespace) {
                        Some(Incoming::StreamError { .. }) => self.stream_error().await,
                        Some(item) => {
                            self.skip(&element).await?;
                            Ok(item)
                        }
                        None => self.element(element, scope, namespace).await,
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

    /// The rest of a top-level element that started with `start`, as a tree.
    async fn element(
        &mut self,
        start: BytesStart<'static>,
        scope: Scope,
        namespace: String,
    ) -> Result<Incoming, Failure> {
        let mut open = vec![(scope, leaf(&start, namespace)?)];
        let mut buf = Vec::new();
        loop {
            let event = self.read_event(&mut buf).await?;
            let depth = open.len();
            let (scope, current) = open.last_mut().expect("the element being read");
            match event {
                Event::Start(start) if depth >= MAX_DEPTH => {
                    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                    return Err(protocol(format!("<{name}> is nested too deep")));
                }
                Event::Start(start) => {
                    let (inner, namespace) = scope.inside(&start)?;
                    let element = leaf(&start, namespace)?;
                    open.push((inner, element));
                }
                Event::Empty(empty) => {
                    let (_, namespace) = scope.inside(&empty)?;
                    current.children.push(leaf(&empty, namespace)?);
                }
                Event::Text(text) => current.text.push_str(
                    &text
                        .decode()
                        .map_err(|e| protocol(format!("text that is not UTF-8: {e}")))?,
                ),
                Event::GeneralRef(reference) => {
                    let resolved = reference
                        .resolve_char_ref()
                        .ok()
                        .flatten()
                        .or_else(|| predefined_entity(&reference))
                        .ok_or_else(|| protocol("an entity XMPP does not allow"))?;
                    current.text.push(resolved);
                }
                Event::CData(data) => current.text.push_str(&String::from_utf8_lossy(&data)),
                Event::End(_) => {
                    let (_, mut done) = open.pop().expect("the element being read");
                    done.text = done.text.trim().to_owned();
                    match open.last_mut() {
                        Some((_, parent)) => parent.children.push(done),
                        None => return Ok(Incoming::Element(done)),
                    }
                }
                Event::Eof => return Err(self.read_failure(None)),
                Event::DocType(_) => {
                    return Err(protocol("the server sent a DTD, which XMPP forbids"))
                }
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            }
        }
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
                    // Cut on a character, never inside one.
                    let mut end = text.len().min(STREAM_ERROR_TEXT_LIMIT);
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.truncate(end);
                }
                Event::End(_) if depth == 0 => {
                    let text = text.trim().to_owned();
                    return Ok(Incoming::StreamError { condition, text });
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
                if let Some(refused) = post_handshake_refusal(io) {
                    return refused;
                }
                match io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
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
    /// and FIN) so the server frees the component name before the next probe. Not a step: it
    /// waits for the server's answer at most [`CLOSE_WAIT`], and never past `deadline`.
    pub async fn close(mut self, deadline: Instant) {
        let until = deadline.min(Instant::now() + CLOSE_WAIT);
        let _ = tokio::time::timeout_at(until, async {
            if self.send("</stream:stream>").await.is_ok() {
                while let Ok(item) = self.next().await {
                    if item == Incoming::End {
                        break;
                    }
                }
            }
            let _ = self.io().shutdown().await;
            // Read up to the peer's own close (TLS close_notify, FIN): a socket dropped with
            // data unread is reset, and the server logs a broken stream.
            let mut sink = [0u8; 512];
            while matches!(self.reader.get_mut().read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

/// Long enough for a server to answer `</stream:stream>`.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

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

/// The top-level elements the streams themselves define: `<handshake/>` (in the component
/// namespace) and `<stream:error>`.
fn kind(element: &BytesStart<'_>, namespace: &str) -> Option<Incoming> {
    match (element.local_name().as_ref(), namespace) {
        (b"handshake", COMPONENT_NAMESPACE) => Some(Incoming::Handshake),
        (b"error", STREAMS_NAMESPACE) => Some(Incoming::StreamError {
            condition: String::new(),
            text: String::new(),
        }),
        _ => None,
    }
}

/// An element without its content yet: name, namespace, attributes (`xmlns*` left out).
fn leaf(start: &BytesStart<'_>, namespace: String) -> Result<Element, Failure> {
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| protocol(format!("bad attribute: {e}")))?;
        let key = attribute.key.as_ref();
        if key == b"xmlns" || key.starts_with(b"xmlns:") {
            continue;
        }
        let value = attribute
            .unescape_value()
            .map_err(|e| protocol(format!("bad attribute value: {e}")))?;
        let key = String::from_utf8_lossy(attribute.key.local_name().as_ref()).into_owned();
        attributes.push((key, value.into_owned()));
    }
    Ok(Element {
        name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
        namespace,
        attributes,
        ..Element::default()
    })
}

/// The five entities XML predefines; XMPP allows no other.
fn predefined_entity(reference: &quick_xml::events::BytesRef<'_>) -> Option<char> {
    match reference.as_ref() {
        b"amp" => Some('&'),
        b"lt" => Some('<'),
        b"gt" => Some('>'),
        b"quot" => Some('"'),
        b"apos" => Some('\''),
        _ => None,
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
mod tests;
