//! The series of a record, as text and as families: checked against the `prometheus` encoder.

use std::time::{Duration, SystemTime};

use super::*;
use crate::config::ClientTlsMode;
use crate::fixtures::*;
use crate::probe::{Failure, Ping, Reason, ServerReport, Step, StepRecord};

/// A series as (name, labels, value).
type Row = (String, Vec<(String, String)>, f64);

/// The families of `state` as rows.
fn series(state: &TargetState) -> Vec<Row> {
    let snapshot = Snapshot {
        targets: vec![Arc::new(state.clone())],
        ..Snapshot::default()
    };
    let exposition = Exposition::new(snapshot);
    assert_eq!(
        exposition.desc().len(),
        ALL.len(),
        "every metric is described"
    );
    exposition
        .collect()
        .into_iter()
        .filter(|f| {
            !ALL.iter()
                .any(|d| matches!(d.source, Source::Exporter(_)) && d.name == f.name())
        })
        .flat_map(|family| {
            let kind = family.get_field_type();
            let name = family.name().to_owned();
            family
                .get_metric()
                .iter()
                .map(move |m| {
                    let labels = m
                        .get_label()
                        .iter()
                        .map(|l| (l.name().to_owned(), l.value().to_owned()))
                        .collect();
                    let value = match kind {
                        MetricType::COUNTER => m.get_counter().get_value(),
                        _ => m.get_gauge().get_value(),
                    };
                    (name.clone(), labels, value)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn value(rows: &[Row], def: &MetricDef, want: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = rows
        .iter()
        .filter(|(name, labels, _)| {
            name == def.name
                && want
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| *v)
        .collect();
    assert!(found.len() <= 1, "{} {want:?} is ambiguous", def.name);
    found.first().copied()
}

#[test]
fn a_healthy_report_becomes_the_default_series() {
    let state = TargetState::of(target()).after(
        report(vec![
            healthy_server("xmpp1.example.com", 10),
            healthy_server("xmpp2.example.com", 20),
        ]),
        false,
    );
    let rows = series(&state);
    assert_eq!(rows.len(), 38, "{rows:#?}");
    let t = ("target", "cms-london");
    let one = ("server", "xmpp1.example.com:5223");
    assert_eq!(value(&rows, &PROBE_SUCCESS, &[t]), Some(1.0));
    assert_eq!(value(&rows, &PROBES_TOTAL, &[t]), Some(1.0));
    assert_eq!(value(&rows, &SRV_RECORDS, &[t]), Some(2.0));
    assert_eq!(value(&rows, &PROBE_DURATION, &[t]), Some(0.012));
    assert_eq!(value(&rows, &LAST_PROBE, &[t]), Some(1_750_000_000.012));
    assert_eq!(
        value(
            &rows,
            &STEP_LAST_DURATION,
            &[("server", ""), ("step", "srv")]
        ),
        Some(0.0008)
    );
    assert_eq!(
        value(&rows, &STEP_LAST_DURATION, &[one, ("step", "tls")]),
        Some(0.0015)
    );
    assert_eq!(
        value(&rows, &STEP_LAST_DURATION, &[one, ("step", "cert")]),
        None
    );
    assert_eq!(value(&rows, &SERVER_UP, &[one]), Some(1.0));
    assert_eq!(value(&rows, &LAST_SUCCESS, &[one]), Some(1_750_000_000.012));
    let info = [
        one,
        ("source", "srv"),
        ("priority", "10"),
        ("weight", "50"),
        ("preferred", "true"),
        ("address", "192.0.2.1:5223"),
    ];
    assert_eq!(value(&rows, &SERVER_INFO, &info), Some(1.0));
    assert_eq!(value(&rows, &CERT_NOT_AFTER, &[one]), Some(1.8e9));
    // The intermediate expires first.
    let (earliest, position) = (&CERT_CHAIN_NOT_AFTER, ("position", "1"));
    assert_eq!(value(&rows, earliest, &[one, position]), Some(1.79e9));
    assert_eq!(value(&rows, &CERT_TRUSTED, &[one]), Some(1.0));
    assert_eq!(
        value(
            &rows,
            &CERT_SAN_COVERED,
            &[one, ("role", "fqdn"), ("name", "xmpp1.example.com")]
        ),
        Some(1.0)
    );
    let cert = [
        one,
        ("subject", "CN=example.com"),
        ("serial", "0a1b"),
        ("sans", "example.com,xmpp1.example.com"),
    ];
    assert_eq!(value(&rows, &CERT_INFO, &cert), Some(1.0));
    let tls = [
        one,
        ("version", "TLSv1.3"),
        ("cipher", "TLS13_AES_128_GCM_SHA256"),
    ];
    assert_eq!(value(&rows, &TLS_INFO, &tls), Some(1.0));
    assert_eq!(value(&rows, &FAILING_STEP, &[]), None);
    assert_eq!(value(&rows, &FAILURES_TOTAL, &[]), None);
}

/// A server that resolved and refused the connection (3 ms): nothing after.
fn refused_server(host: &str, priority: u16) -> ServerReport {
    let mut down = healthy_server(host, priority);
    down.steps.truncate(1);
    down.steps.push(StepRecord {
        step: Step::Connect,
        duration: Duration::from_millis(3),
        result: Err(Failure::new(Reason::Refused, "refused")),
    });
    down.address = None;
    down.tls = None;
    down.cert = None;
    down
}

#[test]
fn failures_are_counted_facts_remembered_and_a_vanished_server_forgotten() {
    let first = report(vec![
        healthy_server("xmpp1.example.com", 10),
        healthy_server("xmpp2.example.com", 20),
    ]);
    let down = refused_server("xmpp2.example.com", 20);
    let second_again = || report(vec![healthy_server("xmpp1.example.com", 10), down.clone()]);
    let second = second_again();
    let state = TargetState::of(target())
        .after(first, false)
        .after(second, false);
    let rows = series(&state);
    let two = ("server", "xmpp2.example.com:5223");
    assert_eq!(value(&rows, &PROBE_SUCCESS, &[]), Some(1.0));
    assert_eq!(value(&rows, &SERVER_UP, &[two]), Some(0.0));
    assert_eq!(
        value(
            &rows,
            &FAILING_STEP,
            &[two, ("step", "connect"), ("reason", "refused")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &rows,
            &FAILURES_TOTAL,
            &[two, ("step", "connect"), ("reason", "refused")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&rows, &STEP_LAST_DURATION, &[two, ("step", "connect")]),
        Some(0.003)
    );
    assert_eq!(
        value(&rows, &STEP_LAST_DURATION, &[two, ("step", "tls")]),
        None,
        "not reached"
    );
    // What the last probe that got that far saw.
    assert_eq!(value(&rows, &CERT_NOT_AFTER, &[two]), Some(1.8e9));
    assert_eq!(
        value(&rows, &SERVER_INFO, &[two, ("address", "192.0.2.1:5223")]),
        Some(1.0)
    );
    assert_eq!(value(&rows, &LAST_SUCCESS, &[two]), Some(1_750_000_000.012));

    // A failed lookup: no server series, but counters and facts are kept for when it works.
    let mut lookup_failed = report(Vec::new());
    lookup_failed.srv = Some(StepRecord {
        step: Step::Srv,
        duration: Duration::from_millis(2),
        result: Err(Failure::new(Reason::Servfail, "SERVFAIL")),
    });
    let state = state.after(lookup_failed, false);
    let rows = series(&state);
    assert_eq!(value(&rows, &SERVER_UP, &[two]), None);
    assert_eq!(
        value(&rows, &FAILURES_TOTAL, &[two, ("reason", "refused")]),
        Some(1.0)
    );
    let state = state.after(second_again(), false);
    let rows = series(&state);
    assert_eq!(
        value(&rows, &FAILURES_TOTAL, &[two, ("reason", "refused")]),
        Some(2.0),
        "not reset"
    );
    assert_eq!(
        value(&rows, &CERT_NOT_AFTER, &[two]),
        Some(1.8e9),
        "still remembered"
    );

    // xmpp2 leaves the SRV answer: every series naming it goes, counters too.
    let state = state.after(report(vec![healthy_server("xmpp1.example.com", 10)]), false);
    let rows = series(&state);
    assert!(
        rows.iter()
            .all(|(_, labels, _)| !labels.iter().any(|(_, v)| v == "xmpp2.example.com:5223")),
        "{rows:#?}"
    );
    assert_eq!(value(&rows, &PROBES_TOTAL, &[]), Some(5.0));
    assert_eq!(value(&rows, &SRV_RECORDS, &[]), Some(1.0));
}

#[test]
fn every_view_shows_the_findings_the_record_judged_after_a_connect_failure() {
    let mut out_of_order = healthy_server("xmpp2.example.com", 20);
    let cert = Arc::make_mut(out_of_order.cert.as_mut().unwrap());
    cert.findings.push(crate::probe::Finding {
        kind: crate::probe::FindingKind::ChainOrder,
        detail: "sent out of order".into(),
    });
    let down = refused_server("xmpp2.example.com", 20);
    let mut later = report(vec![healthy_server("xmpp1.example.com", 10), down]);
    later.started += Duration::from_secs(30);
    let state = TargetState::of(target())
        .after(
            report(vec![healthy_server("xmpp1.example.com", 10), out_of_order]),
            false,
        )
        .after(later, false);
    let two = "xmpp2.example.com:5223";

    let rows = series(&state);
    let found = [("server", two), ("finding", "chain_order")];
    assert_eq!(value(&rows, &FINDING, &found), Some(1.0));
    assert_eq!(rows.iter().filter(|(n, ..)| n == FINDING.name).count(), 1);

    let diagnosis = crate::diagnosis::Diagnosis::new(&state).expect("a report");
    let json = serde_json::to_value(&diagnosis).unwrap();
    let expected = serde_json::json!([{
        "server": two,
        "kind": "chain_order",
        "detail": "sent out of order",
        "hint": crate::diagnosis::finding_hint(crate::probe::FindingKind::ChainOrder),
        "seen": 1_750_000_000.0,
    }]);
    assert_eq!(json["findings"], expected);

    let text = crate::diagnosis::render_text(&state, crate::diagnosis::Style::new(false));
    assert!(
        text.contains(&format!("finding chain_order on {two}: sent out of order\n    (as the run at 2025-06-15T15:06:40Z saw it")),
        "{text}"
    );

    let page = crate::page::render(&Snapshot {
        targets: vec![Arc::new(state)],
        ..Snapshot::default()
    });
    assert_eq!(page.matches("data-finding=").count(), 1, "{page}");
    assert!(
        page.contains(
            "data-finding=\"chain_order\"><strong>chain_order on xmpp2.example.com:5223</strong>"
        ),
        "{page}"
    );
}

#[test]
fn a_watch_exports_each_component_and_the_login() {
    let dir = tempfile::tempdir().unwrap();
    let expected = crate::probe::client_flow::expected_steps(ClientTlsMode::Starttls);
    let mut healthy = report(vec![healthy_server("xmpp1.example.com", 10)]);
    healthy.watch = Some(watch_report(
        vec![login("xmpp1.example.com", &expected)],
        vec![
            Ping {
                component: "cb1.example.com".into(),
                result: Ok(Duration::from_micros(1200)),
            },
            Ping {
                component: "cb2.example.com".into(),
                result: Err(Failure::new(Reason::ComponentUnavailable, "gone")),
            },
        ],
    ));
    let state = TargetState::of(watching(dir.path())).after(healthy, false);
    let rows = series(&state);
    let (one, two) = (
        ("component", "cb1.example.com"),
        ("component", "cb2.example.com"),
    );
    assert_eq!(value(&rows, &WATCH_SUCCESS, &[]), Some(1.0));
    assert_eq!(value(&rows, &COMPONENT_REGISTERED, &[one]), Some(1.0));
    assert_eq!(value(&rows, &COMPONENT_REGISTERED, &[two]), Some(0.0));
    assert_eq!(value(&rows, &COMPONENT_PING, &[one]), Some(0.0012));
    assert_eq!(value(&rows, &COMPONENT_PING, &[two]), None);
    let unavailable = [two, ("reason", "component_unavailable")];
    assert_eq!(value(&rows, &COMPONENT_FAILING, &unavailable), Some(1.0));
    assert_eq!(value(&rows, &COMPONENT_FAILING, &[one]), None);
    let server = ("server", "xmpp1.example.com:5222");
    assert_eq!(
        value(
            &rows,
            &WATCH_STEP_LAST_DURATION,
            &[server, ("step", "sasl")]
        ),
        Some(0.0007)
    );
    assert_eq!(
        value(
            &rows,
            &WATCH_STEP_LAST_DURATION,
            &[("server", ""), ("step", "srv")]
        ),
        Some(0.0003)
    );
    let watch_rows = rows.iter().filter(|(name, ..)| {
        name.starts_with("cms_xmpp_watch") || name.starts_with("cms_xmpp_component")
    });
    // success, srv and six timed steps (cert is not), two components, one round trip and
    // one failing ping.
    assert_eq!(watch_rows.count(), 12, "{rows:#?}");

    // The password is wrong: nothing was pinged, so nothing is registered.
    let mut refused = report(vec![healthy_server("xmpp1.example.com", 10)]);
    let mut server = login("xmpp1.example.com", &expected[..expected.len() - 1]);
    server.steps.last_mut().unwrap().result =
        Err(Failure::new(Reason::NotAuthorized, "not-authorized"));
    refused.watch = Some(watch_report(vec![server], Vec::new()));
    let rows = series(&state.after(refused, false));
    let sasl = [
        ("server", "xmpp1.example.com:5222"),
        ("step", "sasl"),
        ("reason", "not_authorized"),
    ];
    assert_eq!(value(&rows, &WATCH_SUCCESS, &[]), Some(0.0));
    assert_eq!(value(&rows, &WATCH_FAILING_STEP, &sasl), Some(1.0));
    assert_eq!(value(&rows, &WATCH_FAILURES_TOTAL, &sasl), Some(1.0));
    assert_eq!(value(&rows, &COMPONENT_REGISTERED, &[one]), Some(0.0));
    assert_eq!(value(&rows, &COMPONENT_FAILING, &[]), None);
    assert_eq!(
        value(&rows, &PROBE_SUCCESS, &[]),
        Some(1.0),
        "the component flow is apart"
    );
    assert_eq!(value(&rows, &FAILURES_TOTAL, &[]), None);
}

#[test]
fn a_failed_srv_lookup_is_a_target_level_failure() {
    let mut failed = report(Vec::new());
    failed.srv = Some(StepRecord {
        step: Step::Srv,
        duration: Duration::from_millis(2),
        result: Err(Failure::new(Reason::Nxdomain, "NXDOMAIN")),
    });
    let rows = series(&TargetState::of(target()).after(failed, false));
    let srv = [("server", ""), ("step", "srv"), ("reason", "nxdomain")];
    assert_eq!(value(&rows, &FAILING_STEP, &srv), Some(1.0));
    assert_eq!(value(&rows, &FAILURES_TOTAL, &srv), Some(1.0));
    assert_eq!(value(&rows, &SRV_RECORDS, &[]), Some(0.0));
    assert_eq!(value(&rows, &PROBE_SUCCESS, &[]), Some(0.0));
    assert_eq!(value(&rows, &SERVER_UP, &[]), None);
}

mod dnssec;
mod text;
