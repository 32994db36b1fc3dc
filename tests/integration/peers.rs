//! Regression tests of the test peers themselves, driven by ordinary clients.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use crate::support::component::{
    handshake_digest, Behaviour, ComponentServer, ComponentServerConfig,
};
use crate::support::dns::{DnsServer, Zone};
use crate::support::pki::{Pki, Validity};

const SRV_NAME: &str = "_xmpp-component._tcp.example.test";
const PROBE: &str = "probe.example.test";
const SECRET: &str = "s3cret";
const BOUND: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------- DNS

fn resolver(server: &DnsServer) -> TokioResolver {
    let mut name_server = NameServerConfig::udp_and_tcp(server.addr().ip());
    for connection in &mut name_server.connections {
        connection.port = server.addr().port();
    }
    let mut options = ResolverOpts::default();
    options.cache_size = 0;
    options.timeout = Duration::from_millis(500);
    options.attempts = 1;
    TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![name_server]),
        TokioRuntimeProvider::default(),
    )
    .with_options(options)
    .build()
    .expect("resolver")
}

fn response_code(error: &NetError) -> Option<ResponseCode> {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => Some(no_records.response_code),
        NetError::Dns(DnsError::ResponseCode(code)) => Some(*code),
        _ => None,
    }
}

#[tokio::test]
async fn dns_answers_srv_a_aaaa_and_negatives() {
    let zone = Zone::new()
        .srv(SRV_NAME, 10, 60, 5223, "xmpp1.example.test")
        .srv(SRV_NAME, 20, 0, 5224, "xmpp2.example.test.")
        .srv("_xmpp-component._tcp.none.test", 0, 0, 0, ".")
        .a("xmpp1.example.test", Ipv4Addr::new(127, 0, 0, 1))
        .aaaa("XMPP1.example.test.", Ipv6Addr::LOCALHOST);
    let server = DnsServer::start(zone).await;
    let resolver = resolver(&server);

    let srv = resolver.srv_lookup(SRV_NAME).await.expect("SRV answer");
    let mut records: Vec<_> = srv
        .answers()
        .iter()
        .map(|record| match &record.data {
            RData::SRV(srv) => (srv.priority, srv.weight, srv.port, srv.target.to_ascii()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    records.sort();
    assert_eq!(
        records,
        [
            (10, 60, 5223, "xmpp1.example.test.".to_owned()),
            (20, 0, 5224, "xmpp2.example.test.".to_owned())
        ]
    );
    let none = resolver
        .srv_lookup("_xmpp-component._tcp.none.test.")
        .await
        .unwrap();
    assert!(matches!(&none.answers()[0].data, RData::SRV(srv) if srv.target.is_root()));

    let v4 = resolver
        .ipv4_lookup("Xmpp1.Example.Test.")
        .await
        .expect("A answer");
    assert!(matches!(&v4.answers()[0].data, RData::A(a) if a.0 == Ipv4Addr::new(127, 0, 0, 1)));
    let v6 = resolver
        .ipv6_lookup("xmpp1.example.test")
        .await
        .expect("AAAA answer");
    assert!(matches!(&v6.answers()[0].data, RData::AAAA(aaaa) if aaaa.0 == Ipv6Addr::LOCALHOST));

    let nxdomain = resolver
        .ipv4_lookup("nothing.example.test.")
        .await
        .unwrap_err();
    assert_eq!(
        response_code(&nxdomain),
        Some(ResponseCode::NXDomain),
        "{nxdomain}"
    );
    // The name exists (it owns SRV records) but has no A: NOERROR, no answers.
    let nodata = resolver.ipv4_lookup(SRV_NAME).await.unwrap_err();
    assert_eq!(
        response_code(&nodata),
        Some(ResponseCode::NoError),
        "{nodata}"
    );
    // An empty non-terminal exists too.
    let ent = resolver.srv_lookup("_tcp.example.test.").await.unwrap_err();
    assert_eq!(response_code(&ent), Some(ResponseCode::NoError), "{ent}");

    // No caching anywhere: a second lookup reaches the server, and sees a new zone.
    server.set_zone(Zone::new().srv(SRV_NAME, 5, 5, 5275, "xmpp3.example.test"));
    let srv = resolver.srv_lookup(SRV_NAME).await.expect("SRV answer");
    assert!(matches!(srv.answers(), [r] if matches!(&r.data, RData::SRV(s) if s.port == 5275)));
    assert_eq!(server.queries(&format!("{SRV_NAME}."), "srv"), 2);
}

#[tokio::test]
async fn dns_servfail_silent_and_tcp_fallback() {
    let mut zone = Zone::new()
        .servfail("broken.example.test")
        .silent("slow.example.test");
    for i in 0..100 {
        zone = zone.a("big.example.test", Ipv4Addr::new(10, 0, 0, i));
    }
    let server = DnsServer::start(zone).await;
    let resolver = resolver(&server);

    let servfail = resolver
        .srv_lookup("broken.example.test.")
        .await
        .unwrap_err();
    assert_eq!(
        response_code(&servfail),
        Some(ResponseCode::ServFail),
        "{servfail}"
    );

    let silent = timeout(BOUND, resolver.ipv4_lookup("slow.example.test."))
        .await
        .expect("the resolver gives up by itself")
        .unwrap_err();
    assert!(matches!(silent, NetError::Timeout), "{silent:?}");
    assert!(server.queries("slow.example.test", "A") >= 1);

    // Too big for UDP: truncated, then retried over TCP on the same port.
    let big = resolver
        .ipv4_lookup("big.example.test.")
        .await
        .expect("A answer over TCP");
    assert_eq!(big.answers().len(), 100);
    assert_eq!(server.queries("big.example.test", "A"), 2);
}

// ---------------------------------------------------------------- component server

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A minimal hand-written XEP-0114 client.
struct Client {
    io: Box<dyn Io>,
    received: String,
}

impl Client {
    async fn plain(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Client {
            io: Box::new(tcp),
            received: String::new(),
        }
    }

    async fn tls(
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> std::io::Result<Client> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from(server_name.to_owned()).expect("server name");
        let tls = timeout(BOUND, TlsConnector::from(config).connect(name, tcp)).await??;
        Ok(Client {
            io: Box::new(tls),
            received: String::new(),
        })
    }

    async fn send(&mut self, text: &str) {
        self.io.write_all(text.as_bytes()).await.expect("send");
        self.io.flush().await.expect("flush");
    }

    async fn open(&mut self, to: &str) {
        // Two writes, so the server must reassemble a fragmented header.
        self.send("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' ")
            .await;
        self.send(&format!(
            "xmlns:stream=\"http://etherx.jabber.org/streams\" to='{to}'>"
        ))
        .await;
    }

    /// Reads until `needle` has arrived (panics on EOF or after BOUND).
    async fn until(&mut self, needle: &str) -> &str {
        while !self.received.contains(needle) {
            assert!(
                self.read_some().await > 0,
                "EOF before {needle:?}; got {:?}",
                self.received
            );
        }
        &self.received
    }

    /// Reads everything until the server closes.
    async fn read_to_eof(&mut self) -> &str {
        while self.read_some().await > 0 {}
        &self.received
    }

    async fn read_some(&mut self) -> usize {
        let mut buf = vec![0u8; 64 * 1024];
        let n = timeout(BOUND, self.io.read(&mut buf))
            .await
            .expect("server answers")
            .unwrap_or(0);
        self.received.push_str(&String::from_utf8_lossy(&buf[..n]));
        n
    }

    /// The server's stream id, once its header has arrived.
    async fn stream_id(&mut self) -> String {
        let text = self.until("id=").await;
        let rest = &text[text.find("id=").unwrap() + 4..];
        rest[..rest.find(['\'', '"']).unwrap()].to_owned()
    }

    /// Opens the stream and answers with the digest of `secret`.
    async fn handshake(&mut self, to: &str, secret: &str) {
        self.open(to).await;
        let digest = handshake_digest(&self.stream_id().await, secret);
        self.send(&format!("<handshake>{digest}</handshake>")).await;
    }
}

fn config(behaviour: Behaviour) -> ComponentServerConfig {
    ComponentServerConfig {
        tls: None,
        components: vec![
            (PROBE.to_owned(), SECRET.to_owned()),
            ("held.example.test".to_owned(), SECRET.to_owned()),
        ],
        behaviour,
        tls_delay: None,
    }
}

fn stream_error(condition: &str) -> String {
    format!("<stream:error><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>")
}

#[tokio::test]
async fn component_tls_handshake_and_clean_close() {
    let pki = Pki::new("Test CA");
    let leaf = pki.leaf(&["xmpp.example.test", "example.test"], Validity::Good);
    let server = ComponentServer::start(ComponentServerConfig {
        tls: Some(leaf.server_config()),
        ..config(Behaviour::Normal)
    })
    .await;

    let mut client = Client::tls(server.addr(), pki.client_config(None), "xmpp.example.test")
        .await
        .expect("TLS handshake");
    client.open(PROBE).await;
    let id = client.stream_id().await;
    assert!(client
        .received
        .starts_with("<?xml version='1.0'?><stream:stream "));
    let digest = handshake_digest(&id, SECRET);
    client.send(&format!("<handshake>{}", &digest[..10])).await;
    client.send(&format!("{}</handshake>", &digest[10..])).await;
    client.until("<handshake/>").await;
    assert_eq!(server.stats().live_sessions, 1);
    client.send("</stream:stream>").await;
    assert!(client
        .read_to_eof()
        .await
        .ends_with("<handshake/></stream:stream>"));

    let stats = server.stats();
    assert_eq!(
        (stats.connections, stats.handshakes_ok, stats.clean_closes),
        (1, 1, 1)
    );
    assert_eq!((stats.digests, stats.stream_ids), (vec![digest], vec![id]));
    assert_eq!(stats.sni, [Some("xmpp.example.test".to_owned())]);
    assert_eq!((stats.client_cert_seen, stats.live_sessions), (0, 0));
}

#[tokio::test]
async fn component_refusals_like_prosody() {
    let server = ComponentServer::start(config(Behaviour::Normal)).await;

    let mut wrong_secret = Client::plain(server.addr()).await;
    wrong_secret.handshake(PROBE, "wrong").await;
    let text = wrong_secret.read_to_eof().await;
    assert!(text.contains(&stream_error("not-authorized")) && text.ends_with("</stream:stream>"));

    // Uppercase hex of the right digest is refused too (exact comparison).
    let mut uppercase = Client::plain(server.addr()).await;
    uppercase.open(PROBE).await;
    let digest = handshake_digest(&uppercase.stream_id().await, SECRET).to_uppercase();
    uppercase
        .send(&format!("<handshake>{digest}</handshake>"))
        .await;
    assert!(uppercase
        .read_to_eof()
        .await
        .contains(&stream_error("not-authorized")));

    let mut unknown = Client::plain(server.addr()).await;
    unknown.open("nobody.example.test").await;
    let text = unknown.read_to_eof().await;
    assert!(
        text.contains(&stream_error("host-unknown")) && !text.contains("id="),
        "{text}"
    );

    let mut no_to = Client::plain(server.addr()).await;
    no_to.send("<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams'>").await;
    assert!(no_to
        .read_to_eof()
        .await
        .contains(&stream_error("improper-addressing")));

    server.hold_connected("held.example.test");
    let mut held = Client::plain(server.addr()).await;
    held.handshake("held.example.test", SECRET).await;
    assert!(held.read_to_eof().await.contains(&stream_error("conflict")));

    // A live session holds its name until it goes away.
    let mut first = Client::plain(server.addr()).await;
    first.handshake(PROBE, SECRET).await;
    first.until("<handshake/>").await;
    let mut second = Client::plain(server.addr()).await;
    second.handshake(PROBE, SECRET).await;
    assert!(second
        .read_to_eof()
        .await
        .contains(&stream_error("conflict")));
    drop(first);
    crate::support::wait_for("the first session to end", BOUND, || {
        server.stats().live_sessions == 0
    })
    .await;
    let mut third = Client::plain(server.addr()).await;
    third.handshake(PROBE, SECRET).await;
    third.until("<handshake/>").await;

    let stats = server.stats();
    assert_eq!(
        (
            stats.handshakes_ok,
            stats.handshakes_failed,
            stats.conflicts
        ),
        (2, 2, 2)
    );
    assert_eq!(
        stats.stream_errors,
        [
            "not-authorized",
            "not-authorized",
            "host-unknown",
            "improper-addressing",
            "conflict",
            "conflict"
        ]
    );
}

#[tokio::test]
async fn component_openfire_dialect() {
    let server = ComponentServer::start(config(Behaviour::SuccessAsOpenfire)).await;
    let mut client = Client::plain(server.addr()).await;
    client.handshake(PROBE, SECRET).await;
    let text = client.until("<handshake></handshake>").await;
    assert!(
        text.starts_with(&format!("<stream:stream from=\"{PROBE}\" id=\"")),
        "{text}"
    );

    let server = ComponentServer::start(config(Behaviour::ConflictAtHeader)).await;
    let mut client = Client::plain(server.addr()).await;
    client.open(PROBE).await;
    let text = client.read_to_eof().await;
    assert!(
        text.contains("id=\"") && text.contains("<conflict "),
        "{text}"
    );
    assert!(text.ends_with("</stream:error></stream:stream>"));
    assert_eq!(server.stats().conflicts, 1);
}

#[tokio::test]
async fn component_misbehaviours() {
    let silent = ComponentServer::start(config(Behaviour::Silent)).await;
    let mut client = Client::plain(silent.addr()).await;
    client.open(PROBE).await;
    let mut byte = [0u8; 1];
    let read = timeout(Duration::from_millis(300), client.io.read(&mut byte)).await;
    assert!(
        read.is_err(),
        "a silent server sends nothing and keeps the socket: {read:?}"
    );

    let closing = ComponentServer::start(config(Behaviour::CloseAfterClientHeader)).await;
    let mut client = Client::plain(closing.addr()).await;
    client.open(PROBE).await;
    assert_eq!(client.read_to_eof().await, "");

    for (behaviour, prefix) in [
        (Behaviour::Garbage, ""),
        (
            Behaviour::HugeHeader,
            "<?xml version='1.0'?><stream:stream ",
        ),
    ] {
        let server = ComponentServer::start(config(behaviour)).await;
        let mut client = Client::plain(server.addr()).await;
        client.open(PROBE).await;
        while client.received.len() < 256 * 1024 {
            assert!(client.read_some().await > 0, "{behaviour:?} ended");
        }
        let endless = &client.received[prefix.len()..];
        assert!(
            client.received.starts_with(prefix) && !endless.contains(['<', '>']),
            "{behaviour:?}"
        );
    }
}

#[tokio::test]
async fn tls_certificates_and_client_auth() {
    let pki = Pki::new("Test CA");
    let clients = Pki::new("Client CA");
    let serve = |tls| {
        ComponentServer::start(ComponentServerConfig {
            tls: Some(tls),
            ..config(Behaviour::Normal)
        })
    };

    // Wildcard and IP SANs; the client certificate is required and seen.
    let leaf = pki.leaf(&["*.example.test", "127.0.0.1"], Validity::ExpiresInDays(5));
    let server = serve(leaf.server_config_requiring_client_cert(&clients)).await;
    let with_cert = pki.client_config(Some(&clients.client_leaf("callbridge1")));
    for name in ["xmpp.example.test", "127.0.0.1"] {
        let mut client = Client::tls(server.addr(), with_cert.clone(), name)
            .await
            .expect(name);
        client.handshake(PROBE, SECRET).await;
        client.until("<handshake/>").await;
    }
    assert_eq!(server.stats().client_cert_seen, 2);
    assert_eq!(
        server.stats().sni,
        [Some("xmpp.example.test".to_owned()), None]
    );

    for (validity, expected) in [
        (Validity::Expired, "expired"),
        (Validity::NotYetValid, "not valid yet"),
    ] {
        let leaf = pki.leaf(&["xmpp.example.test"], validity);
        let server = serve(leaf.server_config()).await;
        let err = Client::tls(server.addr(), pki.client_config(None), "xmpp.example.test")
            .await
            .err()
            .expect("certificate refused");
        assert!(
            err.to_string().to_lowercase().contains(expected),
            "{validity:?}: {err}"
        );
    }
    let leaf = pki.leaf(&["other.test"], Validity::Good);
    let server = serve(leaf.server_config()).await;
    let err = Client::tls(server.addr(), pki.client_config(None), "xmpp.example.test")
        .await
        .err();
    assert!(err
        .expect("name mismatch refused")
        .to_string()
        .contains("not valid for name"));
}
