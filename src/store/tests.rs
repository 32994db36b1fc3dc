//! Tests of `store`: recording, servers leaving, findings, reloads.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::Config;
use crate::probe::{Host, Origin, ServerReport};

fn targets(yaml: &str) -> Vec<Arc<Target>> {
    let config = Config::parse(&format!("targets:\n{yaml}"), Path::new("test.yaml"));
    config.unwrap().targets
}

/// Targets with the subjects their probes would name them by.
fn named(targets: &[Arc<Target>]) -> Vec<(Arc<Target>, Arc<Subject>)> {
    targets
        .iter()
        .map(|t| (t.clone(), Arc::new(Subject::of(t))))
        .collect()
}

fn target(name: &str, interval: &str) -> String {
    format!("  - name: {name}\n    domain: example.com\n    component: probe-{name}.example.com\n    secret: s\n    interval: {interval}\n")
}

fn step(step: Step, failure: Option<Reason>) -> StepRecord {
    StepRecord {
        step,
        duration: Duration::from_millis(1),
        result: failure.map_or(Ok(()), |reason| Err(Failure::new(reason, "test"))),
    }
}

/// A server that resolved, and connected unless `refused`.
fn server(host: &str, refused: bool) -> ServerReport {
    let origin = Origin::Srv {
        priority: 10,
        weight: 0,
        preferred: true,
    };
    let mut report = ServerReport::new(Server::new(Host::Name(host.into()), 5223, origin));
    report.steps = vec![
        step(Step::Resolve, None),
        step(Step::Connect, refused.then_some(Reason::Refused)),
    ];
    report
}

/// A server that completed TLS and presented a leaf of `issuer` with these findings.
fn presenting(host: &str, issuer: &str, findings: &[FindingKind]) -> ServerReport {
    let mut report = server(host, false);
    report.steps.push(step(Step::Tls, None));
    report.cert = Some(Arc::new(CertFacts {
        subject: format!("CN={host}"),
        issuer: format!("CN={issuer}"),
        serial: "0a".into(),
        sha256: format!("{host} from {issuer}"),
        sans: vec![host.into()],
        not_before: 1_700_000_000,
        not_after: 1_800_000_000,
        trusted: true,
        coverage: Vec::new(),
        chain: Vec::new(),
        findings: findings
            .iter()
            .map(|kind| Finding {
                kind: *kind,
                detail: "test".into(),
            })
            .collect(),
        ocsp: None,
    }));
    report
}

fn report(srv_failure: Option<Reason>, servers: Vec<ServerReport>) -> Arc<TargetReport> {
    report_at(1_750_000_000, srv_failure, servers)
}

fn report_at(
    started: u64,
    srv_failure: Option<Reason>,
    servers: Vec<ServerReport>,
) -> Arc<TargetReport> {
    Arc::new(TargetReport {
        subject: Arc::new(Subject::of(&targets(&target("a", "30s"))[0])),
        started: SystemTime::UNIX_EPOCH + Duration::from_secs(started),
        duration: Duration::from_millis(5),
        srv: Some(step(Step::Srv, srv_failure)),
        srv_dnssec: None,
        srv_skipped: 0,
        servers,
        expected_steps: vec![Step::Resolve, Step::Connect],
        watch: None,
    })
}

fn endpoint(host: &str) -> Endpoint {
    Endpoint {
        host: Host::Name(host.into()),
        port: 5223,
    }
}

fn state(store: &Store) -> Arc<TargetState> {
    store.snapshot().targets[0].clone()
}

#[test]
fn a_record_counts_remembers_and_forgets_only_servers_that_left_the_answer() {
    let store = Store::default();
    let a = targets(&target("a", "30s")).remove(0);
    store.set_targets(&named(std::slice::from_ref(&a)), false);
    assert!(!store.ready(), "no probe yet");

    let refused = (Some(endpoint("xmpp2")), Step::Connect, Reason::Refused);
    for cycle in 1..=2 {
        let both = report(None, vec![server("xmpp1", false), server("xmpp2", true)]);
        let recorded = store.record(&a, both).expect("a is configured");
        assert_eq!(recorded.previous.is_some(), cycle == 2);
        assert_eq!(state(&store).failures.get(&refused), Some(&cycle));
        // The first report is news everywhere; the same again, nowhere.
        let news = match cycle {
            1 => vec![None, Some(endpoint("xmpp1")), Some(endpoint("xmpp2"))],
            _ => Vec::new(),
        };
        assert_eq!(recorded.state.changed.places, news);
    }
    let now = state(&store);
    assert!(store.ready());
    assert_eq!(now.probes, 2);
    assert_eq!(now.history.len(), 2);
    assert!(now.history[0].success, "xmpp1 completed every step");
    assert_eq!(
        now.history[0].failure,
        Some((Step::Connect, Reason::Refused))
    );
    assert!(now.seen(&endpoint("xmpp1")).unwrap().last_success.is_some());
    assert!(now.seen(&endpoint("xmpp2")).unwrap().last_success.is_none());

    assert!(now.left.is_empty());

    // xmpp2 leaves the SRV answer: its counters and what was seen of it go.
    store.record(&a, report(None, vec![server("xmpp1", false)]));
    let now = state(&store);
    assert!(now.failures.is_empty(), "{:?}", now.failures);
    assert!(now.seen(&endpoint("xmpp2")).is_none());
    let left: Vec<&Endpoint> = now.left.iter().map(|s| &s.endpoint).collect();
    assert_eq!(left, [&endpoint("xmpp2")]);
    assert!(now.changed.places.is_empty(), "xmpp1 is as it was");

    // A failed lookup: nobody left, xmpp1 is remembered; the lookup's failure counts.
    store.record(&a, report(Some(Reason::Nxdomain), Vec::new()));
    let now = state(&store);
    assert!(
        now.left.is_empty(),
        "a failed lookup says nothing of who left"
    );
    assert_eq!(now.changed.places, [None], "the lookup now fails");
    assert!(now.seen(&endpoint("xmpp1")).is_some());
    let lookup = (None, Step::Srv, Reason::Nxdomain);
    assert_eq!(now.failures.get(&lookup), Some(&1));
    assert!(!now.history[0].success);
    assert_eq!(now.probes, 4);

    // Without an SRV step (a configured server), nobody "leaves the SRV answer".
    store.record(&a, report(None, vec![server("xmpp1", false)]));
    let mut fixed = report(None, Vec::new());
    Arc::get_mut(&mut fixed).unwrap().srv = None;
    store.record(&a, fixed);
    assert!(state(&store).left.is_empty());
}

#[test]
fn findings_judge_each_servers_last_certificate_and_say_which_run_saw_it() {
    let store = Store::default();
    let a = targets(&target("a", "30s")).remove(0);
    store.set_targets(&named(std::slice::from_ref(&a)), false);
    let at = |seconds: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
    let kinds = |state: &TargetState| -> Vec<(String, FindingKind, SystemTime)> {
        let found = state.findings.iter();
        found
            .map(|f| (f.server.to_string(), f.finding.kind, f.seen))
            .collect()
    };

    // xmpp1 sends its chain out of order; xmpp2's leaf comes from another CA.
    let first = vec![
        presenting("xmpp1", "CA one", &[FindingKind::ChainOrder]),
        presenting("xmpp2", "CA two", &[]),
    ];
    store.record(&a, report_at(100, None, first));
    let expected = vec![
        ("xmpp1:5223".to_owned(), FindingKind::ChainOrder, at(100)),
        ("xmpp2:5223".to_owned(), FindingKind::LeafDiffers, at(100)),
    ];
    assert_eq!(kinds(&state(&store)), expected);

    // xmpp1 refuses connections: its chain is still the one it serves, judged as the run
    // at 100 saw it; xmpp2 is judged on this run's certificate, now in step.
    let second = vec![server("xmpp1", true), presenting("xmpp2", "CA one", &[])];
    store.record(&a, report_at(200, None, second));
    let expected = vec![("xmpp1:5223".to_owned(), FindingKind::ChainOrder, at(100))];
    assert_eq!(kinds(&state(&store)), expected);

    // xmpp2 now sends a certificate that does not parse: what it sent before is not what it
    // serves, and nothing is judged of it.
    let mut garbled = server("xmpp2", false);
    garbled.steps.push(step(Step::Tls, None));
    garbled
        .steps
        .push(step(Step::Cert, Some(Reason::CertUntrusted)));
    let third = vec![server("xmpp1", true), garbled];
    store.record(&a, report_at(250, None, third));
    let now = state(&store);
    assert!(now.seen(&endpoint("xmpp2")).unwrap().cert.is_none());
    let expected = vec![("xmpp1:5223".to_owned(), FindingKind::ChainOrder, at(100))];
    assert_eq!(kinds(&now), expected);

    // xmpp1 leaves the answer: nothing is judged of it any more.
    store.record(
        &a,
        report_at(300, None, vec![presenting("xmpp2", "CA one", &[])]),
    );
    assert_eq!(kinds(&state(&store)), Vec::new());
}

#[test]
fn a_reload_keeps_unchanged_targets_and_drops_reports_of_replaced_ones() {
    let store = Store::default();
    let first = targets(&(target("a", "30s") + &target("b", "30s") + &target("c", "30s")));
    store.set_targets(&named(&first), false);
    for t in &first {
        store.record(t, report(None, vec![server("xmpp1", false)]));
    }
    let second = targets(&(target("a", "30s") + &target("b", "45s") + &target("d", "30s")));
    let changes = store.set_targets(&named(&second), false);
    assert_eq!(
        changes,
        TargetChanges {
            kept: vec!["a".into()],
            changed: vec!["b".into()],
            added: vec!["d".into()],
            removed: vec!["c".into()],
        }
    );
    let snapshot = store.snapshot();
    let probes: Vec<(&str, u64)> = snapshot
        .targets
        .iter()
        .map(|s| (s.target.name.as_str(), s.probes))
        .collect();
    assert_eq!(probes, [("a", 1), ("b", 0), ("d", 0)]);
    assert!(Arc::ptr_eq(&snapshot.targets[0].target, &second[0]));
    // A run of the old `a` that finishes after the reload is not recorded.
    assert!(store.record(&first[0], report(None, Vec::new())).is_none());
    assert_eq!(state(&store).probes, 1);
}
