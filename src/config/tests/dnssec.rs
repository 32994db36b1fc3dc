//! `dns.dnssec` and a target's `dnssec`: the trust anchors file read and checked when the
//! config loads, validation on for every target or for some.

use super::super::*;
use super::{parse, problems};

/// A key-signing key as `dnssec-keygen` writes it (comments and all).
const KEY_FILE: &str = "; This is a key-signing key, keyid 16191, for example.com.\n\
; Created: 20261205151900 (Sat Dec  5 15:19:00 2026)\n\
example.com. IN DNSKEY 257 3 13 0hHdfY/Vr2g+pnJjqcXndeRIgJR4YqMLD7pxRa38oNbyOvGs96G7C5eY s5dhHv+wz4kkRXMLgVRrAxi4/IEO/g==\n";

fn config(dnssec: &str, target_line: &str) -> String {
    format!(
        "dns:\n  dnssec:\n{dnssec}targets:\n  - name: a\n    domain: example.com\n    component: probe.example.com\n    secret: s3cret-value\n{target_line}  - name: b\n    domain: example.org\n    component: probe.example.org\n    secret: s3cret-value\n"
    )
}

#[test]
fn validation_is_off_by_default_on_for_all_or_for_one_target() {
    let off = parse(&config("    validate: false\n", "")).unwrap();
    assert!(off.targets.iter().all(|t| !t.dnssec));
    assert_eq!(off.dns.trust_anchors, TrustAnchors::IanaRoot);
    let all = parse(&config("    validate: true\n", "    dnssec: false\n")).unwrap();
    assert_eq!(
        all.targets.iter().map(|t| t.dnssec).collect::<Vec<_>>(),
        [false, true],
        "a target's own setting wins"
    );
    let one = parse(&config("    validate: false\n", "    dnssec: true\n")).unwrap();
    assert_eq!(
        one.targets.iter().map(|t| t.dnssec).collect::<Vec<_>>(),
        [true, false]
    );
}

#[test]
fn the_trust_anchors_file_is_dnskey_records_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let good = write("good.key", KEY_FILE);
    let loaded = parse(&config(
        &format!("    validate: true\n    trust_anchors_file: {good}\n"),
        "",
    ))
    .unwrap();
    assert!(matches!(&loaded.dns.trust_anchors, TrustAnchors::File { path, .. } if *path == good));

    let empty = write("empty.key", "; nothing but a comment\n");
    let garbage = write("garbage.key", "example.com. IN DNSKEY not a key\n");
    let cname = write("cname.key", "example.com. IN CNAME www.example.com.\n");
    let bad_ds = write("bad.ds", "example.com. IN DS 16191 13 2 not-hex\n");
    // A DS record, as `dnssec-dsfromkey` writes it, is a trust anchor too.
    let ds = write(
        "ds.key",
        "example.com. IN DS 16191 13 2 CED6A1DA7DD91B9E902A4A7E07DA63241F7363D0293E43627D5797BE4B443A7E\n",
    );
    let both = parse(&config(
        &format!("    validate: true\n    trust_anchors_file: {ds}\n"),
        "",
    ))
    .unwrap();
    assert!(
        matches!(&both.dns.trust_anchors, TrustAnchors::File { ds: anchors, .. } if anchors.len() == 1 && anchors[0].owner.to_string() == "example.com.")
    );
    for (path, want) in [
        (empty, "holds no DNSKEY or DS record"),
        (garbage, "is not DNSKEY and DS records in zone-file format"),
        (cname, "is not DNSKEY and DS records in zone-file format"),
        (bad_ds, "is not DNSKEY and DS records in zone-file format"),
        ("/nonexistent/anchors.key".to_owned(), "cannot read"),
    ] {
        let found = problems(&config(
            &format!("    validate: true\n    trust_anchors_file: {path}\n"),
            "",
        ));
        assert!(
            found
                .iter()
                .any(|p| p.starts_with("dns.dnssec.trust_anchors_file") && p.contains(want)),
            "{path}: {found:?}"
        );
    }
}
