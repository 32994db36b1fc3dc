//! A configured target's kept watch session (issue 28): one login, a round of pings every
//! `watch.ping_interval`; with the defaults a component that leaves, hangs or comes back reads
//! so on /metrics within 5 s; a lost session is logged in again after a growing wait, never
//! in a tight loop; a reload keeps an unchanged watch's session and closes a removed one.

use std::time::Duration;

use tokio::time::Instant;

use crate::support::c2s::{Answer, C2sServer, Fault, SessionEnd};
use crate::support::exporter::*;
use crate::watch::{c2s, fast_watch_target, ping_failure, registered, starttls, CB1, CB3, CB4};

/// What on-call is promised: a change on /metrics within 5 s of it happening.
const PROMISE: Duration = Duration::from_secs(5);

/// Polls /metrics until `condition` holds; panics when it did not within `PROMISE`.
async fn within_promise(exporter: &Exporter, what: &str, condition: impl Fn(&Scrape) -> bool) {
    let give_up = Instant::now() + PROMISE;
    loop {
        let scrape = exporter.scrape().await;
        if condition(&scrape) {
            return;
        }
        assert!(
            Instant::now() < give_up,
            "{what}: not within {PROMISE:?}; last /metrics:\n{}",
            scrape.relevant()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A lab and a healthy client port (STARTTLS) for its watches.
async fn lab_and_client_port() -> (Lab, C2sServer) {
    let lab = Lab::new(base_zone()).await;
    let xmpp = c2s(starttls(&lab.good_leaf()), Fault::None).await;
    (lab, xmpp)
}

#[tokio::test]
async fn with_the_defaults_a_component_that_leaves_hangs_or_comes_back_reads_so_within_5_s() {
    let (lab, xmpp) = lab_and_client_port().await;
    let target = fast_watch_target(&lab, &xmpp, &[CB1, CB3]).await;
    let before_login = crate::probe::now();
    let exporter = lab.exporter(&[target]).await;
    exporter
        .wait("cb1 registered", |s| registered(s, "t", CB1) == Some(1.0))
        .await;
    let logged_in = crate::probe::now();

    // Leaves, comes back, hangs (its process stopped, the connection open: nothing answers
    // the ping), answers again.
    let changes = [
        (Answer::NotConnected, 0.0, Some("component_unavailable")),
        (Answer::Result, 1.0, None),
        (Answer::Silent, 0.0, Some("timeout")),
        (Answer::Result, 1.0, None),
    ];
    for (answer, value, reason) in changes {
        xmpp.set_answer(CB1, answer);
        within_promise(&exporter, &format!("cb1 {answer:?}"), |s| {
            registered(s, "t", CB1) == Some(value) && ping_failure(s, "t", CB1).as_deref() == reason
        })
        .await;
    }
    // All of it over one session, which has lived since it was opened.
    let scrape = exporter.scrape().await;
    assert_eq!(xmpp.stats().binds, 1, "{:?}", xmpp.stats());
    let t = [("target", "t")];
    assert_eq!(scrape.value(&WATCH_SESSIONS_TOTAL, &t), Some(1.0));
    let started = scrape
        .value(&WATCH_SESSION_START, &t)
        .expect("a session start");
    // The login's time, within a clock tick: the series says when the session began, not when
    // a round ran.
    assert!(
        (before_login.floor()..=logged_in.ceil()).contains(&started),
        "{before_login} <= {started} <= {logged_in}"
    );
    assert_eq!(scrape.value(&WATCH_SUCCESS, &t), Some(1.0));
    // The views say so too: how long the session has lived, how many there were.
    let page = http_get(exporter.addr, "/").await;
    assert!(
        page.contains("<small data-session=\"kept\">session of ") && page.contains(" · 1 opened"),
        "{page}"
    );
    let debug = http_get(exporter.addr, "/probe?target=t&debug=true").await;
    assert!(
        debug.contains("  session kept since ") && debug.contains("(1 opened since"),
        "{debug}"
    );
    exporter.stop().await;
}

/// Every component silent: the server's answer to its own ping tells hung components from a
/// lost session.
#[tokio::test]
async fn when_no_component_answers_the_server_is_asked_whether_the_session_lives() {
    let (lab, xmpp) = lab_and_client_port().await;
    let target = fast_watch_target(&lab, &xmpp, &[CB4]).await;
    let exporter = lab.exporter(&[target]).await;
    let t = [("target", "t")];
    exporter
        .wait("cb4 hung, the session alive over three rounds", |s| {
            ping_failure(s, "t", CB4).as_deref() == Some("timeout")
                && s.value(&WATCH_SUCCESS, &t) == Some(1.0)
                && xmpp.stats().pings.len() >= 6
        })
        .await;
    let stats = xmpp.stats();
    assert_eq!(stats.binds, 1, "{stats:?}");
    assert!(stats.pings.iter().any(|to| to == DOMAIN), "{stats:?}");
    exporter.stop().await;
}

#[tokio::test]
async fn a_lost_session_is_reported_and_opened_again_and_failed_logins_wait_longer_each_time() {
    let (lab, xmpp) = lab_and_client_port().await;
    xmpp.end_sessions_after_each_ping(SessionEnd::HangUp);
    let target = fast_watch_target(&lab, &xmpp, &[CB1]).await;
    let exporter = lab.exporter(&[target]).await;
    // Every session ends after its first ping: the next round finds it closed.
    exporter
        .wait("a lost session counted, and a session opened again", |s| {
            let lost = [("target", "t"), ("step", "session"), ("reason", "closed")];
            s.value(&WATCH_FAILURES_TOTAL, &lost) >= Some(1.0)
                && s.value(&WATCH_SESSIONS_TOTAL, &[("target", "t")]) >= Some(2.0)
        })
        .await;
    // Lost, then logged in again: never faster than a ping interval apart.
    let started = Instant::now();
    let logins = xmpp.stats().binds;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let more = xmpp.stats().binds - logins;
    assert!(
        (1..=4).contains(&more),
        "{more} logins in {:?}",
        started.elapsed()
    );
    exporter.stop().await;

    // A wrong password: each failed login doubles the wait (4, 8, 16 s … ±25 %, up to the
    // target's interval), so ten seconds see two or three logins.
    let xmpp = c2s(starttls(&lab.good_leaf()), Fault::None).await;
    let target = fast_watch_target(&lab, &xmpp, &[CB1])
        .await
        .replace(
            &lab.path("password").display().to_string(),
            &lab.path("wrong-password").display().to_string(),
        )
        .replace(
            "interval: 200ms\n    timeout: 200ms",
            "interval: 30s\n    timeout: 2s",
        );
    assert!(
        target.contains("wrong-password") && target.contains("30s"),
        "{target}"
    );
    let exporter = lab.exporter(&[target]).await;
    let started = Instant::now();
    exporter
        .wait("the login refused", |s| {
            s.value(&WATCH_SUCCESS, &[("target", "t")]) == Some(0.0)
        })
        .await;
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(started.elapsed())).await;
    let logins = xmpp.stats().connections;
    assert!(
        (2..=4).contains(&logins),
        "{logins} logins in 10 s: {:?}",
        xmpp.stats()
    );
    let scrape = exporter.scrape().await;
    assert_eq!(
        scrape.value(&WATCH_SESSIONS_TOTAL, &[("target", "t")]),
        None,
        "no session was opened"
    );
    exporter.stop().await;
}

/// A server that ends the session with a stream error (Prosody resets a user's sessions when
/// the password changes) has it read as lost for that reason at the next round, not as the
/// broken pipe of a later write, and without pinging the server to find out.
#[tokio::test]
async fn a_session_ended_by_a_stream_error_is_lost_for_that_reason() {
    let (lab, xmpp) = lab_and_client_port().await;
    xmpp.end_sessions_after_each_ping(SessionEnd::Reset);
    let target = fast_watch_target(&lab, &xmpp, &[CB1]).await;
    let exporter = lab.exporter(&[target]).await;
    let lost = |reason| [("target", "t"), ("step", "session"), ("reason", reason)];
    let scrape = exporter
        .wait("two sessions reset, each counted as lost", |s| {
            s.value(&WATCH_FAILURES_TOTAL, &lost("stream_error")) >= Some(2.0)
        })
        .await;
    assert_eq!(
        scrape.value(&WATCH_FAILURES_TOTAL, &lost("closed")),
        None,
        "{}",
        scrape.relevant()
    );
    let stats = xmpp.stats();
    assert!(stats.pings.iter().all(|to| to == CB1), "{stats:?}");
    exporter.stop().await;
}

#[tokio::test]
async fn a_reload_keeps_an_unchanged_watchs_session_and_closes_a_removed_one() {
    let (lab, xmpp) = lab_and_client_port().await;
    let target = fast_watch_target(&lab, &xmpp, &[CB1]).await;
    let config = lab.path("config.yaml");
    std::fs::write(&config, lab.config(std::slice::from_ref(&target))).unwrap();
    let exporter = Exporter::start_file(&config).await;
    exporter
        .wait("cb1 registered", |s| registered(s, "t", CB1) == Some(1.0))
        .await;
    let (status, _) = http_request(exporter.addr, "POST", "/-/reload").await;
    assert_eq!(status, 200);
    // Rounds go on over the same session.
    let pings = xmpp.stats().pings.len();
    exporter
        .wait("two more rounds", |_| xmpp.stats().pings.len() >= pings + 4)
        .await;
    assert_eq!(xmpp.stats().binds, 1, "{:?}", xmpp.stats());

    // The watch removed: its session ends politely.
    let without_watch = target[..target.find("    watch:").unwrap()].to_owned();
    std::fs::write(&config, lab.config(&[without_watch])).unwrap();
    let (status, _) = http_request(exporter.addr, "POST", "/-/reload").await;
    assert_eq!(status, 200);
    assert_eq!(xmpp.stats().clean_closes, 1, "{:?}", xmpp.stats());
    let scrape = exporter.scrape().await;
    assert!(scrape
        .find(&COMPONENT_REGISTERED, &[("target", "t")])
        .is_empty());
    exporter.stop().await;
}
