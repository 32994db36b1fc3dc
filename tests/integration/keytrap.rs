//! A KeyTrap-shaped zone (CVE-2023-50387: 60 keys sharing the signing key's tag, 61
//! signatures per RRset) is bogus, as validating resolvers with the KeyTrap limits call it,
//! whether it is an island of trust or reached through a DS; a healthy island beside it
//! validates on every run. Behind a DS it stays bogus when its real key and signatures come
//! first (hickory's bounds, applied in the order records come, then let it through) and when
//! validation cannot finish before the deadline. What it costs is the bench's `keytrap` row.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use hickory_resolver::proto::rr::{Name, RecordType};

use crate::support::exporter::*;
use crate::support::keytrap::{KeyTrap, PARENT, TRAP, TRAP_CHILD};
use crate::support::middlebox::{Meddle, Middlebox};

/// The exporter validating against `anchors` through `nameserver`, probing the healthy island
/// and each (name, domain) of `targets` every 2 s with a 2-s deadline, after two runs of each;
/// the healthy island's SRV answer is secure (nothing listens where it points).
async fn two_runs(
    nameserver: SocketAddr,
    anchors: &Path,
    targets: &[(&str, &str)],
) -> (Exporter, Scrape) {
    let targets: Vec<(&str, &str)> = [("healthy", PARENT)]
        .iter()
        .chain(targets)
        .copied()
        .collect();
    let listed: String = targets
        .iter()
        .map(|(name, domain)| {
            format!(
                "  - name: {name}\n    domain: {domain}\n    component: probe.{domain}\n    secret: s3cret-value\n    interval: 2s\n    timeout: 2s\n"
            )
        })
        .collect();
    let config = format!(
        "listen_address: 127.0.0.1:0\ndns:\n  nameservers: [\"{nameserver}\"]\n  dnssec:\n    validate: true\n    trust_anchors_file: {}\ntargets:\n{listed}",
        anchors.display(),
    );
    let exporter = Exporter::start(&config).await;
    let scrape = exporter
        .wait("two runs of each target", |s| {
            targets
                .iter()
                .all(|(t, _)| s.value(&PROBES_TOTAL, &[("target", t)]) >= Some(2.0))
        })
        .await;
    assert_eq!(
        state(&scrape, "healthy").as_deref(),
        Some("secure"),
        "{}",
        scrape.relevant()
    );
    (exporter, scrape)
}

fn state(scrape: &Scrape, target: &str) -> Option<String> {
    scrape.label(&DNSSEC, &[("target", target), ("server", "")], "state")
}

#[tokio::test]
async fn a_keytrap_shaped_zone_is_bogus_and_its_neighbours_are_not() {
    let lab = Lab::new(base_zone()).await;
    let keytrap = KeyTrap::start(&lab.path("keytrap")).await;
    std::fs::write(lab.path("anchors"), &keytrap.anchors).unwrap();
    let (exporter, scrape) = two_runs(
        keytrap.addr,
        &lab.path("anchors"),
        &[("island", TRAP), ("delegated", TRAP_CHILD)],
    )
    .await;
    for target in ["island", "delegated"] {
        assert_eq!(
            failing(&scrape, target, ""),
            Some(("srv".into(), "dnssec_bogus".into())),
            "{target}: {}",
            scrape.relevant()
        );
    }
    // Refused as a KeyTrap-shaped key set: the island when its keys are read, the zone
    // behind the DS when its name is screened, before anything is validated.
    for target in ["island", "delegated"] {
        let debug = http_get(exporter.addr, &format!("/probe?target={target}&debug=true")).await;
        assert!(
            debug.contains("KeyTrap-shaped key set (CVE-2023-50387)"),
            "{target}: {debug}"
        );
    }
    exporter.stop().await;
}

/// The healthy island and the KeyTrap-shaped zone behind its DS, validated through a
/// middlebox in front of `named` that meddles as `meddle` says: the zone behind the DS fails
/// `srv` as bogus, refused as KeyTrap-shaped, on every run; the healthy island is secure.
/// Returns how often the middlebox meddled.
async fn bogus_behind_a_middlebox(meddle: impl FnOnce(&KeyTrap) -> Meddle) -> usize {
    let lab = Lab::new(base_zone()).await;
    let keytrap = KeyTrap::start(&lab.path("keytrap")).await;
    std::fs::write(lab.path("anchors"), &keytrap.anchors).unwrap();
    let middlebox = Middlebox::start(keytrap.addr, meddle(&keytrap)).await;
    let (exporter, scrape) = two_runs(
        middlebox.addr,
        &lab.path("anchors"),
        &[("delegated", TRAP_CHILD)],
    )
    .await;
    let delegated = [("target", "delegated")];
    let bogus = [
        ("target", "delegated"),
        ("step", "srv"),
        ("reason", "dnssec_bogus"),
    ];
    assert_eq!(
        scrape.value(&FAILURES_TOTAL, &bogus),
        scrape.value(&PROBES_TOTAL, &delegated),
        "every run: {}",
        scrape.relevant()
    );
    let debug = http_get(exporter.addr, "/probe?target=delegated&debug=true").await;
    assert!(
        debug.contains("KeyTrap-shaped key set (CVE-2023-50387)"),
        "{debug}"
    );
    exporter.stop().await;
    middlebox.meddled()
}

#[tokio::test]
async fn a_keytrap_shaped_zone_is_bogus_when_its_real_key_and_signatures_come_first() {
    // The forged keys and signatures last: hickory's bounds (two keys per key tag, eight
    // signatures per RRset) then hold the real ones, and validation alone says secure.
    let reordered =
        bogus_behind_a_middlebox(|keytrap| Meddle::Last(Arc::new(keytrap.forged.clone()))).await;
    assert!(reordered > 0, "no answer carried the forged records");
}

#[tokio::test]
async fn a_keytrap_shaped_zone_is_bogus_when_validation_cannot_finish_in_time() {
    // The validator's requests for the zone's keys would go unanswered, as when validating
    // them outruns the deadline: the verdict may not wait on validation finishing. Screened
    // first, the zone is refused before the validator asks for its keys at all.
    let held = bogus_behind_a_middlebox(|_| Meddle::Hold {
        zone: Name::from_ascii(TRAP_CHILD).unwrap(),
        rtype: RecordType::DNSKEY,
    })
    .await;
    assert_eq!(held, 0, "the validator asked for the refused zone's keys");
}
