//! The whole certificate story: what a chain that a server sends gets wrong, with or without
//! failing the `cert` step, against real TLS (rustls servers, and `openssl s_server` for what
//! rustls will not serve: RSA 1024, TLS 1.1).

use crate::probe::now;
use crate::support::component::Behaviour;
use crate::support::exporter::*;
use crate::support::openssl::{self, TlsServer};
use crate::support::pki::{Leaf, Pki, Validity};

/// The findings the exporter reports for `server`, sorted.
fn findings(scrape: &Scrape, server: &str) -> Vec<String> {
    let mut found: Vec<String> = scrape
        .find(&FINDING, &[("target", "t"), ("server", server)])
        .iter()
        .filter_map(|s| {
            s.labels
                .iter()
                .find(|(name, _)| name == "finding")
                .map(|(_, value)| value.clone())
        })
        .collect();
    found.sort();
    found
}

/// Target `t` against one server presenting `leaf`, with `ca_pem` as its `tls.ca_file`: the
/// exporter once the server is up (with its scrape), or once it fails at `cert`.
async fn probe_once_settled(lab: &Lab, port: u16, ca_pem: &str) -> (Exporter, String, Scrape) {
    probe_settled_with(lab, port, ca_pem, "").await
}

/// Like [`probe_once_settled`], with `tls` added to the target's `tls:` block.
async fn probe_settled_with(
    lab: &Lab,
    port: u16,
    ca_pem: &str,
    tls: &str,
) -> (Exporter, String, Scrape) {
    std::fs::write(lab.path("ca.pem"), ca_pem).unwrap();
    let address = server(XMPP1, port);
    let exporter = lab.exporter(&[lab.target("t", &address, tls)]).await;
    let scrape = exporter
        .wait("a settled probe", |s| {
            s.value(&SERVER_UP, &[("server", &address)]) == Some(1.0)
                || failing(s, "t", &address).is_some()
        })
        .await;
    (exporter, address, scrape)
}

async fn debug_text(exporter: &Exporter) -> String {
    http_get(exporter.addr, "/probe?target=t&debug=true").await
}

#[tokio::test]
async fn a_server_that_omits_its_intermediate() {
    let lab = Lab::new(base_zone()).await;
    let issuing = lab.pki.intermediate("Issuing CA", Validity::Good);
    let full = issuing.leaf(&[DOMAIN, XMPP1], Validity::Good);
    let leaf_only = full.sending(&[0]);
    let root_only = lab.pki.ca_pem().to_owned();
    let root_and_intermediate = format!("{root_only}{}", issuing.ca_pem());

    // Trusting the root alone, as a Callbridge usually does: untrusted, and the detail says
    // where the chain stops.
    let one = lab.tls_server(&leaf_only, Behaviour::Normal).await;
    let (exporter, address, scrape) = probe_once_settled(&lab, one.addr().port(), &root_only).await;
    assert_eq!(
        failing(&scrape, "t", &address),
        Some(("cert".into(), "cert_untrusted".into()))
    );
    let debug = debug_text(&exporter).await;
    assert!(
        debug.contains(
            "ends at CN=example.test, issued by CN=Issuing CA, which the probe does not trust"
        ),
        "{debug}"
    );
    exporter.stop().await;

    // With the intermediate in tls.ca_file it verifies, and the finding says it should not.
    let (exporter, address, scrape) =
        probe_once_settled(&lab, one.addr().port(), &root_and_intermediate).await;
    assert_eq!(scrape.value(&SERVER_UP, &[("server", &address)]), Some(1.0));
    assert_eq!(findings(&scrape, &address), ["chain_incomplete"]);
    let debug = debug_text(&exporter).await;
    assert!(
        debug.contains("finding chain_incomplete on")
            && debug.contains(
                "does not send the certificate that issued CN=example.test (CN=Issuing CA)"
            ),
        "{debug}"
    );
    let page = http_get(exporter.addr, "/").await;
    assert!(page.contains("data-finding=\"chain_incomplete\""), "{page}");
    exporter.stop().await;

    // The same trust, and a server that sends the whole chain: nothing to say.
    let two = lab.tls_server(&full, Behaviour::Normal).await;
    let (exporter, address, scrape) =
        probe_once_settled(&lab, two.addr().port(), &root_and_intermediate).await;
    assert_eq!(scrape.value(&SERVER_UP, &[("server", &address)]), Some(1.0));
    assert_eq!(findings(&scrape, &address), Vec::<String>::new());
    exporter.stop().await;
}

#[tokio::test]
async fn a_chain_sent_out_of_order() {
    let lab = Lab::new(base_zone()).await;
    let policy = lab.pki.intermediate("Policy CA", Validity::Good);
    let issuing = policy.intermediate("Issuing CA", Validity::Good);
    // leaf, Issuing CA, Policy CA: the issuing order.
    let leaf = issuing.leaf(&[DOMAIN, XMPP1], Validity::Good);
    let root = lab.pki.ca_pem().to_owned();

    let shuffled = lab
        .tls_server(&leaf.sending(&[0, 2, 1]), Behaviour::Normal)
        .await;
    let (exporter, address, scrape) = probe_once_settled(&lab, shuffled.addr().port(), &root).await;
    assert_eq!(scrape.value(&SERVER_UP, &[("server", &address)]), Some(1.0));
    assert_eq!(findings(&scrape, &address), ["chain_order"]);
    let debug = debug_text(&exporter).await;
    assert!(
        debug.contains("certificate 2 (CN=Issuing CA) issued certificate 0"),
        "{debug}"
    );
    exporter.stop().await;

    let ordered = lab.tls_server(&leaf, Behaviour::Normal).await;
    let (exporter, address, scrape) = probe_once_settled(&lab, ordered.addr().port(), &root).await;
    assert_eq!(scrape.value(&SERVER_UP, &[("server", &address)]), Some(1.0));
    assert_eq!(findings(&scrape, &address), Vec::<String>::new());
    exporter.stop().await;
}

#[tokio::test]
async fn a_self_signed_leaf_is_trusted_only_where_pinned() {
    let lab = Lab::new(base_zone()).await;
    let leaf = Pki::self_signed_leaf(&[DOMAIN, XMPP1]);
    let one = lab.tls_server(&leaf, Behaviour::Normal).await;

    let (exporter, address, scrape) =
        probe_once_settled(&lab, one.addr().port(), &leaf.cert_pem).await;
    assert_eq!(scrape.value(&SERVER_UP, &[("server", &address)]), Some(1.0));
    assert_eq!(findings(&scrape, &address), ["self_signed"]);
    exporter.stop().await;

    let root = lab.pki.ca_pem().to_owned();
    let (exporter, address, scrape) = probe_once_settled(&lab, one.addr().port(), &root).await;
    assert_eq!(
        failing(&scrape, "t", &address),
        Some(("cert".into(), "cert_untrusted".into()))
    );
    assert_eq!(findings(&scrape, &address), ["self_signed"]);
    let debug = debug_text(&exporter).await;
    assert!(
        debug.contains("the certificate is self-signed and not in tls.ca_file"),
        "{debug}"
    );
    exporter.stop().await;
}

/// Target `t` fails at `cert` with `cert_weak`, and the detail names the weakness.
async fn expect_weak(lab: &Lab, port: u16, weakness: &str) {
    let root = lab.pki.ca_pem().to_owned();
    let (exporter, address, scrape) = probe_once_settled(lab, port, &root).await;
    assert_eq!(
        failing(&scrape, "t", &address),
        Some(("cert".into(), "cert_weak".into()))
    );
    assert!(
        scrape.value(&CERT_NOT_AFTER, &[]).is_some(),
        "facts exported"
    );
    let debug = debug_text(&exporter).await;
    assert!(
        debug.contains(&format!(
            "certificate 0 of the chain (CN=example.test) has {weakness}"
        )),
        "{debug}"
    );
    exporter.stop().await;
}

#[tokio::test]
async fn a_sha1_signed_leaf_is_weak() {
    let lab = Lab::new(base_zone()).await;
    let dir = lab.path("sha1");
    std::fs::create_dir(&dir).unwrap();
    let leaf = openssl::leaf(&dir, &lab.pki, &[DOMAIN, XMPP1], "ec", "sha1");
    let one = lab.tls_server(&leaf, Behaviour::Normal).await;
    expect_weak(&lab, one.addr().port(), "a SHA-1 signature").await;
}

#[tokio::test]
async fn an_rsa_1024_leaf_is_weak() {
    let lab = Lab::new(base_zone()).await;
    let dir = lab.path("rsa1024");
    std::fs::create_dir(&dir).unwrap();
    // rustls cannot sign with such a key: openssl serves it.
    let leaf = openssl::leaf(&dir, &lab.pki, &[DOMAIN, XMPP1], "rsa:1024", "sha256");
    for version in ["-tls1_2", "-tls1_3"] {
        let server = TlsServer::start(&dir, &leaf, &[version]).await;
        expect_weak(
            &lab,
            server.addr.port(),
            "an RSA key of 1024 bits (2048 or more needed)",
        )
        .await;
    }
}

#[tokio::test]
async fn a_server_that_speaks_only_tls_1_1_fails_with_tls_version() {
    let lab = Lab::new(base_zone()).await;
    let dir = lab.path("tls11");
    std::fs::create_dir(&dir).unwrap();
    let server = TlsServer::start(&dir, &lab.good_leaf(), &["-tls1_1"]).await;
    let root = lab.pki.ca_pem().to_owned();
    let (exporter, address, scrape) = probe_once_settled(&lab, server.addr.port(), &root).await;
    assert_eq!(
        failing(&scrape, "t", &address),
        Some(("tls".into(), "tls_version".into()))
    );
    exporter.stop().await;
}

#[tokio::test]
async fn servers_presenting_different_leaves_say_so() {
    let lab = Lab::new(base_zone()).await;
    let renewed: Leaf = lab.good_leaf();
    let old = lab
        .pki
        .leaf(&[DOMAIN, XMPP1, XMPP2], Validity::ExpiresInDays(20));
    let one = lab.tls_server(&renewed, Behaviour::Normal).await;
    let two = lab.tls_server(&old, Behaviour::Normal).await;
    lab.publish_srv(&one, &two);
    let exporter = lab.exporter(&[lab.target("t", "", "")]).await;
    let first = server(XMPP1, one.addr().port());
    let second = server(XMPP2, two.addr().port());
    let scrape = exporter
        .wait("both servers up", |s| {
            s.value(&SERVER_UP, &[("server", &first)]) == Some(1.0)
                && s.value(&SERVER_UP, &[("server", &second)]) == Some(1.0)
        })
        .await;
    assert_eq!(findings(&scrape, &first), Vec::<String>::new());
    assert_eq!(findings(&scrape, &second), ["leaf_differs"]);
    let debug = debug_text(&exporter).await;
    assert!(
        debug.contains(&format!("finding leaf_differs on {second}"))
            && debug.contains(&format!("is out of step with the one {first} presents")),
        "{debug}"
    );
    exporter.stop().await;

    // Per-node certificates renewed together (another leaf each, the same validity): in step.
    let three = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    let four = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    lab.publish_srv(&three, &four);
    let exporter = lab.exporter(&[lab.target("t", "", "")]).await;
    let (third, fourth) = (
        server(XMPP1, three.addr().port()),
        server(XMPP2, four.addr().port()),
    );
    let scrape = exporter
        .wait("both servers up", |s| {
            s.value(&SERVER_UP, &[("server", &third)]) == Some(1.0)
                && s.value(&SERVER_UP, &[("server", &fourth)]) == Some(1.0)
        })
        .await;
    let serials = scrape.find(&CERT_INFO, &[]);
    assert_eq!(serials.len(), 2, "two leaves: {serials:?}");
    assert!(
        scrape.find(&FINDING, &[]).is_empty(),
        "{}",
        scrape.relevant()
    );
    exporter.stop().await;
}

#[tokio::test]
async fn a_certificate_outside_the_verified_path_does_not_end_the_chain() {
    let lab = Lab::new(base_zone()).await;
    let issuing = lab
        .pki
        .intermediate("Issuing CA", Validity::ExpiresInDays(40));
    let stray = Pki::new("Stray CA").intermediate("Stray Issuing CA", Validity::ExpiresInDays(2));
    let leaf = issuing.leaf(&[DOMAIN, XMPP1], Validity::Good);
    let sent = Leaf {
        cert_pem: format!("{}\n{}", leaf.cert_pem.trim(), stray.ca_pem()),
        key_pem: leaf.key_pem.clone(),
    };
    let one = lab.tls_server(&sent, Behaviour::Normal).await;
    let root = lab.pki.ca_pem().to_owned();
    let (exporter, address, scrape) = probe_once_settled(&lab, one.addr().port(), &root).await;
    assert_eq!(scrape.value(&SERVER_UP, &[("server", &address)]), Some(1.0));
    let chain = scrape.find(&CERT_CHAIN_NOT_AFTER, &[("server", &address)]);
    let [chain] = chain.as_slice() else {
        panic!("one chain series: {chain:?}")
    };
    assert!(
        chain.labels.contains(&("position".into(), "1".into())),
        "the issuing CA (40 days), not the stray certificate at 2 (2 days): {:?}",
        chain.labels
    );
    let days = (chain.value - now()) / 86400.0;
    assert!((39.0..=40.1).contains(&days), "{days}");
    exporter.stop().await;
}

#[tokio::test]
async fn a_server_that_still_accepts_tls_1_1_or_1_0_is_a_finding_when_asked() {
    let lab = Lab::new(base_zone()).await;
    let dir = lab.path("legacy");
    std::fs::create_dir(&dir).unwrap();
    let root = lab.pki.ca_pem().to_owned();
    let check = "      check_legacy_versions: true\n";
    // openssl s_server takes one connection at a time and no XMPP: a leaf the probe rejects
    // ends the Callbridge's connection at once, and the check, made after it, has the server.
    let untrusted = Pki::new("another CA").leaf(&[DOMAIN, XMPP1], Validity::Good);
    let cases = [
        (&[][..], "TLSv1.1", ("cert", "cert_untrusted")),
        (&["-tls1"][..], "TLSv1.0", ("tls", "tls_version")),
    ];
    for (options, version, (step, reason)) in cases {
        let server = TlsServer::start(&dir, &untrusted, options).await;
        let (exporter, address, _) =
            probe_settled_with(&lab, server.addr.port(), &root, check).await;
        let scrape = exporter
            .wait("the legacy finding", |s| {
                findings(s, &address) == ["legacy_tls"]
            })
            .await;
        assert_eq!(
            failing(&scrape, "t", &address),
            Some((step.into(), reason.into()))
        );
        let debug = debug_text(&exporter).await;
        assert!(
            debug.contains(&format!("a TLS 1.1 hello: ACCEPTED ({version})"))
                && debug.contains(&format!("answered a TLS 1.1 hello with {version}")),
            "{debug}"
        );
        exporter.stop().await;

        // Not asked, not checked.
        let (exporter, address, _) = probe_once_settled(&lab, server.addr.port(), &root).await;
        let scrape = exporter.cycles("t", 2.0).await;
        assert_eq!(findings(&scrape, &address), Vec::<String>::new());
        exporter.stop().await;
    }

    // rustls speaks TLS 1.2 and 1.3 only: refused, nothing to report, the probe still up.
    let modern = lab.tls_server(&lab.good_leaf(), Behaviour::Normal).await;
    let (exporter, address, scrape) =
        probe_settled_with(&lab, modern.addr().port(), &root, check).await;
    assert_eq!(scrape.value(&SERVER_UP, &[("server", &address)]), Some(1.0));
    assert_eq!(findings(&scrape, &address), Vec::<String>::new());
    let debug = debug_text(&exporter).await;
    assert!(debug.contains("a TLS 1.1 hello: refused"), "{debug}");
    exporter.stop().await;
}

#[tokio::test]
async fn a_stapled_ocsp_response_is_read_and_checked() {
    use crate::support::openssl::{ocsp_responder, ocsp_response, OcspAnswer};
    let lab = Lab::new(base_zone()).await;
    let dir = lab.path("ocsp");
    std::fs::create_dir(&dir).unwrap();
    let leaf = lab.good_leaf();
    let (ca, ca_key) = lab.pki.write_ca_and_key(&dir, "issuer");
    let responder = ocsp_responder(&dir, &lab.pki);
    let stranger = Pki::new("not the issuer").write_ca_and_key(&dir, "stranger");
    let root = lab.pki.ca_pem().to_owned();
    let cases = [
        (
            "by the issuer",
            OcspAnswer::Good,
            (&ca, &ca_key),
            Some("good"),
            None,
        ),
        (
            "by a delegated responder",
            OcspAnswer::Good,
            (&responder.0, &responder.1),
            Some("good"),
            None,
        ),
        (
            "revoked",
            OcspAnswer::Revoked,
            (&ca, &ca_key),
            Some("revoked"),
            Some("ocsp_revoked"),
        ),
        (
            "by someone else",
            OcspAnswer::Good,
            (&stranger.0, &stranger.1),
            None,
            Some("ocsp_invalid"),
        ),
    ];
    for (case, answer, (signer, key), status, finding) in cases {
        let staple = ocsp_response(&dir, &ca, &leaf, answer, (signer.as_path(), key.as_path()));
        let config = leaf.server_config_stapling(staple);
        let one = component_server(Some(config), Behaviour::Normal).await;
        let (exporter, address, scrape) = probe_once_settled(&lab, one.addr().port(), &root).await;
        assert_eq!(
            scrape.value(&SERVER_UP, &[("server", &address)]),
            Some(1.0),
            "{case}: OCSP never fails the probe"
        );
        let next = scrape.find(&CERT_OCSP_NEXT_UPDATE, &[("server", &address)]);
        match status {
            Some(status) => {
                let [next] = next.as_slice() else {
                    panic!("{case}: one next-update series: {next:?}")
                };
                assert!(
                    next.labels.contains(&("status".into(), status.into())),
                    "{case}"
                );
                let hours = (next.value - now()) / 3600.0;
                assert!((23.0..=24.1).contains(&hours), "{case}: {hours} h");
            }
            None => assert!(next.is_empty(), "{case}: {next:?}"),
        }
        let expected: Vec<String> = finding.into_iter().map(String::from).collect();
        assert_eq!(findings(&scrape, &address), expected, "{case}");
        let debug = debug_text(&exporter).await;
        let line = match (status, finding) {
            (Some("good"), _) => "OCSP    good, next update".to_owned(),
            (Some("revoked"), _) => "OCSP    REVOKED at 2024-01-01T00:00:00Z".to_owned(),
            _ => "OCSP    INVALID: the stapled OCSP response is not signed by the certificate's issuer".to_owned(),
        };
        assert!(debug.contains(&line), "{case}: {line}\n{debug}");
        if let Some(status) = status {
            let page = http_get(exporter.addr, "/").await;
            let shown = format!("; OCSP {status}, next update expires in");
            assert!(page.contains(&shown), "{case}: {shown}\n{page}");
        }
        exporter.stop().await;
    }

    // Nothing stapled: said so, no series.
    let one = lab.tls_server(&leaf, Behaviour::Normal).await;
    let (exporter, address, scrape) = probe_once_settled(&lab, one.addr().port(), &root).await;
    assert!(scrape
        .find(&CERT_OCSP_NEXT_UPDATE, &[("server", &address)])
        .is_empty());
    assert!(debug_text(&exporter).await.contains("OCSP    not stapled"));
    exporter.stop().await;
}

/// Whatever a server staples (a real response with bytes changed, cut or inserted), reading it
/// ends, never panics, and says something printable.
#[test]
fn no_stapled_bytes_crash_the_reader() {
    use crate::support::openssl::{ocsp_response, OcspAnswer};
    use cms_xmpp_exporter::probe::{ocsp, Staple};
    use proptest::prelude::*;
    use rustls::pki_types::pem::PemObject;

    let pki = Pki::new("fuzz CA");
    let dir = tempfile::tempdir().unwrap();
    let leaf = pki.leaf(&[DOMAIN], Validity::Good);
    let (ca, key) = pki.write_ca_and_key(dir.path(), "issuer");
    let real = ocsp_response(dir.path(), &ca, &leaf, OcspAnswer::Revoked, (&ca, &key));
    let der = leaf.cert_chain().remove(0);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let ca_der =
        rustls::pki_types::CertificateDer::from_pem_slice(pki.ca_pem().as_bytes()).unwrap();
    let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    let spki = ca_cert.public_key().raw;
    assert!(matches!(
        ocsp::read(&real, &cert, Some(spki)),
        Staple::Response(_)
    ));

    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3usize), 1..8);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    });
    runner
        .run(&edits, |edits| {
            let mut bytes = real.clone();
            for (at, byte, how) in edits {
                let at = at.index(bytes.len().max(1));
                match how {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.truncate(at),
                    _ => bytes.insert(at.min(bytes.len()), byte),
                }
            }
            if let Staple::Invalid(why) = ocsp::read(&bytes, &cert, Some(spki)) {
                prop_assert!(!why.chars().any(char::is_control), "{why}");
            }
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn a_root_that_expires_first_ends_the_chain_sent_or_not() {
    let lab = Lab::new(base_zone()).await;
    let root = Pki::root("Short-lived Root", Validity::ExpiresInDays(5));
    let issuing = root.intermediate("Issuing CA", Validity::Good);
    let leaf = issuing.leaf(&[DOMAIN, XMPP1], Validity::Good);
    let with_root = Leaf {
        cert_pem: format!("{}\n{}", leaf.cert_pem.trim(), root.ca_pem()),
        key_pem: leaf.key_pem.clone(),
    };
    // Only in tls.ca_file: one past the last certificate sent. Sent as well: where it is sent.
    for (sent, position) in [(&leaf, "2"), (&with_root, "2")] {
        let one = lab.tls_server(sent, Behaviour::Normal).await;
        let (exporter, address, scrape) =
            probe_once_settled(&lab, one.addr().port(), root.ca_pem()).await;
        assert_eq!(scrape.value(&SERVER_UP, &[("server", &address)]), Some(1.0));
        let chain = scrape.find(&CERT_CHAIN_NOT_AFTER, &[("server", &address)]);
        let [chain] = chain.as_slice() else {
            panic!("one chain series: {chain:?}")
        };
        assert!(
            chain.labels.contains(&("position".into(), position.into())),
            "the root ends it: {:?}",
            chain.labels
        );
        let days = (chain.value - now()) / 86400.0;
        assert!((4.0..=5.1).contains(&days), "{days}");
        let debug = debug_text(&exporter).await;
        let anchor_line = "chain 2 CN=Short-lived Root";
        assert!(debug.contains(anchor_line), "{debug}");
        assert_eq!(
            debug.contains("(trust anchor, not sent)"),
            std::ptr::eq(sent, &leaf),
            "{debug}"
        );
        exporter.stop().await;
    }
}
