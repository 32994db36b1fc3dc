//! What an operator touches: reloads, health and readiness, the status page, the debug probe,
//! and the binary's commands (`probe`, `check-config`, `healthcheck`), signals and logs.

use std::time::{Duration, SystemTime};

use cms_xmpp_exporter::probe::unix_seconds;

use crate::support::component::{Behaviour, ComponentServer, ComponentServerConfig};
use crate::support::exporter::*;
use crate::support::pki::Pki;
use tokio::process::Command;

use crate::BINARY;

/// A server that knows the component under `secret`.
async fn server_with_secret(lab: &Lab, secret: &str) -> ComponentServer {
    ComponentServer::start(ComponentServerConfig {
        tls: Some(lab.good_leaf().server_config()),
        components: vec![(COMPONENT.to_owned(), secret.to_owned())],
        behaviour: Behaviour::Normal,
        tls_delay: None,
    })
    .await
}

fn success(scrape: &Scrape, target: &str) -> Option<f64> {
    scrape.value(&PROBE_SUCCESS, &[("target", target)])
}

// ---------- reload ----------

#[tokio::test]
async fn reload_applies_a_good_config_and_keeps_the_old_one_on_a_bad_one() {
    let lab = Lab::new(base_zone()).await;
    let one = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    let address = server(XMPP1, one.addr().port());
    let config = lab.path("config.yaml");
    std::fs::write(&config, lab.config(&[lab.target("a", &address, "")])).unwrap();
    let exporter = Exporter::start_file(&config).await;
    exporter
        .wait("a up", |s| success(s, "a") == Some(1.0))
        .await;

    std::fs::write(
        &config,
        lab.config(&[lab.target("b", &address, ""), lab.target("c", &address, "")]),
    )
    .unwrap();
    let (status, body) = http_request(exporter.addr, "POST", "/-/reload").await;
    assert_eq!(status, 200, "{body}");
    let scrape = exporter
        .wait("b and c probed", |s| {
            success(s, "b") == Some(1.0) && success(s, "c") == Some(1.0)
        })
        .await;
    assert!(
        scrape.find(&PROBES_TOTAL, &[("target", "a")]).is_empty(),
        "a removed"
    );
    assert_eq!(scrape.value(&CONFIG_RELOAD_SUCCESSFUL, &[]), Some(1.0));

    std::fs::write(&config, "targets:\n  - name: b\n    colour: blue\n").unwrap();
    let (status, body) = http_request(exporter.addr, "POST", "/-/reload").await;
    assert_eq!(status, 500);
    assert!(body.contains("unknown field `colour`"), "{body}");
    let before = exporter.scrape().await;
    assert_eq!(before.value(&CONFIG_RELOAD_SUCCESSFUL, &[]), Some(0.0));
    let probes = before.value(&PROBES_TOTAL, &[("target", "b")]).unwrap();
    exporter.cycles("b", probes + 2.0).await;
    assert_eq!(http_request(exporter.addr, "GET", "/-/reload").await.0, 405);
    exporter.stop().await;
}

#[tokio::test]
async fn reloads_keep_the_record_of_targets_whose_settings_did_not_change() {
    let lab = Lab::new(base_zone()).await;
    let one = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    let address = server(XMPP1, one.addr().port());
    let config = lab.path("config.yaml");
    let write = |b_interval: &str| {
        let targets = [
            lab.timed_target("a", &address, "200ms", "200ms", ""),
            lab.timed_target("b", &address, b_interval, "200ms", ""),
        ];
        std::fs::write(&config, lab.config(&targets)).unwrap();
    };
    write("200ms");
    let binary = Binary::spawn(BINARY, &config, &["--web.enable-lifecycle"]).await;
    let exporter = &binary.exporter;
    let probes = |s: &Scrape, t: &str| s.value(&PROBES_TOTAL, &[("target", t)]).unwrap_or(0.0);
    let mut last = exporter
        .wait("a and b probed twice", |s| {
            probes(s, "a") >= 2.0 && probes(s, "b") >= 2.0
        })
        .await;
    let first = (probes(&last, "a"), probes(&last, "b"));
    for reload in 0..10 {
        write("200ms");
        let (status, body) = http_request(exporter.addr, "POST", "/-/reload").await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = http_request(exporter.addr, "GET", "/-/ready").await;
        assert_eq!(status, 200, "ready right after reload {reload}: {body}");
        let now = exporter.scrape().await;
        for t in ["a", "b"] {
            assert!(
                probes(&now, t) >= probes(&last, t),
                "{t}'s counter went back at reload {reload}: {} -> {}",
                probes(&last, t),
                probes(&now, t)
            );
        }
        last = now;
    }
    let kept = exporter
        .wait("both probed again after the reloads", |s| {
            probes(s, "a") > first.0 + 2.0 && probes(s, "b") > first.1 + 2.0
        })
        .await;
    assert_eq!(success(&kept, "a"), Some(1.0));

    // b's interval changes: b starts afresh, a goes on.
    write("300ms");
    let before = exporter.scrape().await;
    let (status, body) = http_request(exporter.addr, "POST", "/-/reload").await;
    assert_eq!(status, 200, "{body}");
    let after = exporter.scrape().await;
    assert!(probes(&after, "b") < probes(&before, "b"), "b restarted");
    assert!(probes(&after, "a") >= probes(&before, "a"), "a kept");
    let log = binary.killed_log().await;
    let said = |target: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("target=\"{target}\"")))
            .filter(|l| l.contains("target settings changed"))
            .count()
    };
    assert_eq!((said("a"), said("b")), (0, 1), "{log}");
    assert_eq!(log.matches("configuration reloaded").count(), 11, "{log}");
}

#[tokio::test]
async fn a_config_not_from_a_file_cannot_be_reloaded() {
    let lab = Lab::new(base_zone()).await;
    let exporter = lab
        .exporter(&[lab.target("t", &server(XMPP1, 1), "")])
        .await;
    let (status, body) = http_request(exporter.addr, "POST", "/-/reload").await;
    assert_eq!(status, 500);
    assert!(body.contains("not loaded from a file"), "{body}");
    let scrape = exporter.scrape().await;
    assert_eq!(scrape.value(&CONFIG_RELOAD_SUCCESSFUL, &[]), Some(0.0));
    exporter.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_is_picked_up_by_a_reload() {
    let lab = Lab::new(base_zone()).await;
    let rotated = server_with_secret(&lab, "the-new-secret").await;
    let address = server(XMPP1, rotated.addr().port());
    let config = lab.path("config.yaml");
    std::fs::write(&config, lab.config(&[lab.target("t", &address, "")])).unwrap();
    let exporter = Exporter::start_file(&config).await;
    exporter
        .wait("the old secret refused", |s| {
            failing(s, "t", &address) == Some(("handshake".into(), "not_authorized".into()))
        })
        .await;
    std::fs::write(lab.path("secret"), "the-new-secret\n").unwrap();
    assert_eq!(
        http_request(exporter.addr, "POST", "/-/reload").await.0,
        200
    );
    exporter
        .wait("the new secret accepted", |s| success(s, "t") == Some(1.0))
        .await;
    exporter.stop().await;
}

// ---------- health, readiness, the page and the debug probe ----------

#[tokio::test]
async fn healthy_at_once_ready_after_the_first_probe() {
    let lab = Lab::new(base_zone()).await;
    let silent = component_server(None, Behaviour::Silent).await;
    let address = server(XMPP1, silent.addr().port());
    let exporter = lab
        .exporter(&[lab.timed_target("t", &address, "10s", "2s", "")])
        .await;
    assert_eq!(
        http_request(exporter.addr, "GET", "/-/healthy").await.0,
        200
    );
    let (status, body) = http_request(exporter.addr, "GET", "/-/ready").await;
    assert_eq!(status, 503, "{body}");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while http_request(exporter.addr, "GET", "/-/ready").await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    exporter.stop().await;
}

#[tokio::test]
async fn the_status_page_draws_every_step_and_explains_failures() {
    let lab = Lab::new(base_zone()).await;
    let good = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    let wrong = server_with_secret(&lab, "another-secret").await;
    let exporter = lab
        .exporter(&[
            lab.target("good", &server(XMPP1, good.addr().port()), ""),
            lab.target("<wrong>", &server(XMPP1, wrong.addr().port()), ""),
        ])
        .await;
    exporter
        .wait("both probed", |s| {
            success(s, "good") == Some(1.0)
                && failing(s, "<wrong>", &server(XMPP1, wrong.addr().port())).is_some()
        })
        .await;
    let page = http_get(exporter.addr, "/").await;
    for step in ["resolve", "connect", "tls", "cert", "stream", "handshake"] {
        assert!(
            page.contains(&format!("data-step=\"{step}\" data-state=\"ok\"")),
            "{step} ok missing"
        );
    }
    assert!(page.contains("data-step=\"handshake\" data-state=\"fail\""));
    assert!(
        page.contains("xmpp callbridge add-secret"),
        "the hint is shown"
    );
    assert!(
        page.contains("&lt;wrong&gt;") && !page.contains("<wrong>"),
        "names are escaped"
    );
    assert!(page.contains("http-equiv=\"refresh\"") && page.contains("name=\"viewport\""));
    assert!(!page.contains(SECRET));
    exporter.stop().await;
}

#[tokio::test]
async fn the_debug_probe_runs_now_and_never_overlaps_the_schedule() {
    let lab = Lab::new(base_zone()).await;
    let one = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    let address = server(XMPP1, one.addr().port());
    let exporter = lab
        .exporter(&[lab.timed_target("t", &address, "200ms", "200ms", "")])
        .await;
    for _ in 0..5 {
        let report = http_get(exporter.addr, "/probe?target=t&debug=true").await;
        assert!(report.contains("RESULT: OK"), "{report}");
        assert!(
            report.contains("handshake") && report.contains("accepted"),
            "{report}"
        );
        assert!(
            report.contains("cms_xmpp_probe_success{target=\"t\"} 1"),
            "{report}"
        );
        assert!(!report.contains(SECRET));
    }
    let metrics_only = http_get(exporter.addr, "/probe?target=t").await;
    assert!(metrics_only.starts_with("# HELP"), "{metrics_only}");
    let (status, body) = http_request(exporter.addr, "GET", "/probe?target=nope").await;
    assert_eq!(status, 404);
    assert_eq!(
        body, "unknown target\n",
        "the 404 names no configured target"
    );
    assert_eq!(
        one.stats().conflicts,
        0,
        "a debug probe overlapped a scheduled one"
    );
    exporter.stop().await;
}

/// A run that `/probe?target=` starts is recorded like a scheduled one: `/metrics`, the page
/// and the counters show it at once, not at the next scheduled cycle.
#[tokio::test]
async fn a_run_for_a_request_reaches_metrics_and_the_page() {
    let lab = Lab::new(base_zone()).await;
    let one = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    let address = server(XMPP1, one.addr().port());
    // Scheduled once an hour: only the first cycle is the schedule's.
    let exporter = lab
        .exporter(&[lab.timed_target("t", &address, "1h", "1s", "")])
        .await;
    let first = exporter
        .wait("t up", |s| success(s, "t") == Some(1.0))
        .await;
    let finished = first.value(&LAST_PROBE, &[("target", "t")]).unwrap();
    drop(one);
    // Requests within 5 s of a run get that run: wait until a request starts a new one.
    let give_up = tokio::time::Instant::now() + PATIENCE;
    while unix_seconds(SystemTime::now()) < finished + 5.2 {
        assert!(tokio::time::Instant::now() < give_up);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = http_get(exporter.addr, "/probe?target=t&debug=true").await;
    assert!(report.contains("refused"), "{report}");
    let scrape = exporter.scrape().await;
    assert_eq!(success(&scrape, "t"), Some(0.0), "{}", scrape.relevant());
    assert_eq!(scrape.value(&PROBES_TOTAL, &[("target", "t")]), Some(2.0));
    assert_eq!(
        failing(&scrape, "t", &address),
        Some(("connect".into(), "refused".into()))
    );
    let page = http_get(exporter.addr, "/").await;
    assert!(page.contains("refused"), "the page shows the request's run");
    exporter.stop().await;
}

// ---------- the binary ----------

async fn output(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BINARY).args(args).output().await.unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// config.example.yaml as shipped passes `check-config` in a plain shell, where nothing is
/// exported (no `HOSTNAME` either) but the variable it names: only the files it points at are
/// the test's own.
#[tokio::test]
async fn the_example_config_checks_clean_in_a_plain_shell() {
    let lab = Lab::new(base_zone()).await;
    let mut example = include_str!("../../config.example.yaml").to_owned();
    let callbridge = lab.pki.client_leaf("callbridge");
    std::fs::write(lab.path("callbridge.pem"), &callbridge.cert_pem).unwrap();
    std::fs::write(lab.path("callbridge.key"), &callbridge.key_pem).unwrap();
    for (shipped, ours) in [
        ("/run/secrets/cms-probe/secret", "secret"),
        ("/run/secrets/prosody-probe/secret", "secret"),
        ("/run/secrets/cms-monitor/password", "password"),
        ("/run/secrets/callbridge/cert.pem", "callbridge.pem"),
        ("/run/secrets/callbridge/key.pem", "callbridge.key"),
        ("/etc/cms/ca.pem", "ca.pem"),
        ("/etc/cms/c2w-ca.pem", "ca.pem"),
    ] {
        example = example.replace(shipped, lab.path(ours).to_str().unwrap());
    }
    assert!(!example.contains("/run/secrets/") && !example.contains("/etc/cms/"));
    let path = lab.path("example.yaml");
    std::fs::write(&path, example).unwrap();
    let out = Command::new(BINARY)
        .env_clear()
        .env("CMS_PARIS_PROBE_SECRET", "paris-secret")
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("valid"),
        "{stderr}"
    );
}

/// `probe` arguments describing one server of the lab on the command line.
fn probe_args(lab: &Lab, port: u16) -> Vec<String> {
    [
        "probe",
        "--domain",
        DOMAIN,
        "--server",
        &server(XMPP1, port),
        "--component",
        COMPONENT,
        "--secret-file",
        lab.path("secret").to_str().unwrap(),
        "--ca-file",
        lab.path("ca.pem").to_str().unwrap(),
        "--dns-server",
        &lab.dns.addr().to_string(),
        "--timeout",
        "2s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test]
async fn the_probe_command_prints_every_step_and_exits_by_the_result() {
    let lab = Lab::new(base_zone()).await;
    let good = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    let args = probe_args(&lab, good.addr().port());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, _) = output(&args).await;
    assert_eq!(code, Some(0), "{stdout}");
    for expected in [
        "resolve",
        "127.0.0.1",
        "TLSv1.",
        "covered",
        "stream id",
        "accepted",
        "RESULT: OK",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing:\n{stdout}");
    }
    assert!(!stdout.contains("\x1b["), "no colour when piped");

    let wrong = server_with_secret(&lab, "another-secret").await;
    let args = probe_args(&lab, wrong.addr().port());
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, _) = output(&args).await;
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("not_authorized") && stdout.contains("hint:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("xmpp callbridge add-secret probe` with"),
        "{stdout}"
    );
    assert!(!stdout.contains(SECRET));

    args.extend(["--output", "json"]);
    let (code, stdout, _) = output(&args).await;
    assert_eq!(code, Some(1));
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON output");
    let last_step = json[0]["servers"][0]["steps"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last_step["step"], "handshake");
    assert_eq!(last_step["reason"], "not_authorized");
    assert_eq!(json[0]["success"], false);
    assert_eq!(json[0]["schema"], 2);
    let failure = &json[0]["failures"][0];
    assert_eq!(
        (&failure["step"], &failure["reason"]),
        (&"handshake".into(), &"not_authorized".into())
    );
    assert!(
        failure["hint"]
            .as_str()
            .unwrap()
            .contains("xmpp callbridge add-secret"),
        "{failure}"
    );
    assert_eq!(
        json[0]["servers"][0]["tls"]["version"]
            .as_str()
            .map(|v| v.starts_with("TLSv1.")),
        Some(true)
    );
    let certificate = &json[0]["servers"][0]["certificate"];
    assert!(certificate["sha256"].is_string());
    assert_eq!(certificate["chain"][0]["verified"], true, "{certificate}");
    assert!(
        certificate["ocsp"].is_null(),
        "nothing stapled: {certificate}"
    );
    assert_eq!(json[0]["findings"], serde_json::json!([]));

    // A pinned self-signed leaf: registration works, and the finding comes with its hint.
    let leaf = Pki::self_signed_leaf(&[DOMAIN, XMPP1]);
    std::fs::write(lab.path("ca.pem"), &leaf.cert_pem).unwrap();
    let pinned = ComponentServer::start(ComponentServerConfig {
        tls: Some(leaf.server_config()),
        components: vec![(COMPONENT.to_owned(), SECRET.to_owned())],
        behaviour: Behaviour::Normal,
        tls_delay: None,
    })
    .await;
    let mut args = probe_args(&lab, pinned.addr().port());
    args.extend(["--output".into(), "json".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, _) = output(&args).await;
    assert_eq!(code, Some(0), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON output");
    let finding = &json[0]["findings"][0];
    assert_eq!(finding["kind"], "self_signed", "{stdout}");
    assert_eq!(
        finding["seen"], json[0]["started"],
        "judged on this run's chain"
    );
    assert!(
        finding["hint"].as_str().unwrap().contains("issued by a CA"),
        "{finding}"
    );
    assert_eq!(
        json[0]["servers"][0]["certificate"]["findings"][0]["kind"],
        "self_signed"
    );
}

#[tokio::test]
async fn check_config_version_and_healthcheck() {
    let lab = Lab::new(base_zone()).await;
    let config = lab.path("config.yaml");
    std::fs::write(
        &config,
        lab.config(&[lab.target("t", &server(XMPP1, 1), "")]),
    )
    .unwrap();
    let (code, stdout, stderr) =
        output(&["check-config", "--config", config.to_str().unwrap()]).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    std::fs::write(&config, "targets: []\n").unwrap();
    let (code, _, stderr) = output(&["check-config", "--config", config.to_str().unwrap()]).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr
            .contains("targets: at least one target (or a module, for /probe?module=) is required"),
        "{stderr}"
    );

    // A CA file that is PEM but holds no usable certificate: check-config refuses it as
    // serving would, before any port is bound.
    let ca = lab.path("not-a-ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let unusable = lab
        .config(&[lab.target("t", &server(XMPP1, 1), "")])
        .replace(
            &lab.path("ca.pem").display().to_string(),
            &ca.display().to_string(),
        );
    std::fs::write(&config, unusable).unwrap();
    let (code, _, stderr) = output(&["check-config", "--config", config.to_str().unwrap()]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("targets[0] (t): TLS setup failed")
            && stderr.contains("tls.ca_file holds no certificate that parses"),
        "{stderr}"
    );
    let (code, _, stderr) = output(&[
        "--config",
        config.to_str().unwrap(),
        "--listen-address",
        "127.0.0.1:0",
    ])
    .await;
    assert_eq!(code, Some(2), "serve refuses it the same way: {stderr}");

    let (code, stdout, _) = output(&["--version"]).await;
    let expected = concat!("cms-xmpp-exporter ", env!("CARGO_PKG_VERSION"));
    assert_eq!((code, stdout.trim()), (Some(0), expected));

    let exporter = lab
        .exporter(&[lab.target("t", &server(XMPP1, 1), "")])
        .await;
    let url = format!("http://{}/-/healthy", exporter.addr);
    assert_eq!(output(&["healthcheck", "--url", &url]).await.0, Some(0));
    let closed = format!("http://127.0.0.1:{}/-/healthy", closed_port().await);
    assert_eq!(output(&["healthcheck", "--url", &closed]).await.0, Some(1));
    exporter.stop().await;
}

#[tokio::test]
async fn at_info_the_log_tells_what_changed_not_every_probe() {
    let lab = Lab::new(base_zone()).await;
    let good = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    let wrong = server_with_secret(&lab, "another-secret").await;
    let targets = [
        lab.timed_target(
            "good",
            &server(XMPP1, good.addr().port()),
            "200ms",
            "200ms",
            "",
        ),
        lab.timed_target(
            "wrong",
            &server(XMPP1, wrong.addr().port()),
            "200ms",
            "200ms",
            "",
        ),
    ];
    std::fs::write(lab.path("config.yaml"), lab.config(&targets)).unwrap();
    let binary = Binary::spawn(BINARY, &lab.path("config.yaml"), &[]).await;
    binary
        .exporter
        .wait("six cycles of both", |s| {
            ["good", "wrong"]
                .iter()
                .all(|t| s.value(&PROBES_TOTAL, &[("target", t)]) >= Some(6.0))
        })
        .await;
    let log = binary.killed_log().await;
    let lines = |target: &str| -> Vec<&str> {
        let field = format!("target=\"{target}\"");
        log.lines().filter(|l| l.contains(&field)).collect()
    };
    let good = lines("good");
    assert!(
        good.len() == 1 && good[0].contains("INFO") && good[0].contains("server is up"),
        "{log}"
    );
    let wrong = lines("wrong");
    assert!(
        wrong.len() == 1 && wrong[0].contains("WARN") && wrong[0].contains("server is down"),
        "{log}"
    );
    assert!(
        wrong[0].contains("reason=not_authorized") && wrong[0].contains("handshake="),
        "{log}"
    );
}

#[tokio::test]
async fn sighup_reloads_and_sigterm_stops_promptly_with_json_logs() {
    let lab = Lab::new(base_zone()).await;
    let one = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    let address = server(XMPP1, one.addr().port());
    let config = lab.path("config.yaml");
    std::fs::write(&config, lab.config(&[lab.target("a", &address, "")])).unwrap();
    let mut binary = Binary::spawn(BINARY, &config, &["--log-format", "json"]).await;
    let exporter = &binary.exporter;
    exporter
        .wait("a up", |s| success(s, "a") == Some(1.0))
        .await;

    std::fs::write(&config, lab.config(&[lab.target("b", &address, "")])).unwrap();
    binary.signal("HUP");
    exporter
        .wait("b after SIGHUP", |s| success(s, "b") == Some(1.0))
        .await;

    binary.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), binary.child.wait())
        .await
        .expect("stops within 10s of SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let log = binary.log().await;
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let probe_line = lines
        .iter()
        .find(|l| l["fields"]["target"] == "b" && l["fields"]["server"] == address.as_str())
        .expect("a log line per probe with target and server");
    assert!(probe_line["fields"]["durations"]
        .as_str()
        .unwrap()
        .contains("handshake="));
    assert!(lines
        .iter()
        .any(|l| l["fields"]["message"] == "SIGTERM received, shutting down"));
    assert!(!log.contains(SECRET));
}
