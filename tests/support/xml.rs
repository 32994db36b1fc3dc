//! The peer's side of an XML stream, as the in-process test servers read it: quick-xml over
//! a capped, buffered reader, owned events, and whole elements as small trees.

use std::time::Duration;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use tokio::io::{AsyncRead, AsyncReadExt, BufReader, ReadHalf, Take};
use tokio::time::timeout;

/// Total bytes read from one client before we stop listening to it.
pub const READ_CAP: u64 = 64 * 1024;
/// Longest wait for any single read, write or TLS handshake (ejabberd's negotiation timeout).
pub const IDLE: Duration = Duration::from_secs(30);

/// A start tag the client sent: qualified name plus unescaped attributes.
pub struct StartTag {
    pub name: String,
    pub attrs: Vec<(String, String)>,
}

impl StartTag {
    fn parse(tag: &BytesStart<'_>) -> Option<StartTag> {
        let name = String::from_utf8(tag.name().as_ref().to_vec()).ok()?;
        let attrs = tag
            .attributes()
            .map(|attr| {
                let attr = attr.ok()?;
                let key = String::from_utf8(attr.key.as_ref().to_vec()).ok()?;
                Some((key, attr.unescape_value().ok()?.into_owned()))
            })
            .collect::<Option<_>>()?;
        Some(StartTag { name, attrs })
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One XML event, owned, reduced to what this server cares about.
pub enum Item {
    Start(StartTag),
    /// `<name/>`
    Empty(StartTag),
    End(String),
    Text(String),
    /// Declaration, comment, processing instruction and the like.
    Ignorable,
}

/// The client's side of the stream: quick-xml over a capped, buffered reader, so
/// fragmented input is reassembled and no client can make us read without bound.
pub struct XmlInput<R> {
    reader: Reader<BufReader<Take<ReadHalf<R>>>>,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> XmlInput<R> {
    pub fn new(read_half: ReadHalf<R>) -> Self {
        XmlInput {
            reader: Reader::from_reader(BufReader::new(read_half.take(READ_CAP))),
            buf: Vec::new(),
        }
    }

    /// The next event; None on end of input, malformed XML, the read cap or an idle timeout.
    pub async fn next(&mut self) -> Option<Item> {
        self.buf.clear();
        let event = timeout(IDLE, self.reader.read_event_into_async(&mut self.buf))
            .await
            .ok()?
            .ok()?;
        Some(match event {
            Event::Start(tag) => Item::Start(StartTag::parse(&tag)?),
            Event::Empty(tag) => Item::Empty(StartTag::parse(&tag)?),
            Event::End(tag) => Item::End(String::from_utf8(tag.name().as_ref().to_vec()).ok()?),
            Event::Text(text) => Item::Text(text.decode().ok()?.into_owned()),
            Event::Eof => return None,
            _ => Item::Ignorable,
        })
    }

    /// Skips an optional XML declaration and whitespace; returns the first start tag.
    pub async fn stream_header(&mut self) -> Option<StartTag> {
        loop {
            match self.next().await? {
                Item::Start(tag) | Item::Empty(tag) => return Some(tag),
                Item::Text(_) | Item::Ignorable => {}
                Item::End(_) => return None,
            }
        }
    }

    /// Ignores stanzas until the client closes its stream (true) or the input ends (false).
    pub async fn until_stream_end(&mut self) -> bool {
        let mut depth = 0usize;
        loop {
            match self.next().await {
                None => return false,
                Some(Item::Start(_)) => depth += 1,
                Some(Item::End(_)) if depth == 0 => return true,
                Some(Item::End(_)) => depth -= 1,
                Some(_) => {}
            }
        }
    }

    /// Reads and discards until the client goes away, stays idle too long or hits the cap.
    pub async fn drain(self) {
        let mut raw = self.reader.into_inner();
        let mut sink = [0u8; 4096];
        while let Ok(Ok(n)) = timeout(IDLE, raw.read(&mut sink)).await {
            if n == 0 {
                return;
            }
        }
    }
}

/// A whole element: its qualified name, attributes, text and children.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    fn open(tag: StartTag) -> Node {
        Node {
            name: tag.name,
            attrs: tag.attrs,
            text: String::new(),
            children: Vec::new(),
        }
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// What the client sent at the top level of its stream.
pub enum Top {
    Element(Node),
    /// `</stream:stream>`
    StreamEnd,
}

impl<R: AsyncRead + Unpin> XmlInput<R> {
    /// The next top-level element (or the stream's end); None as for [`XmlInput::next`].
    pub async fn element(&mut self) -> Option<Top> {
        let mut open: Vec<Node> = Vec::new();
        loop {
            match self.next().await? {
                Item::Start(tag) => open.push(Node::open(tag)),
                Item::Empty(tag) => match open.last_mut() {
                    Some(parent) => parent.children.push(Node::open(tag)),
                    None => return Some(Top::Element(Node::open(tag))),
                },
                Item::End(_) => {
                    let Some(done) = open.pop() else {
                        return Some(Top::StreamEnd);
                    };
                    match open.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return Some(Top::Element(done)),
                    }
                }
                Item::Text(text) => {
                    if let Some(node) = open.last_mut() {
                        node.text.push_str(&text);
                    }
                }
                Item::Ignorable => {}
            }
        }
    }

    /// The read half back, for a STARTTLS upgrade; None if the client already sent more
    /// (bytes after `<starttls/>` would be lost, and a client must wait for `<proceed/>`).
    pub fn into_read_half(self) -> Option<ReadHalf<R>> {
        let buffered = self.reader.into_inner();
        buffered
            .buffer()
            .is_empty()
            .then(|| buffered.into_inner().into_inner())
    }
}
