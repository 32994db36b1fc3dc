//! The report for scripts (`probe --output json`): the record itself, with the target's
//! settings and each failure explained.

use super::*;

/// The JSON's layout version: 2 named step failures `failures` and certificate/TLS findings
/// `findings` (see docs/metrics.md, "JSON report").
pub const SCHEMA: u32 = 2;

/// The report for scripts (`--output json`): the record itself, with the target's settings and
/// each failure and finding explained.
#[derive(Serialize)]
pub struct Diagnosis<'a> {
    schema: u32,
    protocol: &'static str,
    domain: &'a str,
    component: &'a str,
    /// When the configured client certificate expires (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    client_cert_not_after: Option<i64>,
    #[serde(flatten)]
    report: &'a TargetReport,
    /// The watch's latest login and pings, when the target has a watch.
    #[serde(skip_serializing_if = "Option::is_none")]
    watch: Option<&'a WatchReport>,
    /// The steps that failed, with what they mean and what to check.
    failures: Vec<FailureJson<'a>>,
    /// What is worth fixing without failing a step (`cms_xmpp_finding_info`).
    findings: Vec<FindingJson<'a>>,
    /// The client path's failures, when the target has a watch.
    #[serde(skip_serializing_if = "Option::is_none")]
    watch_failures: Option<WatchFailures<'a>>,
    /// A configured target's kept watch session, once one was opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    watch_session: Option<SessionJson>,
}

#[derive(Serialize)]
struct SessionJson {
    /// Sessions opened since the exporter started.
    opened: u64,
    /// When the current one was opened (Unix seconds); absent while there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<f64>,
}

#[derive(Serialize)]
struct WatchFailures<'a> {
    login: Vec<FailureJson<'a>>,
    components: Vec<ComponentFailure<'a>>,
}

#[derive(Serialize)]
struct ComponentFailure<'a> {
    component: &'a str,
    reason: Reason,
    description: &'static str,
    detail: &'a str,
    hint: String,
}

#[derive(Serialize)]
struct FindingJson<'a> {
    server: &'a Endpoint,
    kind: FindingKind,
    detail: &'a str,
    hint: &'static str,
    /// When the run that saw what the finding judges started (Unix seconds): this run's, or
    /// an earlier one's when this run did not get that far.
    seen: f64,
}

#[derive(Serialize)]
struct FailureJson<'a> {
    server: Option<&'a Endpoint>,
    step: Step,
    reason: Reason,
    description: &'static str,
    detail: &'a str,
    hint: String,
}

impl<'a> FailureJson<'a> {
    fn new(server: Option<&'a Server>, step: Step, failure: &'a Failure, hint: String) -> Self {
        FailureJson {
            server: server.map(|s| &s.endpoint),
            step,
            reason: failure.reason,
            description: describe(failure.reason),
            detail: &failure.detail,
            hint,
        }
    }
}

impl<'a> Diagnosis<'a> {
    /// The record's latest report, explained; `None` before the first run finished.
    pub fn new(record: &'a TargetState) -> Option<Diagnosis<'a>> {
        let report = record.latest.as_deref()?;
        let target = &*record.subject;
        let failures = report
            .failures()
            .map(|(server, step, failure)| {
                let hint = hint(step, failure.reason, target, server);
                FailureJson::new(server, step, failure, hint)
            })
            .collect();
        let watch_failures =
            record
                .watch
                .latest
                .as_ref()
                .zip(target.watch.as_ref())
                .map(|(watch, config)| WatchFailures {
                    login: watch
                        .failures()
                        .map(|(server, step, failure)| {
                            let hint = watch_hint(step, failure.reason, config, server);
                            FailureJson::new(server, step, failure, hint)
                        })
                        .collect(),
                    components: watch
                        .pings
                        .iter()
                        .filter_map(|ping| {
                            let failure = ping.result.as_ref().err()?;
                            Some(ComponentFailure {
                                component: &ping.component,
                                reason: failure.reason,
                                description: describe(failure.reason),
                                detail: &failure.detail,
                                hint: ping_hint(failure.reason, &ping.component),
                            })
                        })
                        .collect(),
                });
        let findings = record
            .findings
            .iter()
            .map(|found| FindingJson {
                server: &found.server,
                kind: found.finding.kind,
                detail: &found.finding.detail,
                hint: finding_hint(found.finding.kind),
                seen: unix_seconds(found.seen),
            })
            .collect();
        Some(Diagnosis {
            schema: SCHEMA,
            protocol: target.protocol.as_str(),
            domain: &target.domain,
            component: &target.component,
            client_cert_not_after: target.client_cert_not_after,
            report,
            watch: record.watch.latest.as_deref(),
            failures,
            findings,
            watch_failures,
            watch_session: record.watch.session.kept().then(|| SessionJson {
                opened: record.watch.session.opened,
                since: record.watch.session.since.map(unix_seconds),
            }),
        })
    }
}
