//! The JSON report's layout is docs/metrics.md's: every field a report writes is in the doc's
//! field table, and every field of the table is written by the report below, which fills
//! every optional field and every shape a field takes.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;

use super::json::Diagnosis;
use crate::config::ClientTlsMode;
use crate::fixtures::*;
use crate::probe::dns::dane::{TlsaRecord, TlsaVerdict};
use crate::probe::{
    ClientCertVerdict, DaneFacts, Dnssec, DnssecState, Failure, Finding, FindingKind, LegacyTls,
    OcspStatus, Origin, Ping, Reason, Staple, Stapled, Step, StepRecord, Weakness,
};
use crate::store::TargetState;

const DOC: &str = include_str!("../../docs/metrics.md");

fn secure() -> Option<Dnssec> {
    Some(Dnssec {
        state: DnssecState::Secure,
        expires: Some(1_800_000_000),
    })
}

fn failed(step: Step, reason: Reason) -> StepRecord {
    StepRecord {
        result: Err(Failure::new(reason, "what went wrong")),
        ..ok(step, 900)
    }
}

/// One record of each verdict.
fn dane() -> DaneFacts {
    let record = |usage, length| TlsaRecord {
        usage,
        selector: 1,
        matching: 1,
        data: vec![0xab; length],
    };
    DaneFacts {
        name: "_5223._tcp.xmpp1.example.com.".into(),
        records: vec![
            (record(3, 32), TlsaVerdict::Matched(0)),
            (record(3, 32), TlsaVerdict::NotMatched),
            (record(2, 32), TlsaVerdict::Unchained(1)),
            (
                record(9, 100),
                TlsaVerdict::Unusable("an unknown usage".into()),
            ),
        ],
    }
}

/// A target with a watch and a client certificate, whose SRV answer holds a server with
/// every fact (and one of each shape: a revoked staple, a weak key) and one that refuses
/// connections (an invalid staple seen before, a SHA-1 signature); the login works on one
/// server and not on another, one component answers and one does not.
fn full_report(dir: &std::path::Path) -> TargetState {
    let mut one = healthy_server("xmpp1.example.com", 10);
    one.dnssec = secure();
    one.dane = Some(dane());
    one.legacy_tls = Some(LegacyTls::Accepted(0x0302));
    one.client_cert = Some(ClientCertVerdict::SessionTicket);
    let mut cert = (**one.cert.as_ref().unwrap()).clone();
    cert.ocsp = Some(Staple::Response(Stapled {
        status: OcspStatus::Revoked { at: 1_760_000_000 },
        this_update: 1_760_000_000,
        next_update: Some(1_770_000_000),
    }));
    cert.chain[1].weakness = Some(Weakness::RsaKey(1024));
    cert.findings = vec![Finding {
        kind: FindingKind::ChainOrder,
        detail: "out of order".into(),
    }];
    one.cert = Some(Arc::new(cert));

    let mut two = healthy_server("xmpp2.example.com", 20);
    two.server.origin = Origin::Static;
    let mut cert = (**two.cert.as_ref().unwrap()).clone();
    cert.ocsp = Some(Staple::Invalid("not about this certificate".into()));
    cert.chain[0].weakness = Some(Weakness::Sha1Signature);
    two.cert = Some(Arc::new(cert));
    two.steps = vec![
        ok(Step::Resolve, 500),
        failed(Step::Connect, Reason::Refused),
    ];

    let mut report = report(vec![one, two]);
    report.srv_dnssec = secure();
    let expected = crate::probe::client_flow::expected_steps(ClientTlsMode::Starttls);
    let mut refusing = login("xmpp2.example.com", &[]);
    refusing.steps = vec![failed(Step::Connect, Reason::Refused)];
    report.watch = Some(watch_report(
        vec![refusing, login("xmpp1.example.com", &expected)],
        vec![
            Ping {
                component: "cb1.example.com".into(),
                result: Ok(std::time::Duration::from_millis(3)),
            },
            Ping {
                component: "cb2.example.com".into(),
                result: Err(Failure::new(Reason::ComponentUnavailable, "no route")),
            },
        ],
    ));
    let mut state = TargetState::of(watching(dir)).after(report, false);
    state.watch.session = crate::store::WatchSession {
        opened: 2,
        since: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_780_000_000)),
    };
    let mut subject = (*state.subject).clone();
    subject.client_cert_not_after = Some(1_790_000_000);
    state.subject = Arc::new(subject);
    state
}

/// Parts that repeat a layout the table documents once: the login's servers are laid out as
/// the component flow's, the SRV steps as a server's steps.
const SAME_LAYOUT: [(&str, &str); 3] = [
    ("watch.servers[].", "servers[]."),
    ("watch.srv.", "servers[].steps[]."),
    ("srv.", "servers[].steps[]."),
];

/// Every field of `value` as a path: `a.b` for a field of an object, `a[]` for the items
/// of an array.
fn paths(value: &Value, prefix: &str, found: &mut BTreeSet<String>) {
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                let path = match prefix {
                    "" => name.clone(),
                    _ => format!("{prefix}.{name}"),
                };
                let documented_as = SAME_LAYOUT
                    .iter()
                    .find_map(|(alias, canonical)| {
                        Some(format!("{canonical}{}", path.strip_prefix(alias)?))
                    })
                    .unwrap_or_else(|| path.clone());
                found.insert(documented_as);
                paths(field, &path, found);
            }
        }
        Value::Array(items) => {
            for item in items {
                paths(item, &format!("{prefix}[]"), found);
            }
        }
        _ => {}
    }
}

/// The first column of the doc's field table.
fn documented() -> BTreeSet<String> {
    let start = DOC
        .find("<!-- json-fields: start -->")
        .expect("docs/metrics.md has a JSON field table");
    let end = DOC.find("<!-- json-fields: end -->").expect("its end");
    DOC[start..end]
        .lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| line.split('`').nth(1).map(str::to_owned))
        .collect()
}

#[test]
fn every_field_the_json_report_writes_is_documented_and_every_documented_one_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let state = full_report(dir.path());
    let diagnosis = Diagnosis::new(&state).expect("a report");
    let json = serde_json::to_value(&diagnosis).unwrap();
    let mut written = BTreeSet::new();
    paths(&json, "", &mut written);
    let documented = documented();
    let undocumented: Vec<_> = written.difference(&documented).collect();
    let unwritten: Vec<_> = documented.difference(&written).collect();
    assert!(
        undocumented.is_empty() && unwritten.is_empty(),
        "written, not in docs/metrics.md's JSON field table: {undocumented:#?}\n\
         in the table, not written: {unwritten:#?}"
    );
    // TLSA records are written whole (the views cut long data, the JSON never does).
    let record = &json["servers"][0]["dane"]["records"][3]["record"];
    assert_eq!(record, &Value::from(format!("9 1 1 {}", "ab".repeat(100))));
}
