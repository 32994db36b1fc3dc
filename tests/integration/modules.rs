//! Targets that Prometheus names: `/probe?module=M&target=DOMAIN`, the blackbox way, against
//! in-process peers (real DNS, real TLS, real XEP-0114).

use crate::support::component::{Behaviour, ComponentServer, ComponentServerConfig};
use crate::support::exporter::*;

/// A configuration without targets and one module, `cms`: the lab's secret and CA, the
/// component named after each request's domain, `timeout` at most.
fn modules_only(lab: &Lab, timeout: &str) -> String {
    format!(
        "listen_address: 127.0.0.1:0\ndns:\n  nameservers: [\"{dns}\"]\nmodules:\n  cms:\n    component: \"probe.{{domain}}\"\n    secret_file: {secret}\n    timeout: {timeout}\n    tls:\n      ca_file: {ca}\n",
        dns = lab.dns.addr(),
        secret = lab.path("secret").display(),
        ca = lab.path("ca.pem").display(),
    )
}

async fn get(exporter: &Exporter, path: &str, headers: &str) -> (u16, String) {
    let response = http_exchange(exporter.addr, "GET", path, headers).await;
    (
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    )
}

#[tokio::test]
async fn a_module_probes_a_domain_that_only_the_request_names() {
    let lab = Lab::new(base_zone()).await;
    let (one, two) = lab.two_srv_servers().await;
    let exporter = Exporter::start(&modules_only(&lab, "5s")).await;

    let (status, text) = get(&exporter, "/probe?module=cms&target=example.test", "").await;
    assert_eq!(status, 200, "{text}");
    let run = Scrape::parse(&text);
    assert_eq!(
        run.value(&PROBE_SUCCESS, &[("target", "example.test")]),
        Some(1.0),
        "{text}"
    );
    for (port, host) in [(one.addr().port(), XMPP1), (two.addr().port(), XMPP2)] {
        let address = server(host, port);
        assert_eq!(
            run.value(&SERVER_UP, &[("server", &address)]),
            Some(1.0),
            "{text}"
        );
    }
    assert_eq!(one.stats().handshakes_ok + two.stats().handshakes_ok, 2);
    let probes = |run: &Scrape| run.value(&PROBES_TOTAL, &[("target", "example.test")]);
    assert_eq!(probes(&run), Some(1.0), "{text}");
    // Prometheus sets the pace: no interval of its own that a stale alert would hold it to.
    assert!(run.find(&PROBE_INTERVAL, &[]).is_empty(), "{text}");
    assert!(run.value(&LAST_PROBE, &[]).is_some(), "{text}");

    // One fixed server: host:port, with the XMPP domain beside it.
    let fixed = format!(
        "/probe?module=cms&target={}&domain=example.test",
        server(XMPP1, one.addr().port())
    );
    let (status, text) = get(&exporter, &fixed, "").await;
    assert_eq!(status, 200, "{text}");
    let run = Scrape::parse(&text);
    assert_eq!(run.find(&SERVER_UP, &[]).len(), 1, "{text}");
    assert_eq!(
        run.find(&SERVER_UP, &[]).first().map(|s| s.value),
        Some(1.0)
    );

    // The (module, target) keeps its record: once the last run is more than 5 s old, the
    // next request runs again and its counters go on from the first run's.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (status, text) = get(&exporter, "/probe?module=cms&target=example.test", "").await;
        assert_eq!(status, 200, "{text}");
        match probes(&Scrape::parse(&text)) {
            Some(2.0) => break,
            Some(1.0) => assert!(std::time::Instant::now() < deadline, "no second run"),
            other => panic!("{other:?} runs: {text}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(one.stats().handshakes_ok + two.stats().handshakes_ok, 5);

    // The exporter's own /metrics keeps no trace of them: the run's metrics are the answer.
    let metrics = exporter.scrape().await;
    assert!(
        metrics.find(&PROBE_SUCCESS, &[]).is_empty(),
        "{}",
        metrics.relevant()
    );
    exporter.stop().await;
}

#[tokio::test]
async fn requests_that_name_nothing_probeable_are_refused_without_echo() {
    let lab = Lab::new(base_zone()).await;
    let exporter = Exporter::start(&modules_only(&lab, "5s")).await;
    let cases = [
        (
            "/probe?module=nosuch%3Cscript%3E&target=example.test",
            "unknown module",
        ),
        (
            "/probe?module=cms&target=not%20a%20name",
            "target must be an XMPP domain",
        ),
        (
            "/probe?module=cms&target=xmpp1.example.test:5223",
            "needs domain=XMPP_DOMAIN",
        ),
        (
            "/probe?module=cms&target=xmpp1.example.test:0&domain=example.test",
            "target must be",
        ),
        (
            "/probe?module=cms&target=10.0.0.1:5223&domain=no%20domain",
            "domain must be an XMPP domain",
        ),
    ];
    for (path, expected) in cases {
        let (status, text) = get(&exporter, path, "").await;
        assert_eq!(status, 400, "{path}: {text}");
        assert!(text.contains(expected), "{path}: {text}");
        assert!(
            !text.contains("script") && !text.contains("not a name"),
            "{text}"
        );
    }
    exporter.stop().await;
}

#[tokio::test]
async fn the_scrape_timeout_header_bounds_the_run() {
    let lab = Lab::new(base_zone()).await;
    let silent = lab.tls_server(&lab.good_leaf(), Behaviour::Silent).await;
    let exporter = Exporter::start(&modules_only(&lab, "10s")).await;
    let path = format!(
        "/probe?module=cms&target={}&domain=example.test",
        server(XMPP1, silent.addr().port())
    );
    let started = std::time::Instant::now();
    let (status, text) = get(
        &exporter,
        &path,
        "X-Prometheus-Scrape-Timeout-Seconds: 1.5\r\n",
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{text}");
    let run = Scrape::parse(&text);
    let duration = run.value(&PROBE_DURATION, &[]).expect("the run's duration");
    assert!(
        (0.9..1.3).contains(&duration),
        "1.5 s less the 0.5 s margin, not the module's 10 s: {duration}"
    );
    assert!(
        took.as_secs_f64() < 1.5,
        "answered within the scrape timeout: {took:?}"
    );
    let address = server(XMPP1, silent.addr().port());
    assert_eq!(
        failing(&run, &address, &address),
        Some(("stream".into(), "timeout".into()))
    );
    exporter.stop().await;
}

#[tokio::test]
async fn concurrent_requests_for_one_target_share_one_run() {
    let lab = Lab::new(base_zone()).await;
    let (one, two) = lab.two_srv_servers().await;
    let exporter = Exporter::start(&modules_only(&lab, "5s")).await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let addr = exporter.addr;
        requests.spawn(async move {
            let path = "/probe?module=cms&target=example.test";
            let response = http_exchange(addr, "GET", path, "").await;
            (
                response.status,
                String::from_utf8_lossy(&response.body).into_owned(),
            )
        });
    }
    for (status, text) in requests.join_all().await {
        assert_eq!(status, 200, "{text}");
        assert!(
            text.contains("cms_xmpp_probe_success{target=\"example.test\"} 1"),
            "{text}"
        );
    }
    assert_eq!(
        one.stats().handshakes_ok + two.stats().handshakes_ok,
        2,
        "one run for eight requests: one handshake per server"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn a_modules_watch_pings_the_components_of_the_requested_domain() {
    use crate::support::c2s::{Answer, C2sConfig, C2sServer, Encryption, Fault};
    let lab = Lab::new(base_zone()).await;
    let (_one, _two) = lab.two_srv_servers().await;
    let client_port = C2sServer::start(C2sConfig {
        encryption: Encryption::Starttls(lab.good_leaf().server_config()),
        domain: DOMAIN.to_owned(),
        user: ("monitor".to_owned(), PASSWORD.to_owned()),
        components: vec![
            ("cb1.example.test".to_owned(), Answer::Result),
            ("cb2.example.test".to_owned(), Answer::NotConnected),
        ],
        fault: Fault::None,
    })
    .await;
    let watch = lab
        .watch(
            &server(XMPP1, client_port.addr().port()),
            "starttls",
            "password",
            &["\"cb1.{domain}\"", "\"cb2.{domain}\""],
        )
        .replace(&format!("jid: {JID}"), "jid: \"monitor@{domain}\"");
    let exporter = Exporter::start(&(modules_only(&lab, "5s") + &watch)).await;
    let (status, text) = get(&exporter, "/probe?module=cms&target=example.test", "").await;
    assert_eq!(status, 200, "{text}");
    let run = Scrape::parse(&text);
    assert_eq!(run.value(&WATCH_SUCCESS, &[]), Some(1.0), "{text}");
    let registered =
        |component: &str| run.value(&COMPONENT_REGISTERED, &[("component", component)]);
    assert_eq!(registered("cb1.example.test"), Some(1.0), "{text}");
    assert_eq!(registered("cb2.example.test"), Some(0.0), "{text}");
    assert!(!text.contains(PASSWORD));
    exporter.stop().await;
}

/// A fleet's replicas name their component by host, as config.example.yaml and
/// docs/deploy.md show: `probe-${HOSTNAME}.{domain}` passes `check-config` and probes with
/// the host's name (lower-cased) where each request's domain goes.
#[tokio::test]
async fn a_module_names_its_component_by_the_replica_s_host() {
    let lab = Lab::new(base_zone()).await;
    let component = "probe-cms-replica-7.example.test";
    let peer = ComponentServer::start(ComponentServerConfig {
        tls: Some(lab.good_leaf().server_config()),
        components: vec![(component.to_owned(), SECRET.to_owned())],
        behaviour: Behaviour::Normal,
        tls_delay: None,
    })
    .await;
    let config = modules_only(&lab, "5s").replace("probe.{domain}", "probe-${HOSTNAME}.{domain}");
    let path = lab.path("config.yaml");
    std::fs::write(&path, &config).unwrap();
    let host = ["env", "HOSTNAME=CMS-Replica-7"];
    let checked = tokio::process::Command::new(host[0])
        .args([
            host[1],
            crate::BINARY,
            "--config",
            path.to_str().unwrap(),
            "check-config",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );

    let binary = Binary::spawn_via(&host, crate::BINARY, &path, &[]).await;
    let request = format!(
        "/probe?module=cms&target={}&domain=example.test",
        server(XMPP1, peer.addr().port())
    );
    let (status, text) = get(&binary.exporter, &request, "").await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        Scrape::parse(&text).value(&PROBE_SUCCESS, &[]),
        Some(1.0),
        "the peer accepts {component} only: {text}"
    );
    assert_eq!(peer.stats().handshakes_ok, 1);
}
