//! The report for scripts (`probe --output json`): the record itself, with the target's
//! settings and each failure explained.

use super::*;

/// The report for scripts (`--output json`): the record itself, with the target's settings and
/// each failure explained.
#[derive(Serialize)]
pub struct Diagnosis<'a> {
    domain: &'a str,
    component: &'a str,
    #[serde(flatten)]
    report: &'a TargetReport,
    findings: Vec<FindingJson<'a>>,
    /// What is worth fixing without failing a step (`cms_xmpp_finding_info`).
    tls_findings: Vec<TlsFindingJson<'a>>,
    /// The client path's failures, when the target has a watch.
    #[serde(skip_serializing_if = "Option::is_none")]
    watch_findings: Option<WatchFindings<'a>>,
}

#[derive(Serialize)]
struct WatchFindings<'a> {
    login: Vec<FindingJson<'a>>,
    components: Vec<ComponentFinding<'a>>,
}

#[derive(Serialize)]
struct ComponentFinding<'a> {
    component: &'a str,
    reason: Reason,
    description: &'static str,
    detail: &'a str,
    hint: String,
}

#[derive(Serialize)]
struct TlsFindingJson<'a> {
    server: &'a Endpoint,
    finding: FindingKind,
    detail: String,
    hint: &'static str,
}

#[derive(Serialize)]
struct FindingJson<'a> {
    server: Option<&'a Endpoint>,
    step: Step,
    reason: Reason,
    description: &'static str,
    detail: &'a str,
    hint: String,
}

impl<'a> FindingJson<'a> {
    fn new(server: Option<&'a Server>, step: Step, failure: &'a Failure, hint: String) -> Self {
        FindingJson {
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
    pub fn new(report: &'a TargetReport) -> Diagnosis<'a> {
        let target = &*report.subject;
        let findings = report
            .failures()
            .map(|(server, step, failure)| {
                let hint = hint(step, failure.reason, target, server);
                FindingJson::new(server, step, failure, hint)
            })
            .collect();
        let watch_findings =
            report
                .watch
                .as_ref()
                .zip(target.watch.as_ref())
                .map(|(watch, config)| WatchFindings {
                    login: watch
                        .failures()
                        .map(|(server, step, failure)| {
                            let hint = watch_hint(step, failure.reason, config, server);
                            FindingJson::new(server, step, failure, hint)
                        })
                        .collect(),
                    components: watch
                        .pings
                        .iter()
                        .filter_map(|ping| {
                            let failure = ping.result.as_ref().err()?;
                            Some(ComponentFinding {
                                component: &ping.component,
                                reason: failure.reason,
                                description: describe(failure.reason),
                                detail: &failure.detail,
                                hint: ping_hint(failure.reason, &ping.component),
                            })
                        })
                        .collect(),
                });
        let tls_findings = report
            .findings()
            .into_iter()
            .map(|(server, finding)| TlsFindingJson {
                server,
                finding: finding.kind,
                detail: finding.detail,
                hint: finding_hint(finding.kind),
            })
            .collect();
        Diagnosis {
            domain: &target.domain,
            component: &target.component,
            report,
            findings,
            tls_findings,
            watch_findings,
        }
    }
}
