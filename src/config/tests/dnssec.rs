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

/// The same key as Knot's `keymgr example.com. dnskey` prints it: no TTL, no class.
const KEYMGR_DNSKEY: &str = "example.com. DNSKEY 257 3 13 0hHdfY/Vr2g+pnJjqcXndeRIgJR4YqMLD7pxRa38oNbyOvGs96G7C5eY s5dhHv+wz4kkRXMLgVRrAxi4/IEO/g==\n";
/// A DS as `dnssec-dsfromkey -2` writes it.
const DSFROMKEY: &str = "example.com. IN DS 16191 13 2 CED6A1DA7DD91B9E902A4A7E07DA63241F7363D0293E43627D5797BE4B443A7E\n";
/// A DS as `keymgr example.com. ds` prints it (TTL, no class), SHA-384.
const KEYMGR_DS: &str = "example.com. 3600 DS 16191 13 4 0F2A7D6C0D5B7F9A3E1C9B8D7A6F5E4D3C2B1A0918273645546372819A0B1C2D3E4F5061728394A5B6C7D8E9F0011223\n";

fn anchors_of(text: &str) -> Result<Vec<Anchor>, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("anchors");
    std::fs::write(&path, text).unwrap();
    let config = config(
        &format!(
            "    validate: true\n    trust_anchors_file: {}\n",
            path.display()
        ),
        "",
    );
    match parse(&config) {
        Ok(loaded) => Ok(loaded.dns.trust_anchors.file_anchors().to_vec()),
        Err(ConfigError::Invalid { problems, .. }) => Err(problems),
        Err(other) => panic!("{other:?}"),
    }
}

#[test]
fn the_trust_anchors_file_takes_what_key_tools_print() {
    for (tool, text) in [
        ("dnssec-keygen", KEY_FILE),
        ("keymgr dnskey", KEYMGR_DNSKEY),
        ("dnssec-dsfromkey", DSFROMKEY),
        ("keymgr ds", KEYMGR_DS),
        ("class before TTL", "example.com. IN 300 DS 16191 13 2 CED6A1DA7DD91B9E902A4A7E07DA6324 1F7363D0293E43627D5797BE4B443A7E\n"),
    ] {
        let anchors = anchors_of(text).unwrap_or_else(|p| panic!("{tool}: {p:?}"));
        assert_eq!(anchors.len(), 1, "{tool}");
        assert_eq!(anchors[0].owner.to_string(), "example.com.", "{tool}");
        assert_eq!(anchors[0].key_tag(), Some(16191), "{tool}");
    }
    // Keys and DS records mixed, a stale DS among them: each line is an anchor.
    let mixed = anchors_of(&format!("{KEY_FILE}{DSFROMKEY}{KEYMGR_DS}")).unwrap();
    assert!(matches!(mixed[0].key, AnchorKey::Dnskey(_)));
    assert!(matches!(mixed[1].key, AnchorKey::Ds(_)));
    assert_eq!(mixed.len(), 3);
}

#[test]
fn a_bad_trust_anchors_file_is_refused_at_load_with_the_line_number() {
    for (text, want) in [
        ("; nothing but a comment\n", "holds no DNSKEY or DS record"),
        (
            "; a key\nexample.com. IN DNSKEY not a key\n",
            "line 2: DNSKEY flags \"not\" are not a number",
        ),
        (
            "example.com. IN DNSKEY 257 3 13 bm90IGEga2V5\n",
            "line 1: the DNSKEY's key is not a ECDSAP256SHA256 key",
        ),
        (
            "example.com. IN CNAME www.example.com.\n",
            "line 1: a CNAME record is not a trust anchor",
        ),
        (
            "example.com. IN DS 16191 13 2 not-hex\n",
            "line 1: the DS digest \"not-hex\" is not hexadecimal",
        ),
        (
            "example.com. IN DS 12345 13 2 abcdef\n",
            "line 1: the DS digest is 3 bytes; digest type 2 makes 32",
        ),
        (
            "example.com. IN DS 12345 13 3 abcdef\n",
            "line 1: DS digest type 3 is not one validation supports",
        ),
        (
            "example.com. IN DS 12345 99 2 CED6A1DA7DD91B9E902A4A7E07DA63241F7363D0293E43627D5797BE4B443A7E\n",
            "line 1: algorithm 99 is not one validation supports",
        ),
        (
            "example.com IN DS 16191 13 2 CED6A1DA7DD91B9E902A4A7E07DA63241F7363D0293E43627D5797BE4B443A7E\n",
            "line 1: the owner name \"example.com\" is not absolute",
        ),
        (
            "example.com. IN DNSKEY 256 3 13 (\n 0hHdfY/Vr2g+pnJjqcXndeRIgJR4YqMLD7pxRa38oNbyOvGs96G7C5eY )\n",
            "line 1: a record spread over lines",
        ),
    ] {
        let problems = anchors_of(text).expect_err(text);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("dns.dnssec.trust_anchors_file") && p.contains(want)),
            "{text}: {problems:?}"
        );
    }
    // Every bad line is reported, not the first only.
    let two = anchors_of("a. IN DS x 13 2 00\nb. IN DS y 13 2 00\n").expect_err("two bad lines");
    assert!(
        two.iter().any(|p| p.contains("line 1:")) && two.iter().any(|p| p.contains("line 2:")),
        "{two:?}"
    );
    let missing = problems(&config(
        "    validate: true\n    trust_anchors_file: /nonexistent/anchors.key\n",
        "",
    ));
    assert!(
        missing.iter().any(|p| p.contains("cannot read")),
        "{missing:?}"
    );
}
