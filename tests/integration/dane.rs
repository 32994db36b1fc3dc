//! DANE (RFC 7673) against BIND 9 serving a signed zone with TLSA records: `3 1 1` of the
//! leaf's key and `2 0 1` of the intermediate that issued it (both match), records left from
//! before a certificate change (`dane_mismatch`) beside a digest of the wrong length
//! (`dane_unusable_records`), and an unsigned zone, where DANE is not used.

use rustls::pki_types::CertificateDer;

use crate::support::bind::{target, Bind, ZoneData, Zones, SIGNED, SPLIT, UNSIGNED};
use crate::support::component::Behaviour;
use crate::support::exporter::*;
use crate::support::middlebox::{Meddle, Middlebox, Tlsa};
use crate::support::pki::{Leaf, Validity};

fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The certificates of `leaf`'s chain, DER, the leaf first.
fn chain(leaf: &Leaf) -> Vec<CertificateDer<'static>> {
    leaf.cert_chain()
}

/// `3 1 1`: SHA-256 of the leaf's SubjectPublicKeyInfo.
fn spki_sha256(leaf: &Leaf) -> String {
    let der = &chain(leaf)[0];
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    sha256(cert.tbs_certificate.subject_pki.raw)
}

fn findings(scrape: &Scrape, target: &str, server: &str) -> Vec<String> {
    let mut found: Vec<String> = scrape
        .find(&FINDING, &[("target", target), ("server", server)])
        .iter()
        .filter_map(|s| s.labels.iter().find(|(k, _)| k == "finding"))
        .map(|(_, finding)| finding.clone())
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn dane_matches_tlsa_records_against_the_chain_each_server_sends() {
    let lab = Lab::new(base_zone()).await;
    std::fs::write(lab.path("ca.pem"), lab.pki.ca_pem()).unwrap();
    let issuing = lab.pki.intermediate("Issuing CA", Validity::Good);
    let names = [
        SIGNED.to_owned(),
        format!("xmpp1.{SIGNED}"),
        format!("xmpp2.{SIGNED}"),
        format!("renewed.{SIGNED}"),
        format!("xmpp3.{SIGNED}"),
        format!("unusable.{SIGNED}"),
        format!("xmpp4.{SIGNED}"),
        UNSIGNED.to_owned(),
        format!("xmpp.{UNSIGNED}"),
    ];
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let leaf = issuing.leaf(&names, Validity::Good);
    // The certificate before the change: another key, which the TLSA record still names.
    let before = issuing.leaf(&names, Validity::Good);
    let one = lab.tls_server(&leaf, Behaviour::Normal).await;
    let two = lab.tls_server(&leaf, Behaviour::Normal).await;
    let three = lab.tls_server(&leaf, Behaviour::Normal).await;
    let (p1, p2, p3) = (one.addr().port(), two.addr().port(), three.addr().port());
    let intermediate = sha256(&chain(&leaf)[1]);
    let mut signed = ZoneData::servers(&[("xmpp1", p1), ("xmpp2", p2)]);
    signed.extra = format!(
        "_{p1}._tcp.xmpp1 IN TLSA 3 1 1 {}\n\
         _{p2}._tcp.xmpp2 IN TLSA 2 0 1 {intermediate}\n\
         _xmpp-component._tcp.renewed IN SRV 10 10 {p3} xmpp3.{SIGNED}.\n\
         xmpp3 IN A 127.0.0.1\n\
         _{p3}._tcp.xmpp3 IN TLSA 3 1 1 {}\n\
         _{p3}._tcp.xmpp3 IN TLSA 3 1 1 00112233445566778899aabbccddeeff\n\
         _xmpp-component._tcp.unusable IN SRV 10 10 {p3} xmpp4.{SIGNED}.\n\
         xmpp4 IN A 127.0.0.1\n\
         _{p3}._tcp.xmpp4 IN TLSA 3 1 1 00112233445566778899aabbccddeeff\n",
        spki_sha256(&leaf),
        spki_sha256(&before),
    );
    let mut unsigned = ZoneData::servers(&[("xmpp", p1)]);
    unsigned.extra = format!("_{p1}._tcp.xmpp IN TLSA 3 1 1 {}\n", spki_sha256(&before));
    let zones = Zones {
        signed,
        unsigned,
        expired: ZoneData::default(),
        split: ZoneData::default(),
    };
    let bind = Bind::start(&lab.path("bind"), &zones).await;
    let config = bind.validating_config(&[
        target(&lab, "signed", SIGNED),
        target(&lab, "renewed", &format!("renewed.{SIGNED}")),
        target(&lab, "unusable", &format!("unusable.{SIGNED}")),
        target(&lab, "unsigned", UNSIGNED),
    ]);
    let exporter = Exporter::start(&config).await;
    let xmpp1 = server(&format!("xmpp1.{SIGNED}"), p1);
    let xmpp2 = server(&format!("xmpp2.{SIGNED}"), p2);
    let xmpp3 = server(&format!("xmpp3.{SIGNED}"), p3);
    let scrape = exporter
        .wait("every target's first run", |s| {
            ["signed", "renewed", "unusable", "unsigned"]
                .iter()
                .all(|t| s.value(&PROBES_TOTAL, &[("target", t)]) >= Some(1.0))
        })
        .await;

    // 3 1 1 and 2 0 1 both match; nothing to find.
    for server in [&xmpp1, &xmpp2] {
        assert_eq!(
            scrape.value(&DANE_VALID, &[("target", "signed"), ("server", server)]),
            Some(1.0),
            "{server}: {}",
            scrape.relevant()
        );
        assert_eq!(findings(&scrape, "signed", server), Vec::<String>::new());
    }
    let debug = http_get(exporter.addr, "/probe?target=signed&debug=true").await;
    assert!(
        debug.contains("matches certificate 0 (the leaf)")
            && debug.contains("matches certificate 1"),
        "{debug}"
    );

    // The records name the key before the change, and one is not a SHA-256 digest at all.
    assert_eq!(
        scrape.value(&DANE_VALID, &[("target", "renewed"), ("server", &xmpp3)]),
        Some(0.0)
    );
    assert_eq!(
        findings(&scrape, "renewed", &xmpp3),
        ["dane_mismatch", "dane_unusable_records"]
    );
    assert_eq!(
        scrape.value(&PROBE_SUCCESS, &[("target", "renewed")]),
        Some(1.0),
        "a Callbridge checks no DANE: it still registers"
    );
    let debug = http_get(exporter.addr, "/probe?target=renewed&debug=true").await;
    assert!(
        debug.contains("matches nothing")
            && debug.contains("unusable: 16 bytes of association data for a 32-byte digest"),
        "{debug}"
    );
    let page = http_get(exporter.addr, "/").await;
    assert!(
        page.contains("DANE NOT valid")
            && page.contains("DANE valid")
            && page.contains("matches certificate 1"),
        "{page}"
    );

    // Only a record no client can use: as if there were no TLSA records (RFC 7671 §4.1): no
    // verdict, no mismatch, the unusable record found.
    let xmpp4 = server(&format!("xmpp4.{SIGNED}"), p3);
    assert!(
        scrape
            .find(&DANE_VALID, &[("target", "unusable")])
            .is_empty(),
        "{}",
        scrape.relevant()
    );
    assert_eq!(
        findings(&scrape, "unusable", &xmpp4),
        ["dane_unusable_records"]
    );
    let debug = http_get(exporter.addr, "/probe?target=unusable&debug=true").await;
    assert!(
        debug.contains("DANE    not used (no usable TLSA record)"),
        "{debug}"
    );

    // An unsigned zone: its TLSA record (however wrong) is not used.
    assert_eq!(
        scrape.value(&PROBE_SUCCESS, &[("target", "unsigned")]),
        Some(1.0)
    );
    assert!(scrape
        .find(&DANE_VALID, &[("target", "unsigned")])
        .is_empty());
    assert!(findings(
        &scrape,
        "unsigned",
        &server(&format!("xmpp.{UNSIGNED}"), p1)
    )
    .is_empty());
    exporter.stop().await;
}

/// A DNS server that drops, refuses or fails TLSA queries (record types it does not know):
/// the addresses decide `resolve` and registration stays green; DANE is not judged for that
/// run, and says why.
#[tokio::test]
async fn a_failing_tlsa_lookup_leaves_registration_green_and_dane_unjudged() {
    let lab = Lab::new(base_zone()).await;
    std::fs::write(lab.path("ca.pem"), lab.pki.ca_pem()).unwrap();
    let xmpp1 = format!("xmpp1.{SIGNED}");
    let leaf = lab.pki.leaf(&[SIGNED, &xmpp1], Validity::Good);
    let one = lab.tls_server(&leaf, Behaviour::Normal).await;
    let p1 = one.addr().port();
    let mut signed = ZoneData::servers(&[("xmpp1", p1)]);
    signed.extra = format!("_{p1}._tcp.xmpp1 IN TLSA 3 1 1 {}\n", spki_sha256(&leaf));
    let zones = Zones::signed(signed);
    let bind = Bind::start(&lab.path("bind"), &zones).await;
    let server = server(&xmpp1, p1);
    for (mode, why) in [
        (Tlsa::Dropped, "no answer before the probe's deadline"),
        (Tlsa::Refused, "Refused"),
        (Tlsa::Servfail, "SERVFAIL"),
    ] {
        let middlebox = Middlebox::start(bind.addr, Meddle::Tlsa(mode)).await;
        let config = bind
            .validating_config(&[target(&lab, "signed", SIGNED)])
            .replace(&bind.addr.to_string(), &middlebox.addr.to_string());
        let exporter = Exporter::start(&config).await;
        let scrape = exporter.cycles("signed", 1.0).await;
        assert_eq!(
            scrape.value(&PROBE_SUCCESS, &[("target", "signed")]),
            Some(1.0),
            "{mode:?}: {}",
            scrape.relevant()
        );
        assert_eq!(failing(&scrape, "signed", &server), None, "{mode:?}");
        assert!(
            scrape.find(&DANE_VALID, &[("target", "signed")]).is_empty(),
            "{mode:?}: not judged, no verdict: {}",
            scrape.relevant()
        );
        let debug = http_get(exporter.addr, "/probe?target=signed&debug=true").await;
        assert!(
            debug.contains("(DANE not judged)") && debug.contains(why),
            "{mode:?}: {debug}"
        );
        assert!(
            middlebox.meddled() > 0,
            "{mode:?}: no TLSA query met the middlebox"
        );
        exporter.stop().await;
    }
}

/// A TLSA answer that fails validation (a record changed after signing) is DANE's finding,
/// `dane_tlsa_bogus`, with its warning alert: the server's addresses stay secure and nothing
/// pages as if a Callbridge could not register (it asks for no TLSA record).
#[tokio::test]
async fn a_bogus_tlsa_answer_is_dane_s_finding_not_a_registration_page() {
    let lab = Lab::new(base_zone()).await;
    std::fs::write(lab.path("ca.pem"), lab.pki.ca_pem()).unwrap();
    let host = format!("xmpp.{SPLIT}");
    let leaf = lab.pki.leaf(&[SPLIT, &host], Validity::Good);
    let xmpp = lab.tls_server(&leaf, Behaviour::Normal).await;
    let port = xmpp.addr().port();
    let mut split = ZoneData::servers(&[("xmpp", port)]);
    split.extra = format!("_{port}._tcp.xmpp IN TLSA 3 1 1 {}\n", "ab".repeat(32));
    split.forged = vec![(
        format!("_{port}._tcp.{host}."),
        "ABAB".into(),
        "CDCD".into(),
    )];
    let zones = Zones {
        split,
        ..Zones::signed(ZoneData::default())
    };
    let bind = Bind::start(&lab.path("bind"), &zones).await;
    let config = bind.config_with_anchors(
        &lab.path("anchors"),
        &bind.split_ksk,
        &[target(&lab, "split", SPLIT)],
    );
    let exporter = Exporter::start(&config).await;
    let scrape = exporter.cycles("split", 1.0).await;
    let server = server(&host, port);
    let ids = [("target", "split"), ("server", server.as_str())];
    assert_eq!(
        scrape.value(&PROBE_SUCCESS, &[("target", "split")]),
        Some(1.0),
        "{}",
        scrape.relevant()
    );
    assert_eq!(
        scrape.label(&DNSSEC, &ids, "state").as_deref(),
        Some("secure"),
        "the addresses' state, not the TLSA answer's: {}",
        scrape.relevant()
    );
    assert_eq!(findings(&scrape, "split", &server), ["dane_tlsa_bogus"]);
    assert!(scrape.find(&DANE_VALID, &[("target", "split")]).is_empty());
    let debug = http_get(exporter.addr, "/probe?target=split&debug=true").await;
    assert!(
        debug.contains("does not verify") && debug.contains("(DANE not judged)"),
        "{debug}"
    );
    exporter.stop().await;
}
