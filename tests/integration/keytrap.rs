//! A KeyTrap-shaped zone (CVE-2023-50387: 60 keys sharing the signing key's tag, 61
//! signatures per RRset) is bogus, as validating resolvers with the KeyTrap limits call it,
//! whether it is an island of trust or reached through a DS; a healthy island beside it
//! validates on every run. What it costs is the bench's `keytrap` row.

use crate::support::exporter::*;
use crate::support::keytrap::{KeyTrap, PARENT, TRAP, TRAP_CHILD};

fn state(scrape: &Scrape, target: &str) -> Option<String> {
    scrape.label(&DNSSEC, &[("target", target), ("server", "")], "state")
}

#[tokio::test]
async fn a_keytrap_shaped_zone_is_bogus_and_its_neighbours_are_not() {
    let lab = Lab::new(base_zone()).await;
    let keytrap = KeyTrap::start(&lab.path("keytrap")).await;
    std::fs::write(lab.path("anchors"), &keytrap.anchors).unwrap();
    let target = |name: &str, domain: &str| {
        format!(
            "  - name: {name}\n    domain: {domain}\n    component: probe.{domain}\n    secret: s3cret-value\n    interval: 2s\n    timeout: 2s\n"
        )
    };
    let config = format!(
        "listen_address: 127.0.0.1:0\ndns:\n  nameservers: [\"{}\"]\n  dnssec:\n    validate: true\n    trust_anchors_file: {}\ntargets:\n{}{}{}",
        keytrap.addr,
        lab.path("anchors").display(),
        target("healthy", PARENT),
        target("island", TRAP),
        target("delegated", TRAP_CHILD),
    );
    eprintln!(
        "NAMEDLOG {}",
        std::fs::read_to_string(lab.path("keytrap/named.log")).unwrap()
    );
    let exporter = Exporter::start(&config).await;
    let scrape = exporter
        .wait("two runs of each target", |s| {
            ["healthy", "island", "delegated"]
                .iter()
                .all(|t| s.value(&PROBES_TOTAL, &[("target", t)]) >= Some(2.0))
        })
        .await;
    // The healthy island's SRV answer is secure; nothing listens where it points.
    assert_eq!(
        state(&scrape, "healthy").as_deref(),
        Some("secure"),
        "{}",
        scrape.relevant()
    );
    for target in ["island", "delegated"] {
        assert_eq!(
            failing(&scrape, target, ""),
            Some(("srv".into(), "dnssec_bogus".into())),
            "{target}: {}",
            scrape.relevant()
        );
    }
    // Refused as a KeyTrap-shaped key set: the island when its keys are read, the zone
    // behind the DS once validation found it bogus (and then without validating again).
    for target in ["island", "delegated"] {
        let debug = http_get(exporter.addr, &format!("/probe?target={target}&debug=true")).await;
        assert!(
            debug.contains("KeyTrap-shaped key set (CVE-2023-50387)"),
            "{target}: {debug}"
        );
    }
    exporter.stop().await;
}
