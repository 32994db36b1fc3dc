//! DNSSEC against BIND 9 serving signed zones: secure (BIND signs the zone itself), insecure
//! (delegated without a DS) and bogus (signatures that expired), validated against the zones'
//! own keys as trust anchors.

use crate::probe::now;
use crate::support::bind::{
    target, Bind, ZoneData, Zones, EXPIRED, NSEC3, SIGNED, SPLIT, UNSIGNED, UNSIGNED_BY_ANCHOR,
};
use crate::support::component::Behaviour;
use crate::support::exporter::*;
use crate::support::pki::Validity;

fn state(scrape: &Scrape, target: &str, server: &str) -> Option<String> {
    scrape.label(&DNSSEC, &[("target", target), ("server", server)], "state")
}

#[tokio::test]
async fn dnssec_tells_secure_insecure_and_bogus_answers_apart() {
    let lab = Lab::new(base_zone()).await;
    std::fs::write(lab.path("ca.pem"), lab.pki.ca_pem()).unwrap();
    let xmpp1 = format!("xmpp1.{SIGNED}");
    let xmpp2 = format!("xmpp2.{SIGNED}");
    let unsigned_host = format!("xmpp.{UNSIGNED}");
    let leaf = lab.pki.leaf(
        &[SIGNED, &xmpp1, &xmpp2, UNSIGNED, &unsigned_host],
        Validity::Good,
    );
    let one = lab.tls_server(&leaf, Behaviour::Normal).await;
    let two = lab.tls_server(&leaf, Behaviour::Normal).await;
    let zones = Zones {
        signed: ZoneData::servers(&[("xmpp1", one.addr().port()), ("xmpp2", two.addr().port())]),
        unsigned: ZoneData::servers(&[("xmpp", one.addr().port())]),
        expired: ZoneData::servers(&[("xmpp", one.addr().port())]),
        split: ZoneData::default(),
    };
    let bind = Bind::start(&lab.path("bind"), &zones).await;

    let config = bind.validating_config(&[
        target(&lab, "signed", SIGNED),
        target(&lab, "unsigned", UNSIGNED),
        target(&lab, "expired", EXPIRED),
        target(&lab, "missing", &format!("missing.{SIGNED}")),
        target(&lab, "missing-unsigned", &format!("missing.{UNSIGNED}")),
        target(&lab, "missing-nsec3", &format!("missing.{NSEC3}")),
    ]);
    let exporter = Exporter::start(&config).await;
    let (server1, server2) = (
        server(&xmpp1, one.addr().port()),
        server(&xmpp2, two.addr().port()),
    );
    let scrape = exporter
        .wait("every target's first run", |s| {
            [
                "signed",
                "unsigned",
                "expired",
                "missing",
                "missing-unsigned",
                "missing-nsec3",
            ]
            .iter()
            .all(|t| s.value(&PROBES_TOTAL, &[("target", t)]) >= Some(1.0))
        })
        .await;

    // Signed by BIND: every answer secure, and a Callbridge registers.
    assert_eq!(
        scrape.value(&PROBE_SUCCESS, &[("target", "signed")]),
        Some(1.0),
        "{}",
        scrape.relevant()
    );
    for server in ["", &server1, &server2] {
        assert_eq!(
            state(&scrape, "signed", server).as_deref(),
            Some("secure"),
            "{server}"
        );
    }
    // BIND's default policy signs for two weeks.
    let days = (scrape
        .value(&DNSSEC_EXPIRY, &[("target", "signed")])
        .expect("the first signature's expiry")
        - now())
        / 86400.0;
    assert!((1.0..=15.0).contains(&days), "{days}");

    // Delegated without a DS: insecure, not an error.
    assert_eq!(
        scrape.value(&PROBE_SUCCESS, &[("target", "unsigned")]),
        Some(1.0)
    );
    assert_eq!(state(&scrape, "unsigned", "").as_deref(), Some("insecure"));
    assert_eq!(
        scrape.value(&DNSSEC_EXPIRY, &[("target", "unsigned")]),
        None,
        "no secure answer, no expiry"
    );

    // Names proven absent, in the signed zone, in the unsigned one, and by NSEC3 of more
    // iterations than validators compute (an insecure proof): NXDOMAIN, as without
    // validation.
    for target in ["missing", "missing-unsigned", "missing-nsec3"] {
        assert_eq!(
            failing(&scrape, target, ""),
            Some(("srv".into(), "nxdomain".into())),
            "{target}"
        );
    }

    // Signatures that expired: bogus, the SRV step fails and says why.
    assert_eq!(
        failing(&scrape, "expired", ""),
        Some(("srv".into(), "dnssec_bogus".into()))
    );
    assert_eq!(state(&scrape, "expired", "").as_deref(), Some("bogus"));
    let debug = http_get(exporter.addr, "/probe?target=expired&debug=true").await;
    assert!(
        debug.contains("expired at 2020-02-01"),
        "the detail names the expired signature: {debug}"
    );
    let debug = http_get(exporter.addr, "/probe?target=signed&debug=true").await;
    assert!(
        debug.contains("DNSSEC secure, first signature expires"),
        "{debug}"
    );
    let page = http_get(exporter.addr, "/").await;
    assert!(
        page.contains("DNSSEC: SRV answer secure")
            && page.contains("DNSSEC: SRV answer insecure")
            && page.contains("DNSSEC: SRV answer bogus"),
        "{page}"
    );
    exporter.stop().await;

    // The signed zone's key given as its DS record (what a parent zone publishes): its key is
    // asked of the DNS and trusted by its digest. A DS naming no key the zone has trusts none.
    let ds = std::fs::read_to_string(&bind.trust_anchors_ds).unwrap();
    let wrong = lab.path("wrong.ds");
    let mut fields: Vec<&str> = ds.split_whitespace().collect();
    let digest = fields.last_mut().unwrap();
    let other_digest = "0".repeat(digest.len());
    *digest = &other_digest;
    std::fs::write(&wrong, fields.join(" ") + "\n").unwrap();
    for (anchors, secure) in [(&bind.trust_anchors_ds, true), (&wrong, false)] {
        let config = bind
            .validating_config(&[target(&lab, "signed", SIGNED)])
            .replace(
                &bind.trust_anchors.display().to_string(),
                &anchors.display().to_string(),
            );
        let exporter = Exporter::start(&config).await;
        let scrape = exporter.cycles("signed", 1.0).await;
        if secure {
            assert_eq!(state(&scrape, "signed", "").as_deref(), Some("secure"));
            assert_eq!(
                scrape.value(&PROBE_SUCCESS, &[("target", "signed")]),
                Some(1.0)
            );
        } else {
            assert_eq!(
                failing(&scrape, "signed", ""),
                Some(("srv".into(), "dnssec_bogus".into()))
            );
            let debug = http_get(exporter.addr, "/probe?target=signed&debug=true").await;
            assert!(debug.contains("is one its trust anchors name"), "{debug}");
        }
        exporter.stop().await;
    }

    // Validation off (the default): the same answers, no DNSSEC series, no failure.
    let config = format!(
        "listen_address: 127.0.0.1:0\ndns:\n  nameservers: [\"{}\"]\ntargets:\n{}",
        bind.addr,
        target(&lab, "expired", EXPIRED),
    );
    let exporter = Exporter::start(&config).await;
    let scrape = exporter.cycles("expired", 1.0).await;
    assert_eq!(
        failing(&scrape, "expired", ""),
        None,
        "{}",
        scrape.relevant()
    );
    assert!(scrape.find(&DNSSEC, &[]).is_empty());
    exporter.stop().await;
}

/// An island of trust signed as most signers sign it: a KSK over the DNSKEY RRset, a ZSK over
/// the data, a second ZSK pre-published. Its KSK, the KSK's DS, or that DS beside the DS of a
/// retired KSK make every answer secure (BIND's `delv` agrees: see tests/e2e); a KSK that sits
/// in the DNSKEY RRset but signs nothing proves nothing.
#[tokio::test]
async fn an_island_signed_with_a_ksk_and_a_zsk_is_secure_through_its_anchor_s_signature() {
    let lab = Lab::new(base_zone()).await;
    std::fs::write(lab.path("ca.pem"), lab.pki.ca_pem()).unwrap();
    let hosts = [
        SPLIT.to_owned(),
        format!("xmpp.{SPLIT}"),
        UNSIGNED_BY_ANCHOR.to_owned(),
        format!("xmpp.{UNSIGNED_BY_ANCHOR}"),
    ];
    let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let leaf = lab.pki.leaf(&names, Validity::Good);
    let xmpp = lab.tls_server(&leaf, Behaviour::Normal).await;
    let zones = Zones {
        signed: ZoneData::default(),
        unsigned: ZoneData::default(),
        expired: ZoneData::default(),
        split: ZoneData::servers(&[("xmpp", xmpp.addr().port())]),
    };
    let bind = Bind::start(&lab.path("bind"), &zones).await;
    let server = server(&format!("xmpp.{SPLIT}"), xmpp.addr().port());

    for (anchors, what) in [
        (bind.split_ksk.clone(), "its KSK"),
        (bind.split_ksk_ds.clone(), "its KSK's DS"),
        (
            format!("{}{}", bind.stale_ds, bind.split_ksk_ds),
            "a stale DS before the good one",
        ),
        (
            format!("{}{}", bind.split_ksk_ds, bind.stale_ds),
            "a stale DS after the good one",
        ),
    ] {
        let config = bind.config_with_anchors(
            &lab.path("anchors"),
            &anchors,
            &[target(&lab, "split", SPLIT)],
        );
        let exporter = Exporter::start(&config).await;
        let scrape = exporter.cycles("split", 1.0).await;
        assert_eq!(
            scrape.value(&PROBE_SUCCESS, &[("target", "split")]),
            Some(1.0),
            "{what}: {}",
            scrape.relevant()
        );
        for server in ["", &server] {
            assert_eq!(
                state(&scrape, "split", server).as_deref(),
                Some("secure"),
                "{what}: {server}"
            );
        }
        exporter.stop().await;
    }

    // A ZSK rollover the primed keys did not see coming (the new key never pre-published):
    // the first answer it signs is bogus to the keys held, the island is read again, and the
    // answer asked once more is secure. No run fails.
    let config = bind.config_with_anchors(
        &lab.path("anchors"),
        &bind.split_ksk,
        &[target(&lab, "split", SPLIT)],
    );
    let exporter = Exporter::start(&config).await;
    let before = exporter.cycles("split", 1.0).await;
    assert_eq!(state(&before, "split", "").as_deref(), Some("secure"));
    bind.roll_split_zsk().await;
    let runs = before.value(&PROBES_TOTAL, &[("target", "split")]).unwrap();
    let after = exporter.cycles("split", runs + 2.0).await;
    assert_eq!(
        after.value(&PROBE_SUCCESS, &[("target", "split")]),
        Some(1.0),
        "after the rollover: {}",
        after.relevant()
    );
    assert_eq!(state(&after, "split", "").as_deref(), Some("secure"));
    assert!(
        after
            .find(&FAILURES_TOTAL, &[("target", "split")])
            .is_empty(),
        "no run failed: {}",
        after.relevant()
    );
    exporter.stop().await;

    // Only the retired KSK's DS: nothing the zone publishes is anchored.
    let config = bind.config_with_anchors(
        &lab.path("anchors"),
        &bind.stale_ds,
        &[target(&lab, "split", SPLIT)],
    );
    let exporter = Exporter::start(&config).await;
    let scrape = exporter.cycles("split", 1.0).await;
    assert_eq!(
        failing(&scrape, "split", ""),
        Some(("srv".into(), "dnssec_bogus".into()))
    );
    let debug = http_get(exporter.addr, "/probe?target=split&debug=true").await;
    assert!(debug.contains("the trust anchors file is stale"), "{debug}");
    exporter.stop().await;

    // The anchored KSK is in the DNSKEY RRset, but only the ZSK signed it: bogus, and the
    // detail names the keys that did sign.
    let config = bind.config_with_anchors(
        &lab.path("anchors"),
        &bind.idle_ksk,
        &[target(&lab, "presence", UNSIGNED_BY_ANCHOR)],
    );
    let exporter = Exporter::start(&config).await;
    let scrape = exporter.cycles("presence", 1.0).await;
    assert_eq!(
        failing(&scrape, "presence", ""),
        Some(("srv".into(), "dnssec_bogus".into())),
        "{}",
        scrape.relevant()
    );
    assert_eq!(state(&scrape, "presence", "").as_deref(), Some("bogus"));
    let debug = http_get(exporter.addr, "/probe?target=presence&debug=true").await;
    assert!(
        debug.contains("is not signed by a key its trust anchors name"),
        "{debug}"
    );
    exporter.stop().await;
}

/// Records changed after signing — an address, an SRV port — are bogus where they are, with
/// the true cause, and nothing connects to what they point at.
#[tokio::test]
async fn forged_records_are_bogus_and_never_connected_to() {
    let lab = Lab::new(base_zone()).await;
    std::fs::write(lab.path("ca.pem"), lab.pki.ca_pem()).unwrap();
    let leaf = lab.pki.leaf(
        &[SPLIT, &format!("xmpp.{SPLIT}"), &format!("forged.{SPLIT}")],
        Validity::Good,
    );
    let xmpp = lab.tls_server(&leaf, Behaviour::Normal).await;
    let port = xmpp.addr().port();
    // Where the forged records lead: nothing may connect there.
    let forged_address = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let forged_port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let to_port = forged_port.local_addr().unwrap().port();
    let to_address_port = forged_address.local_addr().unwrap().port();
    let mut split = ZoneData::servers(&[("xmpp", port)]);
    split.extra = format!(
        "forged IN A 127.0.0.1\n_xmpp-component._tcp.srvforged IN SRV 10 10 {port} xmpp.{SPLIT}.\n"
    );
    split.forged = vec![
        (
            format!("forged.{SPLIT}."),
            "127.0.0.1".into(),
            "127.0.0.2".into(),
        ),
        (
            format!("_xmpp-component._tcp.srvforged.{SPLIT}."),
            format!(" {port} "),
            format!(" {to_port} "),
        ),
    ];
    let zones = Zones {
        signed: ZoneData::default(),
        unsigned: ZoneData::default(),
        expired: ZoneData::default(),
        split,
    };
    let bind = Bind::start(&lab.path("bind"), &zones).await;
    let forged_a = format!(
        "{}    server_address: forged.{SPLIT}:{to_address_port}\n",
        target(&lab, "forged-a", SPLIT)
    );
    let config = bind.config_with_anchors(
        &lab.path("anchors"),
        &bind.split_ksk,
        &[
            target(&lab, "split", SPLIT),
            forged_a,
            target(&lab, "forged-srv", &format!("srvforged.{SPLIT}")),
        ],
    );
    let exporter = Exporter::start(&config).await;
    let scrape = exporter
        .wait("two runs of each target", |s| {
            ["split", "forged-a", "forged-srv"]
                .iter()
                .all(|t| s.value(&PROBES_TOTAL, &[("target", t)]) >= Some(2.0))
        })
        .await;
    assert_eq!(
        scrape.value(&PROBE_SUCCESS, &[("target", "split")]),
        Some(1.0),
        "the zone itself is fine: {}",
        scrape.relevant()
    );
    let server = server(&format!("forged.{SPLIT}"), to_address_port);
    assert_eq!(
        failing(&scrape, "forged-a", &server),
        Some(("resolve".into(), "dnssec_bogus".into())),
        "a forged address is bogus, not no_records: {}",
        scrape.relevant()
    );
    assert_eq!(
        failing(&scrape, "forged-srv", ""),
        Some(("srv".into(), "dnssec_bogus".into()))
    );
    for (target, record) in [
        ("forged-a", format!("A forged.{SPLIT}.")),
        (
            "forged-srv",
            format!("SRV _xmpp-component._tcp.srvforged.{SPLIT}."),
        ),
    ] {
        let debug = http_get(exporter.addr, &format!("/probe?target={target}&debug=true")).await;
        assert!(
            debug.contains(&format!("the signature on {record} does not verify"))
                && debug.contains("forged on the way"),
            "{target}: {debug}"
        );
    }
    exporter.stop().await;
    for (what, listener) in [("address", &forged_address), ("port", &forged_port)] {
        let accepted =
            tokio::time::timeout(std::time::Duration::from_millis(1), listener.accept()).await;
        assert!(
            accepted.is_err(),
            "something connected to the forged {what}"
        );
    }
}
