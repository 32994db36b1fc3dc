//! A target's `watch` against an in-process c2s server: the login's every failure names its
//! step and reason, each shape of ping answer is classified, and the password stays secret.

use crate::support::c2s::{Answer, C2sConfig, C2sServer, Encryption, Fault, SessionEnd};
use crate::support::component::Behaviour;
use crate::support::exporter::*;
use crate::support::pki::{Leaf, Validity};
use crate::BINARY;

pub(crate) const CB1: &str = "cb1.example.test";
pub(crate) const CB2: &str = "cb2.example.test";
pub(crate) const CB3: &str = "cb3.example.test";
pub(crate) const CB4: &str = "cb4.example.test";
/// Answered for by another JID.
const CB5: &str = "cb5.example.test";
/// Known to no router: the server treats it as a remote domain.
const NOBODY: &str = "nobody.example.test";

pub(crate) async fn c2s(encryption: Encryption, fault: Fault) -> C2sServer {
    C2sServer::start(C2sConfig {
        encryption,
        domain: DOMAIN.to_owned(),
        user: ("monitor".to_owned(), PASSWORD.to_owned()),
        components: vec![
            (CB1.to_owned(), Answer::Result),
            (CB2.to_owned(), Answer::OwnError),
            (CB3.to_owned(), Answer::NotConnected),
            (CB4.to_owned(), Answer::Silent),
            (CB5.to_owned(), Answer::FromOther),
        ],
        fault,
    })
    .await
}

pub(crate) fn starttls(leaf: &Leaf) -> Encryption {
    Encryption::Starttls(leaf.server_config())
}

/// A target whose component flow goes to `component_server` and whose watch logs in at
/// `watch_server` ("" for SRV) in TLS `mode`, with the password in file `password`.
fn watch_target(
    lab: &Lab,
    name: &str,
    component_server: &str,
    watch_server: &str,
    mode: &str,
    password: &str,
    components: &[&str],
) -> String {
    let watch = lab.watch(watch_server, mode, password, components);
    format!("{}{watch}", lab.target(name, component_server, ""))
}

/// Target "t", probed every 200 ms: its component flow goes to a closed port, its watch logs
/// in to `xmpp` (STARTTLS) and pings `components`.
pub(crate) async fn fast_watch_target(lab: &Lab, xmpp: &C2sServer, components: &[&str]) -> String {
    let watch = lab.watch(
        &server(XMPP1, xmpp.addr().port()),
        "starttls",
        "password",
        components,
    );
    let component_flow = server(XMPP1, closed_port().await);
    lab.timed_target("t", &component_flow, "200ms", "200ms", "") + &watch
}

pub(crate) fn registered(scrape: &Scrape, target: &str, component: &str) -> Option<f64> {
    let ids = [("target", target), ("component", component)];
    scrape.value(&COMPONENT_REGISTERED, &ids)
}

pub(crate) fn ping_failure(scrape: &Scrape, target: &str, component: &str) -> Option<String> {
    let ids = [("target", target), ("component", component)];
    scrape.label(&COMPONENT_FAILING, &ids, "reason")
}

/// The login step that failed last for `target`, and why.
pub(crate) fn watch_failing(scrape: &Scrape, target: &str) -> Option<(String, String)> {
    let ids = [("target", target)];
    let step = scrape.label(&WATCH_FAILING_STEP, &ids, "step")?;
    let reason = scrape.label(&WATCH_FAILING_STEP, &ids, "reason")?;
    Some((step, reason))
}

#[tokio::test]
async fn each_ping_answer_is_classified_and_follows_the_component() {
    let lab = Lab::new(base_zone()).await;
    let leaf = lab.good_leaf();
    let xmpp = c2s(starttls(&leaf), Fault::None).await;
    let component = lab.tls_server(&leaf, Behaviour::Normal).await;
    let listed = [CB1, CB2, CB3, CB4, NOBODY, CB5];
    let target = watch_target(
        &lab,
        "t",
        &server(XMPP1, component.addr().port()),
        &server(XMPP1, xmpp.addr().port()),
        "starttls",
        "password",
        &listed,
    );
    let exporter = lab.exporter(&[target]).await;
    let scrape = exporter
        .wait("every component classified", |s| {
            s.value(&WATCH_SUCCESS, &[("target", "t")]) == Some(1.0)
                && listed.iter().all(|c| registered(s, "t", c).is_some())
        })
        .await;
    let values: Vec<Option<f64>> = listed.iter().map(|c| registered(&scrape, "t", c)).collect();
    assert_eq!(
        values,
        [
            Some(1.0),
            Some(1.0),
            Some(0.0),
            Some(0.0),
            Some(0.0),
            Some(0.0)
        ],
        "{}",
        scrape.relevant()
    );
    let reasons: Vec<Option<String>> = listed
        .iter()
        .map(|c| ping_failure(&scrape, "t", c))
        .collect();
    let reason = |r: &str| Some(r.to_owned());
    assert_eq!(
        reasons,
        [
            None,
            None,
            reason("component_unavailable"),
            reason("timeout"),
            reason("component_unavailable"),
            reason("wrong_sender"),
        ]
    );
    let round_trip = |c: &str| {
        let ids = [("target", "t"), ("component", c)];
        scrape.value(&COMPONENT_PING, &ids)
    };
    assert!(round_trip(CB1).is_some_and(|s| s > 0.0 && s < 1.0));
    assert_eq!(round_trip(CB3), None, "no round trip without an answer");
    // The login does not disturb the component flow.
    assert_eq!(scrape.value(&PROBE_SUCCESS, &[("target", "t")]), Some(1.0));
    let stats = xmpp.stats();
    assert!(stats.tls_handshakes >= 1, "{stats:?}");
    assert!(
        stats
            .auths
            .iter()
            .all(|(mechanism, encrypted)| mechanism == "SCRAM-SHA-256" && *encrypted),
        "the strongest mechanism, inside TLS: {stats:?}"
    );
    assert_eq!(stats.auth_failures, 0);

    // The Callbridge drops its connection, another comes back: the series follow.
    xmpp.set_answer(CB1, Answer::NotConnected);
    xmpp.set_answer(CB3, Answer::Result);
    exporter
        .wait("cb1 lost, cb3 back", |s| {
            registered(s, "t", CB1) == Some(0.0)
                && ping_failure(s, "t", CB1).as_deref() == Some("component_unavailable")
                && registered(s, "t", CB3) == Some(1.0)
                && ping_failure(s, "t", CB3).is_none()
        })
        .await;
    // One kept session, pinging round after round, ended politely at shutdown.
    let stats = xmpp.stats();
    assert_eq!(stats.binds, 1, "{stats:?}");
    assert!(stats.pings.len() >= 2 * (listed.len() + 1), "{stats:?}");
    exporter.stop().await;
    let stats = xmpp.stats();
    assert_eq!(stats.clean_closes, 1, "{stats:?}");
}

#[tokio::test]
async fn every_login_failure_names_its_step_and_reason() {
    let lab = Lab::new(base_zone()).await;
    let leaf = lab.good_leaf();
    let without_domain = lab.pki.leaf(&[XMPP1], Validity::Good);
    let component_flow = server(XMPP1, closed_port().await);
    let servers = [
        ("no-starttls", c2s(starttls(&leaf), Fault::NoStarttls).await),
        ("silent", c2s(starttls(&leaf), Fault::Silent).await),
        ("name", c2s(starttls(&without_domain), Fault::None).await),
        ("password", c2s(starttls(&leaf), Fault::None).await),
        (
            "proof",
            c2s(starttls(&leaf), Fault::BadServerSignature).await,
        ),
        ("bind", c2s(starttls(&leaf), Fault::RefuseBind).await),
        (
            "iterations",
            c2s(starttls(&leaf), Fault::Iterations(2_000_000_000)).await,
        ),
        (
            "plain-in-clear",
            c2s(Encryption::None, Fault::PlainOnly).await,
        ),
        (
            "direct",
            c2s(Encryption::Direct(leaf.server_config()), Fault::None).await,
        ),
    ];
    let expected = [
        ("no-starttls", "starttls", "starttls_unavailable"),
        ("silent", "starttls", "timeout"),
        ("name", "cert", "cert_name_mismatch"),
        ("password", "sasl", "not_authorized"),
        ("proof", "sasl", "sasl_error"),
        ("bind", "bind", "bind_error"),
        // Refused before a single round is computed (the default limit is 1,000,000).
        ("iterations", "sasl", "sasl_iterations"),
        ("plain-in-clear", "sasl", "sasl_mechanism"),
        // A STARTTLS client at a port that speaks TLS at once gets no XMPP answer it can read.
        ("direct", "starttls", "protocol"),
    ];
    let targets: Vec<String> = servers
        .iter()
        .map(|(name, xmpp)| {
            let (mode, password) = match *name {
                "plain-in-clear" => ("none", "password"),
                "password" => ("starttls", "wrong-password"),
                _ => ("starttls", "password"),
            };
            let address = server(XMPP1, xmpp.addr().port());
            watch_target(
                &lab,
                name,
                &component_flow,
                &address,
                mode,
                password,
                &[CB1],
            )
        })
        .collect();
    let exporter = lab.exporter(&targets).await;
    let scrape = exporter
        .wait("every login failed", |s| {
            expected
                .iter()
                .all(|(target, _, _)| watch_failing(s, target).is_some())
        })
        .await;
    for (target, step, reason) in expected {
        assert_eq!(
            watch_failing(&scrape, target),
            Some((step.to_owned(), reason.to_owned())),
            "target {target}:\n{}",
            scrape.relevant()
        );
        assert_eq!(
            scrape.value(&WATCH_SUCCESS, &[("target", target)]),
            Some(0.0)
        );
        assert_eq!(
            registered(&scrape, target, CB1),
            Some(0.0),
            "a failed login leaves {target}'s components unregistered"
        );
        assert_eq!(ping_failure(&scrape, target, CB1), None, "{target}");
        let ids = [("target", target), ("step", step), ("reason", reason)];
        assert!(scrape.value(&WATCH_FAILURES_TOTAL, &ids) >= Some(1.0));
    }
    let stats = |name: &str| servers.iter().find(|(n, _)| *n == name).unwrap().1.stats();
    let plain = stats("plain-in-clear");
    assert!(
        plain.auths.is_empty(),
        "PLAIN was tried in the clear: {plain:?}"
    );
    assert!(
        plain.sasl_payloads.iter().all(|p| !p.contains(PASSWORD)),
        "the password crossed the wire in the clear"
    );
    let wrong = stats("password");
    assert!(wrong.auth_failures >= 1, "{wrong:?}");
    assert_eq!(wrong.binds, 0);
    // The probe never proceeds with a server that could not prove it knows the password.
    assert_eq!(stats("proof").binds, 0);
    exporter.stop().await;
}

#[tokio::test]
async fn srv_logins_go_to_the_first_server_that_works() {
    let lab = Lab::new(base_zone()).await;
    let leaf = lab.good_leaf();
    let refusing = c2s(starttls(&leaf), Fault::RefuseBind).await;
    let working = c2s(starttls(&leaf), Fault::None).await;
    let direct = c2s(Encryption::Direct(leaf.server_config()), Fault::None).await;
    let dead = closed_port().await;
    lab.dns.set_zone(
        base_zone()
            .srv("_xmpp-client._tcp.example.test", 5, 0, dead, XMPP1)
            .srv(
                "_xmpp-client._tcp.example.test",
                10,
                0,
                refusing.addr().port(),
                XMPP1,
            )
            .srv(
                "_xmpp-client._tcp.example.test",
                20,
                0,
                working.addr().port(),
                XMPP2,
            )
            .srv(
                "_xmpps-client._tcp.example.test",
                10,
                0,
                direct.addr().port(),
                XMPP2,
            ),
    );
    let component_flow = server(XMPP1, closed_port().await);
    let targets = [
        watch_target(
            &lab,
            "srv",
            &component_flow,
            "",
            "starttls",
            "password",
            &[CB1],
        ),
        watch_target(
            &lab,
            "xmpps",
            &component_flow,
            "",
            "direct",
            "password",
            &[CB1],
        ),
    ];
    let exporter = lab.exporter(&targets).await;
    let scrape = exporter
        .wait("both watches logged in", |s| {
            registered(s, "srv", CB1) == Some(1.0) && registered(s, "xmpps", CB1) == Some(1.0)
        })
        .await;
    let failing_servers: Vec<(String, String, String)> = scrape
        .find(&WATCH_FAILING_STEP, &[("target", "srv")])
        .iter()
        .map(|s| {
            let label = |k: &str| s.labels.iter().find(|(n, _)| n == k).unwrap().1.clone();
            (label("server"), label("step"), label("reason"))
        })
        .collect();
    assert_eq!(
        failing_servers,
        [
            (
                server(XMPP1, dead),
                "connect".to_owned(),
                "refused".to_owned()
            ),
            (
                server(XMPP1, refusing.addr().port()),
                "bind".to_owned(),
                "bind_error".to_owned()
            ),
        ],
        "the servers tried before the one that worked:\n{}",
        scrape.relevant()
    );
    assert_eq!(
        scrape.value(&WATCH_SUCCESS, &[("target", "srv")]),
        Some(1.0)
    );
    assert!(working.stats().binds >= 1);
    // One snapshot: each TLS handshake on the direct port led to a login, but the next
    // cycle's may be between its handshake and its `<auth>` right now.
    let direct = direct.stats();
    assert!(
        !direct.auths.is_empty() && direct.tls_handshakes - direct.auths.len() <= 1,
        "{direct:?}"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn the_password_appears_in_no_log_metric_page_or_probe_output() {
    let lab = Lab::new(base_zone()).await;
    let leaf = lab.good_leaf();
    let xmpp = c2s(starttls(&leaf), Fault::None).await;
    let address = server(XMPP1, xmpp.addr().port());
    let component_flow = server(XMPP1, closed_port().await);
    let config = lab.config(&[
        watch_target(
            &lab,
            "good",
            &component_flow,
            &address,
            "starttls",
            "password",
            &[CB1],
        ),
        // The server's refusal of a wrong password is logged and exported: never the password.
        watch_target(
            &lab,
            "bad",
            &component_flow,
            &address,
            "starttls",
            "wrong-password",
            &[CB1],
        ),
    ]);
    let binary = crate::spawn_traced(&lab, &config).await;
    let exporter = &binary.exporter;
    let scrape = exporter
        .wait("one login worked, one was refused", |s| {
            registered(s, "good", CB1) == Some(1.0)
                && watch_failing(s, "bad").is_some_and(|(_, reason)| reason == "not_authorized")
        })
        .await;
    let page = http_get(exporter.addr, "/").await;
    let debug = http_get(exporter.addr, "/probe?target=bad&debug=true").await;
    let probe = http_get(exporter.addr, "/probe?target=good").await;
    let log = binary.killed_log().await;
    for (what, text) in [
        ("/metrics", &scrape.text),
        ("the page", &page),
        ("/probe?debug", &debug),
        ("/probe", &probe),
        ("the log", &log),
    ] {
        assert!(!text.contains(PASSWORD), "the password leaked into {what}");
    }
    assert!(
        debug.contains("not_authorized") || debug.contains("not-authorized"),
        "the debug output says why:\n{debug}"
    );
    assert!(
        xmpp.stats()
            .sasl_payloads
            .iter()
            .all(|p| !p.contains(PASSWORD)),
        "SCRAM never sends the password itself"
    );
}

#[tokio::test]
async fn every_watch_state_change_is_one_log_line() {
    let lab = Lab::new(base_zone()).await;
    let leaf = lab.good_leaf();
    let xmpp = c2s(starttls(&leaf), Fault::None).await;
    let target = fast_watch_target(&lab, &xmpp, &[CB1, CB3]).await;
    std::fs::write(lab.path("config.yaml"), lab.config(&[target])).unwrap();
    let binary = Binary::spawn(BINARY, &lab.path("config.yaml"), &[]).await;
    let exporter = &binary.exporter;
    let cycles = |s: &Scrape| s.value(&PROBES_TOTAL, &[("target", "t")]).unwrap_or(0.0);
    // Waits for `what`, then three more cycles in that state.
    let settle = |what: &'static str, state: fn(&Scrape) -> bool| async move {
        let reached = cycles(&exporter.wait(what, state).await);
        exporter
            .wait(what, |s| state(s) && cycles(s) >= reached + 3.0)
            .await;
    };
    settle("cb1 registered", |s| registered(s, "t", CB1) == Some(1.0)).await;
    xmpp.set_answer(CB1, Answer::NotConnected);
    settle("cb1 lost", |s| registered(s, "t", CB1) == Some(0.0)).await;
    xmpp.set_answer(CB1, Answer::Result);
    settle("cb1 back", |s| registered(s, "t", CB1) == Some(1.0)).await;
    drop(xmpp);
    settle("the session is lost, then the login fails", |s| {
        watch_failing(s, "t") == Some(("connect".into(), "refused".into()))
    })
    .await;

    let log = binary.killed_log().await;
    let lines = |message: &str, component: Option<&str>| -> Vec<&str> {
        let component = component.map(|c| format!("component={c}"));
        log.lines()
            .filter(|l| l.contains("target=\"t\"") && l.contains(message))
            .filter(|l| component.as_ref().is_none_or(|c| l.contains(c.as_str())))
            .collect()
    };
    let logs_in = lines("the monitoring user logs in", None);
    assert!(logs_in.len() == 1 && logs_in[0].contains("INFO"), "{log}");
    // The server dropped under the kept session: the session is lost, then the logins meet
    // refused connections: a line for each change, none repeated.
    let lost = lines("the monitoring user's session was lost", None);
    assert!(
        lost.len() == 1 && lost[0].contains("WARN") && lost[0].contains("reason=closed"),
        "{log}"
    );
    let cannot = lines("the monitoring user cannot log in", None);
    assert!(
        cannot.len() == 1
            && cannot[0].contains("WARN")
            && cannot[0].contains("step=connect")
            && cannot[0].contains("reason=refused"),
        "{log}"
    );
    let up = lines("component is registered", Some(CB1));
    assert!(
        up.len() == 2 && up.iter().all(|l| l.contains("INFO")),
        "{log}"
    );
    let down = lines("component is not registered", Some(CB1));
    assert!(
        down.len() == 1
            && down[0].contains("WARN")
            && down[0].contains("reason=component_unavailable")
            && down[0].contains("Component unavailable"),
        "{log}"
    );
    assert_eq!(
        lines("component is not registered", Some(CB3)).len(),
        1,
        "{log}"
    );
    assert!(
        lines("component is registered", Some(CB3)).is_empty(),
        "{log}"
    );
}

/// The salted password is kept per salt: a server that stores the password anew (a new salt)
/// at every login gets a fresh derivation each time, never a stale one. The server ends every
/// session after one ping, so the kept session logs in again and again.
#[tokio::test]
async fn a_new_salt_at_every_login_is_derived_anew() {
    let lab = Lab::new(base_zone()).await;
    let leaf = lab.good_leaf();
    let xmpp = c2s(starttls(&leaf), Fault::FreshSalt).await;
    xmpp.end_sessions_after_each_ping(SessionEnd::HangUp);
    let target = fast_watch_target(&lab, &xmpp, &[CB1]).await;
    let exporter = lab.exporter(&[target]).await;
    exporter
        .wait("three logins, each with its own salt", |_| {
            xmpp.stats().auths.len() >= 3
        })
        .await;
    let scrape = exporter
        .wait("the third session recorded", |s| {
            s.value(&WATCH_SESSIONS_TOTAL, &[("target", "t")]) >= Some(3.0)
        })
        .await;
    // Only the sessions ended; no login failed.
    let failed_steps: Vec<String> = scrape
        .find(&WATCH_FAILURES_TOTAL, &[("target", "t")])
        .iter()
        .filter_map(|s| s.labels.iter().find(|(k, _)| k == "step"))
        .map(|(_, step)| step.clone())
        .collect();
    assert!(
        failed_steps.iter().all(|s| s == "session"),
        "{failed_steps:?}"
    );
    assert_eq!(xmpp.stats().auth_failures, 0, "{:?}", xmpp.stats());
    exporter.stop().await;
}
