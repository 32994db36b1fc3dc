//! Tests of `probe::cert`.

use super::*;

fn dns(names: &[&str]) -> Vec<San> {
    names.iter().map(|n| San::Dns(n.to_string())).collect()
}

#[test]
fn exact_names_match_case_insensitively() {
    let sans = dns(&["xmpp.Example.com"]);
    assert!(covers_dns(&sans, "XMPP.example.COM"));
    assert!(covers_dns(&sans, "xmpp.example.com."));
    assert!(!covers_dns(&sans, "example.com"));
}

#[test]
fn wildcard_covers_one_label_only_never_the_apex() {
    let sans = dns(&["*.example.com"]);
    assert!(covers_dns(&sans, "xmpp.example.com"));
    assert!(covers_dns(&sans, "XMPP.EXAMPLE.COM"));
    assert!(!covers_dns(&sans, "example.com"));
    assert!(!covers_dns(&sans, "a.b.example.com"));
    assert!(!covers_dns(&sans, "xmppexample.com"));
}

#[test]
fn partial_and_inner_wildcards_match_nothing() {
    for pattern in [
        "x*.example.com",
        "xmpp.*.com",
        "*",
        "*.com",
        "**.example.com",
    ] {
        assert!(
            !covers_dns(&dns(&[pattern]), "xmpp.example.com"),
            "{pattern}"
        );
    }
    assert!(!covers_dns(&dns(&["*.com"]), "example.com"));
}

#[test]
fn ip_sans_match_only_ips() {
    let sans = vec![
        San::Ip("127.0.0.1".parse().unwrap()),
        San::Dns("127.0.0.2".into()),
    ];
    let ip = |text: &str| ServerName::from(text.parse::<IpAddr>().unwrap());
    assert!(covers(&sans, &ip("127.0.0.1")));
    assert!(
        !covers(&sans, &ip("127.0.0.2")),
        "a DNS SAN must not match an IP"
    );
    assert!(!covers(&dns(&["localhost"]), &ip("127.0.0.1")));
    let name = ServerName::try_from("xmpp.example.com").unwrap();
    assert!(covers(&dns(&["*.example.com"]), &name));
    assert!(!covers(&sans, &name));
}

#[test]
fn a_stapled_response_past_its_next_update_is_stale() {
    let stapled = |status, next: i64| {
        Staple::Response(Stapled {
            status,
            this_update: 0,
            next_update: Some(
                super::super::unix_seconds(std::time::SystemTime::now()) as i64 + next,
            ),
        })
    };
    let kind = |staple: Staple| staple_finding(&staple).map(|f| f.kind);
    assert_eq!(kind(stapled(OcspStatus::Good, 3600)), None);
    assert_eq!(
        kind(stapled(OcspStatus::Good, -60)),
        Some(FindingKind::OcspStale)
    );
    assert_eq!(
        kind(stapled(OcspStatus::Revoked { at: 0 }, -60)),
        Some(FindingKind::OcspRevoked),
        "revoked says more than stale"
    );
    assert_eq!(
        kind(Staple::Invalid("x".into())),
        Some(FindingKind::OcspInvalid)
    );
}

#[test]
fn hex_is_lowercase() {
    assert_eq!(hex(&[0x00, 0xAB, 0xff]), "00abff");
}

#[test]
fn serials_read_as_openssl_prints_them() {
    assert_eq!(serial_hex(&[0x00, 0x8f, 0x8e]), "8f8e");
    assert_eq!(serial_hex(&[0x01, 0x00]), "0100");
    assert_eq!(serial_hex(&[0x00]), "00");
    assert_eq!(serial_hex(&[]), "");
}
