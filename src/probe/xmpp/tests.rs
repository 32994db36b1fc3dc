//! Tests of `probe::xmpp`.

use proptest::prelude::*;

use super::*;
use tokio::io::AsyncWriteExt;

/// Feeds `server` bytes to a connection and collects items until an error or `End`.
async fn read_all<T>(server: T) -> (Vec<Incoming>, Option<Failure>)
where
    T: AsRef<[u8]> + Send + 'static,
{
    let (client, mut peer) = tokio::io::duplex(1024);
    tokio::spawn(async move {
        let _ = peer.write_all(server.as_ref()).await;
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
            b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='1'>\n<handshake/> <handshake></handshake><stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bad token</text></stream:error></stream:stream>",
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
    let (items, failure) =
        read_all(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams' id='1'>").await;
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

#[tokio::test]
async fn stanzas_come_whole_with_their_namespaces() {
    let (items, failure) = read_all(
            b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='c1'>\
              <stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
              <mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>\
              <x:bind xmlns:x='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>\
              <iq type='error' id='p1' from='cb1.example.com'><error type='wait'>\
              <remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
              <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Component &amp; &#x26; unavailable</text>\
              </error></iq></stream:stream>",
        )
        .await;
    assert_eq!(failure, None);
    let [_, Incoming::Element(features), Incoming::Element(iq)] = items.as_slice() else {
        panic!("{items:?}");
    };
    assert!(features.is("features", STREAMS_NAMESPACE));
    let mechanisms = features
        .child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
        .unwrap();
    let names: Vec<&str> = mechanisms
        .children
        .iter()
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(names, ["SCRAM-SHA-1", "PLAIN"]);
    assert!(features
        .child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
        .is_some());
    assert!(iq.is("iq", "jabber:client"));
    assert_eq!(iq.attribute("from"), Some("cb1.example.com"));
    let error = iq.child("error", "jabber:client").unwrap();
    let stanzas = "urn:ietf:params:xml:ns:xmpp-stanzas";
    assert!(error.child("remote-server-timeout", stanzas).is_some());
    assert_eq!(
        error.child("text", stanzas).unwrap().text,
        "Component & & unavailable"
    );
}

#[tokio::test]
async fn a_long_stream_error_text_is_cut_between_characters() {
    let text = "é".repeat(STREAM_ERROR_TEXT_LIMIT);
    let body = format!(
        "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><stream:error>\
             <conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>x{text}</text></stream:error>"
    );
    let body: &'static [u8] = Box::leak(body.into_bytes().into_boxed_slice());
    let (items, _) = read_all(body).await;
    let Some(Incoming::StreamError { condition, text }) = items.last() else {
        panic!("{items:?}");
    };
    assert_eq!(condition, "conflict");
    assert!(
        text.len() <= STREAM_ERROR_TEXT_LIMIT && text.starts_with("xé"),
        "{text}"
    );
}

#[tokio::test]
async fn malformed_stanzas_are_refused() {
    let header =
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
    let deep = format!("{header}{}", "<a>".repeat(MAX_DEPTH + 1));
    for body in [
        format!("{header}<x:iq/>"),
        format!("{header}<iq>&custom;</iq>"),
        deep,
    ] {
        let body: &'static [u8] = Box::leak(body.into_bytes().into_boxed_slice());
        let (_, failure) = read_all(body).await;
        assert_eq!(
            failure.map(|f| f.reason),
            Some(Reason::Protocol),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
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

/// Pieces of XMPP, of XML that is almost XMPP, and of what no parser likes.
const FRAGMENTS: &[&str] = &[
    "<?xml version='1.0'?>",
    "<stream:stream",
    " xmlns='jabber:component:accept'",
    " xmlns:stream='http://etherx.jabber.org/streams'",
    " xmlns:stream='urn:other'",
    " id='",
    "'",
    ">",
    "<",
    "/>",
    "<handshake/>",
    "<handshake>",
    "</handshake>",
    "<stream:error>",
    "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>",
    "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>",
    "</text>",
    "</stream:error>",
    "</stream:stream>",
    "<iq type='result' id='x'><query xmlns='q'/></iq>",
    "<!DOCTYPE x [<!ENTITY a 'b'>]>",
    "&amp;",
    "&#27;",
    "&#x1F600;",
    "&big;",
    "<![CDATA[x]]>",
    "<!-- c -->",
    "é",
    "\u{1b}[31m",
    "\u{0}",
    "\r\n",
    " ",
];

fn transcript() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
            prop::collection::vec(any::<u8>(), 0..2048),
            prop::collection::vec(prop::sample::select(FRAGMENTS), 0..64)
                .prop_map(|pieces| pieces.concat().into_bytes()),
            // A stream error whose text is long and in any script.
            "\\PC{200,400}".prop_map(|text| {
                format!(
                    "<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='a1'><stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>{}</text></stream:error>",
                    quick_xml::escape::escape(text.as_str())
                )
                .into_bytes()
            }),
            // A valid exchange with bytes inserted here and there.
            prop::collection::vec(
                (any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 0..6)),
                0..6,
            )
            .prop_map(|edits| {
                let mut bytes = b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' id='a1'><handshake/><stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>held</text></stream:error></stream:stream>".to_vec();
                for (at, inserted) in edits {
                    let at = at.index(bytes.len() + 1);
                    bytes.splice(at..at, inserted);
                }
                bytes
            }),
        ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever a server sends, reading ends (an item stream, then an end or a failure),
    /// never panics, and what it reports is printable.
    #[test]
    fn no_server_answer_crashes_the_reader(bytes in transcript()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (items, failure) = runtime.block_on(read_all(bytes));
        prop_assert!(items.len() <= READ_LIMIT as usize);
        if let Some(failure) = failure {
            prop_assert!(!failure.detail.chars().any(char::is_control), "{}", failure.detail);
        }
    }
}
