//! The exporter end to end against in-process peers that speak the real protocols: an
//! authoritative DNS server (real DNS messages), XEP-0114 component servers (real TLS, real
//! XML) and a test CA. Each test starts `run()` on port 0 and reads `/metrics` over HTTP.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::support::component::{Behaviour, ComponentServer, ComponentServerConfig};
use crate::support::dns::Zone;
use crate::support::exporter::*;
use crate::support::pki::{Leaf, Pki, Validity};

// ---------- success ----------

#[tokio::test]
async fn srv_with_two_servers_succeeds_and_exports_every_fact() {
    let lab = Lab::new(base_zone()).await;
    let (one, two) = lab.two_srv_servers().await;
    let (s1, s2) = (
        server(XMPP1, one.addr().port()),
        server(XMPP2, two.addr().port()),
    );
    let exporter = lab.exporter(&[lab.target("t", "", "")]).await;
    let scrape = exporter
        .wait("both servers up", |s| {
            s.value(&SERVER_UP, &[("server", &s1)]) == Some(1.0)
                && s.value(&SERVER_UP, &[("server", &s2)]) == Some(1.0)
        })
        .await;

    // Both servers up makes the target's success: what is checked here is everything else.
    assert_eq!(scrape.value(&SRV_RECORDS, &[("target", "t")]), Some(2.0));
    let srv_took = scrape.value(&STEP_LAST_DURATION, &[("server", ""), ("step", "srv")]);
    assert!(srv_took.is_some_and(|d| d > 0.0 && d < 1.0), "{srv_took:?}");
    assert!(scrape.find(&FAILING_STEP, &[]).is_empty(), "nothing fails");
    for s in [&s1, &s2] {
        for step in ["resolve", "connect", "tls", "stream", "handshake"] {
            let ids = [("server", s.as_str()), ("step", step)];
            let seconds = scrape.value(&STEP_LAST_DURATION, &ids).unwrap();
            assert!(seconds > 0.0 && seconds < 1.0, "{s} {step} took {seconds}s");
        }
        // `cert` is judged in memory: its time is the exporter's, not the server's.
        let cert = [("server", s.as_str()), ("step", "cert")];
        assert!(scrape.find(&STEP_LAST_DURATION, &cert).is_empty());
        assert_eq!(failing(&scrape, "t", s), None);
        let ids = [("server", s.as_str())];
        assert_eq!(scrape.value(&CERT_TRUSTED, &ids), Some(1.0));
        for (role, name) in [("domain", DOMAIN), ("fqdn", s.split(':').next().unwrap())] {
            let covered = [("server", s.as_str()), ("role", role), ("name", name)];
            assert_eq!(
                scrape.value(&CERT_SAN_COVERED, &covered),
                Some(1.0),
                "{s} {role}"
            );
        }
        let version = scrape.label(&TLS_INFO, &ids, "version").unwrap();
        assert!(version == "TLSv1.3" || version == "TLSv1.2", "{version}");
        let sans = scrape.label(&CERT_INFO, &ids, "sans").unwrap();
        assert_eq!(sans, format!("{DOMAIN},{XMPP1},{XMPP2}"));
        let not_after = scrape.value(&CERT_NOT_AFTER, &ids).unwrap();
        let days_left = (not_after - now()) / 86400.0;
        assert!((80.0..=91.0).contains(&days_left), "{days_left} days left");
        assert!(scrape.value(&LAST_SUCCESS, &ids).unwrap() > now() - 60.0);
        assert_eq!(
            scrape.label(&SERVER_INFO, &ids, "address"),
            Some(format!("127.0.0.1:{}", s.rsplit(':').next().unwrap()))
        );
    }
    let info = |s: &str, key: &str| scrape.label(&SERVER_INFO, &[("server", s)], key).unwrap();
    assert_eq!(
        (
            info(&s1, "priority"),
            info(&s1, "weight"),
            info(&s1, "preferred")
        ),
        ("10".into(), "60".into(), "true".into())
    );
    assert_eq!(
        (
            info(&s2, "priority"),
            info(&s2, "weight"),
            info(&s2, "preferred")
        ),
        ("20".into(), "40".into(), "false".into())
    );
    assert_eq!(info(&s1, "source"), "srv");

    // The probe closes its stream politely and sends a lowercase digest.
    crate::support::wait_for("a clean close", PATIENCE, || one.stats().clean_closes >= 1).await;
    let stats = one.stats();
    assert!(stats.handshakes_ok >= 1);
    assert!(
        stats
            .digests
            .iter()
            .all(|d| d.len() == 40 && *d == d.to_lowercase()),
        "{:?}",
        stats.digests
    );
    assert_eq!(stats.sni.first().cloned().flatten().as_deref(), Some(XMPP1));
    exporter.stop().await;
}

pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test]
async fn consecutive_probes_never_conflict_and_dns_is_asked_every_time() {
    let lab = Lab::new(base_zone()).await;
    let one = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    lab.dns
        .set_zone(base_zone().srv(SRV_NAME, 0, 0, one.addr().port(), XMPP1));
    let exporter = lab
        .exporter(&[lab.timed_target("t", "", "200ms", "200ms", "")])
        .await;
    let scrape = exporter.cycles("t", 8.0).await;
    assert_eq!(scrape.value(&PROBE_SUCCESS, &[("target", "t")]), Some(1.0));
    assert!(
        scrape.find(&FAILURES_TOTAL, &[("target", "t")]).is_empty(),
        "{}",
        scrape.relevant()
    );
    let stats = one.stats();
    assert_eq!(stats.conflicts, 0);
    assert!(stats.handshakes_ok >= 8, "{stats:?}");
    assert!(
        lab.dns.queries(SRV_NAME, "SRV") >= 8,
        "the SRV answer must not be cached"
    );
    assert!(
        lab.dns.queries(XMPP1, "A") >= 8,
        "the A answer must not be cached"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn one_server_down_keeps_the_target_up() {
    let lab = Lab::new(base_zone()).await;
    let one = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    let dead = closed_port().await;
    lab.dns.set_zone(
        base_zone()
            .srv(SRV_NAME, 10, 50, one.addr().port(), XMPP1)
            .srv(SRV_NAME, 10, 50, dead, XMPP2),
    );
    let exporter = lab.exporter(&[lab.target("t", "", "")]).await;
    let down = server(XMPP2, dead);
    let scrape = exporter
        .wait("the dead server reported", |s| {
            failing(s, "t", &down).is_some()
        })
        .await;
    assert_eq!(scrape.value(&PROBE_SUCCESS, &[("target", "t")]), Some(1.0));
    assert_eq!(
        scrape.value(&SERVER_UP, &[("server", &server(XMPP1, one.addr().port()))]),
        Some(1.0)
    );
    assert_eq!(scrape.value(&SERVER_UP, &[("server", &down)]), Some(0.0));
    assert_eq!(
        failing(&scrape, "t", &down),
        Some(("connect".into(), "refused".into()))
    );
    // The steps that ran have durations; the ones after the failure were not reached.
    for (step, ran) in [
        ("resolve", true),
        ("connect", true),
        ("tls", false),
        ("handshake", false),
    ] {
        let ids = [("server", down.as_str()), ("step", step)];
        let duration = scrape.value(&STEP_LAST_DURATION, &ids);
        assert_eq!(duration.is_some(), ran, "{step}: {duration:?}");
    }
    exporter.stop().await;
}

#[tokio::test]
async fn a_server_that_leaves_the_srv_answer_leaves_metrics() {
    let lab = Lab::new(base_zone()).await;
    let leaf = lab.good_leaf();
    let one = lab.tls_server(&leaf, Behaviour::Normal).await;
    let two = lab.tls_server(&leaf, Behaviour::Normal).await;
    let (s1, s2) = (
        server(XMPP1, one.addr().port()),
        server(XMPP2, two.addr().port()),
    );
    lab.dns.set_zone(
        base_zone()
            .srv(SRV_NAME, 10, 50, one.addr().port(), XMPP1)
            .srv(SRV_NAME, 10, 50, two.addr().port(), XMPP2),
    );
    let exporter = lab.exporter(&[lab.target("t", "", "")]).await;
    exporter
        .wait("both servers up", |s| {
            s.value(&SERVER_UP, &[("server", &s2)]) == Some(1.0)
        })
        .await;
    lab.dns
        .set_zone(base_zone().srv(SRV_NAME, 10, 50, one.addr().port(), XMPP1));
    let scrape = exporter
        .wait("xmpp2 gone from /metrics", |s| !s.mentions(&s2))
        .await;
    assert_eq!(scrape.value(&SRV_RECORDS, &[("target", "t")]), Some(1.0));
    assert_eq!(scrape.value(&SERVER_UP, &[("server", &s1)]), Some(1.0));
    exporter.stop().await;
}

#[tokio::test]
async fn a_dead_aaaa_does_not_fail_a_server_whose_a_works() {
    let lab = Lab::new(base_zone()).await;
    let one = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    // ::1 at the same port: nothing listens there, so AAAA (tried first) is refused.
    lab.dns
        .set_zone(base_zone().aaaa(XMPP1, Ipv6Addr::LOCALHOST));
    let target = lab.target("t", &server(XMPP1, one.addr().port()), "");
    let exporter = lab.exporter(&[target]).await;
    let s1 = server(XMPP1, one.addr().port());
    let scrape = exporter
        .wait("server up over A", |s| {
            s.value(&SERVER_UP, &[("server", &s1)]) == Some(1.0)
        })
        .await;
    assert_eq!(
        scrape.label(&SERVER_INFO, &[("server", &s1)], "address"),
        Some(format!("127.0.0.1:{}", one.addr().port()))
    );
    assert_eq!(
        scrape
            .label(&SERVER_INFO, &[("server", &s1)], "source")
            .as_deref(),
        Some("static")
    );
    assert!(lab.dns.queries(XMPP1, "AAAA") >= 1);
    exporter.stop().await;
}

#[tokio::test]
async fn plaintext_openfire_dialect_and_no_handshake_modes() {
    let lab = Lab::new(base_zone()).await;
    let plain = component_server(None, Behaviour::SuccessAsOpenfire).await;
    let silent_on_secret = component_server(None, Behaviour::Normal).await;
    let targets = [
        lab.target("openfire", &server(XMPP1, plain.addr().port()), "      mode: none\n"),
        format!(
            "  - name: header-only\n    domain: {DOMAIN}\n    server_address: \"{}\"\n    component: {COMPONENT}\n    handshake: false\n    tls:\n      mode: none\n",
            server(XMPP2, silent_on_secret.addr().port())
        ),
    ];
    let exporter = lab.exporter(&targets).await;
    let scrape = exporter
        .wait("both targets up", |s| {
            s.value(&PROBE_SUCCESS, &[("target", "openfire")]) == Some(1.0)
                && s.value(&PROBE_SUCCESS, &[("target", "header-only")]) == Some(1.0)
        })
        .await;
    // Plaintext: no TLS or certificate steps at all, but the others ran.
    let openfire = |step| [("target", "openfire"), ("step", step)];
    assert!(scrape
        .value(&STEP_LAST_DURATION, &openfire("stream"))
        .is_some());
    assert!(scrape
        .find(&STEP_LAST_DURATION, &openfire("tls"))
        .is_empty());
    assert!(scrape
        .find(&CERT_TRUSTED, &[("target", "openfire")])
        .is_empty());
    // No handshake: nothing was sent but the header.
    let header_only = |step| [("target", "header-only"), ("step", step)];
    assert!(scrape
        .value(&STEP_LAST_DURATION, &header_only("stream"))
        .is_some());
    assert!(scrape
        .find(&STEP_LAST_DURATION, &header_only("handshake"))
        .is_empty());
    assert_eq!(silent_on_secret.stats().digests.len(), 0);
    exporter.stop().await;
}

#[tokio::test]
async fn wildcard_and_uppercase_sans_are_matched_like_rfc_6125() {
    let lab = Lab::new(base_zone()).await;
    let leaf = lab
        .pki
        .leaf(&["EXAMPLE.test", "*.Example.Test"], Validity::Good);
    let one = lab.tls_server(&leaf, Behaviour::Normal).await;
    let exporter = lab
        .exporter(&[lab.target("t", &server(XMPP1, one.addr().port()), "")])
        .await;
    let s1 = server(XMPP1, one.addr().port());
    let scrape = exporter
        .wait("server up", |s| {
            s.value(&SERVER_UP, &[("server", &s1)]) == Some(1.0)
        })
        .await;
    assert_eq!(coverage(&scrape), (Some(1.0), Some(1.0)));
    exporter.stop().await;
}

#[tokio::test]
async fn an_ip_address_server_is_verified_against_an_ip_san() {
    let lab = Lab::new(base_zone()).await;
    let leaf = lab.pki.leaf(&[DOMAIN, "127.0.0.1"], Validity::Good);
    let one = lab.tls_server(&leaf, Behaviour::Normal).await;
    let address = format!("127.0.0.1:{}", one.addr().port());
    let exporter = lab.exporter(&[lab.target("t", &address, "")]).await;
    let scrape = exporter
        .wait("the address server up", |s| {
            s.value(&SERVER_UP, &[("server", &address)]) == Some(1.0)
        })
        .await;
    let fqdn = [
        ("server", address.as_str()),
        ("role", "fqdn"),
        ("name", "127.0.0.1"),
    ];
    assert_eq!(scrape.value(&CERT_SAN_COVERED, &fqdn), Some(1.0));
    // An address is sent no SNI (RFC 6066) and needs no lookup.
    assert_eq!(one.stats().sni.first().cloned(), Some(None));
    assert_eq!(lab.dns.queries("127.0.0.1", "A"), 0);
    exporter.stop().await;
}

#[tokio::test]
async fn mutual_tls_presents_the_configured_client_certificate() {
    let lab = Lab::new(base_zone()).await;
    let client_ca = Pki::new("client CA");
    let client = client_ca.client_leaf("cms-xmpp-exporter");
    std::fs::write(lab.path("client.pem"), &client.cert_pem).unwrap();
    std::fs::write(lab.path("client.key"), &client.key_pem).unwrap();
    let demanding = component_server(
        Some(
            lab.good_leaf()
                .server_config_requiring_client_cert(&client_ca),
        ),
        Behaviour::Normal,
    )
    .await;
    let address = server(XMPP1, demanding.addr().port());
    let with_cert = format!(
        "      client_cert_file: {}\n      client_key_file: {}\n",
        lab.path("client.pem").display(),
        lab.path("client.key").display()
    );
    let exporter = lab
        .exporter(&[
            lab.target("mtls", &address, &with_cert),
            lab.target("t", &address, ""),
        ])
        .await;
    let scrape = exporter
        .wait("mtls up and the other refused", |s| {
            s.value(&PROBE_SUCCESS, &[("target", "mtls")]) == Some(1.0)
                && failing(s, "t", &address).is_some()
        })
        .await;
    // TLS 1.3: the server judges the client certificate after the client's handshake is done,
    // so the refusal arrives with the first read: the step that reads it says whose it is.
    assert_eq!(
        failing(&scrape, "t", &address),
        Some(("stream".into(), "client_cert_rejected".into()))
    );
    assert!(demanding.stats().client_cert_seen >= 1);
    exporter.stop().await;
}

// ---------- DNS failures ----------

#[tokio::test]
async fn srv_nxdomain() {
    let lab = Lab::new(base_zone()).await;
    expect_failure(&lab, lab.target("t", "", ""), "", "srv", "nxdomain").await;
}

#[tokio::test]
async fn srv_missing_record() {
    // The name exists (it has an A record) but no SRV.
    let lab = Lab::new(base_zone().a(SRV_NAME, Ipv4Addr::LOCALHOST)).await;
    let scrape = expect_failure(&lab, lab.target("t", "", ""), "", "srv", "no_records").await;
    assert_eq!(scrape.value(&SRV_RECORDS, &[("target", "t")]), Some(0.0));
}

#[tokio::test]
async fn srv_servfail() {
    let lab = Lab::new(base_zone().servfail(SRV_NAME)).await;
    expect_failure(&lab, lab.target("t", "", ""), "", "srv", "servfail").await;
}

#[tokio::test]
async fn srv_service_decidedly_unavailable() {
    let lab = Lab::new(base_zone().srv(SRV_NAME, 0, 0, 0, ".")).await;
    expect_failure(&lab, lab.target("t", "", ""), "", "srv", "srv_unavailable").await;
}

#[tokio::test]
async fn srv_timeout_within_the_deadline() {
    let lab = Lab::new(base_zone().silent(SRV_NAME)).await;
    let scrape = expect_failure(&lab, lab.target("t", "", ""), "", "srv", "dns_timeout").await;
    let took = scrape
        .value(&STEP_LAST_DURATION, &[("step", "srv")])
        .unwrap();
    assert!(
        (0.9..1.5).contains(&took),
        "the srv step took {took}s with a 1s timeout"
    );
}

#[tokio::test]
async fn srv_target_without_an_address() {
    let lab = Lab::new(Zone::new()).await;
    let port = closed_port().await;
    lab.dns
        .set_zone(Zone::new().srv(SRV_NAME, 0, 0, port, "ghost.example.test"));
    expect_failure(
        &lab,
        lab.target("t", "", ""),
        &server("ghost.example.test", port),
        "resolve",
        "nxdomain",
    )
    .await;
}

// ---------- network and TLS failures ----------

/// Probes the one server at xmpp1:`port` and waits for it to fail at `step` with `reason`.
async fn expect_static_failure(
    lab: &Lab,
    port: u16,
    tls: &str,
    step: &str,
    reason: &str,
) -> Scrape {
    let address = server(XMPP1, port);
    expect_failure(lab, lab.target("t", &address, tls), &address, step, reason).await
}

fn last_duration(scrape: &Scrape, step: &str) -> f64 {
    scrape
        .value(&STEP_LAST_DURATION, &[("step", step)])
        .unwrap()
}

#[tokio::test]
async fn closed_port_is_refused() {
    let lab = Lab::new(base_zone()).await;
    expect_static_failure(&lab, closed_port().await, "", "connect", "refused").await;
}

#[tokio::test]
async fn a_silent_server_times_out_at_the_right_step() {
    let lab = Lab::new(base_zone()).await;
    let silent = component_server(None, Behaviour::Silent).await;
    let port = silent.addr().port();
    // Direct TLS to a server that never speaks: the TLS handshake waits and times out.
    let scrape = expect_static_failure(&lab, port, "", "tls", "timeout").await;
    let took = last_duration(&scrape, "tls");
    assert!(
        (0.8..1.5).contains(&took),
        "tls took {took}s with a 1s timeout"
    );
    // Plaintext: the stream header is never answered.
    let scrape = expect_static_failure(&lab, port, "      mode: none\n", "stream", "timeout").await;
    let took = last_duration(&scrape, "stream");
    assert!(
        (0.8..1.5).contains(&took),
        "stream took {took}s with a 1s timeout"
    );
}

#[tokio::test]
async fn tls_to_a_plaintext_port_fails_the_tls_step() {
    let lab = Lab::new(base_zone()).await;
    let plain = component_server(None, Behaviour::Normal).await;
    expect_static_failure(&lab, plain.addr().port(), "", "tls", "tls_handshake").await;
}

// ---------- certificate failures: the facts are still exported ----------

async fn expect_cert_failure(leaf: Leaf, lab: &Lab, reason: &str) -> Scrape {
    let one = lab.tls_server(&leaf, Behaviour::Normal).await;
    let scrape = expect_static_failure(lab, one.addr().port(), "", "cert", reason).await;
    let not_after = scrape.value(&CERT_NOT_AFTER, &[]);
    assert!(not_after.is_some(), "not_after exported");
    let serial = scrape.label(&CERT_INFO, &[], "serial").unwrap();
    assert!(
        !serial.is_empty()
            && serial
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
        "{serial}"
    );
    let digests = one.stats().digests;
    assert!(
        digests.is_empty(),
        "no credentials after a rejected certificate"
    );
    scrape
}

#[tokio::test]
async fn expired_certificate() {
    let lab = Lab::new(base_zone()).await;
    let leaf = lab.pki.leaf(&[DOMAIN, XMPP1], Validity::Expired);
    let scrape = expect_cert_failure(leaf, &lab, "cert_expired").await;
    let not_after = scrape.value(&CERT_NOT_AFTER, &[]);
    assert!(not_after.unwrap() < now());
    let trusted = scrape.value(&CERT_TRUSTED, &[]);
    assert_eq!(trusted, Some(1.0), "trust is judged apart from expiry");
}

#[tokio::test]
async fn not_yet_valid_certificate() {
    let lab = Lab::new(base_zone()).await;
    let leaf = lab.pki.leaf(&[DOMAIN, XMPP1], Validity::NotYetValid);
    expect_cert_failure(leaf, &lab, "cert_not_yet_valid").await;
}

#[tokio::test]
async fn untrusted_certificate() {
    let lab = Lab::new(base_zone()).await;
    let leaf = Pki::new("someone else's CA").leaf(&[DOMAIN, XMPP1], Validity::Good);
    let scrape = expect_cert_failure(leaf, &lab, "cert_untrusted").await;
    assert_eq!(scrape.value(&CERT_TRUSTED, &[]), Some(0.0));
    let issuer = scrape.label(&CERT_INFO, &[], "issuer").unwrap();
    assert!(issuer.contains("someone else"), "{issuer}");
}

/// The SAN coverage the exporter reports for (domain, fqdn).
fn coverage(scrape: &Scrape) -> (Option<f64>, Option<f64>) {
    (
        scrape.value(&CERT_SAN_COVERED, &[("role", "domain")]),
        scrape.value(&CERT_SAN_COVERED, &[("role", "fqdn")]),
    )
}

#[tokio::test]
async fn certificate_without_the_server_fqdn() {
    let lab = Lab::new(base_zone()).await;
    let leaf = lab
        .pki
        .leaf(&[DOMAIN, "other.example.test"], Validity::Good);
    let scrape = expect_cert_failure(leaf, &lab, "cert_name_mismatch").await;
    assert_eq!(coverage(&scrape), (Some(1.0), Some(0.0)));
    assert_eq!(scrape.value(&CERT_TRUSTED, &[]), Some(1.0));
}

#[tokio::test]
async fn certificate_without_the_xmpp_domain() {
    // TLS itself accepts it (the FQDN matches), but a Callbridge needs the domain too.
    let lab = Lab::new(base_zone()).await;
    let leaf = lab.pki.leaf(&[XMPP1], Validity::Good);
    let scrape = expect_cert_failure(leaf, &lab, "cert_name_mismatch").await;
    assert_eq!(coverage(&scrape), (Some(0.0), Some(1.0)));
    let version = scrape.label(&TLS_INFO, &[], "version");
    assert!(version.is_some(), "the handshake completed");
}

/// One target against a server that presents `leaf`, once the server is up: the server, its
/// label, the exporter and that scrape.
async fn lone_target_up(lab: &Lab, leaf: &Leaf) -> (ComponentServer, String, Exporter, Scrape) {
    let one = lab.tls_server(leaf, Behaviour::Normal).await;
    let address = server(XMPP1, one.addr().port());
    let exporter = lab.exporter(&[lab.target("t", &address, "")]).await;
    let scrape = exporter
        .wait("server up", |s| {
            s.value(&SERVER_UP, &[("server", &address)]) == Some(1.0)
        })
        .await;
    (one, address, exporter, scrape)
}

#[tokio::test]
async fn soon_expiring_certificate_still_succeeds_and_says_when() {
    let lab = Lab::new(base_zone()).await;
    let leaf = lab.pki.leaf(&[DOMAIN, XMPP1], Validity::ExpiresInDays(3));
    let (_one, _, exporter, scrape) = lone_target_up(&lab, &leaf).await;
    let not_after = scrape.value(&CERT_NOT_AFTER, &[]);
    let days = (not_after.unwrap() - now()) / 86400.0;
    assert!((2.0..=3.1).contains(&days), "{days} days left");
    exporter.stop().await;
}

#[tokio::test]
async fn an_intermediate_that_expires_first_is_the_chains_end() {
    let lab = Lab::new(base_zone()).await;
    let intermediate = lab
        .pki
        .intermediate("Issuing CA", Validity::ExpiresInDays(10));
    let leaf = intermediate.leaf(&[DOMAIN, XMPP1], Validity::Good);
    let (_one, address, exporter, scrape) = lone_target_up(&lab, &leaf).await;
    let leaf_days = (scrape.value(&CERT_NOT_AFTER, &[]).unwrap() - now()) / 86400.0;
    assert!(leaf_days > 80.0, "{leaf_days} days for the leaf");
    // Trust is judged now, not in the middle of the leaf's validity (the intermediate ends first).
    assert_eq!(scrape.value(&CERT_TRUSTED, &[]), Some(1.0));
    let chain = scrape.find(&CERT_CHAIN_NOT_AFTER, &[("server", &address)]);
    let [chain] = chain.as_slice() else {
        panic!("one chain series per server: {chain:?}")
    };
    let days = (chain.value - now()) / 86400.0;
    assert!((9.0..=10.1).contains(&days), "{days} days for the chain");
    assert!(
        chain.labels.contains(&("position".into(), "1".into())),
        "the intermediate ends it: {:?}",
        chain.labels
    );
    let debug = http_get(exporter.addr, "/probe?target=t&debug=true").await;
    assert!(
        debug.contains("chain 1 CN=Issuing CA") && debug.contains("(expires first)"),
        "the chain is listed:\n{debug}"
    );
    let page = http_get(exporter.addr, "/").await;
    assert!(page.contains("; the chain expires in"), "the page says so");
    exporter.stop().await;

    // Expired, it fails the cert step, and the detail names it rather than the leaf.
    let expired = lab.pki.intermediate("Old Issuing CA", Validity::Expired);
    let leaf = expired.leaf(&[DOMAIN, XMPP1], Validity::Good);
    let two = lab.tls_server(&leaf, Behaviour::Normal).await;
    let address = server(XMPP1, two.addr().port());
    let exporter = lab.exporter(&[lab.target("t", &address, "")]).await;
    exporter
        .wait("cert_expired", |s| {
            failing(s, "t", &address) == Some(("cert".into(), "cert_expired".into()))
        })
        .await;
    let debug = http_get(exporter.addr, "/probe?target=t&debug=true").await;
    assert!(
        debug.contains("certificate 1 of the chain (CN=Old Issuing CA) expired"),
        "{debug}"
    );
    exporter.stop().await;
}

// ---------- XEP-0114 failures ----------

/// A component server that knows the component under another secret.
async fn wrong_secret_server(lab: &Lab) -> ComponentServer {
    ComponentServer::start(ComponentServerConfig {
        tls: Some(lab.good_leaf().server_config()),
        components: vec![(COMPONENT.to_owned(), "another-secret".to_owned())],
        behaviour: Behaviour::Normal,
        tls_delay: None,
    })
    .await
}

#[tokio::test]
async fn wrong_secret_is_not_authorized() {
    let lab = Lab::new(base_zone()).await;
    let wrong = wrong_secret_server(&lab).await;
    let port = wrong.addr().port();
    expect_static_failure(&lab, port, "", "handshake", "not_authorized").await;
}

#[tokio::test]
async fn unknown_component_is_host_unknown_at_the_stream() {
    let lab = Lab::new(base_zone()).await;
    let one = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    let address = server(XMPP1, one.addr().port());
    let target = lab.target("t", &address, "").replace(
        &format!("component: {COMPONENT}"),
        "component: nobody.example.test",
    );
    expect_failure(&lab, target, &address, "stream", "host_unknown").await;
}

#[tokio::test]
async fn a_name_already_connected_is_a_conflict() {
    let lab = Lab::new(base_zone()).await;
    let prosody_like = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    prosody_like.hold_connected(COMPONENT);
    let port = prosody_like.addr().port();
    expect_static_failure(&lab, port, "", "handshake", "conflict").await;
    // Openfire refuses at the header; the error is read when the handshake answer is.
    let openfire_like = lab
        .tls_server(&lab.good_leaf(), Behaviour::ConflictAtHeader)
        .await;
    let port = openfire_like.addr().port();
    expect_static_failure(&lab, port, "", "handshake", "conflict").await;
}

#[tokio::test]
async fn a_server_that_hangs_up_is_closed() {
    let lab = Lab::new(base_zone()).await;
    let one = lab
        .tls_server(&lab.good_leaf(), Behaviour::CloseAfterClientHeader)
        .await;
    expect_static_failure(&lab, one.addr().port(), "", "stream", "closed").await;
}

#[tokio::test]
async fn garbage_is_a_protocol_failure() {
    let lab = Lab::new(base_zone()).await;
    let one = lab.tls_server(&lab.good_leaf(), Behaviour::Garbage).await;
    expect_static_failure(&lab, one.addr().port(), "", "stream", "protocol").await;
}

#[tokio::test]
async fn a_handshake_before_ours_is_a_protocol_failure() {
    let lab = Lab::new(base_zone()).await;
    let one = lab
        .tls_server(&lab.good_leaf(), Behaviour::HandshakeFirst)
        .await;
    expect_static_failure(&lab, one.addr().port(), "", "handshake", "protocol").await;
}

#[tokio::test]
async fn an_endless_header_is_cut_off_with_bounded_memory() {
    let lab = Lab::new(base_zone()).await;
    let one = lab
        .tls_server(&lab.good_leaf(), Behaviour::HugeHeader)
        .await;
    let address = server(XMPP1, one.addr().port());
    // The real binary alone, so that no other test's memory counts: its peak stays small
    // because every read is capped at 64 KiB (an unbounded reader would buffer the endless
    // header at loopback speed, hundreds of megabytes per probe).
    std::fs::write(
        lab.path("config.yaml"),
        lab.config(&[lab.timed_target("t", &address, "100ms", "100ms", "")]),
    )
    .unwrap();
    let binary = Binary::spawn(crate::BINARY, &lab.path("config.yaml"), &[]).await;
    let scrape = binary.exporter.cycles("t", 20.0).await;
    assert_eq!(
        failing(&scrape, "t", &address),
        Some(("stream".into(), "oversized".into()))
    );
    let peak = peak_resident_kib(binary.child.id().expect("running"));
    assert!(
        peak < 48 * 1024,
        "the exporter's peak resident memory is {peak} KiB"
    );
}

/// The peak resident memory of a process (VmHWM); a test that cannot read it fails.
fn peak_resident_kib(pid: u32) -> u64 {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {path}"))
}

// ---------- startup and the binary ----------

#[tokio::test]
async fn every_target_is_present_before_its_first_probe_finishes() {
    let lab = Lab::new(base_zone().silent(SRV_NAME)).await;
    let silent = component_server(None, Behaviour::Silent).await;
    let exporter = lab
        .exporter(&[
            lab.timed_target("srv", "", "10s", "5s", ""),
            lab.timed_target(
                "static",
                &server(XMPP1, silent.addr().port()),
                "10s",
                "5s",
                "",
            ),
        ])
        .await;
    let scrape = exporter.scrape().await;
    // Before the first report: every target is there, unsuccessful, with its settings; no
    // server or step series until a probe has found them.
    for target in ["srv", "static"] {
        let ids = [("target", target)];
        assert_eq!(scrape.value(&PROBE_SUCCESS, &ids), Some(0.0), "{target}");
        assert_eq!(scrape.value(&PROBES_TOTAL, &ids), Some(0.0), "{target}");
        assert!(scrape.find(&LAST_PROBE, &ids).is_empty(), "{target}");
        assert!(
            scrape.find(&STEP_LAST_DURATION, &ids).is_empty(),
            "{target}"
        );
        assert!(scrape.find(&SERVER_UP, &ids).is_empty(), "{target}");
    }
    assert_eq!(scrape.value(&SRV_RECORDS, &[("target", "srv")]), Some(0.0));
    assert!(scrape
        .find(&SRV_RECORDS, &[("target", "static")])
        .is_empty());
    assert_eq!(scrape.value(&CONFIG_RELOAD_SUCCESSFUL, &[]), Some(1.0));
    assert!(scrape.find(&BUILD_INFO, &[]).len() == 1);
    let interval = scrape.value(&PROBE_INTERVAL, &[("target", "srv")]);
    assert_eq!(interval, Some(10.0));
    let info = [
        ("target", "srv"),
        ("domain", DOMAIN),
        ("component", COMPONENT),
    ];
    let srv_info = scrape.label(&TARGET_INFO, &info, "server_address");
    assert_eq!(srv_info.as_deref(), Some(""));
    let static_address = scrape.label(&TARGET_INFO, &[("target", "static")], "server_address");
    assert_eq!(static_address, Some(server(XMPP1, silent.addr().port())));
    exporter.stop().await;
}

#[tokio::test]
async fn the_secret_appears_in_no_log_line_and_no_metric() {
    let lab = Lab::new(base_zone()).await;
    let good = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    let wrong = wrong_secret_server(&lab).await;
    let config = format!(
        "dns:\n  nameservers: [\"{}\"]\ntargets:\n{}{}",
        lab.dns.addr(),
        lab.target("good", &server(XMPP1, good.addr().port()), ""),
        lab.target("wrong", &server(XMPP1, wrong.addr().port()), "")
    );
    let binary = crate::spawn_traced(&lab, &config).await;
    let exporter = &binary.exporter;
    let scrape = exporter
        .wait("both targets probed", |s| {
            s.value(&PROBE_SUCCESS, &[("target", "good")]) == Some(1.0)
                && s.value(
                    &FAILURES_TOTAL,
                    &[("target", "wrong"), ("reason", "not_authorized")],
                )
                .is_some()
        })
        .await;
    let log = binary.killed_log().await;
    assert!(
        log.contains("server is down"),
        "the failure is logged:\n{log}"
    );
    assert!(!log.contains(SECRET), "the secret leaked into the log");
    assert!(
        !scrape.text.contains(SECRET),
        "the secret leaked into /metrics"
    );
    let digest_of_secret = wrong.stats().digests;
    assert!(
        digest_of_secret.iter().all(|d| !log.contains(d.as_str())),
        "the digest leaked into the log"
    );
}

#[tokio::test]
async fn a_bad_config_exits_2_naming_every_problem_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        format!(
            "interval: often\ntargets:\n  - name: a\n    domain: example.test\n    component: ''\n    secret: {SECRET}\n    timeout: 1h\n"
        ),
    )
    .unwrap();
    let output = tokio::process::Command::new(crate::BINARY)
        .args(["--config", path.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for field in ["interval:", "targets[0].component:", "targets[0].timeout:"] {
        assert!(stderr.contains(field), "{field} missing from:\n{stderr}");
    }
    assert!(!stderr.contains(SECRET), "{stderr}");
}

/// The most connections a silent server saw at once while three targets, each with its own
/// component name, were probed twice each under `settings`.
async fn most_probes_at_once(settings: &str) -> usize {
    let lab = Lab::new(base_zone()).await;
    let silent = component_server(None, Behaviour::Silent).await;
    let address = server(XMPP1, silent.addr().port());
    let targets: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            lab.timed_target(name, &address, "1s", "400ms", "      mode: none\n")
                .replace(
                    &format!("component: {COMPONENT}"),
                    &format!("component: {name}.{COMPONENT}"),
                )
        })
        .collect();
    let exporter = Exporter::start(&format!("{settings}{}", lab.config(&targets))).await;
    exporter
        .wait("two cycles of every target", |s| {
            ["a", "b", "c"]
                .iter()
                .all(|t| s.value(&PROBES_TOTAL, &[("target", t)]) >= Some(2.0))
        })
        .await;
    exporter.stop().await;
    silent.stats().most_open
}

#[tokio::test]
async fn probes_beyond_the_cap_wait_their_turn() {
    // Three first probes within 60 ms, each holding its connection for 400 ms.
    assert_eq!(
        most_probes_at_once("").await,
        3,
        "without a cap they overlap"
    );
    assert_eq!(most_probes_at_once("max_concurrent_probes: 1\n").await, 1);
}

#[tokio::test]
async fn targets_sharing_a_component_name_take_turns() {
    // Two targets registering the same name with one server: probed at once, the server
    // would refuse one of them with `conflict` every cycle.
    let lab = Lab::new(base_zone()).await;
    let one = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    let address = server(XMPP1, one.addr().port());
    let exporter = lab
        .exporter(&[
            lab.timed_target("a", &address, "200ms", "200ms", ""),
            lab.timed_target("b", &address, "200ms", "200ms", ""),
        ])
        .await;
    exporter.cycles("a", 10.0).await;
    let scrape = exporter.cycles("b", 10.0).await;
    let failures = scrape.find(&FAILURES_TOTAL, &[]);
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(one.stats().conflicts, 0);
    exporter.stop().await;
}

#[tokio::test]
async fn two_replicas_named_from_their_environment_never_conflict() {
    // Two exporters with one config, `component: "probe-${HOSTNAME}.…"`, and each its own
    // HOSTNAME, as two pods of a StatefulSet: both register at once, every cycle.
    let lab = Lab::new(base_zone()).await;
    let names = [
        "probe-replica-0.example.test",
        "probe-replica-1.example.test",
    ];
    let one = ComponentServer::start(ComponentServerConfig {
        tls: Some(lab.good_leaf().server_config()),
        components: names.map(|n| (n.to_owned(), SECRET.to_owned())).into(),
        behaviour: Behaviour::Normal,
        tls_delay: None,
    })
    .await;
    let address = server(XMPP1, one.addr().port());
    let target = lab
        .timed_target("t", &address, "200ms", "200ms", "")
        .replace(
            &format!("component: {COMPONENT}"),
            "component: \"probe-${HOSTNAME}.example.test\"",
        );
    std::fs::write(lab.path("config.yaml"), lab.config(&[target])).unwrap();
    let mut replicas = Vec::new();
    for hostname in ["replica-0", "replica-1"] {
        let env = format!("HOSTNAME={hostname}");
        let binary =
            Binary::spawn_via(&["env", &env], crate::BINARY, &lab.path("config.yaml"), &[]).await;
        replicas.push(binary);
    }
    for replica in &replicas {
        let scrape = replica.exporter.cycles("t", 10.0).await;
        assert_eq!(scrape.value(&PROBE_SUCCESS, &[("target", "t")]), Some(1.0));
        let failures = scrape.find(&FAILURES_TOTAL, &[]);
        assert!(failures.is_empty(), "{failures:?}");
    }
    let stats = one.stats();
    assert_eq!(stats.conflicts, 0);
    assert!(
        stats.handshakes_ok >= 20,
        "both names registered: {}",
        stats.handshakes_ok
    );
}
