//! The pings (client path): an XEP-0199 ping to each production component, over the user's
//! session. Whoever answers tells whether the component is connected: the component itself
//! (a result, or an error of its own), or the server, for lack of anything routed there. An
//! answer from any other JID says nothing about the component, whatever it says.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{timeout_at, Instant};

use super::client::stanza_error;
use super::xmpp::CLIENT_NAMESPACE;
use super::xmpp::{Element, Incoming, XmppConn};
use super::{Failure, Ping, Reason};

/// What a server answers for a component when nothing is routed to it: Prosody's
/// `remote-server-timeout` ("Component unavailable") for a configured component that is not
/// connected; for a name it routes as a remote domain (ejabberd does so for every component
/// that is not connected), `remote-server-not-found` with s2s on, and with s2s off Prosody's
/// `not-allowed` or ejabberd's `forbidden` (`s2s_access`). All come `from` the component's
/// name, like the component's own answers: only the condition (or a `by` naming someone else,
/// RFC 6120 8.3.2) tells them apart.
const NOTHING_ROUTED: [&str; 4] = [
    "remote-server-timeout",
    "remote-server-not-found",
    "not-allowed",
    "forbidden",
];

/// Pings every component at once, then reads the answers until all came or `deadline`.
/// `batch` tells these pings from an earlier batch's that are answered late (a kept session
/// pings again and again over one stream).
pub async fn ping_all<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut XmppConn<S>,
    components: &[String],
    batch: u64,
    deadline: Instant,
) -> Vec<Ping> {
    let mut pending: Vec<Option<Result<Duration, Failure>>> = vec![None; components.len()];
    let sent = Instant::now();
    let mut stanzas = String::new();
    for (i, component) in components.iter().enumerate() {
        stanzas.push_str(&format!(
            "<iq type='get' to='{}' id='ping-{batch}-{i}'><ping xmlns='urn:xmpp:ping'/></iq>",
            quick_xml::escape::escape(component.as_str())
        ));
    }
    let lost = match timeout_at(deadline, conn.send(&stanzas)).await {
        Ok(Ok(())) => read_answers(conn, components, batch, &mut pending, sent, deadline).await,
        Ok(Err(failure)) => failure,
        Err(_) => no_answer(),
    };
    components
        .iter()
        .zip(pending)
        .map(|(component, result)| Ping {
            component: component.clone(),
            result: result.unwrap_or_else(|| Err(lost.clone())),
        })
        .collect()
}

/// Fills `pending` from the answers; returns why the others never came.
async fn read_answers<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut XmppConn<S>,
    components: &[String],
    batch: u64,
    pending: &mut [Option<Result<Duration, Failure>>],
    sent: Instant,
    deadline: Instant,
) -> Failure {
    let prefix = format!("ping-{batch}-");
    while pending.iter().any(Option::is_none) {
        let item = match timeout_at(deadline, conn.next()).await {
            Err(_) => return no_answer(),
            Ok(Err(failure)) => return failure,
            Ok(Ok(item)) => item,
        };
        let Incoming::Element(stanza) = item else {
            return super::stream::unexpected(item);
        };
        // A request from the server (its own ping, to see whether the session lives) is
        // answered, as RFC 6120 §8.2.3 requires; anything else a server pushes (presence,
        // messages) is skipped.
        if let Some(reply) = reply_to(&stanza) {
            if let Err(failure) = conn.send(&reply).await {
                return failure;
            }
            continue;
        }
        let index = stanza
            .attribute("id")
            .and_then(|id| id.strip_prefix(prefix.as_str()))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|i| *i < pending.len() && stanza.is("iq", CLIENT_NAMESPACE));
        if let Some(i) = index {
            pending[i] = Some(classify(&stanza, &components[i]).map(|()| sent.elapsed()));
        }
    }
    no_answer()
}

/// The answer must come from the component's JID: bare (RFC 7622: the resource, after the
/// first `/`, is ignored, and so is a domain's trailing dot), compared without case. ejabberd
/// hands the pings for every host of one listener to whichever of them is connected, and that
/// one answers under its own name.
fn check_sender(from: Option<&str>, component: &str) -> Result<(), Failure> {
    let bare = from.map(|from| {
        let bare = from.split_once('/').map_or(from, |(bare, _)| bare);
        bare.strip_suffix('.').unwrap_or(bare)
    });
    match bare {
        Some(bare) if bare.eq_ignore_ascii_case(component) => Ok(()),
        Some(_) => {
            let from = from.unwrap_or_default();
            let shown: String = from.chars().take(SENDER_SHOWN).collect();
            let cut = if shown.len() < from.len() { "…" } else { "" };
            Err(Failure::new(
                Reason::WrongSender,
                format!(
                    "the ping was answered from {shown}{cut}, not from the component: it says \
                     nothing about the component"
                ),
            ))
        }
        None => Err(Failure::new(
            Reason::WrongSender,
            "the ping's answer names no sender (from): it says nothing about the component",
        )),
    }
}

/// The answer to an IQ request the server sends: a pong to its ping, an error to anything
/// else (the session does nothing but ping); `None` when `stanza` is no request.
fn reply_to(stanza: &Element) -> Option<String> {
    let request = stanza.is("iq", CLIENT_NAMESPACE)
        && matches!(stanza.attribute("type"), Some("get" | "set"));
    if !request {
        return None;
    }
    let escape =
        |value: Option<&str>| quick_xml::escape::escape(value.unwrap_or_default()).into_owned();
    let (id, to) = (
        escape(stanza.attribute("id")),
        escape(stanza.attribute("from")),
    );
    let to = if to.is_empty() {
        String::new()
    } else {
        format!(" to='{to}'")
    };
    Some(match stanza.child("ping", "urn:xmpp:ping") {
        Some(_) => format!("<iq type='result' id='{id}'{to}/>"),
        None => format!(
            "<iq type='error' id='{id}'{to}><error type='cancel'><service-unavailable \
             xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        ),
    })
}

fn no_answer() -> Failure {
    Failure::new(
        Reason::Timeout,
        "no answer to the ping before the probe's deadline",
    )
}

/// The most of a sender's JID a detail quotes.
const SENDER_SHOWN: usize = 256;

/// The component answered, or the server did for it; or someone else did.
fn classify(answer: &Element, component: &str) -> Result<(), Failure> {
    check_sender(answer.attribute("from"), component)?;
    if answer.attribute("type") != Some("error") {
        return Ok(());
    }
    let Some((condition, text)) = stanza_error(answer) else {
        return Ok(());
    };
    let by = answer
        .child("error", CLIENT_NAMESPACE)
        .and_then(|error| error.attribute("by"))
        .filter(|by| !by.eq_ignore_ascii_case(component));
    if !NOTHING_ROUTED.contains(&condition) && by.is_none() {
        // An error the component sends itself (service-unavailable, feature-not-implemented…).
        return Ok(());
    }
    let mut detail = format!("the server answered {condition}");
    if !text.is_empty() {
        detail.push_str(&format!(" ({text})"));
    }
    if let Some(by) = by {
        detail.push_str(&format!(", generated by {by}"));
    }
    detail.push_str(": nothing is routed to the component");
    Err(Failure::new(Reason::ComponentUnavailable, detail))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const HEADER: &str = "<?xml version='1.0'?><stream:stream from='e2e.test' id='59f2' xmlns:stream='http://etherx.jabber.org/streams' xml:lang='en' version='1.0' xmlns='jabber:client'>";

    /// Pings `components` through a server that answers `answers` (then holds the session).
    async fn ping(components: &[&str], answers: &str) -> Vec<Ping> {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let script = format!("{HEADER}{answers}");
        tokio::spawn(async move {
            server.write_all(script.as_bytes()).await.unwrap();
            let mut sink = [0u8; 4096];
            while server.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        });
        let mut conn = XmppConn::new(client);
        assert!(matches!(conn.next().await, Ok(Incoming::Header { .. })));
        let components: Vec<String> = components.iter().map(|c| c.to_string()).collect();
        let deadline = Instant::now() + Duration::from_millis(300);
        ping_all(&mut conn, &components, 0, deadline).await
    }

    /// A server that pings the session (to see it alive) gets its pong, an answer late from
    /// an earlier round counts for nothing, and the round's own answer is read.
    #[tokio::test]
    async fn a_servers_request_is_answered_and_an_earlier_rounds_answer_ignored() {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let script = format!(
            "{HEADER}<iq type='get' from='e2e.test' id='s1'><ping xmlns='urn:xmpp:ping'/></iq>\
             <iq type='set' from='e2e.test' id='s2'><query xmlns='jabber:iq:roster'/></iq>\
             <iq from='cb1.e2e.test' id='ping-6-0' type='result'/>\
             <iq from='cb1.e2e.test' id='ping-7-0' type='error'><error type='wait'>\
             <remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
        );
        let written = tokio::spawn(async move {
            server.write_all(script.as_bytes()).await.unwrap();
            let mut written = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = server.read(&mut chunk).await {
                written.extend_from_slice(&chunk[..n]);
            }
            String::from_utf8(written).unwrap()
        });
        let mut conn = XmppConn::new(client);
        assert!(matches!(conn.next().await, Ok(Incoming::Header { .. })));
        let deadline = Instant::now() + Duration::from_millis(300);
        let pings = ping_all(&mut conn, &["cb1.e2e.test".into()], 7, deadline).await;
        assert_eq!(reason(&pings[0]), Some(Reason::ComponentUnavailable));
        drop(conn);
        let written = written.await.unwrap();
        assert!(written.contains("id='ping-7-0'"), "{written}");
        assert!(
            written.contains("<iq type='result' id='s1' to='e2e.test'/>"),
            "{written}"
        );
        assert!(
            written.contains(
                "<iq type='error' id='s2' to='e2e.test'><error type='cancel'><service-unavailable"
            ),
            "{written}"
        );
    }

    fn reason(ping: &Ping) -> Option<Reason> {
        ping.result.as_ref().err().map(|f| f.reason)
    }

    /// The answers as Prosody 0.12 and ejabberd 23.01 sent them (captured on loopback, see
    /// docs/metrics.md).
    #[tokio::test]
    async fn every_shape_a_server_answers_is_classified() {
        let answers = concat!(
            // A connected component that answers pings.
            "<iq from='cb1.e2e.test' id='ping-0-0' xml:lang='en' type='result' to='monitor@e2e.test/I-08'/>",
            // A connected component that does not implement them: its own error.
            "<iq from='cb2.e2e.test' id='ping-0-1' xml:lang='en' type='error' to='monitor@e2e.test/I-08'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
            // Something a fresh session may be sent meanwhile.
            "<presence from='e2e.test' to='monitor@e2e.test/I-08'/>",
            // A configured component that is not connected.
            "<iq from='cb3.e2e.test' type='error' id='ping-0-2' to='monitor@e2e.test/I-08'><error type='wait'><remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Component unavailable</text><not-connected xmlns='xmpp:prosody.im/protocol/component'/></error></iq>",
            // A name the server does not know as a component: routed as a remote domain.
            "<iq from='nobody.e2e.test' type='error' id='ping-0-3' to='monitor@e2e.test/I-08'><error type='cancel' by='e2e.test'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Server-to-server connection failed: unable to resolve service</text></error></iq>",
            // The server refuses on the component's behalf, and says so with `by`.
            "<iq from='cb5.e2e.test' type='error' id='ping-0-4' to='monitor@e2e.test/I-08'><error type='cancel' by='e2e.test'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
            // ejabberd 23.01, a component that is not connected, s2s on and off.
            "<iq xml:lang='en' to='monitor@e2e.test/1443' from='cb6.e2e.test' type='error' id='ping-0-5'><ping xmlns='urn:xmpp:ping'/><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>DNS lookup failed: enoname</text></error></iq>",
            "<iq xml:lang='en' to='monitor@e2e.test/6801' from='cb7.e2e.test' type='error' id='ping-0-6'><ping xmlns='urn:xmpp:ping'/><error type='auth'><forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xml:lang='en' xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Access denied by service policy</text></error></iq>",
            // Prosody with s2s off, for a name that is no component (condition and text as
            // recorded in the domain notes).
            "<iq from='cb8.e2e.test' type='error' id='ping-0-7' to='monitor@e2e.test/I-08'><error type='cancel'><not-allowed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>Communication with remote domains is not enabled</text></error></iq>",
            // ejabberd 23.01, a connected component's own error.
            "<iq to='monitor@e2e.test/1443' from='cb9.e2e.test' type='error' id='ping-0-8'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
            // Answers to no ping of ours.
            "<iq id='ping-0-99' type='result'/><iq id='x' type='result'/>",
            // ejabberd 23.01, one listener for cb11 and cb12 where only cb12 is connected: the
            // ping for cb11 goes to cb12, which answers under its own name.
            "<iq xml:lang='en' to='monitor@e2e.test/1443' from='cb12.e2e.test' type='result' id='ping-0-10'/>",
            // A result with the component's name in another case, a resource and a trailing dot.
            "<iq from='CB13.e2e.test./res' id='ping-0-11' type='result'/>",
            // A result from the domain, from a user at the component's name, from no one.
            "<iq from='e2e.test' id='ping-0-12' type='result'/>",
            "<iq from='x@cb15.e2e.test' id='ping-0-13' type='result'/>",
            "<iq id='ping-0-14' type='result'/>",
            // The server's own \"nothing routed\" from another JID is not about the component.
            "<iq from='e2e.test' type='error' id='ping-0-15'><error type='wait'><remote-server-timeout xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
        );
        let names = [
            "cb1.e2e.test",
            "cb2.e2e.test",
            "cb3.e2e.test",
            "nobody.e2e.test",
            "cb5.e2e.test",
            "cb6.e2e.test",
            "cb7.e2e.test",
            "cb8.e2e.test",
            "cb9.e2e.test",
            "cb10.e2e.test",
            "cb11.e2e.test",
            "cb13.e2e.test",
            "cb14.e2e.test",
            "cb15.e2e.test",
            "cb16.e2e.test",
            "cb17.e2e.test",
        ];
        let pings = ping(&names, answers).await;
        let reasons: Vec<Option<Reason>> = pings.iter().map(reason).collect();
        let detail = |i: usize| pings[i].result.as_ref().unwrap_err().detail.clone();
        assert_eq!(
            reasons,
            [
                None,
                None,
                Some(Reason::ComponentUnavailable),
                Some(Reason::ComponentUnavailable),
                Some(Reason::ComponentUnavailable),
                Some(Reason::ComponentUnavailable),
                Some(Reason::ComponentUnavailable),
                Some(Reason::ComponentUnavailable),
                None,
                Some(Reason::Timeout),
                Some(Reason::WrongSender),
                None,
                Some(Reason::WrongSender),
                Some(Reason::WrongSender),
                Some(Reason::WrongSender),
                Some(Reason::WrongSender),
            ],
            "{pings:#?}"
        );
        assert!(
            detail(10).contains("answered from cb12.e2e.test, not from the component"),
            "{}",
            detail(10)
        );
        assert!(detail(14).contains("names no sender"), "{}", detail(14));
        assert!(
            detail(2).contains("remote-server-timeout (Component unavailable)"),
            "{}",
            detail(2)
        );
        assert!(detail(4).contains("generated by e2e.test"), "{}", detail(4));
        assert_eq!(pings[0].component, "cb1.e2e.test");
    }

    #[test]
    fn a_sender_shown_in_a_detail_is_cut_and_printable() {
        let long = format!("\u{1b}[31m{}", "a".repeat(1000));
        let failure = check_sender(Some(&long), "cb1.e2e.test").unwrap_err();
        assert!(
            failure
                .detail
                .starts_with("the ping was answered from \\u{1b}[31maaa"),
            "{}",
            failure.detail
        );
        assert!(
            failure.detail.contains("a…, not from"),
            "{}",
            failure.detail
        );
        assert!(failure.detail.len() < 400, "{}", failure.detail.len());
    }

    #[tokio::test]
    async fn a_session_that_ends_fails_every_ping_still_pending() {
        let answers = "<iq from='cb1.e2e.test' id='ping-0-0' type='result'/></stream:stream>";
        let pings = ping(&["cb1.e2e.test", "cb2.e2e.test"], answers).await;
        assert_eq!(reason(&pings[0]), None);
        assert_eq!(reason(&pings[1]), Some(Reason::Closed), "{pings:#?}");
    }
}
