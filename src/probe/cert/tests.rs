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

/// A CA and a leaf it issued for `names`, as DER.
pub(crate) fn ca_and_leaf(names: &[&str]) -> (CertificateDer<'static>, CertificateDer<'static>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
    (ca_cert.der().clone(), leaf.der().clone())
}

#[test]
fn an_accepted_chain_seen_again_shares_its_facts_and_anything_else_is_described_anew() {
    let (ca, leaf) = ca_and_leaf(&["example.com", "xmpp1.example.com"]);
    let client = crate::probe::tls::TlsClient::new(&crate::config::TlsSettings {
        ca_certs: Some(vec![ca]),
        server_name: None,
        client_auth: None,
    })
    .unwrap();
    let chain = vec![leaf];
    let path = client.trust().path(&chain, UnixTime::now());
    assert!(path.is_some(), "the leaf verifies");
    let xmpp1 = ServerName::try_from("xmpp1.example.com").unwrap();
    let xmpp2 = ServerName::try_from("xmpp2.example.com").unwrap();
    let ok = Ok(());
    const STAPLED: &[u8] = &[0x30, 0x00];
    let input = |verified, ocsp: &'static [u8]| CertInput {
        chain: &chain,
        verdict: &ok,
        path: path.as_ref(),
        ocsp,
        trust: client.trust(),
        domain: Some("example.com"),
        verified,
        fqdn_required: true,
    };
    let kept = client.kept_facts();
    let (first, verdict) = inspect_kept(&input(&xmpp1, &[]), kept);
    assert_eq!(verdict, Ok(()));
    let (again, _) = inspect_kept(&input(&xmpp1, &[]), kept);
    assert!(Arc::ptr_eq(
        first.as_ref().unwrap(),
        again.as_ref().unwrap()
    ));

    // Another name to cover: other facts, and this time a mismatch.
    let (other, verdict) = inspect_kept(&input(&xmpp2, &[]), kept);
    assert!(!Arc::ptr_eq(
        first.as_ref().unwrap(),
        other.as_ref().unwrap()
    ));
    assert_eq!(verdict.unwrap_err().reason, Reason::CertNameMismatch);
    let (other_again, verdict) = inspect_kept(&input(&xmpp2, &[]), kept);
    assert!(Arc::ptr_eq(
        other.as_ref().unwrap(),
        other_again.as_ref().unwrap()
    ));
    assert_eq!(
        verdict.unwrap_err().reason,
        Reason::CertNameMismatch,
        "kept, judged again"
    );

    // A stapled response is read every time: its freshness depends on the time.
    let (one, _) = inspect_kept(&input(&xmpp1, STAPLED), kept);
    let (two, _) = inspect_kept(&input(&xmpp1, STAPLED), kept);
    assert!(!Arc::ptr_eq(one.as_ref().unwrap(), two.as_ref().unwrap()));
}

#[test]
fn of_two_roots_with_one_name_the_path_ends_at_the_one_that_signed() {
    // A re-keyed root: the same subject, another key. Only the second issued the leaf.
    let root = |key: &rcgen::KeyPair| {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Re-keyed Root");
        let der = ca.self_signed(key).unwrap().der().clone();
        (ca, der)
    };
    let (old_key, new_key) = (
        rcgen::KeyPair::generate().unwrap(),
        rcgen::KeyPair::generate().unwrap(),
    );
    let (_, old_der) = root(&old_key);
    let (new_params, new_der) = root(&new_key);
    let issuer = rcgen::Issuer::new(new_params, new_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["xmpp1.example.com".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap()
        .der()
        .clone();
    // In either order: a lookup by name alone would find the wrong one in one of them.
    for anchors in [
        vec![old_der.clone(), new_der.clone()],
        vec![new_der.clone(), old_der.clone()],
    ] {
        let client = crate::probe::tls::TlsClient::new(&crate::config::TlsSettings {
            ca_certs: Some(anchors),
            server_name: None,
            client_auth: None,
        })
        .unwrap();
        let path = client
            .trust()
            .path(std::slice::from_ref(&leaf), UnixTime::now())
            .expect("a path");
        let anchor = path.anchor.expect("the anchor it ends at");
        assert_eq!(anchor.der, new_der, "not the old root of the same name");
    }
}
