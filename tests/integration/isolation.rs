//! No XMPP server can freeze the exporter: a client port that asks the monitoring login for
//! two billion SCRAM rounds gets a login that ends at its deadline, while `/-/healthy`, the
//! other targets' schedules and SIGTERM carry on as if nothing happened.

use std::time::Duration;

use tokio::time::Instant;

use crate::support::c2s::{Answer, C2sConfig, C2sServer, Encryption, Fault};
use crate::support::component::Behaviour;
use crate::support::exporter::*;
use crate::BINARY;

const CB1: &str = "cb1.example.test";
/// What a hostile server asks: about eight minutes of one core with SHA-256.
const HOSTILE_COUNT: u32 = 2_000_000_000;
/// The hostile target's deadline.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Polls `done` until it holds, failing after [`PATIENCE`].
async fn until(what: &str, done: impl Fn() -> bool) {
    let give_up = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < give_up, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_huge_iteration_count_ends_at_the_deadline_and_freezes_nothing() {
    let lab = Lab::new(base_zone()).await;
    let leaf = lab.good_leaf();
    let xmpp = C2sServer::start(C2sConfig {
        encryption: Encryption::Starttls(leaf.server_config()),
        domain: DOMAIN.to_owned(),
        user: ("monitor".to_owned(), PASSWORD.to_owned()),
        components: vec![(CB1.to_owned(), Answer::Result)],
        fault: Fault::Iterations(HOSTILE_COUNT),
    })
    .await;
    let steady = lab.tls_server(&leaf, Behaviour::Normal).await;
    // The limit raised above the count, so that the derivation really runs until the deadline.
    // A component name of its own: targets that share one take turns.
    let hostile = format!(
        "{}{}      max_scram_iterations: 4000000000\n",
        lab.timed_target(
            "hostile",
            &server(XMPP1, closed_port().await),
            "4s",
            "2s",
            ""
        ),
        lab.watch(
            &server(XMPP1, xmpp.addr().port()),
            "starttls",
            "password",
            &[CB1]
        ),
    )
    .replace(
        &format!("component: {COMPONENT}\n"),
        "component: hostile.example.test\n",
    );
    let steady = lab.timed_target(
        "steady",
        &server(XMPP1, steady.addr().port()),
        "200ms",
        "200ms",
        "",
    );
    std::fs::write(lab.path("config.yaml"), lab.config(&[hostile, steady])).unwrap();
    let mut binary = Binary::spawn(BINARY, &lab.path("config.yaml"), &[]).await;
    let addr = binary.exporter.addr;

    // The login has asked for SCRAM: the server's challenge is on its way, the derivation next.
    until("the first SCRAM exchange", || xmpp.stats().auths.len() == 1).await;
    let asked = Instant::now();
    let steady_cycles = |s: &Scrape| s.value(&PROBES_TOTAL, &[("target", "steady")]);
    let before = steady_cycles(&binary.exporter.scrape().await);
    let mut slowest = Duration::ZERO;
    // Most of the deadline: every health check answers at once meanwhile.
    while asked.elapsed() < TIMEOUT - Duration::from_millis(500) {
        let started = Instant::now();
        let (status, _) = http_request(addr, "GET", "/-/healthy").await;
        assert_eq!(status, 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        slowest < Duration::from_millis(100),
        "/-/healthy took {slowest:?} during the derivation"
    );
    let scrape = binary.exporter.scrape().await;
    assert_eq!(
        scrape.value(&PROBE_SUCCESS, &[("target", "steady")]),
        Some(1.0)
    );
    let after = steady_cycles(&scrape);
    // 1.5 s of 200 ms cycles: at least five, had nothing waited.
    assert!(
        after >= before.map(|b| b + 5.0),
        "the other target's schedule stalled: {before:?} -> {after:?} cycles"
    );

    let scrape = binary
        .exporter
        .wait("the hostile login ends", |s| {
            s.value(&WATCH_FAILING_STEP, &[("target", "hostile")])
                .is_some()
        })
        .await;
    let ids = [("target", "hostile")];
    assert_eq!(
        scrape.label(&WATCH_FAILING_STEP, &ids, "step").as_deref(),
        Some("sasl")
    );
    assert_eq!(
        scrape.label(&WATCH_FAILING_STEP, &ids, "reason").as_deref(),
        Some("timeout")
    );
    let took = scrape.value(&PROBE_DURATION, &ids).unwrap();
    assert!(
        took <= TIMEOUT.as_secs_f64() + 0.1,
        "the hostile cycle took {took} s for a {TIMEOUT:?} deadline"
    );

    // The next login is deriving when SIGTERM comes: the process ends promptly all the same.
    until("the second SCRAM exchange", || {
        xmpp.stats().auths.len() == 2
    })
    .await;
    let pid = binary.child.id().unwrap().to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-s", "TERM", &pid])
        .status()
        .unwrap();
    assert!(signalled.success());
    let stopped = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(5), binary.child.wait())
        .await
        .expect("the exporter ends within 5 s of SIGTERM")
        .unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "stopped after {:?}",
        stopped.elapsed()
    );
    let log = binary.log().await;
    let login_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("target=\"hostile\"") && l.contains("monitoring user"))
        .collect();
    assert!(
        login_lines.len() == 1
            && login_lines[0].contains("WARN")
            && login_lines[0].contains("reason=timeout"),
        "one warning for the failing login:\n{log}"
    );
    assert!(!log.contains(PASSWORD));
}
