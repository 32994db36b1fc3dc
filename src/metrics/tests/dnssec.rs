//! DNSSEC and DANE series: one state per answer, the first signature's expiry, DANE per server,
//! and a healthy validating two-server target within 45 series.

use super::*;
use crate::probe::dns::dane::{TlsaRecord, TlsaVerdict};
use crate::probe::{DaneFacts, Dnssec, DnssecState};

fn secure(expires: i64) -> Option<Dnssec> {
    Some(Dnssec {
        state: DnssecState::Secure,
        expires: Some(expires),
    })
}

/// TLSA records of which one matched the leaf.
fn dane(valid: bool) -> Option<DaneFacts> {
    let record = TlsaRecord {
        usage: 3,
        selector: 1,
        matching: 1,
        data: vec![0; 32],
    };
    let verdict = match valid {
        true => TlsaVerdict::Matched(0),
        false => TlsaVerdict::NotMatched,
    };
    Some(DaneFacts {
        name: "_5223._tcp.xmpp1.example.com.".into(),
        records: vec![(record, verdict)],
    })
}

#[test]
fn a_healthy_target_with_dane_keeps_within_45_series_and_a_mismatch_is_found() {
    let mut one = healthy_server("xmpp1.example.com", 10);
    one.dnssec = secure(1_850_000_000);
    one.dane = dane(true);
    let mut two = healthy_server("xmpp2.example.com", 20);
    two.dnssec = secure(1_950_000_000);
    two.dane = dane(false);
    let mut report = report(vec![one, two]);
    report.srv_dnssec = secure(1_900_000_000);
    let state = TargetState::of(target()).after(report, false);
    let rows = series(&state);
    let t = ("target", "cms-london");
    let (one, two) = (
        ("server", "xmpp1.example.com:5223"),
        ("server", "xmpp2.example.com:5223"),
    );
    assert_eq!(value(&rows, &DANE_VALID, &[t, one]), Some(1.0));
    assert_eq!(value(&rows, &DANE_VALID, &[t, two]), Some(0.0));
    let mismatch = [t, two, ("finding", "dane_mismatch")];
    assert_eq!(value(&rows, &FINDING, &mismatch), Some(1.0));
    // Healthy, both would be 1: 44 series (the mismatch's finding is the 45th).
    assert_eq!(rows.len(), 45, "{rows:#?}");
}

#[test]
fn each_answer_has_its_state_and_the_target_the_first_expiry() {
    let mut one = healthy_server("xmpp1.example.com", 10);
    one.dnssec = secure(1_850_000_000);
    let mut two = healthy_server("xmpp2.example.com", 20);
    two.dnssec = secure(1_950_000_000);
    let mut healthy = report(vec![one, two.clone()]);
    healthy.srv_dnssec = secure(1_900_000_000);
    let state = TargetState::of(target()).after(healthy.clone(), false);
    let rows = series(&state);
    assert_eq!(rows.len(), 42, "within 45 series: {rows:#?}");
    let t = ("target", "cms-london");
    for server in ["", "xmpp1.example.com:5223", "xmpp2.example.com:5223"] {
        let labels = [t, ("server", server), ("state", "secure")];
        assert_eq!(value(&rows, &DNSSEC, &labels), Some(1.0), "{server}");
    }
    assert_eq!(value(&rows, &DNSSEC_EXPIRY, &[t]), Some(1.85e9));

    // One server's answer insecure, the other's bogus: no secure answer of a server left, the
    // SRV answer's expiry is the first.
    let mut insecure = healthy_server("xmpp1.example.com", 10);
    insecure.dnssec = Some(Dnssec {
        state: DnssecState::Insecure,
        expires: None,
    });
    two.dnssec = Some(Dnssec::BOGUS);
    let mut mixed = report(vec![insecure, two]);
    mixed.srv_dnssec = healthy.srv_dnssec;
    let rows = series(&TargetState::of(target()).after(mixed, false));
    let state_of = |server| {
        ["secure", "insecure", "bogus"]
            .into_iter()
            .find(|s| value(&rows, &DNSSEC, &[t, ("server", server), ("state", s)]).is_some())
    };
    assert_eq!(state_of("xmpp1.example.com:5223"), Some("insecure"));
    assert_eq!(state_of("xmpp2.example.com:5223"), Some("bogus"));
    assert_eq!(value(&rows, &DNSSEC_EXPIRY, &[t]), Some(1.9e9));

    // Without validation, none of it.
    let rows = series(&TargetState::of(target()).after(report(vec![]), false));
    assert_eq!(value(&rows, &DNSSEC_EXPIRY, &[t]), None);
    assert!(!rows.iter().any(|(name, _, _)| name == DNSSEC.name));
}
