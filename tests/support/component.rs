//! An XEP-0114 (jabber:component:accept) server, plaintext or TLS from the first
//! byte, that by default behaves like Prosody 0.12's mod_component.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quick_xml::escape::escape;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::serve_each;
use super::xml::{Item, StartTag, XmlInput, IDLE};

const STREAMS_NS: &str = "http://etherx.jabber.org/streams";
const COMPONENT_NS: &str = "jabber:component:accept";
const STREAM_ERRORS_NS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Chunk size for the endless Garbage / HugeHeader streams.
const FLOOD_CHUNK: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Like Prosody 0.12 mod_component.
    Normal,
    /// Accepts TCP (and TLS if configured), then never sends a byte; keeps the socket open.
    Silent,
    /// After the client's header, streams endless non-XML bytes until the client goes away.
    Garbage,
    /// Answers `<stream:stream` followed by endless attributes, never a `>`.
    HugeHeader,
    /// Reads the client's header, then closes without answering.
    CloseAfterClientHeader,
    /// Like Openfire for a name already connected: header with id, then a conflict stream error.
    ConflictAtHeader,
    /// Sends its header and `<handshake/>` at once, before the client's handshake.
    HandshakeFirst,
    /// A stream id and, after the handshake, a stream error text full of ESC, BEL, CR and LF
    /// (as character references, and raw), such as forge a log line or colour a terminal.
    HostileText,
    /// Like Normal, but Openfire's dialect: `<handshake></handshake>` on success and a header
    /// with double quotes, another attribute order and no XML declaration.
    SuccessAsOpenfire,
}

pub struct ComponentServerConfig {
    /// None = plaintext XEP-0114; Some = TLS from the first byte.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// (component name, shared secret)
    pub components: Vec<(String, String)>,
    pub behaviour: Behaviour,
    /// Sleep after the TCP accept before starting TLS (a slow TLS server).
    pub tls_delay: Option<Duration>,
}

/// What the server saw; [`ComponentServer::stats`] returns a snapshot.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// TCP connections accepted.
    pub connections: usize,
    /// Connections open now, and the most that were open at once.
    pub open: usize,
    pub most_open: usize,
    pub handshakes_ok: usize,
    /// Handshakes whose digest was wrong (answered not-authorized).
    pub handshakes_failed: usize,
    /// Conflict stream errors sent (held name, live session, or ConflictAtHeader).
    pub conflicts: usize,
    /// The client sent `</stream:stream>`.
    pub clean_closes: usize,
    /// The exact text of every `<handshake>` the client sent.
    pub digests: Vec<String>,
    /// The stream ids we handed out, in order.
    pub stream_ids: Vec<String>,
    /// The condition of every stream error we sent, e.g. "host-unknown".
    pub stream_errors: Vec<String>,
    /// Sessions that completed their handshake and are still connected.
    pub live_sessions: usize,
    /// The SNI of every completed TLS handshake.
    pub sni: Vec<Option<String>>,
    /// Completed TLS handshakes in which the client presented a certificate.
    pub client_cert_seen: usize,
}

/// The running server; stops (and drops every connection) when dropped.
pub struct ComponentServer {
    addr: SocketAddr,
    state: Arc<State>,
    accept_task: JoinHandle<()>,
}

struct State {
    tls: Option<TlsAcceptor>,
    tls_delay: Option<Duration>,
    behaviour: Behaviour,
    /// lowercase component name -> shared secret
    secrets: HashMap<String, String>,
    shared: Mutex<Shared>,
}

#[derive(Default)]
struct Shared {
    stats: Stats,
    /// Names marked as held by someone else (hold_connected).
    held: HashSet<String>,
    /// Names with a live session that completed its handshake here.
    live: HashSet<String>,
}

impl ComponentServer {
    /// Listens on 127.0.0.1, on an ephemeral port.
    pub async fn start(config: ComponentServerConfig) -> ComponentServer {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config)
            .await
            .expect("bind component server on 127.0.0.1")
    }

    /// Listens on `addr` (e.g. 127.0.0.2:<port> or [::1]:0).
    pub async fn start_on(
        addr: SocketAddr,
        config: ComponentServerConfig,
    ) -> std::io::Result<ComponentServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            tls: config.tls.map(TlsAcceptor::from),
            tls_delay: config.tls_delay,
            behaviour: config.behaviour,
            secrets: config
                .components
                .into_iter()
                .map(|(name, secret)| (name.to_lowercase(), secret))
                .collect(),
            shared: Mutex::default(),
        });
        let accept_task = {
            let state = state.clone();
            tokio::spawn(serve_each(listener, move |tcp| {
                handle_connection(tcp, state.clone())
            }))
        };
        Ok(ComponentServer {
            addr,
            state,
            accept_task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Marks `name` as connected elsewhere (a production Callbridge), so a correct
    /// handshake for it is refused with `conflict`.
    pub fn hold_connected(&self, name: &str) {
        self.state.lock().held.insert(name.to_lowercase());
    }

    pub fn stats(&self) -> Stats {
        let shared = self.state.lock();
        Stats {
            live_sessions: shared.live.len(),
            ..shared.stats.clone()
        }
    }
}

impl Drop for ComponentServer {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

/// Lowercase hex SHA-1(stream id + secret), the XEP-0114 handshake digest.
pub fn handshake_digest(stream_id: &str, secret: &str) -> String {
    Sha1::digest(format!("{stream_id}{secret}"))
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap()
    }
}

/// Counts a connection as open while it lives.
struct Open(Arc<State>);

impl Open {
    fn new(state: &Arc<State>) -> Open {
        let mut shared = state.lock();
        shared.stats.connections += 1;
        shared.stats.open += 1;
        shared.stats.most_open = shared.stats.most_open.max(shared.stats.open);
        Open(state.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.lock().stats.open -= 1;
    }
}

async fn handle_connection(tcp: TcpStream, state: Arc<State>) {
    let _open = Open::new(&state);
    let Some(acceptor) = state.tls.clone() else {
        return serve(tcp, &state).await;
    };
    if let Some(delay) = state.tls_delay {
        tokio::time::sleep(delay).await;
    }
    let Ok(Ok(tls)) = timeout(IDLE, acceptor.accept(tcp)).await else {
        return;
    };
    {
        let session = tls.get_ref().1;
        let mut shared = state.lock();
        shared
            .stats
            .sni
            .push(session.server_name().map(str::to_owned));
        if session
            .peer_certificates()
            .is_some_and(|certs| !certs.is_empty())
        {
            shared.stats.client_cert_seen += 1;
        }
    }
    serve(tls, &state).await;
}

/// Runs the configured behaviour over an established (plain or TLS) stream.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(stream: S, state: &State) {
    let (read_half, out) = tokio::io::split(stream);
    let mut input = XmlInput::new(read_half);
    if state.behaviour == Behaviour::Silent {
        return input.drain().await;
    }
    let Some(header) = input.stream_header().await else {
        return;
    };
    let dialect = match state.behaviour {
        Behaviour::ConflictAtHeader | Behaviour::SuccessAsOpenfire => Dialect::Openfire,
        _ => Dialect::Prosody,
    };
    let mut replies = Replies {
        out,
        state,
        dialect,
    };
    match state.behaviour {
        Behaviour::Silent | Behaviour::CloseAfterClientHeader => {}
        Behaviour::Garbage => replies.flood(|_| garbage_chunk()).await,
        Behaviour::HugeHeader => {
            let opening =
                format!("<?xml version='1.0'?><stream:stream xmlns:stream='{STREAMS_NS}'");
            if replies.send(&opening).await {
                replies.flood(attribute_chunk).await;
            }
        }
        Behaviour::HostileText => {
            let forged = "&#27;[31mred&#7;&#13;&#10;2026-01-01T00:00:00Z  INFO forged line";
            let header = format!(
                "<?xml version='1.0'?><stream:stream xmlns:stream='{STREAMS_NS}' \
                 xmlns='{COMPONENT_NS}' id='id{forged}'>"
            );
            let error = format!(
                "<stream:error><not-authorized xmlns='{STREAM_ERRORS_NS}'/>\
                 <text xmlns='{STREAM_ERRORS_NS}'>text{forged}\u{1b}[32mraw\u{7}\r\n\
                 2026-01-01T00:00:00Z  INFO raw line</text></stream:error></stream:stream>"
            );
            if replies.send(&header).await && input.handshake().await.is_some() {
                replies.send(&error).await;
            }
        }
        Behaviour::HandshakeFirst => {
            let to = header.attr("to").map(str::to_lowercase);
            let (_, header) = replies.header_with_new_id(to.as_deref());
            if replies.send(&format!("{header}<handshake/>")).await {
                input.drain().await;
            }
        }
        Behaviour::ConflictAtHeader => {
            let to = header.attr("to").map(str::to_lowercase);
            let (_, header) = replies.header_with_new_id(to.as_deref());
            replies.refuse(&header, "conflict", None).await;
        }
        Behaviour::Normal | Behaviour::SuccessAsOpenfire => negotiate(header, input, replies).await,
    }
}

/// The XEP-0114 exchange after the client's stream header.
async fn negotiate<R, W>(header: StartTag, mut input: XmlInput<R>, mut replies: Replies<'_, W>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let state = replies.state;
    let anonymous_header = replies.dialect.header(None, None);
    if header.name != "stream:stream"
        || header.attr("xmlns:stream") != Some(STREAMS_NS)
        || header.attr("xmlns") != Some(COMPONENT_NS)
    {
        return replies
            .refuse(&anonymous_header, "invalid-namespace", None)
            .await;
    }
    let Some(name) = header.attr("to").map(str::to_lowercase) else {
        let text = "A 'to' attribute is required on stream headers";
        return replies
            .refuse(&anonymous_header, "improper-addressing", Some(text))
            .await;
    };
    let Some(secret) = state.secrets.get(&name) else {
        // Prosody refuses before opening its side: no id, no from.
        let text = format!("{name} does not match any configured external components");
        return replies
            .refuse(&anonymous_header, "host-unknown", Some(&text))
            .await;
    };

    let (id, header) = replies.header_with_new_id(Some(&name));
    if !replies.send(&header).await {
        return;
    }
    let digest = match input.handshake().await {
        Some(ClientSays::Handshake(digest)) => digest,
        Some(ClientSays::CloseStream) => return replies.close_cleanly().await,
        Some(ClientSays::Other) => return replies.refuse("", "not-authorized", None).await,
        None => return,
    };

    let accepted = {
        let mut shared = state.lock();
        shared.stats.digests.push(digest.clone());
        if digest != handshake_digest(&id, secret) {
            // Exact, case-sensitive comparison, as ejabberd does.
            shared.stats.handshakes_failed += 1;
            Err((
                "not-authorized",
                "Given token does not match calculated token",
            ))
        } else if shared.held.contains(&name) || !shared.live.insert(name.clone()) {
            // Prosody's default component_conflict_resolve = "kick_new".
            Err(("conflict", "Component already connected"))
        } else {
            shared.stats.handshakes_ok += 1;
            Ok(LiveSession { state, name })
        }
    };
    let session = match accepted {
        Ok(session) => session,
        Err((condition, text)) => return replies.refuse("", condition, Some(text)).await,
    };
    if !replies.send(replies.dialect.success()).await {
        return;
    }
    // The session holds the name until the client closes its stream or goes away.
    if input.until_stream_end().await {
        // Release first, so a client that saw our close can reconnect without a race.
        drop(session);
        replies.close_cleanly().await;
    }
}

/// Releases a component name when its session ends, however it ends.
struct LiveSession<'a> {
    state: &'a State,
    name: String,
}

impl Drop for LiveSession<'_> {
    fn drop(&mut self) {
        self.state.lock().live.remove(&self.name);
    }
}

/// Our side of one connection.
struct Replies<'a, W> {
    out: W,
    state: &'a State,
    dialect: Dialect,
}

impl<W: AsyncWrite + Unpin> Replies<'_, W> {
    /// A fresh stream id (recorded in the stats) and our stream header carrying it.
    fn header_with_new_id(&self, from: Option<&str>) -> (String, String) {
        let id = new_stream_id();
        let header = self.dialect.header(Some(&id), from);
        self.state.lock().stats.stream_ids.push(id.clone());
        (id, header)
    }

    /// Sends `prefix` (our header, unless already sent), a stream error and
    /// `</stream:stream>`, then closes.
    async fn refuse(&mut self, prefix: &str, condition: &str, text: Option<&str>) {
        {
            let mut shared = self.state.lock();
            shared.stats.stream_errors.push(condition.to_owned());
            if condition == "conflict" {
                shared.stats.conflicts += 1;
            }
        }
        let error = self.dialect.stream_error(condition, text);
        if self.send(&format!("{prefix}{error}</stream:stream>")).await {
            self.shutdown().await;
        }
    }

    /// Writes `text` and flushes it (TLS buffers otherwise); false if the client is gone.
    async fn send(&mut self, text: &str) -> bool {
        self.send_bytes(text.as_bytes()).await
    }

    async fn send_bytes(&mut self, bytes: &[u8]) -> bool {
        let write = async {
            self.out.write_all(bytes).await?;
            self.out.flush().await
        };
        matches!(timeout(IDLE, write).await, Ok(Ok(())))
    }

    /// FIN for TCP, close_notify + FIN for TLS.
    async fn shutdown(&mut self) {
        let _ = timeout(IDLE, self.out.shutdown()).await;
    }

    /// Writes chunk after chunk until a write fails or stalls: the client went away.
    async fn flood(&mut self, mut chunk: impl FnMut(usize) -> Vec<u8>) {
        for n in 0.. {
            if !self.send_bytes(&chunk(n)).await {
                return;
            }
        }
    }

    /// Answers the client's `</stream:stream>` with ours and closes.
    async fn close_cleanly(&mut self) {
        self.state.lock().stats.clean_closes += 1;
        if self.send("</stream:stream>").await {
            self.shutdown().await;
        }
    }
}

/// How a server spells its side of the stream.
#[derive(Clone, Copy)]
enum Dialect {
    /// `<?xml version='1.0'?>`, single quotes, `<handshake/>`.
    Prosody,
    /// No XML declaration, double quotes, another attribute order, `<handshake></handshake>`.
    Openfire,
}

impl Dialect {
    fn header(self, id: Option<&str>, from: Option<&str>) -> String {
        let attr = |key: &str, value: Option<&str>| match (self, value) {
            (_, None) => String::new(),
            (Dialect::Prosody, Some(v)) => format!(" {key}='{}'", escape(v)),
            (Dialect::Openfire, Some(v)) => format!(" {key}=\"{}\"", escape(v)),
        };
        match self {
            Dialect::Prosody => format!(
                "<?xml version='1.0'?><stream:stream{}{}{}{}>",
                attr("xmlns:stream", Some(STREAMS_NS)),
                attr("xmlns", Some(COMPONENT_NS)),
                attr("id", id),
                attr("from", from),
            ),
            Dialect::Openfire => format!(
                "<stream:stream{}{}{}{}>",
                attr("from", from),
                attr("id", id),
                attr("xmlns", Some(COMPONENT_NS)),
                attr("xmlns:stream", Some(STREAMS_NS)),
            ),
        }
    }

    fn stream_error(self, condition: &str, text: Option<&str>) -> String {
        let q = match self {
            Dialect::Prosody => '\'',
            Dialect::Openfire => '"',
        };
        let text = text
            .map(|t| format!("<text xmlns={q}{STREAM_ERRORS_NS}{q}>{}</text>", escape(t)))
            .unwrap_or_default();
        format!("<stream:error><{condition} xmlns={q}{STREAM_ERRORS_NS}{q}/>{text}</stream:error>")
    }

    fn success(self) -> &'static str {
        match self {
            Dialect::Prosody => "<handshake/>",
            Dialect::Openfire => "<handshake></handshake>",
        }
    }
}

/// A random, UUID-shaped stream id (Prosody uses UUIDs).
fn new_stream_id() -> String {
    // Each RandomState is freshly keyed, so this needs no extra dependency.
    let random = || RandomState::new().build_hasher().finish();
    let hex = format!("{:016x}{:016x}", random(), random());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Bytes no XML parser accepts: NULs, control bytes and invalid UTF-8, never a '<'.
fn garbage_chunk() -> Vec<u8> {
    b"\x00\x01\xff\xfeNOT XML \x16\x03"
        .iter()
        .copied()
        .cycle()
        .take(FLOOD_CHUNK)
        .collect()
}

/// Well-formed but endless attributes with distinct names, so a parser keeps waiting for '>'.
fn attribute_chunk(n: usize) -> Vec<u8> {
    let mut chunk = String::with_capacity(FLOOD_CHUNK + 64);
    let mut i = 0;
    while chunk.len() < FLOOD_CHUNK {
        chunk.push_str(&format!(" a{n}x{i}='{}'", "x".repeat(32)));
        i += 1;
    }
    chunk.into_bytes()
}

enum ClientSays {
    Handshake(String),
    CloseStream,
    Other,
}

impl<R: AsyncRead + Unpin> XmlInput<R> {
    /// Waits for the client's first element after our header.
    async fn handshake(&mut self) -> Option<ClientSays> {
        loop {
            return match self.next().await? {
                Item::Text(_) | Item::Ignorable => continue,
                Item::Empty(tag) if tag.name == "handshake" => {
                    Some(ClientSays::Handshake(String::new()))
                }
                Item::Start(tag) if tag.name == "handshake" => {
                    let mut digest = String::new();
                    loop {
                        match self.next().await? {
                            Item::Text(text) => digest.push_str(&text),
                            Item::End(name) if name == "handshake" => break,
                            _ => return Some(ClientSays::Other),
                        }
                    }
                    Some(ClientSays::Handshake(digest))
                }
                Item::End(_) => Some(ClientSays::CloseStream),
                Item::Start(_) | Item::Empty(_) => Some(ClientSays::Other),
            };
        }
    }
}
