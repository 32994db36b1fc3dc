//! Where each family's series come from: one function per metric, reading a target's state
//! (or the exporter's status) and writing to a sink.

use super::*;

// ---- where each family's series come from ----

pub(super) fn build_info(sink: &mut dyn Sink, _: &ExporterStatus) {
    sink.number(&[env!("CARGO_PKG_VERSION")], 1.0);
}

pub(super) fn discarded_cycles(sink: &mut dyn Sink, status: &ExporterStatus) {
    sink.number(&[], status.discarded_cycles as f64);
}

pub(super) fn reload_successful(sink: &mut dyn Sink, status: &ExporterStatus) {
    sink.number(&[], flag(status.successful));
}

pub(super) fn reload_timestamp(sink: &mut dyn Sink, status: &ExporterStatus) {
    if let Some(at) = status.last_success {
        sink.number(&[], timestamp(at));
    }
}

pub(super) fn probe_success(sink: &mut dyn Sink, state: &TargetState) {
    let success = state.latest.as_deref().is_some_and(TargetReport::success);
    sink.number(&[&state.subject.name], flag(success));
}

pub(super) fn probes_total(sink: &mut dyn Sink, state: &TargetState) {
    sink.number(&[&state.subject.name], state.probes as f64);
}

pub(super) fn probe_duration(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(report) = &state.latest {
        sink.number(&[&state.subject.name], seconds(report.duration));
    }
}

pub(super) fn last_probe(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(report) = &state.latest {
        sink.number(&[&state.subject.name], timestamp(report.finished()));
    }
}

/// Only for a scheduled target: a module's run comes when Prometheus asks, and is as fresh as
/// the scrape that asked (a run that hangs fails the scrape: `up` says so).
pub(super) fn probe_interval(sink: &mut dyn Sink, state: &TargetState) {
    if state.subject.requested {
        return;
    }
    let interval = state.subject.interval.as_secs_f64();
    sink.number(&[&state.subject.name], interval);
}

pub(super) fn target_info(sink: &mut dyn Sink, state: &TargetState) {
    let t = &state.subject;
    let server_address = t.server.as_ref().map(ToString::to_string);
    let labels = [
        t.name.as_str(),
        &t.domain,
        &t.component,
        server_address.as_deref().unwrap_or_default(),
        t.tls_mode.as_str(),
        t.protocol.as_str(),
    ];
    sink.number(&labels, 1.0);
}

pub(super) fn dnssec(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(report) = &state.latest {
        for (server, dnssec) in report.dnssec() {
            let server = server_label(server.map(|s| &s.endpoint));
            sink.number(&[&state.subject.name, &server, dnssec.state.as_str()], 1.0);
        }
    }
}

pub(super) fn dnssec_expiry(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(expires) = state.latest.as_ref().and_then(|r| r.dnssec_expires()) {
        sink.number(&[&state.subject.name], expires as f64);
    }
}

/// From the config, not the run: the certificate the target would present.
pub(super) fn client_cert_not_after(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(not_after) = state.subject.client_cert_not_after {
        sink.number(&[&state.subject.name], not_after as f64);
    }
}

pub(super) fn srv_records(sink: &mut dyn Sink, state: &TargetState) {
    if state.subject.server.is_none() {
        let found = state
            .latest
            .as_ref()
            .map_or(0, |r| r.servers.len() + r.srv_skipped);
        sink.number(&[&state.subject.name], found as f64);
    }
}

pub(super) fn srv_truncated(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(report) = state.latest.as_ref().filter(|r| r.srv_skipped > 0) {
        sink.number(&[&state.subject.name], report.srv_skipped as f64);
    }
}

pub(super) fn server_up(sink: &mut dyn Sink, state: &TargetState) {
    for s in servers(state) {
        let up = s.report.up(&s.target_report.expected_steps);
        sink.number(&[s.target, &s.label], flag(up));
    }
}

pub(super) fn step_last_duration(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(report) = &state.latest {
        last_durations(
            sink,
            &state.subject.name,
            report.srv.as_ref(),
            &report.servers,
        );
    }
}

pub(super) fn step_duration(sink: &mut dyn Sink, state: &TargetState) {
    for ((server, step), histogram) in &state.histograms {
        let server = server_label(server.as_ref());
        sink.histogram(&[&state.subject.name, &server, step.as_str()], histogram);
    }
}

pub(super) fn failures_total(sink: &mut dyn Sink, state: &TargetState) {
    failure_counts(sink, &state.subject.name, &state.failures);
}

pub(super) fn failing_step(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(report) = &state.latest {
        failing(sink, &state.subject.name, report.failures());
    }
}

pub(super) fn last_success(sink: &mut dyn Sink, state: &TargetState) {
    for s in servers(state) {
        if let Some(at) = s.seen.last_success {
            sink.number(&[s.target, &s.label], timestamp(at));
        }
    }
}

pub(super) fn server_info(sink: &mut dyn Sink, state: &TargetState) {
    for s in servers(state) {
        let (source, priority, weight, preferred) = match s.report.server.origin {
            Origin::Srv {
                priority,
                weight,
                preferred,
            } => ("srv", priority.to_string(), weight.to_string(), preferred),
            Origin::Static => ("static", String::new(), String::new(), true),
        };
        let address = s.seen.address.map(|a| a.to_string()).unwrap_or_default();
        let preferred = if preferred { "true" } else { "false" };
        let labels = [
            s.target, &s.label, source, &priority, &weight, preferred, &address,
        ];
        sink.number(&labels, 1.0);
    }
}

pub(super) fn cert_not_after(sink: &mut dyn Sink, state: &TargetState) {
    for (s, cert) in certificates(state) {
        sink.number(&[s.target, &s.label], cert.not_after as f64);
    }
}

pub(super) fn cert_chain_not_after(sink: &mut dyn Sink, state: &TargetState) {
    for (s, cert) in certificates(state) {
        if let Some(earliest) = cert.earliest_expiry() {
            let position = earliest.position.to_string();
            sink.number(&[s.target, &s.label, &position], earliest.not_after as f64);
        }
    }
}

pub(super) fn cert_trusted(sink: &mut dyn Sink, state: &TargetState) {
    for (s, cert) in certificates(state) {
        sink.number(&[s.target, &s.label], flag(cert.trusted));
    }
}

pub(super) fn dane_valid(sink: &mut dyn Sink, state: &TargetState) {
    for s in servers(state) {
        if let Some(valid) = s.seen.dane.as_ref().and_then(|dane| dane.valid()) {
            sink.number(&[s.target, &s.label], flag(valid));
        }
    }
}

pub(super) fn cert_san_covered(sink: &mut dyn Sink, state: &TargetState) {
    for (s, cert) in certificates(state) {
        for coverage in &cert.coverage {
            let labels = [s.target, &s.label, coverage.role.as_str(), &coverage.name];
            sink.number(&labels, flag(coverage.covered));
        }
    }
}

pub(super) fn cert_info(sink: &mut dyn Sink, state: &TargetState) {
    for (s, cert) in certificates(state) {
        let sans = cert.sans.join(",");
        let labels = [
            s.target,
            &s.label,
            &cert.subject,
            &cert.issuer,
            &cert.serial,
            &sans,
        ];
        sink.number(&labels, 1.0);
    }
}

pub(super) fn cert_ocsp_next_update(sink: &mut dyn Sink, state: &TargetState) {
    for (s, cert) in certificates(state) {
        if let Some(Staple::Response(stapled)) = &cert.ocsp {
            if let Some(next) = stapled.next_update {
                sink.number(&[s.target, &s.label, stapled.status.as_str()], next as f64);
            }
        }
    }
}

pub(super) fn finding(sink: &mut dyn Sink, state: &TargetState) {
    for found in &state.findings {
        let server = found.server.to_string();
        let kind = found.finding.kind.as_str();
        sink.number(&[&state.subject.name, &server, kind], 1.0);
    }
}

pub(super) fn tls_info(sink: &mut dyn Sink, state: &TargetState) {
    for s in servers(state) {
        if let Some(tls) = s.seen.tls {
            let labels = [s.target, &s.label, &tls.version_name(), &tls.cipher_name()];
            sink.number(&labels, 1.0);
        }
    }
}

pub(super) fn watch_success(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(watch) = watch(state) {
        sink.number(&[&state.subject.name], flag(watch.success()));
    }
}

pub(super) fn watch_step_last_duration(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(watch) = watch(state) {
        last_durations(
            sink,
            &state.subject.name,
            watch.srv.as_ref(),
            &watch.servers,
        );
    }
}

pub(super) fn watch_failures_total(sink: &mut dyn Sink, state: &TargetState) {
    failure_counts(sink, &state.subject.name, &state.watch.failures);
}

pub(super) fn watch_failing_step(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(watch) = watch(state) {
        failing(sink, &state.subject.name, watch.failures());
    }
}

/// Only for a configured target whose watch keeps a session, once one was opened.
pub(super) fn watch_sessions_total(sink: &mut dyn Sink, state: &TargetState) {
    if state.watch.session.kept() {
        sink.number(&[&state.subject.name], state.watch.session.opened as f64);
    }
}

pub(super) fn watch_session_start(sink: &mut dyn Sink, state: &TargetState) {
    if let Some(since) = state.watch.session.since {
        sink.number(&[&state.subject.name], unix_seconds(since));
    }
}

/// Every listed component has a value: 0 also when the login failed and nothing was pinged.
pub(super) fn component_registered(sink: &mut dyn Sink, state: &TargetState) {
    let Some(config) = &state.subject.watch else {
        return;
    };
    let Some(watch) = watch(state) else { return };
    for component in &config.components {
        let registered = watch
            .pings
            .iter()
            .any(|p| &p.component == component && p.registered());
        sink.number(&[&state.subject.name, component], flag(registered));
    }
}

pub(super) fn component_ping(sink: &mut dyn Sink, state: &TargetState) {
    for ping in watch(state).into_iter().flat_map(|w| &w.pings) {
        if let Ok(round_trip) = ping.result {
            sink.number(&[&state.subject.name, &ping.component], seconds(round_trip));
        }
    }
}

pub(super) fn component_failing(sink: &mut dyn Sink, state: &TargetState) {
    for ping in watch(state).into_iter().flat_map(|w| &w.pings) {
        if let Err(failure) = &ping.result {
            let labels = [
                state.subject.name.as_str(),
                &ping.component,
                failure.reason.as_str(),
            ];
            sink.number(&labels, 1.0);
        }
    }
}

// ---- shared by the component flow and the client path ----

pub(super) fn last_durations(
    sink: &mut dyn Sink,
    target: &str,
    srv: Option<&StepRecord>,
    servers: &[ServerReport],
) {
    if let Some(srv) = srv {
        sink.number(
            &[target, NO_SERVER, srv.step.as_str()],
            seconds(srv.duration),
        );
    }
    for server in servers {
        let label = server.server.to_string();
        for record in server.steps.iter().filter(|r| r.step.timed()) {
            let labels = [target, &label, record.step.as_str()];
            sink.number(&labels, seconds(record.duration));
        }
    }
}

pub(super) fn failure_counts(
    sink: &mut dyn Sink,
    target: &str,
    counts: &BTreeMap<FailureKey, u64>,
) {
    for ((server, step, reason), count) in counts {
        let server = server_label(server.as_ref());
        let labels = [target, &server, step.as_str(), reason.as_str()];
        sink.number(&labels, *count as f64);
    }
}

pub(super) fn failing<'a>(
    sink: &mut dyn Sink,
    target: &str,
    failures: impl Iterator<Item = (Option<&'a Server>, Step, &'a Failure)>,
) {
    for (server, step, failure) in failures {
        let server = server_label(server.map(|s| &s.endpoint));
        let labels = [target, &server, step.as_str(), failure.reason.as_str()];
        sink.number(&labels, 1.0);
    }
}

// ---- walking a target's state ----

/// A server of a target's latest report, with what is remembered of it.
pub(super) struct ServerView<'a> {
    target: &'a str,
    label: String,
    report: &'a ServerReport,
    target_report: &'a TargetReport,
    seen: &'a Seen,
}

pub(super) fn servers(state: &TargetState) -> impl Iterator<Item = ServerView<'_>> {
    state.latest.as_deref().into_iter().flat_map(move |report| {
        report.servers.iter().filter_map(move |server| {
            Some(ServerView {
                target: &state.subject.name,
                label: server.server.to_string(),
                report: server,
                target_report: report,
                // Every server of the latest report is remembered (`TargetState::after`).
                seen: state.seen(&server.server.endpoint)?,
            })
        })
    })
}

pub(super) fn watch(state: &TargetState) -> Option<&WatchReport> {
    state.watch.latest.as_deref()
}

/// Servers with the certificate they last presented.
pub(super) fn certificates(
    state: &TargetState,
) -> impl Iterator<Item = (ServerView<'_>, Arc<CertFacts>)> {
    servers(state).filter_map(|s| {
        let cert = s.seen.cert.clone()?;
        Some((s, cert))
    })
}

pub(super) fn server_label(server: Option<&Endpoint>) -> String {
    server.map(Endpoint::to_string).unwrap_or_default()
}

pub(super) fn flag(value: bool) -> f64 {
    f64::from(u8::from(value))
}

/// A duration to the microsecond: finer digits only cost bytes.
pub(super) fn seconds(duration: std::time::Duration) -> f64 {
    duration.as_micros() as f64 / 1e6
}

/// Unix time to the millisecond, likewise.
pub(super) fn timestamp(at: std::time::SystemTime) -> f64 {
    (unix_seconds(at) * 1000.0).round() / 1000.0
}
