//! An XMPP client-to-server endpoint (RFC 6120) that by default behaves like Prosody 0.12's c2s
//! with mod_tls, mod_saslauth and mod_ping: STARTTLS (or TLS from the first byte, XEP-0368),
//! SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN, resource binding, and a router that answers a ping to
//! a component JID as the component does, or as Prosody does when nothing is connected there.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use quick_xml::escape::escape;
use sasl::common::scram::{Sha1, Sha256};
use sasl::common::{ChannelBinding, Identity};
use sasl::secret::{self, Pbkdf2Sha1, Pbkdf2Sha256};
use sasl::server::mechanisms::{Plain, Scram};
use sasl::server::{Mechanism, Provider, ProviderError, Response, Validator, ValidatorError};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use super::serve_each;
use super::xml::{Node, StartTag, Top, XmlInput, IDLE};

const STREAMS_NS: &str = "http://etherx.jabber.org/streams";
const CLIENT_NS: &str = "jabber:client";
const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const SASL_NS: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const BIND_NS: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const SESSION_NS: &str = "urn:ietf:params:xml:ns:xmpp-session";
const STANZAS_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const STREAM_ERRORS_NS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Prosody's default `scram_iteration_count` before 0.12 raised it; cheap in debug builds.
const ITERATIONS: u32 = 4096;

pub enum Encryption {
    /// Plaintext, then `<starttls/>` (Prosody with `c2s_require_encryption`).
    Starttls(Arc<rustls::ServerConfig>),
    /// TLS from the first byte (XEP-0368, Prosody's `c2s_direct_tls_ports`).
    Direct(Arc<rustls::ServerConfig>),
    /// Never encrypted.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Accepts TCP, then never sends a byte.
    Silent,
    /// Offers no STARTTLS, only mechanisms, on the plaintext stream.
    NoStarttls,
    /// Offers PLAIN and nothing else, even on an unencrypted stream.
    PlainOnly,
    /// Completes SCRAM with a server signature that does not verify.
    BadServerSignature,
    /// Refuses every resource bind with `not-allowed`.
    RefuseBind,
    /// Asks SCRAM clients for this many PBKDF2 rounds (and holds no key that would verify
    /// their proof): a hostile or misconfigured server.
    Iterations(u32),
    /// A new salt at every login (the password stored anew each time): no client can reuse
    /// a derivation.
    FreshSalt,
}

/// How a ping to a component JID is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The component is connected and answers: a result.
    Result,
    /// The component is connected and does not do pings: its own `service-unavailable`.
    OwnError,
    /// A configured component that is not connected: Prosody's "Component unavailable".
    NotConnected,
    /// The stanza is routed and never answered.
    Silent,
    /// Another JID answers: a result from the domain, as ejabberd's one listener for several
    /// components has another component answer under its own name.
    FromOther,
}

/// How the server ends a session it no longer keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// The connection is closed without a word (a network cut, a killed server).
    HangUp,
    /// A stream error `reset` ("Password changed"), then the close: Prosody's end of a user's
    /// sessions when the password changes.
    Reset,
}

pub struct C2sConfig {
    pub encryption: Encryption,
    pub domain: String,
    /// The one account: (local part, password).
    pub user: (String, String),
    /// The component JIDs the router knows; any other name is routed as a remote domain.
    pub components: Vec<(String, Answer)>,
    pub fault: Fault,
}

/// What the server saw; [`C2sServer::stats`] returns a snapshot.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub connections: usize,
    /// Completed TLS handshakes (STARTTLS or direct).
    pub tls_handshakes: usize,
    /// The mechanism of every `<auth>`, and whether its stream was encrypted.
    pub auths: Vec<(String, bool)>,
    /// Every SASL payload the client sent (`<auth>` and `<response>`), decoded.
    pub sasl_payloads: Vec<String>,
    pub auth_failures: usize,
    /// Resources bound.
    pub binds: usize,
    /// The `to` of every ping, in order.
    pub pings: Vec<String>,
    /// The client sent `</stream:stream>`.
    pub clean_closes: usize,
}

/// The running server; stops (and drops every connection) when dropped.
pub struct C2sServer {
    addr: SocketAddr,
    state: Arc<State>,
    accept_task: JoinHandle<()>,
}

struct State {
    encryption: Option<(TlsAcceptor, bool)>,
    domain: String,
    account: Account,
    fault: Fault,
    shared: Mutex<Shared>,
}

struct Shared {
    stats: Stats,
    /// How every session ends right after a ping is answered, if it does: a kept session must
    /// log in again.
    end_after_ping: Option<SessionEnd>,
    /// lowercase component JID -> answer
    components: HashMap<String, Answer>,
}

impl C2sServer {
    /// Listens on 127.0.0.1, on an ephemeral port.
    pub async fn start(config: C2sConfig) -> C2sServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind c2s server on 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let encryption = match config.encryption {
            Encryption::Starttls(tls) => Some((TlsAcceptor::from(tls), false)),
            Encryption::Direct(tls) => Some((TlsAcceptor::from(tls), true)),
            Encryption::None => None,
        };
        let (local, password) = config.user;
        let state = Arc::new(State {
            encryption,
            domain: config.domain,
            account: Account::new(local, password, config.fault),
            fault: config.fault,
            shared: Mutex::new(Shared {
                stats: Stats::default(),
                end_after_ping: None,
                components: config
                    .components
                    .into_iter()
                    .map(|(name, answer)| (name.to_lowercase(), answer))
                    .collect(),
            }),
        });
        let accept_task = {
            let state = state.clone();
            tokio::spawn(serve_each(listener, move |tcp| {
                handle_connection(tcp, state.clone())
            }))
        };
        C2sServer {
            addr,
            state,
            accept_task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, pings to `component` are answered so.
    pub fn set_answer(&self, component: &str, answer: Answer) {
        self.state
            .lock()
            .components
            .insert(component.to_lowercase(), answer);
    }

    /// From now on every session is ended so right after a ping is answered.
    pub fn end_sessions_after_each_ping(&self, how: SessionEnd) {
        self.state.lock().end_after_ping = Some(how);
    }

    pub fn stats(&self) -> Stats {
        self.state.lock().stats.clone()
    }
}

impl Drop for C2sServer {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap()
    }
}

async fn handle_connection(tcp: TcpStream, state: Arc<State>) {
    state.lock().stats.connections += 1;
    if state.fault == Fault::Silent {
        let (read_half, _out) = tokio::io::split(tcp);
        return XmlInput::new(read_half).drain().await;
    }
    let Some((acceptor, direct)) = state.encryption.clone() else {
        return session(tcp, &state, false).await;
    };
    let tcp = if direct {
        tcp
    } else if state.fault == Fault::NoStarttls {
        return session(tcp, &state, false).await;
    } else {
        match starttls(tcp, &state).await {
            Some(tcp) => tcp,
            None => return,
        }
    };
    let Ok(Ok(tls)) = timeout(IDLE, acceptor.accept(tcp)).await else {
        return;
    };
    state.lock().stats.tls_handshakes += 1;
    session(tls, &state, true).await;
}

/// The plaintext stream up to `<proceed/>`; returns the socket to start TLS on.
async fn starttls(tcp: TcpStream, state: &State) -> Option<TcpStream> {
    let (read_half, out) = tokio::io::split(tcp);
    let mut input = XmlInput::new(read_half);
    let mut out = Output(out);
    let header = input.stream_header().await?;
    let features = format!("<starttls xmlns='{TLS_NS}'><required/></starttls>");
    if !out.open(&header, state, &features).await {
        return None;
    }
    match input.element().await? {
        Top::Element(e) if e.name == "starttls" => {
            if !out.send(&format!("<proceed xmlns='{TLS_NS}'/>")).await {
                return None;
            }
            Some(input.into_read_half()?.unsplit(out.0))
        }
        _ => {
            out.refuse("policy-violation").await;
            None
        }
    }
}

/// Authentication, a restarted stream, binding, then stanzas until the client closes.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(stream: S, state: &State, encrypted: bool) {
    let (read_half, out) = tokio::io::split(stream);
    let mut input = XmlInput::new(read_half);
    let mut out = Output(out);
    let Some(header) = input.stream_header().await else {
        return;
    };
    let offered: &[&str] = match state.fault {
        Fault::PlainOnly => &["PLAIN"],
        // Prosody offers PLAIN only on an encrypted stream.
        _ if encrypted => &["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"],
        _ => &["SCRAM-SHA-256", "SCRAM-SHA-1"],
    };
    let mechanisms: String = offered
        .iter()
        .map(|m| format!("<mechanism>{m}</mechanism>"))
        .collect();
    let features = format!("<mechanisms xmlns='{SASL_NS}'>{mechanisms}</mechanisms>");
    if !out.open(&header, state, &features).await {
        return;
    }
    let Some(user) = authenticate(&mut input, &mut out, state, offered, encrypted).await else {
        return;
    };
    let Some(header) = input.stream_header().await else {
        return;
    };
    let features =
        format!("<bind xmlns='{BIND_NS}'/><session xmlns='{SESSION_NS}'><optional/></session>");
    if !out.open(&header, state, &features).await {
        return;
    }
    let mut full_jid = None;
    loop {
        match input.element().await {
            None => return,
            Some(Top::StreamEnd) => {
                state.lock().stats.clean_closes += 1;
                out.send("</stream:stream>").await;
                return out.shutdown().await;
            }
            Some(Top::Element(stanza)) if stanza.name == "iq" => {
                let resource = state.lock().stats.binds;
                let bound = format!("{user}@{}/probe-{resource}", state.domain);
                let to = full_jid.clone().unwrap_or(bound);
                let (answer, jid) = answer_iq(&stanza, state, &to);
                full_jid = full_jid.or(jid);
                if let Some(answer) = answer {
                    if !out.send(&answer).await {
                        return;
                    }
                }
                let end = state.lock().end_after_ping;
                match end.filter(|_| stanza.child("ping").is_some()) {
                    Some(SessionEnd::HangUp) => return,
                    Some(SessionEnd::Reset) => {
                        out.reset("Password changed").await;
                        // What the client still sends is counted, not answered: a client
                        // that pings into the closed stream shows in the stats.
                        while let Some(Top::Element(stanza)) = input.element().await {
                            if stanza.child("ping").is_some() {
                                let to = stanza.attr("to").unwrap_or(&state.domain).to_lowercase();
                                state.lock().stats.pings.push(to);
                            }
                        }
                        return;
                    }
                    None => {}
                }
            }
            Some(Top::Element(_)) => {}
        }
    }
}

/// Runs SASL to success (the user's name) or gives up with the connection.
async fn authenticate<R, W>(
    input: &mut XmlInput<R>,
    out: &mut Output<W>,
    state: &State,
    offered: &[&str],
    encrypted: bool,
) -> Option<String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    loop {
        let Top::Element(auth) = input.element().await? else {
            return None;
        };
        if auth.name != "auth" {
            out.refuse("not-authorized").await;
            return None;
        }
        let name = auth.attr("mechanism").unwrap_or_default().to_owned();
        let logins = {
            let mut shared = state.lock();
            shared.stats.auths.push((name.clone(), encrypted));
            shared.stats.auths.len()
        };
        let account = match state.fault {
            Fault::FreshSalt => state
                .account
                .salted(format!("salt of login {logins}").as_bytes()),
            _ => state.account.clone(),
        };
        let mut mechanism: Box<dyn Mechanism + Send> = match name.as_str() {
            "SCRAM-SHA-256" if offered.contains(&"SCRAM-SHA-256") => {
                Box::new(Scram::<Sha256, _>::new(account, no_channel_binding()))
            }
            "SCRAM-SHA-1" if offered.contains(&"SCRAM-SHA-1") => {
                Box::new(Scram::<Sha1, _>::new(account, no_channel_binding()))
            }
            "PLAIN" if offered.contains(&"PLAIN") => Box::new(Plain::new(account)),
            _ => {
                out.sasl_failure("invalid-mechanism").await;
                continue;
            }
        };
        let mut payload = decode(&auth, state);
        loop {
            match mechanism.respond(&payload) {
                Ok(Response::Proceed(challenge)) => {
                    let challenge = BASE64.encode(challenge);
                    out.send(&format!(
                        "<challenge xmlns='{SASL_NS}'>{challenge}</challenge>"
                    ))
                    .await;
                    match input.element().await? {
                        Top::Element(response) if response.name == "response" => {
                            payload = decode(&response, state);
                        }
                        _ => return None,
                    }
                }
                Ok(Response::Success(identity, data)) => {
                    let data = if state.fault == Fault::BadServerSignature && !data.is_empty() {
                        format!("v={}", BASE64.encode([0u8; 32])).into_bytes()
                    } else {
                        data
                    };
                    let data = BASE64.encode(data);
                    if !out
                        .send(&format!("<success xmlns='{SASL_NS}'>{data}</success>"))
                        .await
                    {
                        return None;
                    }
                    let Identity::Username(user) = identity else {
                        return None;
                    };
                    return Some(user);
                }
                Err(_) => {
                    state.lock().stats.auth_failures += 1;
                    out.sasl_failure("not-authorized").await;
                    break;
                }
            }
        }
    }
}

/// sasl 0.5's server refuses a client that sends the gs2 header `n,,` (no channel binding)
/// unless it believes it supports tls-unique; with no binding data, `c=` is that bare header.
fn no_channel_binding() -> ChannelBinding {
    ChannelBinding::TlsUnique(Vec::new())
}

fn decode(element: &Node, state: &State) -> Vec<u8> {
    let payload = BASE64.decode(element.text.trim()).unwrap_or_default();
    state
        .lock()
        .stats
        .sasl_payloads
        .push(String::from_utf8_lossy(&payload).into_owned());
    payload
}

/// The answer to an IQ (if any), and the full JID it bound (if it was a bind).
fn answer_iq(iq: &Node, state: &State, jid: &str) -> (Option<String>, Option<String>) {
    let id = escape(iq.attr("id").unwrap_or_default()).into_owned();
    let jid_attr = escape(jid);
    if iq.child("bind").is_some() {
        if state.fault == Fault::RefuseBind {
            let error = stanza_error("cancel", "", "not-allowed", None);
            return (
                Some(format!("<iq type='error' id='{id}'>{error}</iq>")),
                None,
            );
        }
        state.lock().stats.binds += 1;
        let result = format!(
            "<iq type='result' id='{id}'><bind xmlns='{BIND_NS}'><jid>{jid_attr}</jid></bind></iq>"
        );
        return (Some(result), Some(jid.to_owned()));
    }
    if iq.child("ping").is_none() {
        return (Some(format!("<iq type='result' id='{id}'/>")), None);
    }
    let to = iq.attr("to").unwrap_or(&state.domain).to_lowercase();
    let answer = {
        let mut shared = state.lock();
        shared.stats.pings.push(to.clone());
        shared.components.get(&to).copied()
    };
    let from = escape(&to);
    let error = |body: String| {
        format!("<iq from='{from}' type='error' id='{id}' to='{jid_attr}'>{body}</iq>")
    };
    let answer = match answer {
        _ if to == state.domain => Some(format!(
            "<iq from='{from}' id='{id}' type='result' to='{jid_attr}'/>"
        )),
        Some(Answer::Result) => Some(format!(
            "<iq from='{from}' id='{id}' xml:lang='en' type='result' to='{jid_attr}'/>"
        )),
        Some(Answer::OwnError) => Some(error(stanza_error(
            "cancel",
            "",
            "service-unavailable",
            None,
        ))),
        Some(Answer::NotConnected) => Some(error(stanza_error(
            "wait",
            "",
            "remote-server-timeout",
            Some("Component unavailable"),
        ))),
        Some(Answer::Silent) => None,
        Some(Answer::FromOther) => Some(format!(
            "<iq from='{}' id='{id}' type='result' to='{jid_attr}'/>",
            escape(&state.domain)
        )),
        None => Some(error(stanza_error(
            "cancel",
            &state.domain,
            "remote-server-not-found",
            Some("Server-to-server connection failed: unable to resolve service"),
        ))),
    };
    (answer, None)
}

/// `<error>` with a defined condition, as Prosody spells it.
fn stanza_error(kind: &str, by: &str, condition: &str, text: Option<&str>) -> String {
    let by = if by.is_empty() {
        String::new()
    } else {
        format!(" by='{}'", escape(by))
    };
    let text = text
        .map(|t| format!("<text xmlns='{STANZAS_NS}'>{}</text>", escape(t)))
        .unwrap_or_default();
    format!("<error type='{kind}'{by}><{condition} xmlns='{STANZAS_NS}'/>{text}</error>")
}

/// Our side of one connection.
struct Output<W>(WriteHalf<W>);

impl<W: AsyncWrite> Output<W> {
    /// Our stream header (refusing a client that did not open a client stream) and features.
    async fn open(&mut self, header: &StartTag, state: &State, features: &str) -> bool {
        let id = format!("{:08x}", state.lock().stats.connections);
        let ours = format!(
            "<?xml version='1.0'?><stream:stream xmlns:stream='{STREAMS_NS}' xml:lang='en' \
             id='{id}' from='{}' version='1.0' xmlns='{CLIENT_NS}'>",
            escape(&state.domain)
        );
        if !self.send(&ours).await {
            return false;
        }
        if header.attr("xmlns") != Some(CLIENT_NS) {
            self.refuse("invalid-namespace").await;
            return false;
        }
        self.send(&format!("<stream:features>{features}</stream:features>"))
            .await
    }

    async fn sasl_failure(&mut self, condition: &str) {
        self.send(&format!(
            "<failure xmlns='{SASL_NS}'><{condition}/></failure>"
        ))
        .await;
    }

    /// Prosody's end of a user's sessions when the password changes: a stream error `reset`
    /// with its text, and our close.
    async fn reset(&mut self, text: &str) {
        let error = format!(
            "<stream:error><reset xmlns='{STREAM_ERRORS_NS}'/><text xmlns='{STREAM_ERRORS_NS}'>\
             {}</text></stream:error>",
            escape(text)
        );
        if self.send(&format!("{error}</stream:stream>")).await {
            self.shutdown().await;
        }
    }

    /// A stream error and our close.
    async fn refuse(&mut self, condition: &str) {
        let error =
            format!("<stream:error><{condition} xmlns='{STREAM_ERRORS_NS}'/></stream:error>");
        if self.send(&format!("{error}</stream:stream>")).await {
            self.shutdown().await;
        }
    }

    /// Writes `text` and flushes it (TLS buffers otherwise); false if the client is gone.
    async fn send(&mut self, text: &str) -> bool {
        let write = async {
            self.0.write_all(text.as_bytes()).await?;
            self.0.flush().await
        };
        matches!(timeout(IDLE, write).await, Ok(Ok(())))
    }

    async fn shutdown(&mut self) {
        let _ = timeout(IDLE, self.0.shutdown()).await;
    }
}

/// The one user, with its password salted and hashed as a server stores it.
#[derive(Clone)]
struct Account {
    name: String,
    password: String,
    sha1: Pbkdf2Sha1,
    sha256: Pbkdf2Sha256,
}

impl Account {
    fn new(name: String, password: String, fault: Fault) -> Account {
        let mut account = Account::with_salt(name, password, b"cms-xmpp-exporter test salt");
        if let Fault::Iterations(count) = fault {
            account.sha1.iterations = count;
            account.sha256.iterations = count;
        }
        account
    }

    fn with_salt(name: String, password: String, salt: &[u8]) -> Account {
        Account {
            sha1: Pbkdf2Sha1::derive(&password, salt, ITERATIONS).unwrap(),
            sha256: Pbkdf2Sha256::derive(&password, salt, ITERATIONS).unwrap(),
            name,
            password,
        }
    }

    /// The same account with its password stored under `salt`.
    fn salted(&self, salt: &[u8]) -> Account {
        Account::with_salt(self.name.clone(), self.password.clone(), salt)
    }

    fn known(&self, identity: &Identity) -> Result<(), ProviderError> {
        match identity {
            Identity::Username(name) if *name == self.name => Ok(()),
            _ => Err(ProviderError::AuthenticationFailed),
        }
    }
}

impl Provider<Pbkdf2Sha1> for Account {
    fn provide(&self, identity: &Identity) -> Result<Pbkdf2Sha1, ProviderError> {
        self.known(identity).map(|()| self.sha1.clone())
    }
}

impl Provider<Pbkdf2Sha256> for Account {
    fn provide(&self, identity: &Identity) -> Result<Pbkdf2Sha256, ProviderError> {
        self.known(identity).map(|()| self.sha256.clone())
    }
}

sasl::impl_validator_using_provider!(Account, Pbkdf2Sha1);
sasl::impl_validator_using_provider!(Account, Pbkdf2Sha256);

impl Validator<secret::Plain> for Account {
    fn validate(&self, identity: &Identity, value: &secret::Plain) -> Result<(), ValidatorError> {
        match self.known(identity) {
            Ok(()) if value.0 == self.password => Ok(()),
            _ => Err(ValidatorError::AuthenticationFailed),
        }
    }
}
