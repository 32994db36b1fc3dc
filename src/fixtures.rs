//! Reports and targets for the unit tests of the views (series, JSON): a healthy server with
//! its certificate, a report of servers, a watch and its login.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::{CipherSuite, ProtocolVersion};

use crate::config::{ClientTlsMode, Config, Target};
use crate::probe::{
    CertFacts, Host, NameCoverage, NameRole, Origin, Ping, Server, ServerReport, Step, StepRecord,
    TargetReport, TlsFacts, WatchReport,
};

pub(crate) fn target() -> Arc<Target> {
    named("cms-london")
}

pub(crate) fn named(name: &str) -> Arc<Target> {
    let yaml = format!("targets:\n  - name: {name}\n    domain: example.com\n    component: probe.example.com\n    secret: s\n");
    Config::parse(&yaml, Path::new("test.yaml"))
        .unwrap()
        .targets[0]
        .clone()
}

/// The per-server steps of an XMPP target with TLS: all but `srv` and a TLS link's
/// `client_cert`.
pub(crate) fn xmpp_steps() -> Vec<Step> {
    Step::COMPONENT[1..]
        .iter()
        .copied()
        .filter(|step| *step != Step::ClientCert)
        .collect()
}

pub(crate) fn ok(step: Step, micros: u64) -> StepRecord {
    StepRecord {
        step,
        duration: Duration::from_micros(micros),
        result: Ok(()),
    }
}

pub(crate) fn healthy_server(host: &str, priority: u16) -> ServerReport {
    let server = Server::new(
        Host::Name(host.into()),
        5223,
        Origin::Srv {
            priority,
            weight: 50,
            preferred: priority == 10,
        },
    );
    ServerReport {
        server,
        steps: xmpp_steps()
            .into_iter()
            .map(|step| ok(step, 1500))
            .collect(),
        addresses: vec!["192.0.2.1".parse().unwrap()],
        dnssec: None,
        tlsa: None,
        dane: None,
        address: Some("192.0.2.1:5223".parse().unwrap()),
        client_cert: None,
        tls: Some(TlsFacts {
            version: ProtocolVersion::TLSv1_3,
            cipher: CipherSuite::TLS13_AES_128_GCM_SHA256,
        }),
        cert: Some(Arc::new(CertFacts {
            subject: "CN=example.com".into(),
            issuer: "CN=Example CA".into(),
            serial: "0a1b".into(),
            sha256: "00".repeat(32),
            sans: vec!["example.com".into(), host.into()],
            not_before: 1_700_000_000,
            not_after: 1_800_000_000,
            trusted: true,
            coverage: vec![
                NameCoverage {
                    role: NameRole::Domain,
                    name: "example.com".into(),
                    covered: true,
                },
                NameCoverage {
                    role: NameRole::Fqdn,
                    name: host.into(),
                    covered: true,
                },
            ],
            chain: [(0, 1_800_000_000), (1, 1_790_000_000)]
                .map(|(position, not_after)| crate::probe::ChainCert {
                    position,
                    subject: format!("CN=cert {position}"),
                    issuer: "CN=Example CA".into(),
                    serial: "0a1b".into(),
                    sha256: "00".repeat(32),
                    not_before: 1_700_000_000,
                    not_after,
                    key: "EC 256".into(),
                    signature: "ecdsa-with-SHA256".into(),
                    verified: true,
                    sent: true,
                    weakness: None,
                })
                .into(),
            findings: Vec::new(),
            ocsp: None,
        })),
        stream_id: Some("id".into()),
        legacy_tls: None,
    }
}

pub(crate) fn report(servers: Vec<ServerReport>) -> TargetReport {
    TargetReport {
        subject: Arc::new(crate::probe::Subject::of(&target())),
        started: SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000),
        duration: Duration::from_millis(12),
        srv: Some(ok(Step::Srv, 800)),
        srv_dnssec: None,
        srv_skipped: 0,
        servers,
        expected_steps: xmpp_steps(),
        watch: None,
    }
}

/// A target that also watches two Callbridges, and the report of a login.
pub(crate) fn watching(dir: &Path) -> Arc<Target> {
    let password = dir.join("password");
    std::fs::write(&password, "pw").unwrap();
    let yaml = format!(
            "targets:\n  - name: cms-london\n    domain: example.com\n    component: probe.example.com\n    secret: s\n    watch:\n      jid: monitor@example.com\n      password_file: {}\n      components: [cb1.example.com, cb2.example.com]\n",
            password.display()
        );
    Config::parse(&yaml, Path::new("test.yaml"))
        .unwrap()
        .targets[0]
        .clone()
}

pub(crate) fn login(host: &str, steps: &[Step]) -> ServerReport {
    let mut server = healthy_server(host, 10);
    server.server.endpoint.port = 5222;
    server.steps = steps.iter().map(|step| ok(*step, 700)).collect();
    server
}

pub(crate) fn watch_report(servers: Vec<ServerReport>, pings: Vec<Ping>) -> Arc<WatchReport> {
    Arc::new(WatchReport {
        srv: Some(ok(Step::Srv, 300)),
        servers,
        untried: vec![Server::new(
            Host::Name("xmpp2.example.com".into()),
            5222,
            Origin::Srv {
                priority: 20,
                weight: 0,
                preferred: false,
            },
        )],
        pings,
        expected_steps: crate::probe::client_flow::expected_steps(ClientTlsMode::Starttls),
    })
}
