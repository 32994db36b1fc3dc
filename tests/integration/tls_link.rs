//! `protocol: tls` targets: CMS 3's Callbridge-to-Web-Bridge (C2W) link, mutual TLS without
//! XMPP, against `openssl s_server -Verify` as the Web Bridge 3.

use std::collections::BTreeMap;

use crate::probe::now;
use crate::support::exporter::*;
use crate::support::openssl::TlsServer;
use crate::support::pki::{Pki, Validity};

/// The Web Bridge's certificate names only its host, as a C2W listener's does.
const WEB_BRIDGE: &str = XMPP1;

/// A `protocol: tls` target `c2w` at `c2w://WEB_BRIDGE:port`; `extra` adds lines to the target
/// (indented by four spaces) and `tls` to its `tls:` block (by six).
fn c2w_target(lab: &Lab, port: u16, extra: &str, tls: &str) -> String {
    format!(
        "  - name: c2w\n    protocol: tls\n    server_address: \"c2w://{WEB_BRIDGE}:{port}\"\n    interval: 3s\n    timeout: 2s\n{extra}    tls:\n      ca_file: {ca}\n{tls}",
        ca = lab.path("ca.pem").display(),
    )
}

/// The client certificate and key in the lab as `tls:` lines, issued by `ca` and written as
/// `<name>.pem` and `<name>.key`.
fn client_identity(lab: &Lab, ca: &Pki, name: &str) -> String {
    let leaf = ca.client_leaf("callbridge1");
    let (cert, key) = (
        lab.path(&format!("{name}.pem")),
        lab.path(&format!("{name}.key")),
    );
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    format!(
        "      client_cert_file: {}\n      client_key_file: {}\n",
        cert.display(),
        key.display()
    )
}

/// The exporter on `target` once its one server is up or fails, with that scrape.
async fn settled(lab: &Lab, target: String, port: u16) -> (Exporter, String, Scrape) {
    let exporter = lab.exporter(&[target]).await;
    let address = server(WEB_BRIDGE, port);
    let scrape = exporter
        .wait("a settled probe", |s| {
            s.value(&SERVER_UP, &[("server", &address)]) == Some(1.0)
                || failing(s, "c2w", &address).is_some()
        })
        .await;
    (exporter, address, scrape)
}

#[tokio::test]
async fn a_tls_link_tells_an_accepted_client_certificate_from_a_refused_one() {
    let lab = Lab::new(base_zone()).await;
    std::fs::write(lab.path("ca.pem"), lab.pki.ca_pem()).unwrap();
    let web_bridge = lab.pki.leaf(&[WEB_BRIDGE], Validity::Good);
    // The Web Bridge's `c2w trust` bundle: the CA of the Callbridges' certificates.
    let callbridges = Pki::new("Callbridge CA");
    std::fs::write(lab.path("c2w-trust.pem"), callbridges.ca_pem()).unwrap();
    let trusted = client_identity(&lab, &callbridges, "callbridge");
    let stranger = client_identity(&lab, &Pki::new("some other CA"), "stranger");
    let trust = lab.path("c2w-trust.pem");
    let trust = trust.to_str().unwrap();

    // TLS 1.3 with session tickets (the verdict's evidence) and without (then the verdict is
    // the silence of a second), and TLS 1.2, where the verdict comes in the handshake.
    let versions: [(&[&str], &str); 3] = [
        (&["-tls1_3"], "session_ticket"),
        (&["-tls1_3", "-num_tickets", "0"], "silence"),
        (&["-tls1_2"], "handshake"),
    ];
    for (version, evidence) in versions {
        let options: Vec<&str> = ["-Verify", "1", "-verify_return_error", "-CAfile", trust]
            .into_iter()
            .chain(version.iter().copied())
            .collect();
        let server_dir = lab.path("s_server");
        std::fs::create_dir_all(&server_dir).unwrap();
        let web = TlsServer::start(&server_dir, &web_bridge, &options).await;
        let port = web.addr.port();

        let (exporter, address, scrape) =
            settled(&lab, c2w_target(&lab, port, "", &trusted), port).await;
        assert_eq!(
            scrape.value(&SERVER_UP, &[("server", &address)]),
            Some(1.0),
            "{version:?}: the trusted Callbridge certificate is accepted: {:?}",
            failing(&scrape, "c2w", &address)
        );
        assert_eq!(
            scrape.value(&PROBE_SUCCESS, &[("target", "c2w")]),
            Some(1.0)
        );
        assert_eq!(
            scrape.label(&TARGET_INFO, &[("target", "c2w")], "protocol"),
            Some("tls".into())
        );
        let days = (scrape
            .value(&CLIENT_CERT_NOT_AFTER, &[("target", "c2w")])
            .expect("the client certificate's expiry")
            - now())
            / 86400.0;
        assert!((89.0..=90.1).contains(&days), "{days}");
        // resolve, connect, tls, client_cert: no stream, no handshake (and `cert` has no
        // duration).
        let durations: BTreeMap<String, f64> = scrape
            .find(&STEP_LAST_DURATION, &[("target", "c2w")])
            .iter()
            .filter_map(|s| {
                let step = s.labels.iter().find(|(k, _)| k == "step")?;
                Some((step.1.clone(), s.value))
            })
            .collect();
        let steps: Vec<&str> = durations.keys().map(String::as_str).collect();
        assert_eq!(steps, ["client_cert", "connect", "resolve", "tls"]);
        // The handshake alone: the wait for the verdict is a step of its own (a second of
        // it, where no ticket comes, was counted in `tls`).
        assert!(durations["tls"] < 0.5, "{version:?}: {durations:?}");
        if evidence == "silence" {
            assert!(durations["client_cert"] >= 0.9, "{durations:?}");
        }
        let debug = http_get(exporter.addr, "/probe?target=c2w&debug=true").await;
        let verdict = debug
            .lines()
            .find(|line| line.trim_start().starts_with("client_cert "))
            .unwrap_or_else(|| panic!("no client_cert step line: {debug}"));
        assert!(
            verdict.contains("ok") && verdict.ends_with(evidence),
            "{version:?}: {verdict}"
        );
        let page = http_get(exporter.addr, "/").await;
        assert!(
            page.contains(&format!("client certificate verdict: {evidence}")),
            "{version:?}: the status page"
        );
        // Only the server's name is required of its certificate: no domain was given.
        let covered = scrape.find(&CERT_SAN_COVERED, &[("target", "c2w")]);
        assert_eq!(covered.len(), 1, "{covered:?}");
        assert!(covered[0].labels.contains(&("role".into(), "fqdn".into())));
        assert!(scrape.find(&FINDING, &[("target", "c2w")]).is_empty());
        exporter.stop().await;

        // Under TLS 1.3 the refusal comes after the handshake: `client_cert` sees it.
        let refusing_step = if evidence == "handshake" {
            "tls"
        } else {
            "client_cert"
        };
        for (identity, what) in [(stranger.as_str(), "another CA's"), ("", "no")] {
            let (exporter, address, scrape) =
                settled(&lab, c2w_target(&lab, port, "", identity), port).await;
            assert_eq!(
                failing(&scrape, "c2w", &address),
                Some((refusing_step.into(), "client_cert_rejected".into())),
                "{version:?}: {what} client certificate is refused"
            );
            let debug = http_get(exporter.addr, "/probe?target=c2w&debug=true").await;
            assert!(debug.contains("webbridge3 c2w trust"), "{debug}");
            exporter.stop().await;
        }
        drop(web);
    }
}

/// A Web Bridge that asks for no client certificate lets anyone in: the link is up, and the
/// finding says mutual TLS is not in force.
#[tokio::test]
async fn a_tls_link_whose_server_asks_no_client_certificate_is_a_finding() {
    let lab = Lab::new(base_zone()).await;
    std::fs::write(lab.path("ca.pem"), lab.pki.ca_pem()).unwrap();
    let web_bridge = lab.pki.leaf(&[WEB_BRIDGE], Validity::Good);
    let identity = client_identity(&lab, &Pki::new("Callbridge CA"), "callbridge");
    let dir = lab.path("s_server");
    std::fs::create_dir_all(&dir).unwrap();
    let web = TlsServer::start(&dir, &web_bridge, &[]).await;
    let port = web.addr.port();
    let (exporter, address, scrape) =
        settled(&lab, c2w_target(&lab, port, "", &identity), port).await;
    assert_eq!(scrape.value(&SERVER_UP, &[("server", &address)]), Some(1.0));
    let findings: Vec<String> = scrape
        .find(&FINDING, &[("target", "c2w"), ("server", &address)])
        .iter()
        .filter_map(|s| s.labels.iter().find(|(k, _)| k == "finding"))
        .map(|(_, finding)| finding.clone())
        .collect();
    assert_eq!(findings, ["client_cert_not_requested"]);
    let debug = http_get(exporter.addr, "/probe?target=c2w&debug=true").await;
    assert!(debug.contains("not_requested"), "{debug}");
    assert!(debug.contains("mutual TLS is not in force"), "{debug}");
    exporter.stop().await;
}

/// A refused client certificate is `client_cert_rejected` on an XMPP target too, at the step
/// where it is seen: the handshake under TLS 1.2, the answer to the stream header under TLS
/// 1.3 (the server judges it after the client's handshake).
#[tokio::test]
async fn an_xmpp_target_refused_its_client_certificate_says_so_under_both_versions() {
    let lab = Lab::new(base_zone()).await;
    std::fs::write(lab.path("ca.pem"), lab.pki.ca_pem()).unwrap();
    std::fs::write(lab.path("secret"), SECRET).unwrap();
    let xmpp = lab.pki.leaf(&[DOMAIN, XMPP1], Validity::Good);
    let trusted = Pki::new("Callbridge CA");
    std::fs::write(lab.path("client-trust.pem"), trusted.ca_pem()).unwrap();
    let trust = lab.path("client-trust.pem");
    let stranger = client_identity(&lab, &Pki::new("some other CA"), "stranger");
    for (version, step) in [("-tls1_2", "tls"), ("-tls1_3", "stream")] {
        let dir = lab.path("s_server");
        std::fs::create_dir_all(&dir).unwrap();
        let options = [
            "-Verify",
            "1",
            "-verify_return_error",
            "-CAfile",
            trust.to_str().unwrap(),
            version,
        ];
        let server_side = TlsServer::start(&dir, &xmpp, &options).await;
        let port = server_side.addr.port();
        let address = server(XMPP1, port);
        let target = lab.timed_target("x", &address, "3s", "2s", &stranger);
        let exporter = lab.exporter(&[target]).await;
        let scrape = exporter
            .wait("a failing probe", |s| failing(s, "x", &address).is_some())
            .await;
        assert_eq!(
            failing(&scrape, "x", &address),
            Some((step.into(), "client_cert_rejected".into())),
            "{version}"
        );
        exporter.stop().await;
        drop(server_side);
    }
}

#[tokio::test]
async fn a_tls_link_requires_the_domain_it_names_and_a_module_probes_the_url() {
    let lab = Lab::new(base_zone()).await;
    std::fs::write(lab.path("ca.pem"), lab.pki.ca_pem()).unwrap();
    let web_bridge = lab.pki.leaf(&[WEB_BRIDGE], Validity::Good);
    let dir = lab.path("s_server");
    std::fs::create_dir_all(&dir).unwrap();
    let web = TlsServer::start(&dir, &web_bridge, &[]).await;
    let port = web.addr.port();

    // A domain, when given, must be in the certificate too.
    let named = c2w_target(&lab, port, &format!("    domain: {DOMAIN}\n"), "");
    let (exporter, address, scrape) = settled(&lab, named, port).await;
    assert_eq!(
        failing(&scrape, "c2w", &address),
        Some(("cert".into(), "cert_name_mismatch".into()))
    );
    assert_eq!(
        scrape.value(
            &CERT_SAN_COVERED,
            &[("role", "domain"), ("name", DOMAIN), ("server", &address)]
        ),
        Some(0.0)
    );
    assert_eq!(
        scrape.value(&CLIENT_CERT_NOT_AFTER, &[("target", "c2w")]),
        None,
        "no client certificate, no expiry"
    );
    exporter.stop().await;

    // A module: Prometheus names the c2w URL as the target.
    let config = format!(
        "listen_address: 127.0.0.1:0\ndns:\n  nameservers: [\"{}\"]\nmodules:\n  c2w:\n    protocol: tls\n    timeout: 2s\n    tls:\n      ca_file: {}\n",
        lab.dns.addr(),
        lab.path("ca.pem").display()
    );
    let exporter = Exporter::start(&config).await;
    let url = format!("c2w://{WEB_BRIDGE}:{port}");
    let answer = http_get(exporter.addr, &format!("/probe?module=c2w&target={url}")).await;
    let scrape = Scrape::parse(&answer);
    assert_eq!(
        scrape.value(&PROBE_SUCCESS, &[("target", &url)]),
        Some(1.0),
        "{answer}"
    );
    let (status, refused) = http_request(
        exporter.addr,
        "GET",
        "/probe?module=c2w&target=example.test",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        refused.contains("a tls module's target is host:port"),
        "{refused}"
    );
    exporter.stop().await;
}

/// What a server that judges the client certificate after the handshake does then.
#[derive(Clone, Copy, Debug)]
enum AfterHandshake {
    Close,
    Reset,
    Silence,
}

/// A TLS server that asks for a client certificate (issued by `clients`), completes the
/// handshake without issuing a session ticket, then does `then`.
async fn judging_server(
    lab: &Lab,
    clients: &Pki,
    then: AfterHandshake,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let leaf = lab.pki.leaf(&[WEB_BRIDGE], Validity::Good);
    let mut config = (*leaf.server_config_requiring_client_cert(clients)).clone();
    config.send_tls13_tickets = 0;
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                match then {
                    AfterHandshake::Close => {
                        let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
                    }
                    // A zero linger turns the close into a TCP reset.
                    AfterHandshake::Reset => {
                        let (tcp, _) = tls.into_inner();
                        tcp.set_zero_linger().unwrap();
                        drop(tcp);
                    }
                    AfterHandshake::Silence => {
                        let mut sink = [0u8; 64];
                        while matches!(tokio::io::AsyncReadExt::read(&mut tls, &mut sink).await, Ok(n) if n > 0)
                        {
                        }
                    }
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_close_or_reset_right_after_the_handshake_refuses_and_silence_within_the_deadline_accepts(
) {
    let lab = Lab::new(base_zone()).await;
    std::fs::write(lab.path("ca.pem"), lab.pki.ca_pem()).unwrap();
    let callbridges = Pki::new("Callbridge CA");
    let identity = client_identity(&lab, &callbridges, "callbridge");

    // The handshake completes (rustls' server accepts the certificate), then the server
    // closes or resets: what a server that judges the certificate after the handshake may do.
    for then in [AfterHandshake::Close, AfterHandshake::Reset] {
        let (addr, refusing) = judging_server(&lab, &callbridges, then).await;
        let (exporter, address, scrape) = settled(
            &lab,
            c2w_target(&lab, addr.port(), "", &identity),
            addr.port(),
        )
        .await;
        assert_eq!(
            failing(&scrape, "c2w", &address),
            Some(("client_cert".into(), "client_cert_rejected".into())),
            "{then:?}"
        );
        exporter.stop().await;
        refusing.abort();
    }

    // A silent server, and a deadline shorter than the second of waiting: the wait ends
    // before the deadline, and the link is up.
    let (addr, silent) = judging_server(&lab, &callbridges, AfterHandshake::Silence).await;
    let short = c2w_target(&lab, addr.port(), "", &identity).replace(
        "interval: 3s\n    timeout: 2s",
        "interval: 1s\n    timeout: 400ms",
    );
    assert!(short.contains("timeout: 400ms"));
    let (exporter, address, scrape) = settled(&lab, short, addr.port()).await;
    assert_eq!(
        scrape.value(&SERVER_UP, &[("server", &address)]),
        Some(1.0),
        "{:?}",
        failing(&scrape, "c2w", &address)
    );
    exporter.stop().await;
    silent.abort();
}
